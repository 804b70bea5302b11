"""Helper threads of this process: one single-thread pool per purpose, made on first use.

The exporters hand work to them where the calling thread would otherwise wait or
leave the second core idle: the VRM thumbnail renders while the rest of the file is
written, and half of a large PNG deflates while the caller deflates the other half.
A forked child gets pools of its own (the parent's threads do not exist there).

`use_helper_threads(False)` makes `run_beside` run the work in the calling thread
instead: the server's workers do so when every core already has a worker busy, where
a helper thread only adds switching (VRM at 16 clients: ~3 % fewer avatars/s). What
the work produces never depends on where it ran.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

_pools: dict[str, tuple[int, ThreadPoolExecutor]] = {}
_lock = threading.Lock()
_enabled = True


def use_helper_threads(enabled: bool) -> None:
    """Whether `run_beside` may use helper threads in this process from now on."""
    global _enabled
    _enabled = enabled


def _helper_thread(purpose: str) -> ThreadPoolExecutor:
    """This process's one-thread pool for `purpose` (its thread is named chibi-<purpose>)."""
    with _lock:
        entry = _pools.get(purpose)
        if entry is None or entry[0] != os.getpid():
            entry = _pools[purpose] = (os.getpid(), ThreadPoolExecutor(1, f"chibi-{purpose}"))
        return entry[1]


def run_beside(purpose: str, work: Callable[..., T], *args: object) -> Future[T]:
    """`work(*args)` on the helper thread for `purpose`, or, when helper threads are
    off, here and now (the Future is then already done)."""
    if _enabled:
        return _helper_thread(purpose).submit(work, *args)
    future: Future[T] = Future()
    try:
        future.set_result(work(*args))
    except BaseException as exc:  # noqa: BLE001 - handed to whoever reads the Future
        future.set_exception(exc)
    return future
