"""One request's CPU work, run inside a worker process of the server's pool.

photo bytes -> (avatar3d.face) observations -> (avatar3d.regressor) AvatarParams
params JSON ------------------------------------------------------> AvatarParams
AvatarParams -> (avatar3d.build) Avatar -> (exporters) glb/VRM bytes [+ preview PNG]

Progress and results go to the server's event loop through the worker's pipe
(`worker_main`); cancellation comes back through a shared array of job numbers
that the job checks between stages. Each worker loads the components at
start and reports which sources it can serve, so a server whose regressor has
not landed (or whose weights are missing) still serves params requests and
answers photo requests with `not_available`.
Photos exist here only as bytes in memory; nothing is written or logged.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from avatar3d.errors import ChibiError
from avatar3d.params import AvatarParams, ParamsError

from .framing import DEFAULT_CHECKSUM, blob_digest

CANCEL_SLOTS = 4096  # > the most jobs the server ever has admitted at once


@dataclass
class Job:
    """Everything a worker needs for one request (pickled to the worker)."""

    seq: int  # server-wide job number; also the cancel-flag slot (seq % CANCEL_SLOTS)
    source: str  # "photo" | "params"
    options: dict[str, Any]  # see server.protocol.DEFAULT_OPTIONS
    photo: bytes | None = None
    params: dict[str, Any] | None = None
    max_pixels: int = 40_000_000
    shared_photo: int = 0  # the photo's size when it waits in the worker's shared block
    checksum: str = DEFAULT_CHECKSUM  # of the results' blobs, as the connection chose
    # a core is free for the exporters' helper threads (no worker on it when dispatched)
    helper_threads: bool = True


@dataclass(frozen=True)
class SharedBlob:
    """Bytes of a result left in the worker's shared block: [offset, offset + size)."""

    offset: int
    size: int


class JobCancelled(Exception):
    """The server asked this job to stop (client cancel, timeout, disconnect)."""


# Worker-process globals, set by `init_worker`.
_channel: Any = None  # the pipe to the server's event loop
_cancel_flags: Any = None
_settings: dict[str, Any] = {"max_photo_bytes": 20 * 1024 * 1024, "model": "default"}
_photo: Any = None  # avatar3d.pipeline.PhotoPipeline, loaded once per worker


def worker_main(
    channel: Any, shared_name: str | None, cancel_flags: Any, settings: dict[str, Any]
) -> None:
    """A worker process of the server's pool (`server.workers`): set up, then run jobs
    from `channel` one at a time until it sends None or closes.

    Everything goes back on `channel`, in order: ("ready", pid, sources), then per
    job its ("progress", seq, number, stage, elapsed_ms, detail) events and
    ("done", seq, outcome). Photos arrive, and results leave, through the shared
    block when they fit (`Job.shared_photo`, `SharedBlob`).
    """
    import signal

    from .workers import attach_shared

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the server's to handle
    shared = attach_shared(shared_name) if shared_name else None
    init_worker(channel, cancel_flags, settings)
    while True:
        try:
            job = channel.recv()
        except EOFError:
            return
        if job is None:
            return
        if job.shared_photo:
            job.photo = bytes(shared.buf[: job.shared_photo])
        outcome = run_job(job)
        channel.send(("done", job.seq, _share_blobs(outcome, shared)))
        del outcome, job  # the result's bytes are freed after the loop has its answer


def _share_blobs(outcome: dict[str, Any], shared: Any) -> dict[str, Any]:
    """A copy of `outcome` whose items' model/preview bytes wait in the shared block,
    where they fit. The original keeps its bytes: the caller frees them only after
    sending (freeing a fresh 0.5 MB result costs the worker ~0.8 ms; the loop need
    not wait for that)."""
    if shared is None or not outcome.get("items"):
        return outcome
    offset, items = 0, []
    for item in outcome["items"]:
        item = dict(item)
        for key in ("model", "preview"):
            data = item.get(key)
            if not data or offset + len(data) > len(shared.buf):
                continue
            shared.buf[offset : offset + len(data)] = data
            item[key] = SharedBlob(offset, len(data))
            offset += len(data)
        items.append(item)
    return {**outcome, "items": items}


def init_worker(channel: Any, cancel_flags: Any, settings: dict[str, Any], nice: int = 5) -> None:
    """Remember the channel, lower priority, load the models once.

    Reports ("ready", pid, sources) on the channel, where sources says
    which request sources this worker could really load ({"params": bool,
    "photo": bool}) and why not ("reasons").
    """
    global _channel, _cancel_flags, _settings
    _channel, _cancel_flags, _settings = channel, cancel_flags, settings
    # A server killed with SIGKILL cannot stop its pool: leave with it instead of lingering.
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    # The event loop process must win the CPU when workers are busy (ping latency).
    try:
        os.nice(nice)
    except OSError:
        pass
    from .process_setup import start_up, worker_process_setup

    with start_up():
        worker_process_setup()  # the pool's workers share the cores
        sources = warm_up()
    channel.send(("ready", os.getpid(), sources))


def _exit_with_parent(parent: int, every: float = 1.0) -> None:
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(0)


