"""`chibi batch`: planning and path safety, both engines on real photos (identical
outputs), the thumbnail option, and what the driver and its workers load. Killed workers,
a killed driver, Ctrl-C and resuming: `test_batch_recovery.py`.

The Ray engine joins a one-node Ray cluster (2 CPUs) started for the module with
`ray start --head`, as `--address` would on a real cluster.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from batch_photos import check_accounted, encode, make_photos, resized, stable, tree, write
from glb import parse_glb
from skimage import data as skdata

from avatar3d.errors import ChibiError
from server.batch import FAILURES, MANIFEST, read_jsonl
from server.batch_paths import _map_outputs, output_file, plan_inputs, sanitize_name
from server.cli import main as chibi

REPO = Path(__file__).resolve().parents[1]


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


def test_an_output_file_never_takes_an_input_folders_name(tmp_path: Path):
    """a.jpg beside a folder a.vrm/ (b.jpg in it): a.jpg's file must not be the folder
    a.vrm's results go in, whichever comes first, in any case."""
    (tmp_path / "in" / "A.vrm").mkdir(parents=True)
    for name in ("a.jpg", "A.vrm/b.jpg"):
        (tmp_path / "in" / name).write_bytes(b"x")
    items = plan_inputs(str(tmp_path / "in"), str(tmp_path / "out"), "vrm1")
    assert {item.key: item.output for item in items} == {
        "a.jpg": "a_jpg.vrm", "A.vrm/b.jpg": "A.vrm/b.vrm"
    }  # fmt: skip


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


@pytest.mark.timeout(300)
def test_no_thumbnail_is_its_own_job_and_older_ledgers_count_as_the_default(tmp_path: Path):
    """`--no-thumbnail` writes VRMs without one; the default is another job (every photo is
    converted again); a ledger written before the option existed counts as the default's."""
    photos, out = tmp_path / "photos", tmp_path / "out"
    for n in range(2):
        rgb = resized(skdata.astronaut(), 320 + 64 * n)
        write(photos, f"p{n}.jpg", encode(rgb, "JPEG", quality=90))
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
