"""The worker processes: spawn-started, each loads the models once and runs one job at a time.

The event loop talks to every worker directly, with no thread in between:
- a duplex pipe per worker carries jobs down and, in order, the worker's "ready",
  its progress events and its "done" back up; the loop reads it with `add_reader`;
- a shared-memory block per worker carries the large bytes both ways (a request's
  photo down, the model and preview up), so they are not pickled through the pipe:
  a 0.5 MB result reaches the loop in ~0.05 ms instead of ~1 ms through a process
  pool's result queue and its threads. Bytes that do not fit, or a machine
  without room in /dev/shm, fall back to the pipe.
- a shared array of cancel flags the jobs check between stages.
A worker that dies fails its job with `WorkerCrashed` and is replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import multiprocessing
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.shared_memory import SharedMemory
from typing import Any

from avatar3d.process_map import start_worker, stop_workers

from . import pipeline
from .process_setup import usable_cores

log = logging.getLogger("chibi.server")

MIN_SHARED_BYTES = 16 * 1024 * 1024  # per worker; at least the largest photo accepted
RESPAWN_DELAY_S = 1.0  # before replacing a worker that died while loading


class WorkerCrashed(Exception):
    """The worker running a job died (a crash in native code, the OOM killer, a kill)."""


@dataclass(eq=False)
class _Worker:
    process: Any
    conn: Any  # the loop's end of the pipe
    shared: SharedMemory | None
    ready: bool = False
    job: tuple[int, asyncio.Future] | None = None  # (seq, future) while one runs


@dataclass(eq=False)
class _Queued:
    job: pipeline.Job
    future: asyncio.Future = field(repr=False)


class WorkerPool:
    """`await start()`, `submit(job)`, `cancel(seq)`, `await stop()`; all on the event loop.

    on_progress(seq, number, stage, elapsed_ms, detail) for each progress event;
    sources: what the workers could load, {"params": bool, "photo": bool}.
    """

    def __init__(
        self,
        workers: int,
        settings: dict[str, Any],
        on_progress: Callable[[int, int, str, float, dict], None],
    ):
        """settings: for `pipeline.init_worker` (max_photo_bytes, model, weights_dir)."""
        self.workers, self.settings, self.on_progress = workers, settings, on_progress
        self.context = multiprocessing.get_context("spawn")  # never fork a threaded process
        self.sources: dict[str, bool] = {"params": False, "photo": False}
        self.shared_bytes = max(MIN_SHARED_BYTES, int(settings.get("max_photo_bytes", 0)))
        self.pool: list[_Worker] = []
        self.queue: deque[_Queued] = deque()
        self.stopping = False
        self.cores = usable_cores()

    async def start(self) -> None:
        """Start every worker and wait until each has loaded its models."""
        self.loop = asyncio.get_running_loop()
        self.cancel_flags = self.context.Array("q", pipeline.CANCEL_SLOTS, lock=False)
        self.all_ready = asyncio.Event()
        self.failed: asyncio.Future = self.loop.create_future()
        for _ in range(self.workers):
            self._spawn()
        ready = asyncio.ensure_future(self.all_ready.wait())
        await asyncio.wait([ready, self.failed], return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            ready.cancel()
            await self.stop()
            raise RuntimeError(f"worker processes failed to start: {self.failed.result()}")

    def submit(self, job: pipeline.Job) -> asyncio.Future:
        """Queue a job; its future gets the worker's outcome dict, or WorkerCrashed."""
        self.cancel_flags[job.seq % pipeline.CANCEL_SLOTS] = 0
        future = self.loop.create_future()
        self.queue.append(_Queued(job, future))
        self._pump()
        return future

    def cancel(self, seq: int) -> None:
        """A queued job is dropped (its future cancelled); a running one is asked to stop
        at its next stage boundary, and its future gets the worker's answer."""
        self.cancel_flags[seq % pipeline.CANCEL_SLOTS] = seq
        for queued in self.queue:
            if queued.job.seq == seq:
                self.queue.remove(queued)
                queued.future.cancel()
                return

    async def stop(self) -> None:
        self.stopping = True
        for worker in self.pool:
            self.loop.remove_reader(worker.conn.fileno())
        await asyncio.to_thread(stop_workers, [(w.process, w.conn) for w in self.pool])
        for worker in self.pool:
            _release(worker.shared, unlink=True)
        self.pool.clear()

    # -- internals -----------------------------------------------------------------
    def _spawn(self) -> None:
        shared = _shared_block(self.shared_bytes)
        process, ours = start_worker(
            pipeline.worker_main,
            (shared.name if shared else None, self.cancel_flags, self.settings),
        )
        worker = _Worker(process, ours, shared)
        self.pool.append(worker)
        self.loop.add_reader(ours.fileno(), self._on_readable, worker)

    def _pump(self) -> None:
        """Hand queued jobs to idle workers."""
        for worker in self.pool:
            if not self.queue:
                return
            if not worker.ready or worker.job is not None:
                continue
            while self.queue:
                queued = self.queue.popleft()
                if queued.future.cancelled():
                    continue
                job = queued.job
                if job.photo is not None and worker.shared and len(job.photo) <= self.shared_bytes:
                    worker.shared.buf[: len(job.photo)] = job.photo
                    job = dataclasses.replace(job, photo=None, shared_photo=len(job.photo))
                busy = 1 + sum(w.job is not None for w in self.pool)  # with this job
                job = dataclasses.replace(job, helper_threads=busy < self.cores)
                worker.job = (job.seq, queued.future)
                try:
                    worker.conn.send(job)
                except OSError:  # died while idle; its reader reports it
                    self.queue.appendleft(queued)
                    worker.job = None
                break

    def _on_readable(self, worker: _Worker) -> None:
        try:
            while worker.conn.poll():
                self._on_message(worker, worker.conn.recv())
        except (EOFError, OSError):
            self._on_death(worker)

    def _on_message(self, worker: _Worker, message: tuple) -> None:
        kind = message[0]
        if kind == "progress":
            self.on_progress(*message[1:])
        elif kind == "done":
            _, seq, outcome = message
            for item in outcome.get("items") or []:
                for key in ("model", "preview"):
                    if isinstance(item.get(key), pipeline.SharedBlob):
                        blob = item[key]
                        item[key] = bytes(worker.shared.buf[blob.offset : blob.offset + blob.size])
            job, worker.job = worker.job, None
            if job is not None and not job[1].done():
                job[1].set_result(outcome)
            self._pump()
        elif kind == "ready":
            self._on_ready(worker, message[1], message[2])

    def _on_ready(self, worker: _Worker, pid: int, sources: dict[str, Any]) -> None:
        if not self.all_ready.is_set():
            for source, reason in sources["reasons"].items():
                log.warning("%s requests not available: %s", source, reason)
        worker.ready = True
        self.sources = {"params": sources["params"], "photo": sources["photo"]}
        if all(w.ready for w in self.pool) and len(self.pool) >= self.workers:
            self.all_ready.set()
        self._pump()

    def _on_death(self, worker: _Worker) -> None:
        self.loop.remove_reader(worker.conn.fileno())
        worker.conn.close()
        worker.process.join(0)  # reap it if it has exited; never block the loop
        _release(worker.shared, unlink=True)
        if worker in self.pool:
            self.pool.remove(worker)
        if worker.job is not None and not worker.job[1].done():
            worker.job[1].set_exception(WorkerCrashed("the worker crashed"))
        if self.stopping:
            return
        if not worker.ready and not self.all_ready.is_set():  # died while loading
            if not self.failed.done():
                self.failed.set_result(f"exit code {worker.process.exitcode}")
            return
        log.error("a worker died (exit code %s); starting another", worker.process.exitcode)
        # not at once: a worker that cannot load its models must not respawn in a tight loop
        self.loop.call_later(0 if worker.ready else RESPAWN_DELAY_S, self._respawn)

    def _respawn(self) -> None:
        if not self.stopping:
            self._spawn()


def _shared_block(size: int) -> SharedMemory | None:
    """A shared-memory block whose pages are reserved now (a full /dev/shm would otherwise
    kill a worker with SIGBUS on its first large result); None when there is no room."""
    try:
        shared = SharedMemory(create=True, size=size)
    except OSError:
        return None
    try:
        os.posix_fallocate(shared._fd, 0, size)  # private attribute, stable since 3.8
    except (OSError, AttributeError):
        _release(shared, unlink=True)
        return None
    return shared


def _release(shared: SharedMemory | None, unlink: bool) -> None:
    if shared is None:
        return
    with contextlib.suppress(OSError, BufferError):
        shared.close()
    if unlink:
        with contextlib.suppress(OSError):
            shared.unlink()


def attach_shared(name: str) -> SharedMemory:
    """A worker's view of its block. Workers share the server's resource tracker, which
    unlinks the block if the server dies without `stop()` (SIGKILL)."""
    return SharedMemory(name=name)
