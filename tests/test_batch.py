"""`chibi batch`: planning and path safety, the ledger, both engines on real photos
(identical outputs), and SIGKILL + resume through the real command line.

Real photos: scikit-image's astronaut, re-encoded at several sizes, crops, JPEG
qualities and mirrored; skimage's coffee cup is a real photo with no face.
The Ray engine joins a one-node Ray cluster (2 CPUs) started for the module with
`ray start --head`, as `--address` would on a real cluster.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from glb import parse_glb
from PIL import Image
from processes import gone_within, group_alive, spawned_children
from skimage import data as skdata
from validators import assert_valid_file, gltf_validate_many

from avatar3d.errors import ChibiError
from server.batch import FAILURES, MANIFEST, TMP_SUFFIX, read_jsonl
from server.batch_paths import _map_outputs, output_file, plan_inputs, sanitize_name
from server.cli import main as chibi

REPO = Path(__file__).resolve().parents[1]
LEDGER_FILES = {MANIFEST, FAILURES, ".chibi-batch.lock", ".chibi-batch-workers.log"}


def _encode(rgb: np.ndarray, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _resized(rgb: np.ndarray, side: int) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).resize((side, side), Image.Resampling.LANCZOS))


def _sideways_heic(rgb: np.ndarray) -> bytes:
    """`rgb` as a phone stores it: rotated, with the EXIF tag and HEIF's 'irot' box that
    turn it upright."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return _encode(np.rot90(rgb).copy(), "HEIF", quality=85, exif=exif.tobytes())


def _write(root: Path, rel: str, data: bytes) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_bytes(data)


