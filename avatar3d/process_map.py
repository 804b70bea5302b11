"""`process_map`: a function over jobs in spawned worker processes, results in order, where
a worker that dies (the out-of-memory killer, a crash in native code) costs a retry
instead of a hang.

`multiprocessing.Pool` loses the task of a worker that dies and waits for its result
forever (CPython issue 22393), and `concurrent.futures.ProcessPoolExecutor` hangs when a
worker dies halfway through sending a result (its workers share one result pipe and its
lock). Here each worker has its own duplex pipe, whose other end only the worker holds:
its death reads as end-of-file at once. `start_worker` is shared with the batch job's
engine (`server.batch_local`), which has its own retry policy.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import wait
from typing import Any

JOBS_AHEAD = 2  # jobs sent to a worker before its first result returns (no idle gap)


class WorkerDied(RuntimeError):
    """A job's worker process died on every attempt."""


def start_worker(target: Callable[..., None], args: tuple) -> tuple[Any, Any]:
    """A spawned (never forked: torch and GL state do not survive a fork) daemon process
    running target(conn, *args); returns (process, the driver's end of its pipe)."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe(duplex=True)
    process = context.Process(target=target, args=(theirs, *args), daemon=True)
    process.start()
    theirs.close()  # the worker's end lives in the worker only: its death is EOF here
    return process, ours


def stop_processes(processes: list[Any], grace: float = 0.3) -> None:
    """Workers were asked to leave; those that take long (interpreter teardown of torch
    and friends takes seconds) are terminated, then killed."""
    deadline = time.monotonic() + grace
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.terminate()
            process.join(1)
        if process.is_alive():  # e.g. a native library's SIGTERM handler is busy
            process.kill()  # never leave one behind: interpreter exit would wait on it
            process.join(1)


def stop_workers(workers: list[tuple[Any, Any]]) -> None:
    """(process, conn) pairs from `start_worker`: ask each to leave (None), make sure they
    have (`stop_processes`), close the pipes."""
    for _, conn in workers:
        with contextlib.suppress(OSError):
            conn.send(None)
    stop_processes([process for process, _ in workers])
    for _, conn in workers:
        conn.close()


def _serve(conn: Any, fn: Callable[[Any], Any], initializer: Callable[[], None] | None) -> None:
    try:
        if initializer is not None:
            initializer()
    except Exception as exc:  # noqa: BLE001 - re-raised in the driver
        _send_error(conn, -1, exc)
        return
    try:
        while (message := conn.recv()) is not None:
            index, job = message
            try:
                conn.send((index, True, fn(job)))
            except Exception as exc:  # noqa: BLE001 - re-raised in the driver
                _send_error(conn, index, exc)
    except (EOFError, OSError):  # the driver is gone
        pass


def _send_error(conn: Any, index: int, exc: Exception) -> None:
    try:
        conn.send((index, False, exc))
    except Exception:  # noqa: BLE001 - an exception that does not pickle
        conn.send((index, False, RuntimeError(f"{type(exc).__name__}: {exc}")))


def process_map(
    fn: Callable[[Any], Any], jobs: Iterable[Any], workers: int,
    initializer: Callable[[], None] | None = None, attempts: int = 2,
) -> Iterator[Any]:  # fmt: skip
    """fn(job) for each job, in `workers` processes; yields the results in job order.

    fn and initializer must be importable module-level functions. An exception raised
    by fn (or by the initializer) is raised here. A worker that dies is replaced and
    the jobs it held are run again; a job that was running when its worker died
    `attempts` times raises WorkerDied.
    """
    pending = deque(enumerate(jobs))
    tries = dict.fromkeys(range(len(pending)), 0)
    results: dict[int, Any] = {}
    next_index = 0
    pool: dict[Any, tuple[Any, deque]] = {}  # conn -> (process, indices sent, in order)
    sent: dict[int, Any] = {}
    error: Exception | None = None
    try:
        while next_index < len(tries):
            while len(pool) < min(workers, len(pending) + len(sent)):
                process, conn = start_worker(_serve, (fn, initializer))
                pool[conn] = (process, deque())
            for conn, (_, held) in pool.items():
                while pending and len(held) < JOBS_AHEAD:
                    index, job = pending.popleft()
                    held.append(index)
                    sent[index] = job
                    try:
                        conn.send((index, job))
                    except OSError:  # died meanwhile: its end-of-file returns the job
                        pass
            ready = wait(list(pool) + [process.sentinel for process, _ in pool.values()])
            for conn in list(pool):
                process, held = pool[conn]
                if conn not in ready and process.sentinel not in ready:
                    continue
                alive = process.sentinel not in ready
                try:
                    while conn.poll():  # results sent before a death count too
                        index, ok, value = conn.recv()
                        if not ok:
                            error = value
                            break
                        held.remove(index)
                        del sent[index]
                        results[index] = value
                except (EOFError, OSError):
                    alive = False
                if error is not None:
                    raise error
                if alive:
                    continue
                del pool[conn]
                stop_workers([(process, conn)])
                if held:  # a worker runs its jobs in order: the first was running
                    tries[held[0]] += 1
                    if tries[held[0]] >= attempts:
                        raise WorkerDied(
                            f"job {held[0]}: its worker process died {tries[held[0]]} times "
                            f"(exit code {process.exitcode}; out of memory?)"
                        )
                pending.extendleft((index, sent.pop(index)) for index in reversed(held))
            while next_index in results:
                yield results.pop(next_index)
                next_index += 1
    finally:
        stop_workers([(process, conn) for conn, (process, _) in pool.items()])
