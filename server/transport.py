"""What happens on the socket besides the protocol: HTTP endpoints on the websocket
port (static files), the Origin check for browsers, and per-message compression."""

from __future__ import annotations

import http
import mimetypes
from pathlib import Path
from urllib.parse import urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.extensions.permessage_deflate import (
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import BINARY, CONT, CTRL_OPCODES
from websockets.http11 import Response

from .config import is_loopback

STATIC_DIR = Path(__file__).resolve().parent / "static"
# The viewer's three.js modules, served from the project's own npm install (no CDN).
# Only these two packages are reachable; nothing else under node_modules is.
NODE_MODULES = Path(__file__).resolve().parents[1] / "node_modules"
VENDOR_DIRS: dict[str, Path] = {
    "/vendor/three/": NODE_MODULES / "three",
    "/vendor/@pixiv/three-vrm/": NODE_MODULES / "@pixiv" / "three-vrm",
}


class TextOnlyDeflate(PerMessageDeflate):
    """permessage-deflate that compresses text frames and sends binary ones as they are.

    RFC 7692 lets a sender leave any message uncompressed (RSV1 clear). glb/VRM
    and PNG payloads barely shrink and deflate costs far more than the transfer
    (bench/bench_server.py measures both).
    """

    _binary_message = False

    def encode(self, frame):  # type: ignore[no-untyped-def]
        if frame.opcode in CTRL_OPCODES:
            return frame
        if frame.opcode is not CONT:
            self._binary_message = frame.opcode is BINARY
        return frame if self._binary_message else super().encode(frame)


class TextOnlyDeflateFactory(ServerPerMessageDeflateFactory):
    def process_request_params(self, params, accepted_extensions):  # type: ignore[no-untyped-def]
        response_params, extension = super().process_request_params(params, accepted_extensions)
        extension.__class__ = TextOnlyDeflate
        return response_params, extension


def static_response(connection: ServerConnection, path: str) -> Response:
    """A file under server/static/ (`/` is index.html) or a vendored module, or 404.

    No path escapes its folder (resolved, then checked to lie inside it).
    """
    base, relative = STATIC_DIR, "index.html" if path in ("", "/") else path.lstrip("/")
    for prefix, directory in VENDOR_DIRS.items():
        if path.startswith(prefix):
            base, relative = directory.resolve(), path[len(prefix) :]
            break
    try:  # a name too long for the file system, a NUL... is no file of ours either
        target = (base / relative).resolve()
        if base.is_dir() and target.is_relative_to(base) and target.is_file():
            body = target.read_bytes()
        else:
            body = None
    except (OSError, ValueError):
        body = None
    if body is None:
        return connection.respond(http.HTTPStatus.NOT_FOUND, "not found\n")
    kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    headers = Headers({"Content-Type": kind, "Content-Length": str(len(body))})
    return Response(200, "OK", headers, body)


def origin_allowed(headers: Headers, allowed: list[str], loopback_only: bool = False) -> bool:
    """No Origin (not a browser), a listed one, "*" listed, or the server's own host;
    with `loopback_only`, that host must be a loopback name or address.

    loopback_only: for a server without tokens. A page whose name an attacker's DNS
    points at 127.0.0.1 after it loaded (DNS rebinding) is "same origin" by the Host
    header it sends, but its name is not a loopback one.
    """
    origin = headers.get("Origin")
    if origin is None:
        return True
    if "*" in allowed or origin in allowed:
        return True
    # Same origin: a page this server served (the viewer) talking back to it.
    parts = urlsplit(origin)
    if parts.netloc.lower() != headers.get("Host", "").lower():
        return False
    return not loopback_only or is_loopback(parts.hostname or "")
