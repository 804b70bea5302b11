"""The worker processes: a spawn-started process pool whose workers load the models once.

`WorkerPool` wraps `ProcessPoolExecutor` with what the server needs around it:
- a multiprocessing queue on which workers report "ready" (with the sources they
  could load) and progress events, moved onto the event loop by one reader thread;
- a shared array of cancel flags the jobs check between stages;
- restart after a worker crash, and a shutdown that does not wait for torch's teardown.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from . import pipeline

log = logging.getLogger("chibi.server")


class WorkerPool:
    """`await start()`, `submit(job)`, `cancel(seq)`, `await stop()`; callbacks run on the loop.

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
        self.executor: ProcessPoolExecutor | None = None
        self.ready_pids: set[int] = set()

    async def start(self) -> None:
        """Start every worker and wait until each has loaded its models."""
        self.loop = asyncio.get_running_loop()
        self.queue = self.context.Queue()
        self.cancel_flags = self.context.Array("q", pipeline.CANCEL_SLOTS, lock=False)
        self.all_ready = asyncio.Event()
        self._new_executor()
        threading.Thread(target=self._read_queue, daemon=True).start()
        assert self.executor is not None
        starting = [
            self.loop.run_in_executor(self.executor, os.getpid) for _ in range(self.workers)
        ]
        ready = asyncio.ensure_future(self.all_ready.wait())
        done, _ = await asyncio.wait([ready, *starting], return_when=asyncio.FIRST_EXCEPTION)
        if not ready.done():
            ready.cancel()
            failed = next(f.exception() for f in done if f.exception() is not None)
            self.executor.shutdown(wait=False, cancel_futures=True)
            raise RuntimeError(f"worker processes failed to start: {failed!r}")

    def _new_executor(self) -> None:
        self.executor = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=self.context,
            initializer=pipeline.init_worker,
            initargs=(self.queue, self.cancel_flags, self.settings),
        )

    def submit(self, job: pipeline.Job) -> tuple[Future, Any]:
        """Queue a job; returns its future and the executor it went to (see `restart`)."""
        self.cancel_flags[job.seq % pipeline.CANCEL_SLOTS] = 0
        assert self.executor is not None
        return self.executor.submit(pipeline.run_job, job), self.executor

    def cancel(self, seq: int) -> None:
        """Ask a running job to stop at its next stage boundary."""
        self.cancel_flags[seq % pipeline.CANCEL_SLOTS] = seq

    def restart(self, broken: Any) -> None:
        """Replace the executor after a worker died (only if `broken` is still the current one)."""
        if broken is not self.executor:
            return
        log.error("a worker died; restarting the worker pool")
        broken.shutdown(wait=False, cancel_futures=True)
        self._new_executor()

    async def stop(self) -> None:
        if self.executor is not None:
            await asyncio.to_thread(_stop_executor, self.executor)
        self.queue.put(None)  # ends the reader thread

    def _read_queue(self) -> None:
        """Thread: moves the workers' messages onto the event loop."""
        while True:
            item = self.queue.get()
            if item is None:
                return
            if item[0] == "ready":
                self.loop.call_soon_threadsafe(self._on_ready, item[1], item[2])
            else:
                self.loop.call_soon_threadsafe(self.on_progress, *item[1:])

    def _on_ready(self, pid: int, sources: dict[str, Any]) -> None:
        if pid not in self.ready_pids:
            for source, reason in sources["reasons"].items():
                log.warning("%s requests not available: %s", source, reason)
        self.ready_pids.add(pid)
        self.sources = {"params": sources["params"], "photo": sources["photo"]}
        if len(self.ready_pids) >= self.workers:
            self.all_ready.set()


def _stop_executor(executor: ProcessPoolExecutor, grace: float = 0.3) -> None:
    """Shut the executor down (its work is done by now); workers that take long to exit
    (interpreter teardown of torch and friends takes seconds) are terminated."""
    processes = list(getattr(executor, "_processes", {}).values())  # private, stable since 3.8
    executor.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + grace
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.terminate()
            process.join(1)
        if process.is_alive():  # e.g. a native library's SIGTERM handler is busy
            process.kill()  # never leave one behind: interpreter exit would wait on it
            process.join(1)
