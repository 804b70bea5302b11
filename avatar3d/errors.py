"""Typed errors with stable machine-readable codes, shared by the CLI and the server."""

from __future__ import annotations


class ChibiError(Exception):
    """An expected failure with a stable `code` (snake_case) and a human message.

    Codes are part of the public protocol: never rename one. See
    server/PROTOCOL.md for the full list.
    """

    def __init__(self, code: str, message: str):
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")
