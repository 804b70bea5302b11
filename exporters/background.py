"""Helper threads of this process: one single-thread pool per purpose, made on first use.

The exporters hand work to them where the calling thread would otherwise wait or
leave the second core idle: the VRM thumbnail renders while the rest of the file is
written, and half of a large PNG deflates while the caller deflates the other half.
A forked child gets pools of its own (the parent's threads do not exist there).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

_pools: dict[str, tuple[int, ThreadPoolExecutor]] = {}
_lock = threading.Lock()


def helper_thread(purpose: str) -> ThreadPoolExecutor:
    """This process's one-thread pool for `purpose` (its thread is named chibi-<purpose>)."""
    with _lock:
        entry = _pools.get(purpose)
        if entry is None or entry[0] != os.getpid():
            entry = _pools[purpose] = (os.getpid(), ThreadPoolExecutor(1, f"chibi-{purpose}"))
        return entry[1]
