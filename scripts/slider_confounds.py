"""Which sliders another slider can stand in for, in the crop: a fourth probe for issue #4.

`scripts/slider_errors.py` finds pairs of sliders whose held-out errors go together
(brow_raise with brow_height, chin_length with face_length, ...). This one asks whether
the crop can tell such a pair apart at all. For each pair (A, B) and each of
`--avatars` random avatars, under one random draw of pose, light, background and camera:
- it moves A by `--step` and measures how much the aligned 128 px crop changes (mean
  largest-channel change per pixel, 0..255 levels, as `slider_visibility.py`);
- it then searches B over a grid for the value that brings the crop back closest to
  the unmoved one, and measures what change is left.

A pair whose leftover is a small share of A's own change is a confound: the crop shows
about the same face for (A + step, B + best offset) as for (A, B), so no network can
split the error between them, and each slider's error then carries the other's share.
The best offset over the step is the exchange rate: how much of B one unit of A looks
like (negative: B moves the other way).

    .venv/bin/python scripts/slider_confounds.py [--avatars 12] [--step 0.2] [--seed 11]
        [--pairs shape.brow_height:expression.brow_raise,...]

About 2 min on 2 cores for the default pairs (four, and one unrelated for reference).
"""

from __future__ import annotations

import argparse

import numpy as np

# the pairs whose held-out errors go together most (`scripts/slider_errors.py`, session 23)
DEFAULT_PAIRS = (
    ("expression.brow_raise", "shape.brow_height"),
    ("shape.chin_length", "shape.face_length"),
    ("shape.face_length", "shape.head_size"),
    ("shape.eye_spacing", "shape.eye_size"),
    # two unrelated sliders, for reference: what "no confound" looks like
    ("shape.eye_size", "shape.jaw_width"),
)
OFFSETS = np.linspace(-0.5, 0.5, 21)  # B's offsets tried, in slider units


def _with(params, moves: dict[str, float]):
    """`params` with each dotted slider name moved by its amount (clipped to 0..1)."""
    from avatar3d.params import AvatarParams

    data = params.to_dict()
    for name, amount in moves.items():
        group, field = name.split(".")
        data[group][field] = float(np.clip(data[group][field] + amount, 0.0, 1.0))
    return AvatarParams.from_dict(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--avatars", type=int, default=12)
    parser.add_argument("--step", type=float, default=0.2, help="how far A moves (slider units)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--pairs", default=None, help="A:B,A:B (dotted slider names)")
    args = parser.parse_args()

    from slider_visibility import _change, _crop

    from avatar3d.landmarks import ALIGN_WEIGHTS
    from avatar3d.synth import RENDER_SIZE, sample_params
    from server.process_setup import chibi_process_setup

    chibi_process_setup()
    pairs = DEFAULT_PAIRS
    if args.pairs:
        pairs = tuple(tuple(pair.split(":")) for pair in args.pairs.split(","))

    def crop(params, seed: int) -> np.ndarray:
        return _crop(params, seed, ALIGN_WEIGHTS, RENDER_SIZE)

    rng = np.random.default_rng(args.seed)
    print(f"A moved by {args.step:+.2f}; B searched over {OFFSETS[0]:+.2f}..{OFFSETS[-1]:+.2f};")
    print(f"medians over {args.avatars} random avatars (A and B kept 0.3..0.7 before the move)")
    print(f"{'A':24}{'B':24}{'A alone':>9}{'with B':>8}{'left':>7}{'B per A':>9}")
    for a, b in pairs:
        rows = []
        for i in range(args.avatars):
            base = sample_params(np.random.default_rng([args.seed, i]))
            centre = {a: 0.0, b: 0.0}
            for name in (a, b):  # room to move both ways
                group, field = name.split(".")
                centre[name] = rng.uniform(0.3, 0.7) - base.to_dict()[group][field]
            base = _with(base, centre)
            seed = 5000 + i
            reference = crop(base, seed)
            alone = _change(crop(_with(base, {a: args.step}), seed), reference)[0]
            left = [
                _change(crop(_with(base, {a: args.step, b: offset}), seed), reference)[0]
                for offset in OFFSETS
            ]
            best = int(np.argmin(left))
            rows.append((alone, left[best], left[best] / alone, OFFSETS[best] / args.step))
        alone, left, share, rate = np.median(np.array(rows), axis=0)
        print(f"{a:24}{b:24}{alone:9.2f}{left:8.2f}{share:7.0%}{rate:+9.2f}")


if __name__ == "__main__":
    main()
