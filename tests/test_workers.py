"""The server's worker pool on its own: jobs in, progress and results out, through the
shared-memory blocks and through the pipe alone (a machine without room in /dev/shm)."""

import asyncio
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from avatar3d.build import build_avatar
from avatar3d.params import AvatarParams
from exporters import export
from server import pipeline, workers
from server.protocol import DEFAULT_OPTIONS

REPO = Path(__file__).resolve().parents[1]

SETTINGS = {"max_photo_bytes": 20 * 1024 * 1024, "model": "default", "weights_dir": None}


def _run_jobs(jobs: list[pipeline.Job]) -> tuple[list[dict], list[tuple]]:
    """(outcomes, progress events) of `jobs` run by a fresh one-worker pool."""
    events: list[tuple] = []

    async def scenario():
        pool = workers.WorkerPool(1, SETTINGS, lambda *event: events.append(event))
        await pool.start()
        try:
            return await asyncio.gather(*(pool.submit(job) for job in jobs))
        finally:
            await pool.stop()

    return asyncio.run(scenario()), events


@pytest.fixture(scope="module")
def photo_jpeg(astronaut) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(astronaut).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _jobs(photo: bytes) -> list[pipeline.Job]:
    glb = {**DEFAULT_OPTIONS, "format": "glb"}
    return [
        pipeline.Job(1, "params", glb, params={"hair_style": "bob"}),
        pipeline.Job(2, "photo", glb, photo=photo),
    ]


@pytest.fixture(scope="module")
def through_shared_memory(photo_jpeg):
    return _run_jobs(_jobs(photo_jpeg))


def test_results_and_progress_come_back_in_order(through_shared_memory):
    outcomes, events = through_shared_memory
    (params_item,) = outcomes[0]["items"]
    expected = export(build_avatar(AvatarParams.from_dict({"hair_style": "bob"})), "glb")
    assert params_item["model"] == expected  # the bytes the CLI writes
    assert outcomes[1]["items"][0]["model"][:4] == b"glTF"
    for seq, stages in (
        (1, ["started", "params", "built", "exported"]),
        (2, ["started", "decoded", "face_found", "params", "built", "exported"]),
    ):
        mine = [event for event in events if event[0] == seq]
        assert [event[2] for event in mine] == stages
        assert [event[1] for event in mine] == list(range(len(stages)))


def test_without_shared_memory_everything_goes_through_the_pipe(
    monkeypatch, photo_jpeg, through_shared_memory
):
    made = []
    monkeypatch.setattr(workers, "_shared_block", lambda size: made.append(size))  # -> None
    outcomes, _ = _run_jobs(_jobs(photo_jpeg))
    assert made, "the pool did not ask for a shared block"
    for piped, shared in zip(outcomes, through_shared_memory[0], strict=True):
        assert piped["items"][0]["model"] == shared["items"][0]["model"]


def test_jobs_get_helper_threads_only_while_a_core_is_free():
    """The pool tells a job whether the exporters may use helper threads: yes while
    fewer jobs than cores run, no once every core has a worker busy."""
    pool = workers.WorkerPool(2, SETTINGS, lambda *event: None)
    pool.cores = 2
    sent: list[pipeline.Job] = []

    class Pipe:
        def send(self, job: pipeline.Job) -> None:
            sent.append(job)

    pool.pool = [workers._Worker(None, Pipe(), None, ready=True) for _ in range(2)]
    loop = asyncio.new_event_loop()
    try:
        for seq in (1, 2):
            job = pipeline.Job(seq, "params", dict(DEFAULT_OPTIONS), params={})
            pool.queue.append(workers._Queued(job, loop.create_future()))
            pool._pump()
    finally:
        loop.close()
    assert [(job.seq, job.helper_threads) for job in sent] == [(1, True), (2, False)]


def test_a_bad_photo_is_an_error_outcome_and_the_worker_goes_on():
    glb = {**DEFAULT_OPTIONS, "format": "glb"}
    outcomes, _ = _run_jobs(
        [
            pipeline.Job(1, "photo", glb, photo=b"not an image"),
            pipeline.Job(2, "params", glb, params={}),
        ]
    )
    assert outcomes[0]["error"]["code"] == "invalid_image"
    assert outcomes[1]["items"][0]["model"][:4] == b"glTF"


def test_glibc_keeps_freed_memory_for_reuse():
    from server.process_setup import keep_freed_memory

    assert keep_freed_memory()  # glibc accepted both mallopt() settings


@pytest.mark.parametrize("user_setting", [None, "2"])
def test_a_chibi_process_runs_blas_on_one_thread_unless_the_user_says_otherwise(user_setting):
    """numpy's OpenBLAS (loaded before the setup) and scipy's (loaded after) get one
    thread; their idle threads spun against the thumbnail renderer's."""
    script = (
        "import numpy\n"
        "from server.process_setup import chibi_process_setup\n"
        "chibi_process_setup()\n"
        "import scipy.linalg\n"
        "from threadpoolctl import threadpool_info\n"
        "blas = [p for p in threadpool_info() if p['user_api'] == 'blas']\n"
        "assert any('scipy' in p['filepath'] for p in blas), blas\n"
        "print(sorted({p['num_threads'] for p in blas}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if user_setting:
        env["OPENBLAS_NUM_THREADS"] = user_setting
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ("[1]" if user_setting is None else f"[{user_setting}]")