def make_photos(root: Path) -> dict[str, str | None]:
    """Real photos and broken files under `root`; input key -> expected failure code
    (None: converts)."""
    astronaut = skdata.astronaut()
    jpeg = _encode(astronaut, "JPEG", quality=90)
    files = {
        "astronaut.jpg": (jpeg, None),
        # the same name in two folders: mirrored, not merged
        "a/photo.jpg": (_encode(_resized(astronaut, 384), "JPEG", quality=75), None),
        "b/photo.jpg": (_encode(astronaut[:, ::-1].copy(), "JPEG", quality=60), None),
        # one stem, two extensions: both kept (same_jpg.vrm, same_png.vrm)
        "c/same.jpg": (_encode(astronaut[20:340, 60:380].copy(), "JPEG", quality=95), None),
        "c/same.png": (_encode(_resized(astronaut, 320), "PNG"), None),
        "odd: näme?.webp": (_encode(astronaut, "WEBP", quality=80), None),
        # an iPhone's: HEIC, upper-case name, stored sideways with its rotation
        "phone/IMG_0001.HEIC": (_sideways_heic(_resized(astronaut, 384)), None),
        # a Latin-1 file name, not valid UTF-8: keys round-trip, the output name is sanitised
        os.fsdecode(b"caf\xe9.jpg"): (_encode(_resized(astronaut, 448), "JPEG", quality=85), None),
        # two faces: with --all-faces, pair.vrm and pair~1.vrm
        "pair.jpg": (_encode(np.concatenate([astronaut, astronaut[:, ::-1]], 1), "JPEG"), None),
        "broken/truncated.jpg": (jpeg[: len(jpeg) // 3], "invalid_image"),
        "broken/not_an_image.jpg": (b"this is a text file, not a photo\n" * 20, "invalid_image"),
        "broken/coffee.jpg": (_encode(skdata.coffee(), "JPEG", quality=90), "no_face"),
    }
    for rel, (blob, _) in files.items():
        _write(root, rel, blob)
    _write(root, "notes.txt", b"not listed: not an image extension")
    _write(root, ".hidden.jpg", jpeg)  # hidden names are skipped
    return {rel: code for rel, (_, code) in files.items()}


def tree(root: Path) -> dict[str, bytes]:
    """Every file under root except the ledger: relative path -> bytes."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in LEDGER_FILES
    }


def stable(records: dict[str, dict]) -> dict[str, dict]:
    """Ledger records without the fields that differ run to run (timings, clock)."""
    return {
        key: {k: v for k, v in r.items() if k not in ("timings_ms", "finished_at")}
        for key, r in records.items()
    }


def check_accounted(output: Path, expected: dict[str, str | None]) -> dict[str, dict]:
    """Every input in exactly one ledger line; outputs listed, on disk, checksummed, valid."""
    lines = {
        name: [json.loads(line) for line in (output / name).read_text().splitlines()]
        for name in (MANIFEST, FAILURES)
    }
    keys = [r["input"] for r in lines[MANIFEST]] + [r["input"] for r in lines[FAILURES]]
    assert sorted(keys) == sorted(expected), "each input exactly once in the ledger"
    assert {r["input"]: r["code"] for r in lines[FAILURES]} == {
        k: code for k, code in expected.items() if code is not None
    }
    assert not [p for p in output.rglob(f"*{TMP_SUFFIX}")], "temporary files left"
    files = {}
    for record in lines[MANIFEST]:
        for entry in record["outputs"]:
            blob = (output / entry["path"]).read_bytes()
            assert entry["sha256"] == hashlib.sha256(blob).hexdigest()
            assert set(entry["params"]) >= {"shape", "skin_color", "hair_style"}
            files[entry["path"]] = blob
    reports = gltf_validate_many(files)
    for name, blob in files.items():
        assert_valid_file(blob, name, report=reports[name])
    return {r["input"]: r for r in lines[MANIFEST]}


# -- planning and path safety (no models) --------------------------------------------------


def test_sanitize_name():
    assert sanitize_name("photo 01.jpg") == "photo 01.jpg"
    assert sanitize_name("näme?*:|<>.png") == "näme______.png"
    assert sanitize_name("..") == "_"
    assert sanitize_name(".bashrc") == "bashrc"
    assert sanitize_name("a/b\\c\x00d~1") == "a_b_c_d_1"  # '~' marks extra faces only
    assert sanitize_name("CON.jpg") == "_CON.jpg"
    assert len(sanitize_name("é" * 400).encode()) <= 150


def test_output_names_never_collide():
    keys = ["x/same.jpg", "x/same.png", "x/SAME.webp", "x/a:b.jpg", "x/a_b.jpg", "y/same.jpg"]
    outputs = _map_outputs(keys, ".vrm")
    assert outputs == [
        "x/same_jpg.vrm", "x/same_png.vrm", "x/SAME_webp.vrm",
        "x/a_b_jpg.vrm", "x/a_b_jpg_2.vrm", "y/same.vrm",
    ]  # fmt: skip
    assert len({o.lower() for o in outputs}) == len(outputs)


def test_list_file_traversal_refused(tmp_path: Path):
    """List entries that would read outside the list's base are refused, each as one
    unsafe_path failure; nothing is read or written outside OUTPUT."""
    base, outside = tmp_path / "base", tmp_path / "outside"
    (base / "sub").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(b"x")
    (base / "link.jpg").symlink_to(outside / "secret.jpg")
    (base / "sub" / "escape").symlink_to(outside, target_is_directory=True)
    entries = [
        "../outside/secret.jpg",
        "sub/../../outside/secret.jpg",
        str(outside / "secret.jpg"),
        "/etc/hosts",
        "link.jpg",
        "sub/escape/secret.jpg",
    ]
    listing = base / "list.txt"
    listing.write_text("# photos to convert\n\n" + "\n".join(entries) + "\n../outside/secret.jpg\n")
    items = plan_inputs(listing, tmp_path / "out", "vrm1")
    assert [i.key for i in items] == entries  # the repeated line is one input
    assert all(i.refused for i in items)
    assert "'..'" in items[0].refused and "outside the list's base" in items[2].refused
    assert "symbolic link" in items[4].refused and "symbolic link" in items[5].refused

    out = tmp_path / "out"
    assert chibi(["batch", str(listing), str(out), "--no-progress"]) == 1
    rows = read_jsonl(out / FAILURES)
    assert sorted(rows) == sorted(entries)
    assert {r["code"] for r in rows.values()} == {"unsafe_path"}
    assert tree(out) == {} and read_jsonl(out / MANIFEST) == {}
    assert sorted(p.name for p in outside.iterdir()) == ["secret.jpg"]
    # a rerun keeps exactly one row per refused entry
    assert chibi(["batch", str(listing), str(out), "--no-progress"]) == 1
    assert len((out / FAILURES).read_text().splitlines()) == len(entries)


def test_list_file_paths_inside_base(tmp_path: Path):
    (tmp_path / "p" / "q").mkdir(parents=True)
    listing = tmp_path / "list.txt"
    listing.write_text(f"p/q/a.jpg\n./p/q/a.jpg\n{tmp_path / 'p' / 'b.png'}\nout/x.png\n")
    items = plan_inputs(listing, tmp_path / "out", "glb")
    assert [(i.key, i.output, i.refused) for i in items] == [
        ("p/q/a.jpg", "p/q/a.glb", None), ("p/b.png", "p/b.glb", None),
        ("out/x.png", "", "inside OUTPUT, where the job writes"),
    ]  # fmt: skip


def test_folder_symlink_out_of_input_refused_and_output_bounds(tmp_path: Path):
    photos, elsewhere = tmp_path / "in", tmp_path / "elsewhere"
    photos.mkdir()
    elsewhere.mkdir()
    (elsewhere / "x.jpg").write_bytes(b"x")
    (photos / "inside.jpg").write_bytes(b"x")
    (photos / "alias.jpg").symlink_to(photos / "inside.jpg")  # stays inside: fine
    (photos / "leak.jpg").symlink_to(elsewhere / "x.jpg")
    items = {i.key: i for i in plan_inputs(photos, tmp_path / "out", "vrm1")}
    assert items["alias.jpg"].refused is None and items["inside.jpg"].refused is None
    assert "outside INPUT" in items["leak.jpg"].refused
    with pytest.raises(ChibiError) as info:
        plan_inputs(photos, photos, "vrm1")
    assert info.value.code == "invalid_output"
    # a symbolic link planted inside OUTPUT cannot redirect a write outside it
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(ChibiError) as info:
        output_file(out, "sub/new/x.vrm")
    assert info.value.code == "unsafe_path"
    assert sorted(p.name for p in elsewhere.iterdir()) == ["x.jpg"]


# -- both engines on real photos -------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_address(tmp_path_factory) -> str:
    """A real one-node Ray cluster (2 CPUs) started the way an operator would; the job
    joins it with --address. Stopped through its own process group only."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path_factory.mktemp("ray") / "ray-start.log"
    command = [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block",
               f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
               "--include-dashboard=false", "--disable-usage-stats"]  # fmt: skip
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while b"Ray runtime started" not in log.read_bytes():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
            time.sleep(1)


@pytest.mark.timeout(420)
def test_local_and_ray_engines_write_identical_outputs(tmp_path: Path, ray_address: str):
    """The same photos through the local engine (2 workers) and through Ray Data on a Ray
    cluster joined by --address (one actor per cluster CPU): byte-identical files."""
    photos = tmp_path / "photos"
    expected = make_photos(photos)
    outputs = {}
    for engine, options in (("local", ["--workers", "2"]), ("ray", ["--address", ray_address])):
        out = tmp_path / f"out-{engine}"
        argv = ["batch", str(photos), str(out), "--engine", engine, *options,
                "--preview", "--all-faces", "--no-progress"]  # fmt: skip
        assert chibi(argv) == 1  # 1: some inputs failed (listed in failures.jsonl)
        outputs[engine] = (tree(out), check_accounted(out, expected), read_jsonl(out / FAILURES))
    local, ray = outputs["local"], outputs["ray"]
    assert sorted(local[0]) == [
        "a/photo.preview.png", "a/photo.vrm", "astronaut.preview.png", "astronaut.vrm",
        "b/photo.preview.png", "b/photo.vrm", "c/same_jpg.preview.png", "c/same_jpg.vrm",
        "c/same_png.preview.png", "c/same_png.vrm", "caf_.preview.png", "caf_.vrm",
        "odd_ näme_.preview.png", "odd_ näme_.vrm",
        "pair.preview.png", "pair.vrm", "pair~1.preview.png", "pair~1.vrm",
        "phone/IMG_0001.preview.png", "phone/IMG_0001.vrm",
    ]  # fmt: skip
    assert [o["path"] for o in local[1]["pair.jpg"]["outputs"]] == ["pair.vrm", "pair~1.vrm"]
    assert local[0].keys() == ray[0].keys()
    different = [name for name in local[0] if local[0][name] != ray[0][name]]
    assert not different, f"engines wrote different bytes: {different}"
    assert stable(local[1]) == stable(ray[1]) and stable(local[2]) == stable(ray[2])
    # the mirrored photo gives a different avatar input, the same person
    assert local[1]["b/photo.jpg"]["input_sha256"] != local[1]["astronaut.jpg"]["input_sha256"]
    # a rerun finds everything done and converts nothing
    before = (tmp_path / "out-local" / MANIFEST).read_bytes()
    assert chibi(["batch", str(photos), str(tmp_path / "out-local"), "--preview",
                  "--all-faces", "--no-progress"]) == 1  # fmt: skip
    assert (tmp_path / "out-local" / MANIFEST).read_bytes() == before


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
        rgb = _resized(astronaut if n % 2 else astronaut[:, ::-1].copy(), side)
        _write(photos, f"set{n % 3}/p{n:02d}.jpg", _encode(rgb, "JPEG", quality=60 + 3 * n))
        expected[f"set{n % 3}/p{n:02d}.jpg"] = None
    _write(photos, "set0/broken.jpg", b"\xff\xd8\xff" + b"\0" * 100)
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
        path.write_bytes(_encode(_resized(astronaut, 256 + 64 * n), "JPEG", quality=85))
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
        rgb = _resized(astronaut if n % 2 else astronaut[:, ::-1].copy(), 256 + 32 * n)
        _write(photos, f"p{n:02d}.jpg", _encode(rgb, "JPEG", quality=70 + 2 * n))
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
    path.write_bytes(_encode(skdata.astronaut(), "JPEG"))
    with pytest.raises(ChibiError) as caught:
        list(run_local([("p", str(path))], JobOptions(model="no-such-model"), workers=2))
    assert caught.value.code == "not_available" and "no-such-model" in caught.value.message
    assert not spawned_children(os.getpid()), "the engine left worker processes behind"


@pytest.mark.timeout(300)
def test_no_thumbnail_is_its_own_job_and_older_ledgers_count_as_the_default(tmp_path: Path):
    """`--no-thumbnail` writes VRMs without one; the default is another job (every photo is
    converted again); a ledger written before the option existed counts as the default's."""
    photos, out = tmp_path / "photos", tmp_path / "out"
    for n in range(2):
        rgb = _resized(skdata.astronaut(), 320 + 64 * n)
        _write(photos, f"p{n}.jpg", _encode(rgb, "JPEG", quality=90))
    command = ["batch", str(photos), str(out), "--workers", "1", "--no-progress"]

    def thumbnails() -> list[bool]:
        metas = [parse_glb((out / f"p{n}.vrm").read_bytes())[0] for n in range(2)]
        return ["thumbnailImage" in g["extensions"]["VRMC_vrm"]["meta"] for g in metas]

    assert chibi([*command, "--no-thumbnail"]) == 0
    assert thumbnails() == [False, False]
    without = read_jsonl(out / MANIFEST)
    assert chibi(command) == 0
    assert thumbnails() == [True, True]
    with_thumbnails = read_jsonl(out / MANIFEST)
    assert all(with_thumbnails[k]["finished_at"] != r["finished_at"] for k, r in without.items())
    records = [json.loads(line) for line in (out / MANIFEST).read_text().splitlines()]
    for record in records:
        del record["options"]["thumbnail"]
    (out / MANIFEST).write_text("".join(json.dumps(r) + "\n" for r in records))
    assert chibi(command) == 0
    kept = read_jsonl(out / MANIFEST)
    assert all(kept[k]["finished_at"] == r["finished_at"] for k, r in with_thumbnails.items())


def test_the_driver_pins_the_model_without_importing_torch(tmp_path):
    """The driver only names the weights (name + sha256); torch is the workers' to import.
    Importing it in the driver cost ~0.8 s of CPU before the workers even started."""
    script = (
        "import sys\n"
        "from server.batch import JobOptions, pin_model, plan_inputs\n"
        f"plan_inputs({str(tmp_path)!r}, {str(tmp_path / 'out')!r}, 'vrm1', None)\n"
        "from avatar3d.model_files import DEFAULT_MODEL\n"
        "options = pin_model(JobOptions())\n"
        "assert options.model_id.startswith(DEFAULT_MODEL + ':'), options.model_id\n"
        "heavy = [m for m in ('torch', 'mediapipe', 'pyrender') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=Path(__file__).parents[1])


def test_a_worker_runs_every_native_thread_pool_on_one_thread():
    """Workers share the cores: each BLAS / OpenMP pool has one thread, including the
    ones loaded after the worker's setup (scipy's own OpenBLAS came with two)."""
    script = (
        "from server.batch import JobOptions\n"
        "from server.batch_local import Converter\n"
        "from threadpoolctl import threadpool_info\n"
        "converter = Converter(JobOptions('glb'))\n"
        "converter.convert_one('a', 'missing.jpg')\n"
        "import scipy.linalg\n"
        "pools = {p['filepath']: p['num_threads'] for p in threadpool_info()}\n"
        "assert any('scipy' in path for path in pools), pools\n"
        "assert set(pools.values()) == {1}, pools\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=REPO)
