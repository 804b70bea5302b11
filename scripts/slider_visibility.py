"""How visible each slider is in ChibiNet's input: a second probe for issue #4.

For every shape and expression slider it renders `--avatars` random avatars the way
the training set is made (`synth.photo_and_crop`: random pose, light, background,
camera noise and JPEG), once with the slider at 0 and once at 1, under the same
random draw, and compares the two aligned 128 px crops. For reference, it also
compares two renders of the same avatar under two random draws (the nuisance
every training crop carries). It prints, per slider, medians over the avatars:
- the mean change per pixel (largest channel change, 0..255 levels);
- how many of the 16,384 pixels change by more than 24 levels.

A slider error of 0.05 (the goal) is a twentieth of the full range, so a slider
whose whole range changes a few hundred pixels slightly has to be read from a
change of a few pixels, under a nuisance that changes every pixel by ~50 levels.

    .venv/bin/python scripts/slider_visibility.py [--avatars 12] [--seed 7]

About 30 s on 2 cores.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

CHANGED_LEVELS = 24  # a change of more than this many levels counts as a changed pixel


def _crop(params, seed: int) -> np.ndarray:
    from avatar3d.build import build_avatar
    from avatar3d.synth import photo_and_crop

    _, crop = photo_and_crop(build_avatar(params), params, np.random.default_rng(seed))
    return crop.astype(np.int16)


def _change(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    """(mean largest-channel change per pixel, pixels changed by > CHANGED_LEVELS)."""
    diff = np.abs(a - b).max(axis=2)
    return float(diff.mean()), int((diff > CHANGED_LEVELS).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--avatars", type=int, default=12)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

    from avatar3d.params import EXPRESSION_SLIDERS, SHAPE_SLIDERS, AvatarParams
    from avatar3d.synth import sample_params
    from server.process_setup import chibi_process_setup

    chibi_process_setup()  # one BLAS thread, as every chibi process (renders are the same)

    bases = [sample_params(np.random.default_rng([args.seed, i])) for i in range(args.avatars)]
    nuisance = [_change(_crop(p, 2 * i), _crop(p, 2 * i + 1)) for i, p in enumerate(bases)]
    rows = []
    for group, names in (("shape", SHAPE_SLIDERS), ("expression", EXPRESSION_SLIDERS)):
        for name in names:
            changes = []
            for i, base in enumerate(bases):
                ends = []
                for value in (0.0, 1.0):
                    data = base.to_dict()
                    data[group][name] = value
                    ends.append(_crop(AvatarParams.from_dict(data), 1000 + i))
                changes.append(_change(*ends))
            rows.append((f"{group}.{name}", *np.median(np.array(changes), axis=0)))
    print(f"aligned 128 px crops, medians over {args.avatars} random avatars")
    print(f"{'slider 0 -> 1':28}{'mean change':>12}{'pixels > 24':>13}")
    for name, mean, pixels in sorted(rows, key=lambda row: row[1]):
        print(f"{name:28}{mean:12.2f}{pixels:13.0f}")
    mean, pixels = np.median(np.array(nuisance), axis=0)
    print(f"{'nuisance (two random draws)':28}{mean:12.2f}{pixels:13.0f}")


if __name__ == "__main__":
    main()
