"""Process-wide settings for throughput: how the native libraries use threads and memory.

- `chibi_process_setup()` for every `chibi` process (the CLI calls it first):
  `keep_freed_memory()` and `one_blas_thread()`;
- `worker_process_setup()` for worker processes that share the cores with others
  (the server's pool, both batch engines), `pay_first_calls()` at the end of their
  start-up, and `start_up()` around the whole start-up.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import os
import sys
from collections.abc import Iterator
from typing import Any

# glibc mallopt() parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024  # glibc's upper bound on 64-bit systems
TRIM_THRESHOLD_BYTES = 64 * 1024 * 1024
# read by OpenMP and the BLAS libraries when they load
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def usable_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def keep_freed_memory() -> bool:
    """Let glibc keep freed blocks under 32 MB for reuse (up to 64 MB of free heap).

    By default glibc serves most blocks over ~128 kB-32 MB with fresh mmap()s and
    gives them back on free(); an avatar build and export allocate and free tens of
    MB per request, so every request paid for page faults and unmapping again
    (build + export 29.5 -> 22 ms; freeing one 0.5 MB result cost a worker 0.8 ms).
    Returns False where there is no glibc (nothing changes then).
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = libc.mallopt if libc is not None else None
    except (OSError, AttributeError):
        return False
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )


def one_blas_thread() -> None:
    """BLAS (OpenBLAS, numpy's and scipy's) on one thread, unless the user set
    OPENBLAS_NUM_THREADS.

    Our matrix products are small (thousands of vertices by 3x3 or 4x4 matrices), so
    a second thread brings nothing; but OpenBLAS's idle threads wait for the next call
    by spinning on sched_yield, and on 2 cores they took the CPU from llvmpipe's: a
    1024 px VRM thumbnail rendered in 41 ms instead of 27 (80 ms of system time per
    render), photo -> VRM 81 instead of 70 ms. The variable reaches the BLAS
    libraries loaded later (scipy's own, which scikit-image brings); threadpoolctl
    limits the ones already loaded (numpy's).
    """
    if "OPENBLAS_NUM_THREADS" in os.environ:
        return
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")


def chibi_process_setup() -> None:
    """What every `chibi` process does first: `keep_freed_memory` and `one_blas_thread`."""
    keep_freed_memory()
    one_blas_thread()


def worker_process_setup() -> None:
    """One thread per native library (torch, BLAS, OpenCV, libheif), and `keep_freed_memory`.

    Each library otherwise starts a thread per core, and on 2 cores two workers'
    idle BLAS/OpenMP threads spin against the busy ones (avatar builds took 35 ms
    instead of 23 under 2 batch workers). Call it before the other imports: the
    environment variables reach the libraries loaded later (scipy's own OpenBLAS,
    which scikit-image brings, started 2 threads in every worker).
    """
    os.environ.update(dict.fromkeys(_THREAD_VARIABLES, "1"))
    import cv2
    import pillow_heif
    from threadpoolctl import threadpool_limits

    keep_freed_memory()
    # imported later, torch reads OMP_NUM_THREADS from the environment set above; the
    # photo path imports it only to export a graph it has not cached (`onnx_net`)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)
    threadpool_limits(1)
    cv2.setNumThreads(1)
    pillow_heif.options.DECODE_THREADS = 1  # HEIC tiles (an iPhone photo has 48)


def pay_first_calls(pipeline: Any = None, avatar: Any = None) -> None:
    """Pay the first-call costs in a worker's start-up instead of in its first request.

    pipeline: a PhotoPipeline to run once on a sample photo (scikit-image's
    astronaut): MediaPipe builds its graphs on the first image. avatar: an Avatar
    to render a thumbnail of (imports pyrender, creates the EGL context, compiles
    the shaders). A fresh server worker's first photo -> VRM took 735 ms instead of
    100 without this (pyrender's import, the GL context, and a 128 ms full garbage
    collection that `start_up` now spares every worker).
    """
    if pipeline is not None:
        from importlib.resources import files

        from avatar3d.errors import ChibiError

        # the file itself: skimage.data's loader would import skimage.io (~70 ms)
        photo = (files("skimage") / "data" / "astronaut.png").read_bytes()
        try:
            pipeline.analyze(photo)
        except ChibiError:  # warming is best-effort: the graphs are built either way
            pass
    if avatar is not None:
        from exporters.preview import render_thumbnail_in_background

        render_thumbnail_in_background(avatar).result()  # where exports render it


@contextlib.contextmanager
def start_up() -> Iterator[None]:
    """A worker's start-up (imports, models, `pay_first_calls`) with no garbage
    collection, then the heap so far frozen out of later collections.

    The start-up makes ~260k objects that live as long as the worker (torch,
    MediaPipe, the models); the collector kept rescanning them as they grew (0.3 s of
    a 1.55 s batch worker start-up), and one full collection at the end costs 0.135 s
    more to find ~11k objects of cyclic garbage, which are frozen with the rest
    instead (measured: no change in the worker's peak memory, 435 MB).
    Later collections see only the objects of requests.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()
