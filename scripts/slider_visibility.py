"""How visible each slider and colour is in ChibiNet's input: a second probe for issue #4.

For every shape and expression slider it renders `--avatars` random avatars the way
the training set is made (`synth.photo_and_points`: random pose, light, background,
camera noise and JPEG), once with the slider at 0 and once at 1, under the same
random draw, and compares the two aligned 128 px crops. For reference, it also
compares two renders of the same avatar under two random draws (the nuisance
every training crop carries). It prints, per slider, medians over the avatars:
- the mean change per pixel (largest channel change, 0..255 levels);
- how many of the 16,384 pixels change by more than 24 levels.

A slider error of 0.05 (the goal) is a twentieth of the full range, so a slider
whose whole range changes a few hundred pixels slightly has to be read from a
change of a few pixels, under a nuisance that changes every pixel by ~50 levels.

For every colour it does the same with the colour black and white, and also prints
how many pixels' worth of that colour the crop shows: the summed change over 255
(a pixel wholly of the colour, fully lit, counts 1). A colour shown on a handful of
pixels, partly mixed with the skin, cannot be read to 5 dE2000 whatever the network.

    .venv/bin/python scripts/slider_visibility.py [--avatars 12] [--seed 7]
        [--align-weights 1,1,0,0,0] [--zoom 3 --zoom-centre 64,63 --render-size 1024]

`--zoom` asks whether a second, magnified crop of the mouth (issue #4's third option)
would show what the whole crop does not: it magnifies the aligned crop around
`--zoom-centre` (crop pixels; 64,63 is where the mouth sits when aligned on the eyes
alone), sampled from a render of `--render-size` pixels instead of the training's 256.
Colours' pixels' worth then stays in units of the whole crop's pixels.

About 40 s on 2 cores (6 min at --render-size 1024).
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np

CHANGED_LEVELS = 24  # a change of more than this many levels counts as a changed pixel
BLACK_WHITE = ("#000000", "#ffffff")


def _crop(
    params,
    seed: int,
    align_weights: np.ndarray,
    render_size: int,
    zoom: float = 1.0,
    centre: tuple[float, float] = (64.0, 64.0),
) -> np.ndarray:
    """The aligned 128 px crop of one training-like render (int16, for differences),
    magnified `zoom` times about crop point `centre`."""
    from avatar3d.build import build_avatar
    from avatar3d.landmarks import CROP_SIZE, crop_transform, warp_image
    from avatar3d.synth import photo_and_points

    rng = np.random.default_rng(seed)
    photo, points = photo_and_points(build_avatar(params), params, rng, render_size)
    transform = crop_transform(points, align_weights, zoom, centre)
    return warp_image(photo, transform, CROP_SIZE).astype(np.int16)


def _change(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    """(mean largest-channel change per pixel, pixels changed by > CHANGED_LEVELS)."""
    diff = np.abs(a - b).max(axis=2)
    return float(diff.mean()), int((diff > CHANGED_LEVELS).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--avatars", type=int, default=12)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--align-weights", default=None,
        help="five weights of the alignment points (eyes, nose tip, mouth corners) instead of "
        "landmarks.ALIGN_WEIGHTS, e.g. 1,1,0,0,0 aligns on the eyes alone",
    )  # fmt: skip
    parser.add_argument("--zoom", type=float, default=1.0, help="magnify the crop this much")
    parser.add_argument("--zoom-centre", default="64,63", help="crop pixel to magnify about")
    parser.add_argument("--render-size", type=int, default=None, help="default: the training's")
    args = parser.parse_args()

    from avatar3d.landmarks import ALIGN_WEIGHTS
    from avatar3d.params import COLOR_FIELDS, EXPRESSION_SLIDERS, SHAPE_SLIDERS, AvatarParams
    from avatar3d.synth import RENDER_SIZE, sample_params
    from server.process_setup import chibi_process_setup

    chibi_process_setup()  # one BLAS thread, as every chibi process (renders are the same)
    weights = ALIGN_WEIGHTS
    if args.align_weights:
        weights = np.array([float(w) for w in args.align_weights.split(",")])

    centre = tuple(float(c) for c in args.zoom_centre.split(","))
    render_size = args.render_size or RENDER_SIZE

    def crop(params, seed: int) -> np.ndarray:
        return _crop(params, seed, weights, render_size, args.zoom, centre)

    bases = [sample_params(np.random.default_rng([args.seed, i])) for i in range(args.avatars)]
    nuisance = [_change(crop(p, 2 * i), crop(p, 2 * i + 1)) for i, p in enumerate(bases)]
    rows = []
    for group, names in (("shape", SHAPE_SLIDERS), ("expression", EXPRESSION_SLIDERS)):
        for name in names:
            changes = []
            for i, base in enumerate(bases):
                ends = []
                for value in (0.0, 1.0):
                    data = base.to_dict()
                    data[group][name] = value
                    ends.append(crop(AvatarParams.from_dict(data), 1000 + i))
                changes.append(_change(*ends))
            rows.append((f"{group}.{name}", *np.median(np.array(changes), axis=0)))
    print(f"128 px crops aligned with weights {weights.tolist()}", end="")
    if args.zoom != 1.0:
        print(f", magnified {args.zoom:g}x about {list(centre)}", end="")
    print(f", from {render_size} px renders", end="")
    print(f", medians over {args.avatars} random avatars")
    print(f"{'slider 0 -> 1':28}{'mean change':>12}{'pixels > 24':>13}")
    for name, mean, pixels in sorted(rows, key=lambda row: row[1]):
        print(f"{name:28}{mean:12.2f}{pixels:13.0f}")
    mean, pixels = np.median(np.array(nuisance), axis=0)
    print(f"{'nuisance (two random draws)':28}{mean:12.2f}{pixels:13.0f}")
    print(f"\n{'colour black -> white':28}{'mean change':>12}{'pixels > 24':>13}", end="")
    print(f"{'pixels of it':>14}")
    for name in COLOR_FIELDS:
        changes = []
        for i, base in enumerate(bases):
            black, white = (crop(replace(base, **{name: c}), 1000 + i) for c in BLACK_WHITE)
            mean, pixels = _change(black, white)
            changes.append((mean, pixels, mean * black[..., 0].size / 255.0 / args.zoom**2))
        mean, pixels, worth = np.median(np.array(changes), axis=0)
        print(f"{name:28}{mean:12.2f}{pixels:13.0f}{worth:14.0f}")


if __name__ == "__main__":
    main()
