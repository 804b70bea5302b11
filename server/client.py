"""Python client for the chibi websocket service (async, plus a small sync wrapper).

    async with await ChibiClient.connect("ws://127.0.0.1:8765/ws", token=...) as client:
        result = await client.generate(photo_bytes, format="vrm1")
        Path("me.vrm").write_bytes(result.data)

    with SyncChibiClient("ws://127.0.0.1:8765/ws") as client:
        result = client.generate(params={"hair_style": "bob"}, format="glb")

Several `generate` calls may run at once on one client (one connection);
`cancel(request_id)` stops one. Errors arrive as `ChibiServerError` with the
server's stable `code` (see server/PROTOCOL.md).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from avatar3d.errors import ChibiError

from .protocol import (
    DEFAULT_CHECKSUM,
    PROTOCOL_VERSION,
    BlobAssembler,
    ProtocolError,
    decode_frame,
    encode_blob,
    encode_json,
)

DEFAULT_URL = "ws://127.0.0.1:8765/ws"
NOTICES_KEPT = 100  # the latest errors no request owns; older ones are dropped
# Websocket close codes the server uses -> the protocol's error codes.
CLOSE_CODES = {
    1001: "shutting_down",
    1007: "bad_message",
    1008: "unauthorized",
    1009: "frame_too_large",
    1011: "internal_error",
}


class ChibiServerError(ChibiError):
    """The server answered with an error. `code` is stable; `request_id` None for the connection."""

    def __init__(self, code: str, message: str, request_id: str | None = None, field: str = ""):
        super().__init__(code, message)
        self.request_id, self.field = request_id, field


@dataclass
class AvatarResult:
    """One avatar: `data` is the glb/VRM file; `preview` PNG and `params` when asked for."""

    id: str
    format: str
    data: bytes = b""
    preview: bytes | None = None
    params: dict[str, Any] | None = None
    item: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)
    elapsed_s: float = 0.0


@dataclass
class _Pending:
    future: asyncio.Future
    on_progress: Callable[[str, dict[str, Any]], None] | None
    started: float
    items: dict[int, AvatarResult] = field(default_factory=dict)
    blobs: dict[tuple[int, str], BlobAssembler] = field(default_factory=dict)


class ChibiClient:
    """One connection to the service. Create with `await ChibiClient.connect(url)`."""

    def __init__(self, ws: ClientConnection, welcome: dict[str, Any]):
        self.ws, self.welcome = ws, welcome
        self.chunk_bytes: int = welcome["chunk_bytes"]
        # of our blobs and the server's (servers that predate the choice use sha256)
        self.checksum: str = welcome.get("checksum", DEFAULT_CHECKSUM)
        self.pending: dict[str, _Pending] = {}
        # non-fatal errors not tied to a request, the latest NOTICES_KEPT
        self.notices: deque[dict[str, Any]] = deque(maxlen=NOTICES_KEPT)
        self._ids = itertools.count(1)
        self._pongs: dict[int, asyncio.Future] = {}
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(
        cls,
        url: str = DEFAULT_URL,
        token: str | None = None,
        token_in_hello: bool = False,
        max_chunk_bytes: int | None = None,
        open_timeout: float = 10.0,
        checksums: tuple[str, ...] = ("crc32", "sha256"),
        **connect_kwargs: Any,
    ) -> ChibiClient:
        """Open, say hello, and return once the server's `welcome` arrived.

        The token goes in the `Authorization: Bearer` header, or in the hello
        message when `token_in_hello` (what browsers must do). `checksums`: the
        blob checksums we accept, most wanted first (PROTOCOL.md, `hello`).
        """
        headers = {"Authorization": f"Bearer {token}"} if token and not token_in_hello else None
        connect_kwargs.setdefault("compression", None)
        connect_kwargs.setdefault("max_size", 64 * 1024 * 1024)
        ws = await connect(
            url, additional_headers=headers, open_timeout=open_timeout, **connect_kwargs
        )
        hello: dict[str, Any] = {"type": "hello", "version": PROTOCOL_VERSION, "client": "py"}
        if token and token_in_hello:
            hello["token"] = token
        if max_chunk_bytes:
            hello["max_chunk_bytes"] = max_chunk_bytes
        if checksums != (DEFAULT_CHECKSUM,):
            hello["checksums"] = list(checksums)
        try:
            await ws.send(encode_json(hello))
            reply = json.loads(await asyncio.wait_for(ws.recv(), open_timeout))
        except ConnectionClosed as exc:
            raise _closed_error(exc) from None
        except BaseException:  # no welcome in time, or not JSON: drop the socket at once
            ws.transport.abort()
            raise
        if not isinstance(reply, dict):
            ws.transport.abort()
            raise ChibiServerError("bad_message", "the server's first answer is not an object")
        if reply.get("type") != "welcome":
            await ws.close()
            raise ChibiServerError(reply.get("code", "bad_message"), reply.get("message", ""))
        return cls(ws, reply)

    async def __aenter__(self) -> ChibiClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.ws.close()
        await asyncio.gather(self._reader, return_exceptions=True)

    # -- requests ----------------------------------------------------------------
    async def generate(self, photo: bytes | None = None, **kwargs: Any) -> AvatarResult:
        """Photo bytes (or `params=`) -> the first avatar. See `generate_all` for arguments."""
        results = await self.generate_all(photo, **kwargs)
        return results[0]

    async def generate_all(
        self,
        photo: bytes | None = None,
        *,
        params: dict[str, Any] | Any | None = None,
        format: str = "vrm1",
        quality: str = "default",
        all_faces: bool = False,
        return_params: bool = False,
        return_preview: bool = False,
        thumbnail: bool = True,
        timeout_s: float | None = None,
        on_progress: Callable[[str, dict[str, Any]], None] | None = None,
        request_id: str | None = None,
    ) -> list[AvatarResult]:
        """Run one request; one result per face (several only with `all_faces`).

        Give either `photo` (encoded image bytes: JPEG, PNG...) or `params`
        (an `AvatarParams` or its dict). `on_progress(stage, message)` is
        called for each progress event; `timeout_s` makes the server give up
        sooner than its own limit. Raises `ChibiServerError`.
        """
        if (photo is None) == (params is None):
            raise ValueError("give exactly one of photo or params")
        request_id = request_id or f"r{next(self._ids)}"
        if request_id in self.pending:
            raise ValueError(f"request id {request_id!r} is already in flight")
        options = {
            "format": format,
            "quality": quality,
            "all_faces": all_faces,
            "return_params": return_params,
            "return_preview": return_preview,
            "timeout_s": timeout_s,
        }
        if not thumbnail:  # sent only when set, so servers that predate the option still answer
            options["thumbnail"] = False
        message: dict[str, Any] = {"type": "request", "id": request_id, "options": options}
        if params is not None:
            message["source"] = "params"
            message["params"] = params.to_dict() if hasattr(params, "to_dict") else params
        else:
            message["source"] = "photo"
        text = encode_json(message)
        limits = self.welcome.get("limits", {})
        size, limit = len(text.encode()), limits.get("max_json_bytes")
        if limit and size > limit:  # the server would not read it, nor name it in its answer
            raise ChibiServerError(
                "frame_too_large", f"the request is {size} bytes, over max_json_bytes {limit}",
                request_id,
            )  # fmt: skip
        limit = limits.get("max_photo_bytes")
        if photo is not None and limit and len(photo) > limit:  # refused before uploading it
            raise ChibiServerError(
                "payload_too_large", f"the photo is {len(photo)} bytes, over max_photo_bytes "
                f"{limit}", request_id,
            )  # fmt: skip
        loop = asyncio.get_running_loop()
        pending = _Pending(loop.create_future(), on_progress, time.perf_counter())
        self.pending[request_id] = pending
        try:
            await self.ws.send(text)
            if photo is not None:
                chunks = encode_blob(
                    request_id, "photo", photo, self.chunk_bytes, checksum=self.checksum
                )
                for chunk in chunks:
                    if pending.future.done():  # the server ended it (a bad checksum...)
                        break
                    await self.ws.send(chunk)
        except ConnectionClosed as exc:
            self.pending.pop(request_id, None)
            raise _closed_error(exc) from None
        try:
            return await pending.future
        finally:
            self.pending.pop(request_id, None)

    async def cancel(self, request_id: str) -> None:
        """Ask the server to stop a request; its `generate` raises code 'cancelled'."""
        await self.ws.send(encode_json({"type": "cancel", "id": request_id}))

    def _cancel_soon(self, request_id: str) -> None:
        """`cancel` from the reader, which cannot wait; a closed connection needs none."""
        task = asyncio.get_running_loop().create_task(self.cancel(request_id))
        task.add_done_callback(lambda done: done.cancelled() or done.exception())

    async def ping(self, timeout: float = 10.0) -> float:
        """Application-level round trip (a `ping` message) in seconds."""
        nonce = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pongs[nonce] = future
        start = time.perf_counter()
        try:
            await self.ws.send(encode_json({"type": "ping", "nonce": nonce}))
            await asyncio.wait_for(future, timeout)
        finally:
            self._pongs.pop(nonce, None)  # answered, or given up on
        return time.perf_counter() - start

    # -- receiving ----------------------------------------------------------------
    async def _read(self) -> None:
        try:
            async for message in self.ws:
                try:
                    if isinstance(message, str):
                        self._on_text(json.loads(message))
                    else:
                        self._on_binary(message)
                except Exception as exc:  # noqa: BLE001 - a malformed message stops no reading
                    self.notices.append({"code": "bad_message", "message": repr(exc)[:200]})
        except ConnectionClosed:
            pass
        finally:
            error = _closed_error(self.ws.close_code, self.ws.close_reason)
            for pending in self.pending.values():
                if not pending.future.done():
                    pending.future.set_exception(error)

    def _on_text(self, message: dict[str, Any]) -> None:
        kind, request_id = message.get("type"), message.get("id")
        if kind == "pong":
            future = self._pongs.pop(message.get("nonce"), None)
            if future is not None and not future.done():
                future.set_result(None)
            return
        pending = self.pending.get(request_id) if request_id is not None else None
        if kind == "error" and pending is None:
            self.notices.append(message)
        elif pending is None:
            return
        elif kind == "error":
            error = ChibiServerError(
                message["code"], message["message"], request_id, message.get("field", "")
            )
            _settle(pending.future, error=error)
        elif kind == "progress" and pending.on_progress is not None:
            try:
                pending.on_progress(message["stage"], message)
            except Exception as exc:  # noqa: BLE001 - the caller's callback ends its own request
                _settle(pending.future, error=exc)
                self._cancel_soon(request_id)
        elif kind == "result":
            pending.items[message["item"]] = AvatarResult(
                request_id,
                message["format"],
                params=message.get("params"),
                item=message["item"],
                timings_ms=message.get("timings_ms", {}),
            )
        elif kind == "done":
            results = [pending.items[number] for number in sorted(pending.items)]
            for result in results:
                result.elapsed_s = time.perf_counter() - pending.started
            _settle(pending.future, value=results)

    def _on_binary(self, data: bytes) -> None:
        try:
            frame = decode_frame(data)
            pending = self.pending.get(frame.id)
            if pending is None:
                return
            key = (frame.item, frame.kind)
            if frame.index == 0:
                pending.blobs[key] = BlobAssembler(frame, max_bytes=2**40)
            blob = pending.blobs[key].add(frame)
        except (ProtocolError, KeyError) as exc:
            self.notices.append({"code": "bad_message", "message": f"bad result frame: {exc}"})
            return
        if blob is not None:
            del pending.blobs[key]
            result = pending.items[frame.item]
            if frame.kind == "model":
                result.data = blob
            else:
                result.preview = blob


def _settle(future: asyncio.Future, value: Any = None, error: BaseException | None = None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


def _closed_error(code_or_exc: Any, reason: str | None = None) -> ChibiServerError:
    if isinstance(code_or_exc, ConnectionClosed):
        frame = code_or_exc.rcvd
        code_or_exc, reason = (frame.code, frame.reason) if frame else (None, "")
    code = CLOSE_CODES.get(code_or_exc or 0, "connection_closed")
    if reason and reason.isidentifier() and reason.islower():
        code = reason  # the server puts its error code in the close reason
    return ChibiServerError(code, f"connection closed ({code_or_exc} {reason or ''})".strip())


class SyncChibiClient:
    """Blocking wrapper: the async client lives on an event loop in a daemon thread.

    The loop keeps running between calls, so the connection answers the server's
    keepalive pings while the caller does other work (a loop run only inside
    calls was dropped by the server after about 40 s idle).
    """

    def __init__(self, url: str = DEFAULT_URL, token: str | None = None, **kwargs: Any):
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="chibi-client", daemon=True
        )
        self._thread.start()
        try:
            self._client = self._call(ChibiClient.connect(url, token=token, **kwargs))
        except BaseException:
            self._stop_loop()
            raise
        self.welcome = self._client.welcome

    def _call(self, coroutine: Any) -> Any:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result()
        except BaseException:  # Ctrl-C while waiting: stop the coroutine too
            future.cancel()
            raise

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def generate(self, photo: bytes | None = None, **kwargs: Any) -> AvatarResult:
        return self._call(self._client.generate(photo, **kwargs))

    def generate_all(self, photo: bytes | None = None, **kwargs: Any) -> list[AvatarResult]:
        return self._call(self._client.generate_all(photo, **kwargs))

    def ping(self, timeout: float = 10.0) -> float:
        return self._call(self._client.ping(timeout))

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            self._call(self._client.close())
        finally:
            self._stop_loop()

    def __enter__(self) -> SyncChibiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def default_url() -> str:
    return os.environ.get("CHIBI_URL", DEFAULT_URL)
