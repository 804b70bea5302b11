"""Finding processes through /proc (Linux), for the tests that kill workers and check
that none is left behind."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path


def _stat_fields(pid: str) -> list[str] | None:
    """/proc/PID/stat after the command name: state, ppid, pgrp, ...; None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()


def spawned_children(parent: int) -> list[int]:
    """Live multiprocessing workers (spawn start method) whose parent is `parent`."""
    pids = []
    for entry in os.listdir("/proc"):
        fields = _stat_fields(entry) if entry.isdigit() else None
        if fields is None or int(fields[1]) != parent or fields[0] == "Z":
            continue
        try:
            if b"spawn_main" in Path(f"/proc/{entry}/cmdline").read_bytes():
                pids.append(int(entry))
        except OSError:
            continue
    return pids


def group_alive(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group."""
    alive = []
    for entry in os.listdir("/proc"):
        fields = _stat_fields(entry) if entry.isdigit() else None
        if fields is not None and int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(entry))
    return alive


def gone_within(alive: Callable[[], list[int]], timeout: float = 30.0) -> bool:
    """Whether `alive()` becomes empty within `timeout` s (exiting takes a moment:
    interpreter teardown, the resource tracker seeing its pipe close)."""
    deadline = time.monotonic() + timeout
    while alive():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
