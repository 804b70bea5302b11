"""The asyncio websocket server: moves bytes and schedules work, nothing else.

The protocol lives in `server.protocol` (sans-I/O); the CPU work in
`server.pipeline`, run by `server.workers.WorkerPool` (processes that load the
models once).
The event loop only reads messages, feeds them to each connection's
`ServerSession`, performs the events it returns, and writes the answers
through one writer task per connection (so a request's messages stay in
order and a slow reader never blocks anyone else).
Same port: `GET /healthz`, `GET /metrics`, static files from `server/static/`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import http
import json
import logging
import signal
import ssl
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from . import pipeline
from .config import ServerConfig
from .metrics import Counter, Gauge, Histogram, Registry
from .protocol import (
    FORMATS,
    PROTOCOL_VERSION,
    QUALITIES,
    Admit,
    Authenticate,
    Cancel,
    Close,
    Event,
    Send,
    ServerSession,
    SessionLimits,
    Submit,
)
from .transport import TextOnlyDeflateFactory, origin_allowed, static_response
from .workers import WorkerCrashed, WorkerPool

log = logging.getLogger("chibi.server")
WS_PATH = "/ws"


@dataclass(eq=False)
class _JobState:
    conn: _Conn
    id: str
    seq: int
    accepted_at: float
    submitted_at: float = 0.0
    future: asyncio.Future | None = None  # once submitted to the pool
    started: bool = False
    relayed: int = -1  # number of the last progress event relayed to the client
    last_at: float = 0.0  # elapsed ms of the last stage seen (for per-stage latency)
    timer: asyncio.TimerHandle | None = None
    holds_place: bool = False  # counted in ChibiServer.admitted (from its submission on)


@dataclass(eq=False)  # identity hash: kept in a set
class _Conn:
    ws: ServerConnection
    session: ServerSession
    principal: str  # rate-limit key: a token's hash, or the client's address
    outbox: asyncio.Queue = field(default_factory=asyncio.Queue)
    outbox_bytes: int = 0  # queued and not yet sent
    drained: asyncio.Event = field(default_factory=asyncio.Event)  # outbox_bytes under the limit
    jobs: dict[str, _JobState] = field(default_factory=dict)
    # by seq: jobs whose request the session ended (cancelled, timed out) while their
    # worker still holds them, so the client may use their id again
    ended: dict[int, _JobState] = field(default_factory=dict)
    connected_at: float = field(default_factory=time.monotonic)
    last_message_at: float = field(default_factory=time.monotonic)


class ChibiServer:
    """`await start()`, then `await serve_until_stopped()`; `shutdown()` drains."""

    def __init__(self, config: ServerConfig):
        self.config = config
        self.workers = config.worker_count()
        # requests with work to do (submitted, not finished), all connections; a photo
        # request takes its place once its photo is in, so uploads cannot hold them all
        self.capacity = self.workers + config.max_queue
        # queued replies past which a connection is read no further until they are sent:
        # results stream as they are, a client that only sends cannot grow the queue
        self.outbox_limit = 4 * config.chunk_bytes
        self.conns: set[_Conn] = set()
        self.jobs: dict[int, _JobState] = {}  # by seq, submitted and not finished in a worker
        self.admitted = 0  # requests holding a place in `capacity`
        self.queued = 0  # submitted, not yet started by a worker
        self.next_seq = 1
        self.buckets: dict[str, tuple[float, float]] = {}  # principal -> (tokens, last refill)
        self.draining = False
        self.stopped = asyncio.Event()
        settings = {"max_photo_bytes": config.max_photo_bytes, "model": config.model,
                    "weights_dir": config.weights_dir or None}  # fmt: skip
        self.pool = WorkerPool(self.workers, settings, self._on_progress)
        self.ws_server: Server | None = None
        self._setup_metrics()

    # -- life cycle -------------------------------------------------------------
    async def start(self) -> None:
        await self.pool.start()  # every worker has loaded its models when this returns
        ssl_context = None
        if self.config.tls_cert:
            ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ssl_context.load_cert_chain(self.config.tls_cert, self.config.tls_key)
        extensions = [TextOnlyDeflateFactory()] if self.config.compression == "text" else None
        try:
            self.ws_server = await self._listen(ssl_context, extensions)
        except BaseException:  # the port is taken, say: the workers must not outlive us
            await self.pool.stop()
            raise
        log.info(
            "chibi serving on %s (workers=%d sources=%s)", self.url, self.workers, self.pool.sources
        )
        if self.draining:  # SIGTERM or Ctrl-C came while starting
            await self._drain()

    async def _listen(self, ssl_context: ssl.SSLContext | None, extensions: Any) -> Server:
        return await serve(
            self._handle,
            self.config.host,
            self.config.port,
            process_request=self._process_request,
            compression=None,
            extensions=extensions,
            max_size=self.config.max_frame_bytes,
            max_queue=2,  # frames buffered per connection: memory <= ~3 x max_frame_bytes
            ping_interval=self.config.keepalive,
            ping_timeout=self.config.keepalive,
            close_timeout=2,
            ssl=ssl_context,
            server_header=f"chibi-avatar websockets (protocol {PROTOCOL_VERSION})",
        )

    @property
    def port(self) -> int:
        assert self.ws_server is not None
        return self.ws_server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        scheme = "wss" if self.config.tls_cert else "ws"
        host = self.config.host if ":" not in self.config.host else f"[{self.config.host}]"
        return f"{scheme}://{host}:{self.port}{WS_PATH}"

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(self.shutdown()))

    async def serve_until_stopped(self) -> None:
        await self.stopped.wait()

    async def shutdown(self) -> None:
        """Stop accepting, let requests in flight finish (bounded), close with 1001."""
        if self.draining:
            return
        self.draining = True
        if self.ws_server is not None:  # else `start` drains once it is listening
            await self._drain()

    async def _drain(self) -> None:
        assert self.ws_server is not None
        log.info("shutting down: %d requests in flight", self.admitted)
        self.ws_server.server.close()  # no new TCP connections; open ones keep working
        deadline = time.monotonic() + self.config.shutdown_timeout
        while self.admitted and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(self.conns):
            # the requests end with shutting_down first; their work is stopped after
            self._dispatch(conn, conn.session.close("shutting_down", "the server is shutting down"))
            self._cancel_all(conn)
        if self.conns:  # let the writers flush the last answers
            flushed = asyncio.gather(*(conn.outbox.join() for conn in self.conns))
            try:
                await asyncio.wait_for(flushed, timeout=5)
            except TimeoutError:
                pass
        self.ws_server.close(close_connections=True)  # close code 1001 (going away)
        await self.ws_server.wait_closed()
        await self.pool.stop()
        self.stopped.set()
        log.info("server stopped")

    # -- HTTP on the same port ----------------------------------------------------
    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        upgrade = "websocket" in request.headers.get("Upgrade", "").lower()
        if not upgrade:
            if path == "/healthz":
                return self._health(connection)
            if path == "/metrics":
                response = connection.respond(http.HTTPStatus.OK, self.registry.render())
                response.headers["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
                return response
            return static_response(connection, path)
        if path != WS_PATH:
            return connection.respond(http.HTTPStatus.NOT_FOUND, f"websocket path is {WS_PATH}\n")
        if not origin_allowed(
            request.headers, self.config.allowed_origins, loopback_only=not self.config.tokens
        ):
            return connection.respond(http.HTTPStatus.FORBIDDEN, "origin not allowed\n")
        if self.draining or len(self.conns) >= self.config.max_connections:
            return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, "busy\n")
        authorization = request.headers.get("Authorization")
        if authorization is not None:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or self._principal_of(token.strip()) is None:
                response = connection.respond(http.HTTPStatus.UNAUTHORIZED, "unauthorized\n")
                response.headers["WWW-Authenticate"] = 'Bearer realm="chibi"'
                return response
        return None

    def _health(self, connection: ServerConnection) -> Response:
        ok = not self.draining
        body = json.dumps(
            {
                "status": "ok" if ok else "draining",
                "version": PROTOCOL_VERSION,
                "workers": self.workers,
                "in_flight": self.admitted,
                "queued": self.queued,
                "connections": len(self.conns),
                "sources": self.pool.sources,
            }
        )
        status = http.HTTPStatus.OK if ok else http.HTTPStatus.SERVICE_UNAVAILABLE
        response = connection.respond(status, body + "\n")
        response.headers["Content-Type"] = "application/json"
        return response

    def _principal_of(self, token: str | None) -> str | None:
        """A valid token -> its rate-limit key; None if tokens are required and it is wrong."""
        if not self.config.tokens:
            return ""
        if not token:
            return None
        given = token.encode()
        # Compare against every token so timing does not reveal which one matched.
        matches = [hmac.compare_digest(given, t.encode()) for t in self.config.tokens]
        if not any(matches):
            return None
        return "token:" + hashlib.sha256(given).hexdigest()[:16]

    # -- one connection -----------------------------------------------------------
    async def _handle(self, ws: ServerConnection) -> None:
        token = None
        authorization = ws.request.headers.get("Authorization") if ws.request else None
        if authorization:
            token = authorization.partition(" ")[2].strip()
        principal = self._principal_of(token) if token else None
        session = ServerSession(
            limits=SessionLimits(
                max_json_bytes=self.config.max_json_bytes,
                max_photo_bytes=self.config.max_photo_bytes,
                max_in_flight=self.config.max_in_flight,
                chunk_bytes=self.config.chunk_bytes,
            ),
            authenticated=principal is not None or not self.config.tokens,
            welcome=self._welcome(),
        )
        address = ws.remote_address[0] if ws.remote_address else "?"
        conn = _Conn(ws, session, principal or f"addr:{address}")
        self.conns.add(conn)
        self.m_connections.inc()
        writer = asyncio.create_task(self._writer(conn))
        watchdog = asyncio.create_task(self._watchdog(conn))
        try:
            while session.state != "closed":
                message = await ws.recv()
                conn.last_message_at = time.monotonic()
                if isinstance(message, str):
                    self._dispatch(conn, session.receive_text(message))
                else:
                    self._dispatch(conn, session.receive_bytes(message))
                if conn.outbox_bytes > self.outbox_limit:
                    # a client that sends (pings, bad messages) and reads nothing: read no
                    # more of it until the writer has sent its answers, or dropped it
                    conn.drained.clear()
                    drained = asyncio.create_task(conn.drained.wait())
                    await asyncio.wait({drained, writer}, return_when=asyncio.FIRST_COMPLETED)
                    drained.cancel()
            await writer  # flush the final error and close
        except ConnectionClosed:
            pass
        finally:
            watchdog.cancel()
            self._cancel_all(conn)  # the client vanished: stop its work
            session.close("cancelled", "connection closed")
            self._count_finished(conn)
            self.conns.discard(conn)
            if not writer.done():
                writer.cancel()

    def _welcome(self) -> dict[str, Any]:
        config = self.config
        return {
            "server": "chibi-avatar/0.1.0",
            "formats": list(FORMATS),
            "qualities": list(QUALITIES),
            "sources": self.pool.sources,
            "limits": {
                "max_frame_bytes": config.max_frame_bytes,
                "max_json_bytes": config.max_json_bytes,
                "max_photo_bytes": config.max_photo_bytes,
                "max_pixels": config.max_pixels,
                "max_in_flight": config.max_in_flight,
                "rate": config.rate,
                "rate_burst": config.rate_burst,
                "request_timeout_s": config.request_timeout,
                "idle_timeout_s": config.idle_timeout,
            },
        }

    async def _writer(self, conn: _Conn) -> None:
        """The only task that sends on this connection: keeps order, bounds slow readers."""
        while True:
            item = await conn.outbox.get()
            try:
                if isinstance(item, Close):
                    await conn.ws.close(item.code, item.reason)
                    return
                await asyncio.wait_for(conn.ws.send(item), self.config.send_timeout)
                conn.outbox_bytes -= len(item)
                if conn.outbox_bytes <= self.outbox_limit:
                    conn.drained.set()
            except TimeoutError:
                log.warning("dropping a client that stopped reading")
                if conn.ws.transport is not None:
                    conn.ws.transport.abort()
                return
            except ConnectionClosed:
                return
            finally:
                conn.outbox.task_done()

    async def _watchdog(self, conn: _Conn) -> None:
        """Closes connections that never say hello or sit idle (also slow-trickling ones)."""
        config = self.config
        while True:
            await asyncio.sleep(min(1.0, config.hello_timeout / 4, config.idle_timeout / 4))
            now = time.monotonic()
            session = conn.session
            if session.state == "await_hello" and now - conn.connected_at > config.hello_timeout:
                self._dispatch(conn, session.abort("timeout", "no hello in time"))
                return
            idle = now - conn.last_message_at
            if session.state == "open" and not session.requests and idle > config.idle_timeout:
                self._dispatch(conn, session.abort("idle_timeout", "idle", close_code=1000))
                return

    def _dispatch(self, conn: _Conn, events: list[Event]) -> None:
        """Perform the session's events, synchronously (no await: order is kept)."""
        for event in events:
            if isinstance(event, Send):
                conn.outbox.put_nowait(event.data)
                conn.outbox_bytes += len(event.data)
            elif isinstance(event, Close):
                conn.outbox.put_nowait(event)
            elif isinstance(event, Authenticate):
                principal = self._principal_of(event.token)
                if principal is not None:
                    conn.principal = principal or conn.principal
                self._dispatch(conn, conn.session.authenticate(principal is not None))
            elif isinstance(event, Admit):
                self._admit(conn, event)
            elif isinstance(event, Submit):
                self._submit(conn, event)
            elif isinstance(event, Cancel):
                self._cancel(conn, event.id)
        self._count_finished(conn)

    # -- requests ---------------------------------------------------------------
    def _admit(self, conn: _Conn, event: Admit) -> None:
        session = conn.session
        if self.draining:
            self._dispatch(
                conn, session.refuse(event.id, "shutting_down", "the server is stopping")
            )
        elif not self.pool.sources.get(event.source):
            message = f"{event.source} requests need components this server does not have yet"
            self._dispatch(conn, session.refuse(event.id, "not_available", message))
        elif not self._take_rate_token(conn.principal):
            message = f"over {self.config.rate:g} requests/s (burst {self.config.rate_burst})"
            self._dispatch(conn, session.refuse(event.id, "rate_limited", message))
        elif self.admitted >= self.capacity:
            self._dispatch(conn, session.refuse(event.id, "busy", "server at capacity, retry"))
        else:
            job = _JobState(conn, event.id, self.next_seq, time.monotonic())
            self.next_seq += 1
            ended = conn.jobs.get(event.id)  # the session admits an id only once it ended
            if ended is not None:
                conn.ended[ended.seq] = ended
            conn.jobs[event.id] = job
            loop = asyncio.get_running_loop()
            timeout = min(self.config.request_timeout, event.options["timeout_s"] or float("inf"))
            job.timer = loop.call_later(timeout, self._expire, job, timeout)
            queued = max(0, self.admitted - self.workers)
            self._dispatch(conn, session.accept(event.id, queued=queued))

    def _take_rate_token(self, principal: str) -> bool:
        """Token bucket per principal: `rate` per second, up to `rate_burst` at once."""
        now = time.monotonic()
        tokens, last = self.buckets.get(principal, (float(self.config.rate_burst), now))
        tokens = min(float(self.config.rate_burst), tokens + (now - last) * self.config.rate)
        if len(self.buckets) > 10_000:  # forget principals whose bucket has refilled by now
            rate, burst = self.config.rate, self.config.rate_burst
            self.buckets = {
                key: (left, at)
                for key, (left, at) in self.buckets.items()
                if left + (now - at) * rate < burst
            }
        if tokens < 1.0:
            self.buckets[principal] = (tokens, now)
            return False
        self.buckets[principal] = (tokens - 1.0, now)
        return True

    def _submit(self, conn: _Conn, event: Submit) -> None:
        job = conn.jobs[event.id]
        if self.admitted >= self.capacity:  # filled while the photo was uploading
            del conn.jobs[event.id]
            job.timer.cancel()
            self._dispatch(conn, conn.session.refuse(event.id, "busy", "server at capacity, retry"))
            return
        self.admitted += 1
        job.holds_place = True
        job.submitted_at = time.monotonic()
        work = pipeline.Job(
            job.seq,
            event.source,
            event.options,
            event.photo,
            event.params,
            self.config.max_pixels,
            checksum=conn.session.checksum,
        )
        job.future = self.pool.submit(work)
        self.jobs[job.seq] = job
        self.queued += 1
        job.future.add_done_callback(lambda future: self._on_done(job, future))

    def _on_done(self, job: _JobState, future: Any) -> None:
        self.jobs.pop(job.seq, None)
        outcome: dict[str, Any] = {"error": {"code": "cancelled", "message": "cancelled"}}
        if not future.cancelled():
            try:
                outcome = future.result()
            except WorkerCrashed:  # the pool replaces the worker
                outcome = {"error": {"code": "internal_error", "message": "the worker crashed"}}
            except Exception:
                log.exception("request %s failed", job.id)
                outcome = {"error": {"code": "internal_error", "message": "internal error"}}
        if not job.started:  # never reached a worker (cancelled in the queue, crash)
            job.started = True
            self.queued -= 1
        self._finish(job, items=outcome.get("items"), error=outcome.get("error"))

    def _finish(self, job: _JobState, items: Any = None, error: Any = None) -> None:
        """The work of a request is over: free its place and answer (if still wanted)."""
        self.admitted -= job.holds_place
        if job.timer is not None:
            job.timer.cancel()
        conn = job.conn
        if conn.jobs.get(job.id) is not job:  # its request ended; the id may be another's now
            conn.ended.pop(job.seq, None)
            return
        del conn.jobs[job.id]
        if items is not None:
            self.m_request_seconds.observe(time.monotonic() - job.accepted_at)
            self._dispatch(conn, conn.session.result(job.id, items))
        else:
            detail = {"field": error["field"]} if error.get("field") else {}
            self._dispatch(
                conn, conn.session.fail(job.id, error["code"], error["message"], **detail)
            )

    def _expire(self, job: _JobState, timeout: float) -> None:
        if job.conn.jobs.get(job.id) is job:  # not ended (and its id not reused) meanwhile
            message = f"no result within {timeout:g} s"
            self._dispatch(job.conn, job.conn.session.fail(job.id, "timeout", message))
        self._stop(job)

    def _cancel(self, conn: _Conn, request_id: str) -> None:
        job = conn.jobs.get(request_id)
        if job is not None:
            self._stop(job)

    def _stop(self, job: _JobState) -> None:
        """Stop a request's work; its slot frees when the worker lets go of it."""
        if job.future is None:  # never submitted (photo still uploading)
            self._finish(job, error={"code": "cancelled", "message": "cancelled"})
            return
        self.pool.cancel(job.seq)  # a queued job's future is cancelled at once

    def _cancel_all(self, conn: _Conn) -> None:
        for job in [*conn.jobs.values(), *conn.ended.values()]:
            self._stop(job)

    def _on_progress(self, seq: int, number: int, stage: str, elapsed: float, detail: dict) -> None:
        job = self.jobs.get(seq)
        if job is None or number <= job.relayed:
            return  # finished already (cancelled, timed out)
        job.relayed = number
        if stage == "started" and not job.started:
            job.started = True
            self.queued -= 1
            self.m_stage_seconds.observe(time.monotonic() - job.submitted_at, "queue")
        else:
            self.m_stage_seconds.observe((elapsed - job.last_at) / 1000, stage)
        job.last_at = elapsed
        progress = job.conn.session.progress(job.id, stage, elapsed_ms=elapsed, **detail)
        self._dispatch(job.conn, progress)

    # -- metrics ----------------------------------------------------------------------
    def _setup_metrics(self) -> None:
        registry = self.registry = Registry()
        self.m_requests = registry.add(
            Counter("chibi_requests_total", "Requests by outcome ('ok' or error code)", ("result",))
        )
        self.m_stage_seconds = registry.add(
            Histogram("chibi_stage_seconds", "Time spent per stage (queue = waiting)", ("stage",))
        )
        self.m_request_seconds = registry.add(
            Histogram("chibi_request_seconds", "Accepted to result, successful requests")
        )
        self.m_connections = registry.add(Counter("chibi_connections_total", "Connections opened"))
        registry.add(
            Gauge(
                "chibi_in_flight", "Requests holding a worker or queue place", lambda: self.admitted
            )
        )
        registry.add(
            Gauge("chibi_queue_length", "Requests waiting for a worker", lambda: self.queued)
        )
        registry.add(Gauge("chibi_open_connections", "Open connections", lambda: len(self.conns)))
        registry.add(Gauge("chibi_workers", "Worker processes", lambda: self.workers))

    def _count_finished(self, conn: _Conn) -> None:
        for _request_id, outcome in conn.session.pop_finished():
            self.m_requests.inc(outcome)
