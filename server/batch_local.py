"""The worker side of `chibi batch`: `Converter` (shared by every engine) and the local
engine, a process pool with the models loaded once per worker process.

A worker gets (key, path) pairs, reads each photo itself from the path (photos
never travel through the driver or any queue, and are never written anywhere),
and returns plain result dicts; only the driver writes files.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from avatar3d.errors import ChibiError
from avatar3d.imageio import read_photo_file
from avatar3d.process_map import start_worker, stop_workers

from .batch import JobOptions, sha256_bytes

Task = tuple[str, str]  # (ledger key, absolute path of the photo)


class Converter:
    """Loads the photo pipeline and the 3D half once; converts photos given by path.

    Every engine's workers (process pool initializer, Ray actor) run this same
    code, so both engines write the same bytes. It lives in a worker process that
    shares the cores with the others: its native libraries get one thread each.
    """

    def __init__(self, options: JobOptions):
        from .process_setup import pay_first_calls, start_up, worker_process_setup

        with start_up():
            worker_process_setup()
            from avatar3d.build import build_avatar
            from avatar3d.params import AvatarParams
            from avatar3d.pipeline import PhotoPipeline

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
            data = read_photo_file(path, self.pipeline.limits.max_bytes)
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
        from exporters import export_file

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
            model = export_file(avatar, self.options.format, self.options.thumbnail)
            lap("export")  # with the VRM thumbnail, rendered meanwhile
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


# -- the local engine ---------------------------------------------------------------------
#
# Our own worker processes, each with its own pipe (`avatar3d.process_map` says why not
# concurrent.futures' or multiprocessing's pools: a worker killed while sending a result
# hung the job for good). A dead worker reads as end-of-file at once.

CHUNKS_AHEAD = 2  # chunks sent to a worker before its results come back (no idle gap)


@dataclass(eq=False)
class _Worker:
    process: Any
    conn: Any  # the driver's end of the worker's pipe
    sent: deque[list[Task]] = field(default_factory=deque)  # results not yet received
    suspect: bool = False  # holds one suspect task, alone in flight


def _worker_main(conn: Any, options: JobOptions, parent_pid: int, log_path: str | None) -> None:
    """A worker process: loads the models, then answers each chunk it receives with its
    results ("results", [dict...]) until it receives None or the driver is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    if log_path:  # MediaPipe / TFLite write INFO lines to fd 2 from C++: keep the bar clean
        fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        os.dup2(fd, 2)
        os.close(fd)
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()
    try:
        converter = Converter(options)
    except Exception as exc:  # noqa: BLE001 - the driver reports it and stops the job
        conn.send(("setup_error", f"{type(exc).__name__}: {exc}"))
        return
    try:
        while (chunk := conn.recv()) is not None:
            conn.send(("results", converter.convert_many(chunk)))
    except (EOFError, OSError):  # the driver is gone
        pass
    # Nothing to flush (only the driver writes files), and the interpreter's teardown of
    # torch and MediaPipe took ~0.13 s that the end of every job waited for.
    sys.stderr.flush()
    os._exit(0)


def _exit_with_parent(parent_pid: int) -> None:
    """A driver killed by SIGKILL cannot stop its workers, and a busy worker does not
    read its pipe, so each worker also watches its parent and leaves by itself."""
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os._exit(0)


def run_local(
    tasks: list[Task], options: JobOptions, workers: int, chunk: int = 2,
    log_path: str | None = None,
) -> Iterator[dict[str, Any]]:  # fmt: skip
    """Convert `tasks` in `workers` processes; yields one result per task as they finish.

    chunk: tasks per message (amortises the inter-process round trip);
    log_path: file that receives the workers' stderr (native library chatter).
    A worker that dies (a crash in native code, the OOM killer) is replaced, and the
    tasks it held are suspects: once the queue is empty they are retried one at a
    time with no other task in flight, so only a photo that kills its worker again,
    alone, ends as `worker_crashed`.
    Raises ChibiError not_available when the workers cannot load the models.
    """
    from multiprocessing.connection import wait

    def spawn() -> _Worker:
        return _Worker(*start_worker(_worker_main, (options, os.getpid(), log_path)))

    queue = deque(tasks[i : i + chunk] for i in range(0, len(tasks), chunk))
    suspects: deque[list[Task]] = deque()
    pool = [spawn() for _ in range(min(workers, len(queue)))]
    try:
        while queue or suspects or any(worker.sent for worker in pool):
            _dispatch(pool, queue, suspects)
            ready = set(wait([w.conn for w in pool] + [w.process.sentinel for w in pool]))
            for worker in list(pool):
                if worker.conn not in ready and worker.process.sentinel not in ready:
                    continue
                try:
                    while worker.conn.poll():  # results it sent before dying count too
                        kind, payload = worker.conn.recv()
                        if kind == "setup_error":
                            raise ChibiError("not_available", f"cannot load the models: {payload}")
                        worker.sent.popleft()
                        worker.suspect = False
                        yield from payload
                    if worker.process.sentinel not in ready:
                        continue
                except (EOFError, OSError):
                    pass
                yield from _on_death(worker, pool, suspects)
                if queue or suspects:
                    pool.append(spawn())
    finally:
        stop_workers([(worker.process, worker.conn) for worker in pool])


def _dispatch(pool: list[_Worker], queue: deque[list[Task]], suspects: deque[list[Task]]) -> None:
    """Queued chunks go to workers with room; a suspect goes alone, when nothing else is
    in flight (so that its worker's death can only be its own doing)."""
    for worker in pool:
        while queue and len(worker.sent) < CHUNKS_AHEAD:
            _send(worker, queue.popleft())
    if not queue and suspects and pool and not any(worker.sent for worker in pool):
        pool[0].suspect = True
        _send(pool[0], suspects.popleft())


def _send(worker: _Worker, chunk: list[Task]) -> None:
    worker.sent.append(chunk)
    with contextlib.suppress(OSError):  # died meanwhile: its EOF sends `chunk` back
        worker.conn.send(chunk)


def _on_death(
    worker: _Worker, pool: list[_Worker], suspects: deque[list[Task]]
) -> Iterator[dict[str, Any]]:
    """Forget a dead worker; its unanswered tasks become suspects, or, if it held one
    suspect alone, that task's result is `worker_crashed`."""
    pool.remove(worker)
    stop_workers([(worker.process, worker.conn)])  # reaped, its pipe closed
    held = [task for chunk in worker.sent for task in chunk]
    if worker.suspect and held:  # alone in flight when its worker died: the culprit
        crashed = _result(held[0][0])
        crashed["error"] = {"code": "worker_crashed", "message": "its worker process died"}
        yield crashed
        return
    suspects.extend([task] for task in held)
