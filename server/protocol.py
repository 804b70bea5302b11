"""The chibi websocket protocol, version 1, written sans-I/O.

Control messages (JSON text frames), their validation, and a per-connection state
machine (`ServerSession`); no asyncio, no sockets. The I/O layer (`server.app`)
feeds it complete websocket messages and performs the events it returns. Binary
frames are encoded and decoded by `server.framing` (re-exported here).
`server/PROTOCOL.md` is the normative description; this module implements it.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from avatar3d.params import AvatarParams, ParamsError

from .framing import (  # noqa: F401 - re-exported: the protocol's binary half
    BLOB_KINDS,
    CHECKSUMS,
    DEFAULT_CHECKSUM,
    MAGIC,
    MAX_HEADER_BYTES,
    BlobAssembler,
    Frame,
    ProtocolError,
    blob_digest,
    blob_info,
    check_id,
    decode_frame,
    encode_blob,
    encode_frame,
)

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS: tuple[int, ...] = (1,)
FORMATS: tuple[str, ...] = ("glb", "vrm1", "vrm0")
QUALITIES: tuple[str, ...] = ("default", "high")
SOURCES: tuple[str, ...] = ("photo", "params")
# Progress stages in the order they are sent (photo-only stages are skipped for params).
STAGES: tuple[str, ...] = ("started", "decoded", "face_found", "params", "built", "exported")
DEFAULT_OPTIONS: dict[str, Any] = {
    "format": "vrm1",
    "quality": "default",
    "all_faces": False,
    "return_params": False,
    "return_preview": False,
    "thumbnail": True,  # VRM formats: embed the 1024 px thumbnail (about half the work)
    "timeout_s": None,  # None: the server's request_timeout; else the smaller of the two
}

# Every code the server sends in an `error` message; documented in PROTOCOL.md.
PROTOCOL_ERROR_CODES: tuple[str, ...] = (
    "bad_message", "invalid_json", "unknown_type", "wrong_state", "unsupported_version",
    "unauthorized", "frame_too_large", "duplicate_id", "unknown_id", "invalid_option",
    "invalid_params", "payload_too_large", "checksum_mismatch", "busy", "rate_limited",
    "timeout", "idle_timeout", "cancelled", "shutting_down", "not_available",
    "internal_error",
)  # fmt: skip
# Codes of `avatar3d.face` (ChibiError) passed through unchanged.
IMAGE_ERROR_CODES: tuple[str, ...] = (
    "invalid_image", "image_too_large", "no_face", "face_too_small", "face_too_rotated",
)  # fmt: skip
# Websocket close codes used by the server (RFC 6455 section 7.4.1).
CLOSE_NORMAL, CLOSE_GOING_AWAY, CLOSE_POLICY, CLOSE_TOO_BIG = 1000, 1001, 1008, 1009


def _pick_checksum(offered: Any) -> str:
    """The first checksum of the client's list (most wanted first) that we know."""
    if not isinstance(offered, list) or not all(isinstance(name, str) for name in offered):
        raise ProtocolError("bad_message", "'checksums' must be a list of strings")
    return next((name for name in offered if name in CHECKSUMS), DEFAULT_CHECKSUM)


# -- encoding -----------------------------------------------------------------
def encode_json(message: dict[str, Any]) -> str:
    """A control message as compact JSON text (one websocket text frame)."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


# -- decoding -----------------------------------------------------------------
def decode_json(text: str | bytes, max_bytes: int) -> dict[str, Any]:
    """A control message -> dict with a string `type`. Raises only `ProtocolError`."""
    size = len(text.encode("utf-8", "surrogatepass")) if isinstance(text, str) else len(text)
    if size > max_bytes:
        raise ProtocolError("frame_too_large", f"text message over {max_bytes} bytes")
    try:
        message = json.loads(text)
        # "\ud800" escapes decode to lone surrogates, which no UTF-8 text can carry back
        # (a ping's nonce, a field name in an error, a name in the file)
        json.dumps(message, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ProtocolError("invalid_json", "a string holds a lone UTF-16 surrogate") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ProtocolError("invalid_json", f"not valid JSON: {str(exc)[:120]}") from None
    if not isinstance(message, dict):
        raise ProtocolError("bad_message", "a message must be a JSON object")
    kind = message.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("bad_message", "'type' must be a string")
    return message


def parse_options(raw: Any, ref: str) -> dict[str, Any]:
    """A request's `options` object -> complete options dict (defaults filled in)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ProtocolError("invalid_option", "'options' must be an object", ref)
    unknown = sorted(set(raw) - set(DEFAULT_OPTIONS))
    if unknown:
        raise ProtocolError("invalid_option", f"unknown option {unknown[0]!r}", ref)
    options = {**DEFAULT_OPTIONS, **raw}
    if options["format"] not in FORMATS:
        raise ProtocolError("invalid_option", f"format must be one of {', '.join(FORMATS)}", ref)
    if options["quality"] not in QUALITIES:
        raise ProtocolError("invalid_option", f"quality must be one of {', '.join(QUALITIES)}", ref)
    for name in ("all_faces", "return_params", "return_preview", "thumbnail"):
        if not isinstance(options[name], bool):
            raise ProtocolError("invalid_option", f"{name} must be true or false", ref)
    timeout = options["timeout_s"]
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0
    ):
        raise ProtocolError("invalid_option", "timeout_s must be a number of seconds > 0", ref)
    return options


