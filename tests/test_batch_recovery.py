"""`chibi batch` when things go wrong mid-run, through the real command line and the
local engine: workers killed (as the OOM killer would) mid-run, mid-result and while
loading, the driver killed with SIGKILL or stopped with Ctrl-C, then the job resumed;
workers that cannot load the models. Every input is answered exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from batch_photos import check_accounted, encode, resized, write
from processes import gone_within, group_alive, spawned_children
from skimage import data as skdata

from avatar3d.errors import ChibiError
from server.batch import MANIFEST, TMP_SUFFIX, read_jsonl
from server.cli import main as chibi

REPO = Path(__file__).resolve().parents[1]


# -- SIGKILL and resume ----------------------------------------------------------------------


def _wait_lines(path: Path, count: int, process: subprocess.Popen) -> None:
    """Until `path` has `count` lines; fails (and kills the job) if the process ends or
    stalls first."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if path.exists() and path.read_bytes().count(b"\n") >= count:
            return
        time.sleep(0.02)
    lines = path.read_bytes().count(b"\n") if path.exists() else 0
    if process.poll() is None:  # started in its own session: its group is the job
        os.killpg(process.pid, signal.SIGKILL)
    pytest.fail(f"{path.name}: {lines} of {count} lines, process exit code {process.poll()}")


