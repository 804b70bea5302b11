"""The worker side of `chibi batch`: `Converter` (shared by every engine) and the local
engine, a process pool with the models loaded once per worker process.

A worker gets (key, path) pairs, reads each photo itself from the path (photos
never travel through the driver or any queue, and are never written anywhere),
and returns plain result dicts; only the driver writes files.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import deque
from collections.abc import Generator, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from avatar3d.errors import ChibiError

from .batch import JobOptions, sha256_bytes

Task = tuple[str, str]  # (ledger key, absolute path of the photo)


class Converter:
    """Loads the photo pipeline and the 3D half once; converts photos given by path.

    Every engine's workers (process pool initializer, Ray actor) run this same
    code, so both engines write the same bytes. It lives in a worker process that
    shares the cores with the others: its native libraries get one thread each.
    """

    def __init__(self, options: JobOptions):
        from avatar3d.build import build_avatar
        from avatar3d.params import AvatarParams
        from avatar3d.pipeline import PhotoPipeline

        from .process_setup import pay_first_calls, worker_process_setup

        worker_process_setup()
        self.options = options
        self.pipeline = PhotoPipeline(options.model, weights_dir=options.weights_dir or None)
        avatar = build_avatar(AvatarParams(), quality=options.quality)  # base-model cache
        renders = options.format != "glb" or options.preview
        pay_first_calls(self.pipeline, avatar if renders else None)

    def convert_many(self, tasks: list[Task]) -> list[dict[str, Any]]:
        """One result dict per (key, path) task, in order (see `convert_one`)."""
        return [self.convert_one(key, path) for key, path in tasks]

    def convert_one(self, key: str, path: str) -> dict[str, Any]:
        """One photo -> {"key", "ok", "input_sha256", "input_bytes", "faces": [{"model":
        bytes, "params": dict, "preview": PNG bytes | None}], "error": {"code", "message"}
        | None, "timings_ms": {stage: ms}}. A bad photo is a result, never an exception."""
        timings: dict[str, float] = {}
        result = _result(key)
        clock = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[stage] = round(timings.get(stage, 0.0) + (now - clock) * 1000, 2)
            clock = now

        try:
            data = read_photo(path, self.pipeline.limits.max_bytes)
            result["input_sha256"], result["input_bytes"] = sha256_bytes(data), len(data)
            lap("read")
            result["faces"] = self._convert(data, lap)
            result["ok"] = True
        except ChibiError as exc:
            result["error"] = {"code": exc.code, "message": exc.message}
        except MemoryError:
            result["error"] = {"code": "image_too_large", "message": "not enough memory"}
        except Exception as exc:  # noqa: BLE001 - a bug costs one photo, not the job
            message = f"{type(exc).__name__}: {exc}"[:500]
            result["error"] = {"code": "internal_error", "message": message}
        result["timings_ms"] = timings
        return result

    def _convert(self, data: bytes, lap: Any) -> list[dict[str, Any]]:
        from avatar3d.build import build_avatar
        from avatar3d.imageio import decode_image
        from exporters import export

        rgb = decode_image(data, self.pipeline.limits)
        lap("decode")
        faces = self.pipeline.analyzer.analyze(rgb, all_faces=self.options.all_faces)
        lap("faces")
        # The faces of one photo go through the CNN as one batch, photos do not: measured
        # here, the CNN takes ~0.7 ms per face of ~330 ms per photo, and the batch's make-up
        # changes its floats in the last bits, so outputs would depend on how an engine
        # happened to group photos (and the engines must write identical bytes).
        params_list = [r.params for r in self.pipeline.analyze_faces(rgb, faces)]
        lap("params")
        out = []
        for params in params_list:
            avatar = build_avatar(params, quality=self.options.quality)
            lap("build")
            thumbnail = None  # glb has no thumbnail slot
            if self.options.format != "glb":
                thumbnail = _preview().render_thumbnail(avatar)
            lap("thumbnail")
            model = export(avatar, self.options.format, thumbnail_png=thumbnail)
            lap("export")
            preview = _preview().render_preview(avatar) if self.options.preview else None
            lap("preview")
            out.append({"model": model, "params": params.to_dict(), "preview": preview})
        return out


def _preview() -> Any:
    """`exporters.preview`, imported on first use: workers that write glb without previews
    never load pyrender, PyOpenGL and trimesh (~0.5 s of their start-up)."""
    import exporters.preview

    return exporters.preview


def _result(key: str) -> dict[str, Any]:
    return {"key": key, "ok": False, "input_sha256": None, "input_bytes": None, "faces": [],
            "error": None, "timings_ms": {}}  # fmt: skip


def read_photo(path: str, max_bytes: int) -> bytes:
    """A photo's bytes. ChibiError io_error (missing, unreadable, not a regular file) or
    image_too_large (over `max_bytes`, found without reading it all)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO named x.jpg must not hang
    except OSError as exc:
        raise ChibiError("io_error", f"cannot open the photo: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        if not os.path.stat.S_ISREG(os.fstat(fd).st_mode):
            raise ChibiError("io_error", "not a regular file")
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ChibiError("image_too_large", f"the file is over {max_bytes} bytes")
    return data


# -- the local engine ---------------------------------------------------------------------

_converter: Converter | None = None
_setup_error: str | None = None


class WorkerSetupError(RuntimeError):
    """A worker could not load the models (missing weights...): the job cannot run."""


def _init_worker(options: JobOptions, parent_pid: int, log_path: str | None) -> None:
    global _converter, _setup_error
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    if log_path:  # MediaPipe / TFLite write INFO lines to fd 2 from C++: keep the bar clean
        fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(fd, 2)
        os.close(fd)
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()
    try:
        _converter = Converter(options)
    except Exception as exc:  # noqa: BLE001 - reported by the first task, see _convert_chunk
        _setup_error = f"{type(exc).__name__}: {exc}"


def _exit_with_parent(parent_pid: int) -> None:
    """A driver killed by SIGKILL cannot stop its pool, so each worker leaves by itself."""
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os._exit(0)


def _convert_chunk(tasks: list[Task]) -> list[dict[str, Any]]:
    if _converter is None:
        raise WorkerSetupError(_setup_error or "worker not initialised")
    return _converter.convert_many(tasks)


def run_local(
    tasks: list[Task], options: JobOptions, workers: int, chunk: int = 2,
    log_path: str | None = None,
) -> Iterator[dict[str, Any]]:  # fmt: skip
    """Convert `tasks` in `workers` processes; yields one result per task as they finish.

    chunk: tasks per submission (amortises the inter-process round trip);
    log_path: file that receives the workers' stderr (native library chatter).
    A worker that dies (a crash in native code, the OOM killer) breaks the pool: a
    new pool takes over the queue, then the tasks that were in flight are retried
    one at a time in a one-worker pool, so only a photo that kills its worker
    again ends as `worker_crashed`.
    Raises ChibiError not_available when the workers cannot load the models.
    """
    queue = deque(tasks[i : i + chunk] for i in range(0, len(tasks), chunk))
    suspects: deque[list[Task]] = deque()
    while queue or suspects:
        if queue:
            broken = yield from _pool_run(queue, workers, 2 * workers, options, log_path)
            suspects.extend([task] for task in broken)
            continue
        broken = yield from _pool_run(suspects, 1, 1, options, log_path)
        for key, _ in broken:  # alone in flight when its worker died: the culprit
            crashed = _result(key)
            crashed["error"] = {"code": "worker_crashed", "message": "its worker process died"}
            yield crashed


def _pool_run(
    queue: deque[list[Task]], workers: int, depth: int, options: JobOptions,
    log_path: str | None,
) -> Generator[dict[str, Any], None, list[Task]]:  # fmt: skip
    """Run chunks from `queue` (at most `depth` in flight) until it is empty (returns
    []) or the pool breaks (returns the in-flight tasks not yet yielded; the rest of
    the queue stays queued)."""
    import multiprocessing

    pool = ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"),  # no forked torch state
        initializer=_init_worker, initargs=(options, os.getpid(), log_path),
    )  # fmt: skip
    inflight: dict[Any, list[Task]] = {}
    try:
        while queue or inflight:
            while queue and len(inflight) < depth:
                chunk = queue.popleft()
                inflight[pool.submit(_convert_chunk, chunk)] = chunk
            done, _ = wait(inflight, return_when=FIRST_COMPLETED)
            for future in done:
                try:
                    results = future.result()
                except BrokenProcessPool:
                    return [task for chunk in inflight.values() for task in chunk]
                except WorkerSetupError as exc:
                    raise ChibiError("not_available", f"cannot load the models: {exc}") from None
                del inflight[future]
                yield from results
        return []
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
