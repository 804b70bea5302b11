"""MediaPipe's start-up log lines, kept off the terminal.

MediaPipe 0.10.21 writes absl and TensorFlow Lite log lines straight to file
descriptor 2 while its graphs load and first run their models ("Created TensorFlow
Lite XNNPACK delegate", "Feedback manager requires a model with a single signature",
"Using NORM_RECT without IMAGE_DIMENSIONS"): eight lines on every `chibi params`,
none of them the user's to act on. No setting turns them off (absl writes to stderr
before `absl::InitializeLog`, which the wheel never calls; `GLOG_minloglevel` and
`TF_CPP_MIN_LOG_LEVEL` change nothing), so `quiet_native_logs` points descriptor 2 at
/dev/null while a graph is built and first run, and only then. `CHIBI_NATIVE_LOGS=1`
keeps them (for debugging MediaPipe itself).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_depth = 0
_saved_fd: int | None = None


@contextlib.contextmanager
def quiet_native_logs() -> Iterator[None]:
    """Descriptor 2 goes to /dev/null inside the block (and back after it).

    Process-wide: whatever any thread writes to stderr meanwhile is lost too, so keep
    the block to a graph's construction and first run. Threads may nest and overlap
    blocks; the first in redirects, the last out restores.
    """
    global _depth, _saved_fd
    if os.environ.get("CHIBI_NATIVE_LOGS") == "1":
        yield
        return
    with _lock:
        if _depth == 0:
            _saved_fd = _stderr_to_devnull()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved_fd is not None:
                _flush_python_stderr()
                os.dup2(_saved_fd, 2)
                os.close(_saved_fd)
                _saved_fd = None


def _stderr_to_devnull() -> int | None:
    """Point descriptor 2 at /dev/null; a copy of what it was, or None where there was
    nothing to save (a process started with descriptor 2 closed logs nowhere anyway)."""
    _flush_python_stderr()
    try:
        saved = os.dup(2)
    except OSError:
        return None
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    return saved


def _flush_python_stderr() -> None:
    # what Python buffered belongs on the side of the switch it was written on
    with contextlib.suppress(Exception):
        sys.stderr.flush()