@pytest.mark.timeout(420)
def test_sigkill_mid_run_then_resume(tmp_path: Path):
    """A worker killed mid-run (as the OOM killer would) costs nothing: its photos are
    retried. Then the driver itself is killed with SIGKILL; a rerun (on the other
    engine) finishes the job, every input accounted for exactly once."""
    photos, out = tmp_path / "photos", tmp_path / "out"
    astronaut = skdata.astronaut()
    expected: dict[str, str | None] = {}
    for n in range(12):
        side = 256 + 32 * n
        rgb = resized(astronaut if n % 2 else astronaut[:, ::-1].copy(), side)
        write(photos, f"set{n % 3}/p{n:02d}.jpg", encode(rgb, "JPEG", quality=60 + 3 * n))
        expected[f"set{n % 3}/p{n:02d}.jpg"] = None
    write(photos, "set0/broken.jpg", b"\xff\xd8\xff" + b"\0" * 100)
    expected["set0/broken.jpg"] = "invalid_image"
    command = [sys.executable, "-m", "server.cli", "batch", str(photos), str(out),
               "--format", "vrm0", "--workers", "2", "--chunk", "1", "--no-progress"]  # fmt: skip
    process = subprocess.Popen(command, cwd=REPO, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    manifest = out / MANIFEST
    _wait_lines(manifest, 1, process)
    workers = spawned_children(process.pid)
    assert process.poll() is None and len(workers) == 2, process.stderr.read().decode()[-2000:]
    os.kill(workers[0], signal.SIGKILL)
    _wait_lines(manifest, 4, process)  # a new pool took over
    assert process.poll() is None, process.stderr.read().decode()[-2000:]
    os.kill(process.pid, signal.SIGKILL)  # the driver only, as `kill -9 PID` would
    process.wait()
    assert gone_within(lambda: group_alive(process.pid)), "workers outlived the killed driver"
    done_before = read_jsonl(manifest)
    assert 4 <= len(done_before) < 12
    # what a kill can leave, and worse: a torn last line, a temporary file, a damaged output
    with open(manifest, "ab") as f:
        f.write(b'{"input": "set1/p01.jpg", "outp')
    (out / "set1" / f".p04.vrm.0badc0de{TMP_SUFFIX}").parent.mkdir(exist_ok=True)
    (out / "set1" / f".p04.vrm.0badc0de{TMP_SUFFIX}").write_bytes(b"half a file")
    damaged = next(iter(done_before.values()))["outputs"][0]["path"]
    blob = bytearray((out / damaged).read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (out / damaged).write_bytes(bytes(blob))

    # Resume from a list file naming the same photos (relative, ./-prefixed, absolute):
    # same keys, so the folder run's finished work counts. On Ray this time, started
    # locally by the job itself (ray.init with 2 CPUs, no --address).
    names = sorted(expected)
    lines = [names[0], f"./{names[1]}", str(photos / names[2]), *names[3:]]
    (photos / "list.txt").write_text("# the same photos\n" + "\n".join(lines) + "\n")
    assert chibi(["batch", str(photos / "list.txt"), str(out), "--format", "vrm0",
                  "--engine", "ray", "--workers", "2", "--no-progress"]) == 1  # fmt: skip
    records = check_accounted(out, expected)
    assert (out / damaged).read_bytes() != bytes(blob), "a damaged output must be redone"
    for key, record in done_before.items():  # finished work was kept, not redone
        if record["outputs"][0]["path"] != damaged:
            assert records[key]["finished_at"] == record["finished_at"]


def _blocked_in_send(pid: int, timeout: float = 60.0) -> bool | None:
    """Wait until `pid` is blocked writing to a full socket, read from its wait channel:
    True when seen, False if never seen; None where the kernel does not name wait
    channels (/proc/PID/wchan reads "0"), after waiting long enough for it to be so."""
    deadline = time.monotonic() + timeout
    named = False
    while time.monotonic() < deadline:
        try:
            channel = Path(f"/proc/{pid}/wchan").read_text()
        except OSError:
            return False
        if "send" in channel:
            return True
        named = named or channel not in ("", "0")
        if not named and time.monotonic() > deadline - timeout + 10:
            return None  # 10 s: far longer than converting two photos takes
        time.sleep(0.05)
    return False


@pytest.mark.timeout(300)
def test_local_engine_survives_workers_killed_mid_result_and_at_start(tmp_path: Path):
    """A worker killed halfway through sending a result (a torn message in its pipe; this
    hung concurrent.futures' process pool for good) is replaced and its photos retried;
    a photo whose retry, alone, loses its worker again ends as `worker_crashed`, and
    every other photo converts, each answered exactly once."""
    from server.batch import JobOptions
    from server.batch_local import run_local

    astronaut = skdata.astronaut()
    tasks = []
    for n in range(4):
        path = tmp_path / f"p{n}.jpg"
        path.write_bytes(encode(resized(astronaut, 256 + 64 * n), "JPEG", quality=85))
        tasks.append((f"p{n}", str(path)))
    # one worker, two photos per message: [p0, p1] then [p2, p3]
    results = run_local(tasks, JobOptions(format="glb"), workers=1, chunk=2)
    first = next(results)  # the driver now waits for us: the worker blocks sending [p2, p3]
    assert first["key"] == "p0" and first["ok"], first
    (worker,) = spawned_children(os.getpid())
    assert _blocked_in_send(worker) is not False, "the worker should be stuck sending its results"
    os.kill(worker, signal.SIGKILL)

    def kill_the_next_worker() -> None:  # p2, retried alone, loses its worker while loading
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for pid in spawned_children(os.getpid()):
                if pid != worker:
                    os.kill(pid, signal.SIGKILL)
                    return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_the_next_worker)
    killer.start()
    rest = list(results)
    killer.join()
    outcome = {r["key"]: r["error"]["code"] if r["error"] else None for r in rest}
    assert len(rest) == 3 and outcome == {"p1": None, "p2": "worker_crashed", "p3": None}, outcome
    assert all(len(face["model"]) > 100_000 for r in rest if r["ok"] for face in r["faces"])
    assert not spawned_children(os.getpid()), "the engine left worker processes behind"


@pytest.mark.timeout(300)
def test_ctrl_c_stops_cleanly_then_resume(tmp_path: Path):
    """SIGINT to the driver (Ctrl-C; its workers ignore it): exit code 130, every
    finished photo recorded, no worker left and no temporary file; a rerun finishes."""
    photos, out = tmp_path / "photos", tmp_path / "out"
    astronaut = skdata.astronaut()
    for n in range(10):
        rgb = resized(astronaut if n % 2 else astronaut[:, ::-1].copy(), 256 + 32 * n)
        write(photos, f"p{n:02d}.jpg", encode(rgb, "JPEG", quality=70 + 2 * n))
    command = [sys.executable, "-m", "server.cli", "batch", str(photos), str(out),
               "--format", "glb", "--workers", "2", "--chunk", "1", "--no-progress"]  # fmt: skip
    # As from a terminal: a suite started in the background (`cmd &` in a script) ignores
    # SIGINT, and an ignored signal stays ignored in the children it starts. A handler
    # does not: the driver then starts with Python's own Ctrl-C handling.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = subprocess.Popen(command, cwd=REPO, start_new_session=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    finally:
        signal.signal(signal.SIGINT, previous)
    _wait_lines(out / MANIFEST, 2, process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr.decode()[-2000:]
    assert b"interrupted" in stderr
    assert gone_within(lambda: group_alive(process.pid)), "workers outlived the interrupted driver"
    done = read_jsonl(out / MANIFEST)
    assert 2 <= len(done) < 10
    for record in done.values():
        assert (out / record["outputs"][0]["path"]).is_file()
    assert not list(out.rglob(f"*{TMP_SUFFIX}"))
    assert chibi(["batch", str(photos), str(out), "--format", "glb", "--workers", "2",
                  "--no-progress"]) == 0  # fmt: skip
    assert len(read_jsonl(out / MANIFEST)) == 10


@pytest.mark.timeout(120)
def test_local_engine_reports_workers_that_cannot_load_the_models(tmp_path: Path):
    from server.batch import JobOptions
    from server.batch_local import run_local

    path = tmp_path / "p.jpg"
    path.write_bytes(encode(skdata.astronaut(), "JPEG"))
    with pytest.raises(ChibiError) as caught:
        list(run_local([("p", str(path))], JobOptions(model="no-such-model"), workers=2))
    assert caught.value.code == "not_available" and "no-such-model" in caught.value.message
    assert not spawned_children(os.getpid()), "the engine left worker processes behind"


def test_a_fifo_named_like_a_photo_fails_and_a_rerun_does_not_hang(tmp_path: Path):
    """`mkfifo x.jpg`: the first run records it as a failure; the rerun's resume check
    hashes the inputs it had finished and must not wait on the FIFO for a writer."""
    (tmp_path / "in").mkdir()
    os.mkfifo(tmp_path / "in" / "x.jpg")
    args = ["batch", str(tmp_path / "in"), str(tmp_path / "out"), "--format", "glb",
            "--workers", "1", "--no-progress"]  # fmt: skip
    codes = []
    for _ in range(2):
        run = threading.Thread(target=lambda: codes.append(chibi(args)), daemon=True)
        run.start()
        run.join(timeout=120)
        assert not run.is_alive(), "chibi batch hung on the FIFO"
    assert read_jsonl(tmp_path / "out" / "failures.jsonl").keys() == {"x.jpg"}
    assert len(codes) == 2


def test_links_planted_in_output_redirect_nothing(tmp_path: Path):
    """A link planted in OUTPUT where the workers' log goes is replaced, not written
    through (that emptied the file it pointed to); one where the lock goes is refused."""
    (tmp_path / "in").mkdir()
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (out / ".chibi-batch-workers.log").symlink_to(victim)
    args = ["batch", str(tmp_path / "in"), str(out), "--format", "glb", "--no-progress"]
    chibi(args)
    assert victim.read_text() == "precious\n"
    assert not (out / ".chibi-batch-workers.log").is_symlink()
    (out / ".chibi-batch.lock").unlink()
    (out / ".chibi-batch.lock").symlink_to(tmp_path / "elsewhere.lock")
    with pytest.raises(ChibiError) as error:
        from server.batch import JobOptions, run_batch

        run_batch(str(tmp_path / "in"), str(out), JobOptions(format="glb"), progress=False)
    assert error.value.code == "unsafe_path"
    assert not (tmp_path / "elsewhere.lock").exists()


def test_a_full_disk_while_appending_to_the_ledger_is_one_clear_error(tmp_path: Path):
    """The ledger's append fails as on a full disk (here: past RLIMIT_FSIZE, EFBIG): the
    job stops with io_error on one line, no traceback; a rerun with room finishes it."""
    import resource

    (tmp_path / "in").mkdir()
    (tmp_path / "outside.jpg").write_bytes(encode(skdata.astronaut(), "JPEG"))
    (tmp_path / "in" / "link.jpg").symlink_to(tmp_path / "outside.jpg")  # refused: unsafe_path
    out = tmp_path / "out"
    out.mkdir()
    # records of another job's inputs, kept as they are: the file is exactly this long
    lines = b"".join(
        b'{"input":"other%05d.jpg","code":"no_face","message":"%s"}\n' % (n, b"x" * 200)
        for n in range(2000)
    )
    (out / "failures.jsonl").write_bytes(lines)

    def limit_file_size() -> None:  # room for the ledger's rewrite, not for one line more
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (len(lines) + 16, len(lines) + 16))

    command = [sys.executable, "-m", "server.cli", "batch", str(tmp_path / "in"), str(out),
               "--format", "glb", "--no-progress"]  # fmt: skip
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120,
                         preexec_fn=limit_file_size)  # fmt: skip
    assert run.returncode == 3, run.stderr
    assert "Traceback" not in run.stderr
    assert f"[io_error]: cannot append to {out / 'failures.jsonl'}" in run.stderr
    assert chibi(["batch", str(tmp_path / "in"), str(out), "--format", "glb",
                  "--no-progress"]) == 1  # fmt: skip
    assert read_jsonl(out / "failures.jsonl")["link.jpg"]["code"] == "unsafe_path"
    assert len(read_jsonl(out / "failures.jsonl")) == 2001
