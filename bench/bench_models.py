"""Two or more ChibiNet weights side by side, interleaved in one process.

    python -m bench.bench_models NAME[:DIR] NAME[:DIR] ... [--repeat 30]

For each model (shipped weights by name, or `<DIR>/<NAME>.pt` written by `chibi train
--out DIR`): ms a face at batch 1 on one thread, with and without the mirror average
the pipeline uses, and photo -> VRM bytes p50 / p95 beside the FaceMesh pass alone
(the astronaut as a 512 px JPEG). The timed calls alternate between the models (the
CNN's in blocks of 100, the whole path call by call), so a slower or busier machine
slows them alike: compare the ratios, not the figures of two runs.
"""

from __future__ import annotations

import argparse
import io
import os
from collections.abc import Callable

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", metavar="NAME[:DIR]")
    parser.add_argument("--repeat", type=int, default=30, help="photo -> VRM runs a model")
    args = parser.parse_args(argv)

    import torch
    from PIL import Image
    from skimage import data as skdata

    from avatar3d.face import thread_analyzer
    from avatar3d.imageio import decode_image
    from avatar3d.inference import Regressor
    from avatar3d.pipeline import PhotoPipeline
    from avatar3d.regressor import load_pretrained
    from bench.bench_regressor import photo_to_vrm
    from bench.common import median, percentile, time_blocks, time_interleaved
    from server.process_setup import chibi_process_setup

    chibi_process_setup()
    torch.set_num_threads(1)
    buffer = io.BytesIO()
    Image.fromarray(skdata.astronaut()).save(buffer, "JPEG", quality=92)
    photo = buffer.getvalue()
    rgb = decode_image(photo)
    crop = thread_analyzer().analyze(rgb)[0].crop[None]
    models = {
        spec: tuple(spec.split(":", 1)) if ":" in spec else (spec, None) for spec in args.models
    }

    fns: dict[str, Callable[[], object]] = {}
    for spec, (name, folder) in models.items():
        for flip in (False, True):
            regressor = Regressor(load_pretrained(name, folder, "cpu"), "cpu", flip_average=flip)
            fns[f"{spec} {flip}"] = lambda r=regressor: r.predict(crop)
    cnn = time_blocks(fns, repeat=100)  # each warm, as alone (see bench_regressor)
    fns = {"facemesh": lambda: thread_analyzer().analyze(rgb)}
    for spec, (name, folder) in models.items():
        pipeline = PhotoPipeline(name, folder, device="cpu")
        fns[spec] = lambda p=pipeline: photo_to_vrm(p, photo)
    whole = time_interleaved(fns, repeat=args.repeat, warmup=3)
    facemesh = median(whole["facemesh"])
    print(f"FaceMesh pass {facemesh:.1f} ms")
    for spec in models:
        vrm, alone, mirrored = whole[spec], cnn[f"{spec} False"], cnn[f"{spec} True"]
        print(f"{spec}: CNN {median(alone):.3f} ms/face, "
              f"{median(mirrored):.3f} with the mirror average; photo -> VRM p50 "
              f"{median(vrm):.1f} ms p95 {percentile(vrm, 95):.1f} = "
              f"{median(vrm) / facemesh:.2f}x FaceMesh")  # fmt: skip


if __name__ == "__main__":
    main()
