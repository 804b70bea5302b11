"""A bare websocket client for the server tests: speaks the chibi protocol by hand (no
client library), so a test can send anything, in any order."""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from server.protocol import encode_blob, encode_json


class Raw:
    """A bare websocket connection that speaks the protocol by hand (no client library)."""

    def __init__(self, ws):
        self.ws = ws

    @classmethod
    async def open(cls, url: str, hello: bool = True, **kwargs: Any) -> Raw:
        raw = cls(await connect(url, compression=None, max_size=None, **kwargs))
        if hello:
            await raw.send({"type": "hello", "version": 1})
            assert (await raw.next())["type"] == "welcome"
        return raw

    async def send(self, message: dict | str | bytes) -> None:
        await self.ws.send(encode_json(message) if isinstance(message, dict) else message)

    async def next(self, timeout: float = 60) -> dict:
        """The next text message (binary result chunks are returned as {"binary": kind})."""
        message = await asyncio.wait_for(self.ws.recv(), timeout)
        if isinstance(message, bytes):
            length = struct.unpack(">I", message[4:8])[0]
            return {"binary": json.loads(message[8 : 8 + length])["kind"]}
        return json.loads(message)

    async def until(self, *types: str, timeout: float = 60) -> dict:
        """Skip messages until one of these types (accepted/progress/chunks are skipped)."""
        while True:
            message = await self.next(timeout)
            if message.get("type") in types:
                return message

    async def error(self, timeout: float = 60) -> dict:
        return await self.until("error", "done", timeout=timeout)

    async def closed(self, timeout: float = 30) -> tuple[int | None, str]:
        try:
            while True:
                await asyncio.wait_for(self.ws.recv(), timeout)
        except ConnectionClosed as exc:
            frame = exc.rcvd
            return (frame.code, frame.reason) if frame else (None, "")

    async def alive(self) -> None:
        """The connection still answers: an application ping round trip."""
        await self.send({"type": "ping", "nonce": 7})
        assert (await self.until("pong", timeout=10))["nonce"] == 7

    async def params_request(self, request_id: str, **options: Any) -> None:
        options.setdefault("format", "glb")
        message = {"type": "request", "id": request_id, "source": "params", "params": {}}
        await self.send({**message, "options": options})

    async def photo_request(self, request_id: str, photo: bytes, **options: Any) -> None:
        options.setdefault("format", "glb")
        message = {"type": "request", "id": request_id, "source": "photo", "options": options}
        await self.send(message)
        for chunk in encode_blob(request_id, "photo", photo, 1024 * 1024):
            await self.send(chunk)
