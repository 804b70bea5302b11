"""Batch throughput: photos/s of `chibi batch` with the local engine at 1 and 2 workers
and with Ray on the same cores, against the single-request path (photo -> model file
in process, one at a time), all in one run on the same photos; glb, then VRM 1.0.

The photos are made from a real one (scikit-image's astronaut): random crops,
scales, mirroring, brightness and JPEG quality, in a temporary folder. Being one
person, they keep to a few lip and brow shapes, whose texture cells each worker
caches; photos of many people miss that cache, at up to ~2 ms a photo more.
Rates are wall-clock, start-up included (spawning workers, loading the models in
each, starting Ray): that is what an operator waits for. "first" is the time to the
first finished photo (single-request path: to the end of loading the models and one
warm-up photo, both included in its wall time); "x single" is the ratio of rates;
"after first" is the rate once the first photo is done (start-up left out: what a
run of thousands of photos tends to).

    .venv/bin/python -m bench.bench_batch [--photos 200] [--format glb --format vrm1]
        [--no-thumbnail]   # VRM without its thumbnail, as `chibi batch --no-thumbnail`
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

import numpy as np  # noqa: E402
from PIL import Image, ImageEnhance  # noqa: E402

WEIGHTS_DIR = os.environ.get("CHIBI_WEIGHTS_DIR", "")  # as chibi batch / serve: "" = shipped


def make_photos(folder: Path, count: int, seed: int = 7) -> list[Path]:
    """`count` JPEG variants of the astronaut photo in 10 sub-folders; returns their paths."""
    from skimage import data as skdata

    base = Image.fromarray(skdata.astronaut())
    rng = np.random.default_rng(seed)
    paths = []
    for n in range(count):
        # the face sits around x 130..330, y 20..260 of 512: every crop keeps it whole
        left, top = rng.integers(0, 90), rng.integers(0, 20)
        right, bottom = 512 - rng.integers(0, 90), 512 - rng.integers(0, 180)
        image = base.crop((int(left), int(top), int(right), int(bottom)))
        scale = rng.uniform(0.7, 1.6)
        image = image.resize((int(image.width * scale), int(image.height * scale)))
        if rng.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.8, 1.2))
        path = folder / f"set{n % 10}" / f"photo_{n:04d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=int(rng.integers(60, 96)))
        path.write_bytes(buffer.getvalue())
        paths.append(path)
    return paths


def single_request(
    paths: list[Path], fmt: str, threads: int | None, thumbnail: bool = True
) -> tuple[float, float, int]:
    """(wall s incl. model load and a warm-up photo, s to the warm-up's end, photos
    converted): the path one server request takes, in process, one photo at a time."""
    import torch

    default_threads = torch.get_num_threads()
    if threads:  # the batch workers' setting; torch's default is one thread per core
        torch.set_num_threads(threads)
    start = time.perf_counter()
    from avatar3d.build import build_avatar
    from avatar3d.errors import ChibiError
    from avatar3d.pipeline import PhotoPipeline
    from exporters import export_file

    def convert(path: Path) -> bool:
        try:
            params = pipeline.params(path.read_bytes())[0]
        except ChibiError:
            return False
        avatar = build_avatar(params)
        export_file(avatar, fmt, thumbnail)
        return True

    pipeline = PhotoPipeline(weights_dir=WEIGHTS_DIR or None)
    convert(paths[0])  # warm, like a server worker: caches, EGL context, first-call costs
    warm = time.perf_counter()
    converted = sum(convert(path) for path in paths)
    end = time.perf_counter()
    torch.set_num_threads(default_threads)
    return end - start, end - warm, converted


def batch_run(photos: Path, engine: str, workers: int, fmt: str, thumbnail: bool = True) -> dict:
    """One `chibi batch` run into a fresh OUTPUT; its Summary plus median stage timings."""
    from server.batch import MANIFEST, JobOptions, run_batch

    with tempfile.TemporaryDirectory(prefix="chibi-bench-out-") as out:
        options = JobOptions(fmt, weights_dir=WEIGHTS_DIR, thumbnail=thumbnail)
        summary = run_batch(photos, out, options, engine=engine, workers=workers, progress=False)
        stages: dict[str, list[float]] = {}
        for line in (Path(out) / MANIFEST).read_text().splitlines():
            for stage, ms in json.loads(line)["timings_ms"].items():
                stages.setdefault(stage, []).append(ms)
    return {"summary": summary, "stages": {k: statistics.median(v) for k, v in stages.items()}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument(
        "--format", action="append", choices=("glb", "vrm1", "vrm0"),
        help="repeatable; default: glb, then vrm1 (the CLI's default, with its thumbnail)",
    )  # fmt: skip
    parser.add_argument("--no-thumbnail", dest="thumbnail", action="store_false",
                        help="VRM files without their thumbnail")  # fmt: skip
    args = parser.parse_args(argv)
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="chibi-bench-photos-") as folder:
        paths = make_photos(Path(folder), args.photos)
        for fmt in args.format or ["glb", "vrm1"]:
            bare = " without its thumbnail" if fmt != "glb" and not args.thumbnail else ""
            print(f"batch: {args.photos} photos -> {fmt}{bare}, {cores} cores visible "
                  f"(shared with whatever else runs)")  # fmt: skip
            table(Path(folder), paths, fmt, args.thumbnail)


def table(folder: Path, paths: list[Path], fmt: str, thumbnail: bool = True) -> None:
    """Every path on the same photos, one after the other, and their rates."""
    rows = []
    # as `chibi convert` and the server run it (torch's default threads), then with one
    # torch thread like the batch workers: on 2 busy cores, torch's idle threads spin and
    # slow MediaPipe and the renderer down
    for threads, label in ((None, ""), (1, ", 1 torch thread")):
        wall, warm, converted = single_request(paths, fmt, threads, thumbnail)
        rows.append((f"single request{label}", wall, wall - warm, converted))
    details = {}
    for engine, workers in (("local", 1), ("local", 2), ("ray", 2)):
        result = batch_run(folder, engine, workers, fmt, thumbnail)
        s = result["summary"]
        label = f"{engine}, {workers} worker{'s' if workers > 1 else ''}"
        rows.append((label, s.elapsed_s, s.first_result_s or 0.0, s.converted))
        details[label] = result
    base_rate = rows[0][3] / rows[0][1]
    print(f"{'path':30s} {'wall s':>7s} {'first s':>8s} {'photos/s':>9s} {'x single':>9s}"
          f" {'after first':>12s}")  # fmt: skip
    for label, wall, first, converted in rows:
        steady = (converted - 1) / (wall - first) if wall > first and converted > 1 else 0.0
        rate = converted / wall
        print(f"{label:30s} {wall:7.1f} {first:8.1f} {rate:9.2f} {rate / base_rate:9.2f} "
              f"{steady:12.2f}   ({converted} converted)")  # fmt: skip
    stages = details["local, 2 workers"]["stages"]
    print("median ms per photo and stage (local, 2 workers): "
          + ", ".join(f"{k} {v:.0f}" for k, v in stages.items() if v >= 0.5))  # fmt: skip


if __name__ == "__main__":
    main()