# -- the server's per-connection state machine ---------------------------------
@dataclass
class SessionLimits:
    """Per-connection limits the session enforces itself (bytes, counts)."""

    max_json_bytes: int = 64 * 1024
    max_photo_bytes: int = 20 * 1024 * 1024
    max_in_flight: int = 4
    chunk_bytes: int = 1024 * 1024


@dataclass
class Send:
    """Send this websocket message (str -> text frame, bytes -> binary frame)."""

    data: str | bytes


@dataclass
class Close:
    """Close the connection with this websocket close code and reason."""

    code: int
    reason: str


@dataclass
class Authenticate:
    """A hello arrived; the app must call `session.authenticate(ok)` at once."""

    token: str | None


@dataclass
class Admit:
    """A valid request arrived; the app must call `accept(id)` or `refuse(id, ...)` at once."""

    id: str
    source: str
    options: dict[str, Any]


@dataclass
class Submit:
    """A request is complete (photo received or params given): start its work."""

    id: str
    source: str
    options: dict[str, Any]
    photo: bytes | None = None
    params: dict[str, Any] | None = None


@dataclass
class Cancel:
    """Stop the work of this request; its `cancelled` error was already sent."""

    id: str


Event = Send | Close | Authenticate | Admit | Submit | Cancel


@dataclass
class _Request:
    source: str
    options: dict[str, Any]
    params: dict[str, Any] | None = None
    photo: BlobAssembler | None = None
    submitted: bool = False