def warm_up() -> dict[str, Any]:
    """Load the 3D half and the photo models and pay their first-call costs now
    (`process_setup.pay_first_calls`); says which sources this worker can serve."""
    from .process_setup import pay_first_calls

    sources: dict[str, Any] = {"params": False, "photo": False, "reasons": {}}
    try:
        from avatar3d.build import build_avatar
        from exporters import export

        avatar = build_avatar(AvatarParams())
        export(avatar, "glb")
        sources["params"] = True
    except Exception as exc:  # a component that has not landed, or fails to load
        sources["reasons"]["params"] = f"{type(exc).__name__}: {exc}"[:300]
        return sources
    try:
        pay_first_calls(avatar=avatar)
    except Exception as exc:  # no GL here: glb still works, VRM requests will say why
        sources["reasons"]["thumbnail"] = f"{type(exc).__name__}: {exc}"[:300]
    try:
        pay_first_calls(pipeline=_photo_pipeline())
        sources["photo"] = True
    except Exception as exc:
        sources["reasons"]["photo"] = f"{type(exc).__name__}: {exc}"[:300]
    return sources


def _photo_pipeline() -> Any:
    global _photo
    if _photo is None:
        from avatar3d.pipeline import PhotoPipeline

        _photo = PhotoPipeline(_settings["model"], weights_dir=_settings.get("weights_dir"))
    return _photo


def run_job(job: Job) -> dict[str, Any]:
    """Run one request. Returns {"items": [...]} or {"error": {...}}.

    Errors travel as plain dicts because exceptions with custom constructors
    (ChibiError, ParamsError) do not survive pickling back to the server.
    """
    from exporters.background import use_helper_threads

    use_helper_threads(job.helper_threads)
    tracker = _Tracker(job.seq)
    try:
        tracker.stage("started")
        items = _run(job, tracker)
        return {"items": items}
    except JobCancelled:
        return {"error": {"code": "cancelled", "message": "cancelled"}}
    except ChibiError as exc:
        error = {"code": exc.code, "message": exc.message}
    except ParamsError as exc:
        error = {"code": "invalid_params", "message": str(exc), "field": exc.field}
    except MemoryError:
        error = {"code": "image_too_large", "message": "not enough memory for this image"}
    return {"error": error}


class _Tracker:
    """Numbers progress events, sends them to the server, and checks for cancellation."""

    def __init__(self, seq: int):
        self.seq, self.start, self.events = seq, time.perf_counter(), []

    def stage(self, name: str, **detail: Any) -> None:
        if _cancel_flags is not None and _cancel_flags[self.seq % CANCEL_SLOTS] == self.seq:
            raise JobCancelled
        event = (
            len(self.events),
            name,
            round((time.perf_counter() - self.start) * 1000, 3),
            detail,
        )
        self.events.append(event)
        if _channel is not None:
            _channel.send(("progress", self.seq, *event))


def _run(job: Job, tracker: _Tracker) -> list[dict[str, Any]]:
    options = job.options
    if job.source == "params":
        params_list = [AvatarParams.from_dict(job.params)]
        tracker.stage("params", item=0)
    else:
        params_list = _photo_to_params(job, tracker)
    items = []
    for number, params in enumerate(params_list):
        item = _build_and_export(params, options, tracker, number, job.checksum)
        # stage -> ms since `started`, for the stages of this avatar
        item["timings_ms"] = {
            name: elapsed
            for _, name, elapsed, detail in tracker.events
            if detail.get("item", number) == number
        }
        items.append(item)
    return items


def _photo_to_params(job: Job, tracker: _Tracker) -> list[AvatarParams]:
    from avatar3d.imageio import ImageLimits, decode_image

    # Sizes are checked from the header before any pixel is decoded (PNG bombs).
    rgb = decode_image(
        job.photo or b"",
        ImageLimits(max_bytes=_settings["max_photo_bytes"], max_pixels=job.max_pixels),
    )
    tracker.stage("decoded", width=int(rgb.shape[1]), height=int(rgb.shape[0]))
    photo = _photo_pipeline()
    faces = photo.analyzer.analyze(rgb, all_faces=job.options["all_faces"])
    tracker.stage("face_found", faces=len(faces))
    params_list = [result.params for result in photo.analyze_faces(rgb, faces)]
    for number in range(len(params_list)):
        tracker.stage("params", item=number)
    return params_list


def _build_and_export(
    params: AvatarParams, options: dict[str, Any], tracker: _Tracker, number: int, checksum: str
) -> dict[str, Any]:
    from avatar3d.build import build_avatar
    from exporters import export_file
    from exporters.preview import render_preview

    avatar = build_avatar(params, quality=options["quality"])
    tracker.stage("built", item=number)
    model = export_file(avatar, options["format"], options["thumbnail"])
    preview = render_preview(avatar) if options["return_preview"] else None
    tracker.stage("exported", item=number, bytes=len(model))
    digests = {"model": blob_digest(model, checksum)}  # here, not on the event loop
    if preview is not None:
        digests["preview"] = blob_digest(preview, checksum)
    return {
        "format": options["format"],
        "model": model,
        "preview": preview,
        "params": params.to_dict() if options["return_params"] else None,
        "digests": digests,
    }
