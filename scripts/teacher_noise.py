"""How much the landmark teacher's sliders jitter on the same face: a third probe for #4.

`chibi eval`'s stability goal takes, per field, the largest change over the sample
photos x 6 fixed perturbations, so a field whose noise is a third of the goal fails now
and then by chance. This probe measures the noise itself: each sample photo
(scikit-image's astronaut, matplotlib's Grace Hopper, the White House photos of
`sample_photos`; the cameraman looks too far sideways) goes through the photo path under
`--draws` random perturbations (crops of up to 23 px a side, scale and brightness
0.85-1.15, JPEG quality 60-95, a horizontal flip half of the time, with mirrored fields
swapped back), and it prints each teacher slider's standard deviation (mean over the
photos), noisiest first, and their mean.

    .venv/bin/python scripts/teacher_noise.py [--draws 30] [--seed 0]

About 35 s.
"""

from __future__ import annotations

import argparse
import io
import warnings

import numpy as np


def perturbed(rgb: np.ndarray, rng: np.random.Generator) -> tuple[bytes, bool]:
    """A JPEG of `rgb` (H, W, 3) uint8 randomly cropped, scaled, brightened and maybe
    flipped; and whether it was flipped."""
    from PIL import Image

    height, width = rgb.shape[:2]
    left, top, right, bottom = rng.integers(0, 24, 4)
    crop = rgb[top : height - bottom, left : width - right]
    scale = rng.uniform(0.85, 1.15)
    size = (round(crop.shape[1] * scale), round(crop.shape[0] * scale))
    image = np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.LANCZOS))
    image = np.clip(image.astype(np.float32) * rng.uniform(0.85, 1.15), 0, 255).astype(np.uint8)
    flipped = bool(rng.integers(0, 2))
    if flipped:
        image = np.ascontiguousarray(image[:, ::-1])
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=int(rng.integers(60, 96)))
    return buffer.getvalue(), flipped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from server.process_setup import chibi_process_setup

    chibi_process_setup()
    from avatar3d.errors import ChibiError
    from avatar3d.evaluate_real import read_face, real_photos
    from avatar3d.imageio import decode_image
    from avatar3d.param_arrays import SLIDER_FIELDS
    from avatar3d.pipeline import PhotoPipeline

    pipeline = PhotoPipeline(device="cpu")
    rng = np.random.default_rng(args.seed)
    spreads = []
    for name, data in real_photos():
        rgb = decode_image(data)
        rows = []
        for _ in range(args.draws):
            photo, flipped = perturbed(rgb, rng)
            try:
                reading = read_face(pipeline, photo, flipped)
            except ChibiError:
                continue
            measured = reading.teacher_slider_conf > 0
            rows.append(np.where(measured, reading.teacher_sliders, np.nan))
        if len(rows) < 2:
            print(f"{name}: no face in {args.draws - len(rows)} of {args.draws} draws, left out")
            continue
        print(f"{name}: {len(rows)} of {args.draws} draws read")
        with warnings.catch_warnings():  # fields the teacher never measures are all NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            spreads.append(np.nanstd(np.array(rows), axis=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(np.array(spreads), axis=0)
    ranked = sorted(
        ((n, s) for n, s in zip(SLIDER_FIELDS, mean, strict=True) if np.isfinite(s)),
        key=lambda item: -item[1],
    )
    print(f"{'slider':26}{'sd':>8}")
    for name, spread in ranked:
        print(f"{name:26}{spread:8.4f}")
    print(f"{'mean':26}{np.mean([s for _, s in ranked]):8.4f}")


if __name__ == "__main__":
    main()