@dataclass
class ServerSession:
    """One connection's protocol state, from the server's side.

    Feed complete websocket messages to `receive_text` / `receive_bytes`; they
    return events for the I/O layer. The I/O layer reports work back through
    `progress`, `result` and `fail`, which return the messages to send. The
    session guarantees that every admitted request ends with exactly one `done`
    or one `error` carrying its id, and drops anything reported after that.
    """

    limits: SessionLimits = field(default_factory=SessionLimits)
    authenticated: bool = False  # True when the handshake's Authorization header was valid
    welcome: dict[str, Any] = field(default_factory=dict)  # extra fields for `welcome`
    state: str = "await_hello"  # await_hello -> open -> closed
    chunk_bytes: int = 0
    # of the blobs we send, chosen by the client at hello; the worker computes it beside the
    # work, and `result` takes its digests
    checksum: str = DEFAULT_CHECKSUM
    requests: dict[str, _Request] = field(default_factory=dict)
    recent: OrderedDict = field(default_factory=OrderedDict)  # ended ids, newest last
    finished: list = field(default_factory=list)  # (id, "ok" or error code) not yet popped

    # -- input ----------------------------------------------------------------
    def receive_text(self, text: str | bytes) -> list[Event]:
        if self.state == "closed":
            return []
        try:
            message = decode_json(text, self.limits.max_json_bytes)
            if self.state == "await_hello" and message["type"] != "hello":
                return self.abort("wrong_state", "the first message must be 'hello'")
            handler = getattr(self, f"_on_{message['type']}", None)
            if handler is None:
                raise ProtocolError("unknown_type", f"unknown message type {message['type']!r}")
            return handler(message)
        except ProtocolError as exc:
            if self.state == "await_hello":
                return self.abort(exc.code, exc.message)
            return [self._error(None, exc.code, exc.message, ref=exc.ref)]

    def receive_bytes(self, data: bytes) -> list[Event]:
        if self.state == "closed":
            return []
        if self.state == "await_hello":
            return self.abort("wrong_state", "the first message must be 'hello'")
        try:
            frame = decode_frame(data)
        except ProtocolError as exc:
            return [self._error(None, exc.code, exc.message, ref=exc.ref)]
        request = self.requests.get(frame.id)
        if request is None:
            if frame.id in self.recent:
                return []  # e.g. the photo of a request refused as busy: already answered
            message = f"no request {frame.id!r} in flight"
            return [self._error(None, "unknown_id", message, ref=frame.id)]
        if frame.kind != "photo" or request.source != "photo" or request.submitted:
            message = f"request {frame.id!r} takes no such blob now"
            return [self._error(None, "wrong_state", message, ref=frame.id)]
        try:
            if frame.index == 0 and request.photo is None:
                request.photo = BlobAssembler(frame, self.limits.max_photo_bytes)
            if request.photo is None:
                raise ProtocolError("bad_message", "the first photo chunk must have index 0")
            photo = request.photo.add(frame)
        except ProtocolError as exc:
            return self._end(frame.id, exc.code, exc.message) + [Cancel(frame.id)]
        if photo is None:
            return []
        request.submitted, request.photo = True, None
        return [Submit(frame.id, "photo", request.options, photo=photo)]

    # -- message handlers -----------------------------------------------------
    def _on_hello(self, message: dict[str, Any]) -> list[Event]:
        if self.state != "await_hello":
            raise ProtocolError("wrong_state", "hello was already received")
        version = message.get("version")
        if version not in SUPPORTED_VERSIONS or isinstance(version, bool):
            return self.abort(
                "unsupported_version",
                f"protocol version {version!r} is not supported; supported: {SUPPORTED_VERSIONS}",
                supported=list(SUPPORTED_VERSIONS),
            )
        token = message.get("token")
        if token is not None and not isinstance(token, str):
            raise ProtocolError("bad_message", "'token' must be a string")
        chunk = message.get("max_chunk_bytes", self.limits.chunk_bytes)
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1024:
            raise ProtocolError("bad_message", "'max_chunk_bytes' must be an integer >= 1024")
        self.chunk_bytes = min(chunk, self.limits.chunk_bytes)
        self.checksum = _pick_checksum(message.get("checksums", [DEFAULT_CHECKSUM]))
        if self.authenticated:
            return self.authenticate(True)
        return [Authenticate(token)]

    def authenticate(self, ok: bool) -> list[Event]:
        """The app's answer to `Authenticate`: opens the session or ends it."""
        if not ok:
            return self.abort("unauthorized", "missing or invalid bearer token")
        self.state, self.authenticated = "open", True
        welcome = {
            "type": "welcome",
            "version": PROTOCOL_VERSION,
            **self.welcome,
            "chunk_bytes": self.chunk_bytes,
            "checksum": self.checksum,
        }
        return [Send(encode_json(welcome))]

    def _on_request(self, message: dict[str, Any]) -> list[Event]:
        request_id = check_id(message.get("id"))
        if request_id in self.requests:
            raise ProtocolError("duplicate_id", f"request {request_id!r} is in flight", request_id)
        # From here on every problem ends this request id with an `error` carrying it.
        source = message.get("source")
        params = None
        try:
            if source not in SOURCES:
                raise ProtocolError("bad_message", "'source' must be 'photo' or 'params'")
            options = parse_options(message.get("options"), request_id)
            if source == "params":
                params = AvatarParams.from_dict(message.get("params")).to_dict()
            if len(self.requests) >= self.limits.max_in_flight:
                raise ProtocolError("busy", f"{len(self.requests)} requests in flight already")
        except ProtocolError as exc:
            return self._end(request_id, exc.code, exc.message)
        except ParamsError as exc:
            return self._end(request_id, "invalid_params", str(exc), field=exc.field or None)
        except TypeError as exc:  # e.g. AvatarParams(**data) with an odd key
            return self._end(request_id, "invalid_params", str(exc)[:200])
        self.requests[request_id] = _Request(source, options, params=params)
        return [Admit(request_id, source, options)]

    def accept(self, request_id: str, queued: int = 0) -> list[Event]:
        """Admit a request: sends `accepted`; a params request is submitted at once."""
        request = self.requests[request_id]
        events: list[Event] = [
            Send(encode_json({"type": "accepted", "id": request_id, "queued": queued}))
        ]
        if request.source == "params":
            request.submitted = True
            events.append(Submit(request_id, "params", request.options, params=request.params))
        return events

    def refuse(self, request_id: str, code: str, message: str) -> list[Event]:
        """Turn an `Admit` down (busy, rate_limited, shutting_down...)."""
        return self._end(request_id, code, message)

    def _on_cancel(self, message: dict[str, Any]) -> list[Event]:
        request_id = check_id(message.get("id"))
        if request_id not in self.requests:
            raise ProtocolError("unknown_id", f"no request {request_id!r} in flight", request_id)
        return self._end(request_id, "cancelled", "cancelled by the client") + [Cancel(request_id)]

    def _on_ping(self, message: dict[str, Any]) -> list[Event]:
        try:
            return [Send(encode_json({"type": "pong", "nonce": message.get("nonce")}))]
        except ValueError:  # NaN or Infinity, which Python's json reads and JSON has not
            raise ProtocolError("bad_message", "'nonce' holds NaN or Infinity") from None

    # -- output for work in progress --------------------------------------------
    def progress(self, request_id: str, stage: str, **detail: Any) -> list[Event]:
        if request_id not in self.requests:
            return []
        return [Send(encode_json({"type": "progress", "id": request_id, "stage": stage, **detail}))]

    def result(self, request_id: str, items: list[dict[str, Any]]) -> list[Event]:
        """A finished request: per item, a `result` message and its chunks, then `done`.

        items: one dict per avatar with `model` (bytes), optional `preview`
        (PNG bytes), optional `params` (dict), `format`, `timings_ms`, and
        optionally `digests` {"model": hex, "preview": hex}: the session's
        `checksum`, computed by the worker so the event loop does not hash megabytes.
        """
        if request_id not in self.requests:
            return []
        del self.requests[request_id]
        self._remember(request_id, "ok")
        events: list[Event] = []
        for number, item in enumerate(items):
            digests = item.get("digests", {})
            message = {
                "type": "result",
                "id": request_id,
                "item": number,
                "items": len(items),
                "format": item["format"],
                "timings_ms": item.get("timings_ms", {}),
            }
            blobs = [kind for kind in ("model", "preview") if item.get(kind) is not None]
            for kind in blobs:
                message[kind] = blob_info(
                    item[kind], self.chunk_bytes, digests.get(kind), self.checksum
                )
            if item.get("params") is not None:
                message["params"] = item["params"]
            events.append(Send(encode_json(message)))
            for kind in blobs:
                digest = message[kind][self.checksum]
                chunks = encode_blob(
                    request_id, kind, item[kind], self.chunk_bytes, number, digest, self.checksum
                )
                events.extend(Send(chunk) for chunk in chunks)
        events.append(Send(encode_json({"type": "done", "id": request_id, "items": len(items)})))
        return events

    def fail(self, request_id: str, code: str, message: str, **detail: Any) -> list[Event]:
        """End a request with an error (no-op if it already ended)."""
        if request_id not in self.requests:
            return []
        return self._end(request_id, code, message, **detail)

    def close(self, code: str, message: str) -> list[Event]:
        """End every request (e.g. on shutdown); returns their errors."""
        events: list[Event] = []
        for request_id in list(self.requests):
            events += self._end(request_id, code, message)
        return events

    def in_flight(self) -> list[str]:
        return list(self.requests)

    # -- helpers ----------------------------------------------------------------
    def _end(self, request_id: str, code: str, message: str, **detail: Any) -> list[Event]:
        self.requests.pop(request_id, None)
        self._remember(request_id, code)
        return [self._error(request_id, code, message, **detail)]

    def pop_finished(self) -> list[tuple[str, str]]:
        """Requests that ended since the last call, with "ok" or their error code."""
        finished, self.finished = self.finished, []
        return finished

    def _remember(self, request_id: str, outcome: str) -> None:
        self.finished.append((request_id, outcome))
        self.recent[request_id] = None
        self.recent.move_to_end(request_id)
        while len(self.recent) > 256:
            self.recent.popitem(last=False)

    def _error(
        self, request_id: str | None, code: str, message: str, *, fatal: bool = False, **detail: Any
    ) -> Send:
        body = {
            "type": "error",
            "id": request_id,
            "code": code,
            "message": message,
            "fatal": fatal,
            **{k: v for k, v in detail.items() if v is not None},
        }
        return Send(encode_json(body))

    def abort(
        self, code: str, message: str, close_code: int = CLOSE_POLICY, **detail: Any
    ) -> list[Event]:
        """End the session: a fatal `error` (after ending any request), then `Close`."""
        events: list[Event] = self.close("cancelled", "the connection is closing")
        self.state = "closed"
        events.append(self._error(None, code, message, fatal=True, **detail))
        events.append(Close(close_code, code))
        return events
