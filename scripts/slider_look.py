"""How far the CNN's slider errors show on the avatar: a fifth probe for issue #4.

The goal counts every slider alike (mean absolute error <= 0.05 each), but a slider
the avatar hardly shows (the mouth's, the nose's) costs a user nothing, while one that
reshapes the head is seen at once. This probe asks the avatar itself. For each of
`--faces` held-out faces (`chibi eval`'s set, from its cache) it renders, from the
sheet's frontal studio view (`avatar3d.eval_sheet.head_picture`, expressions posed):
- the avatar of the true params;
- the same with the CNN's sliders (true colours, hair style and glasses, so only the
  slider errors show);
- the same with every slider off by exactly the goal, 0.05, in a random direction;
- the same with the default sliders (what a CNN that reads nothing would give);
and prints the mean change per pixel (0..255 levels, mean over channels) of each
against the true avatar, with the median and 90th percentile over the faces. Then, for
`--range-faces` of them, how much each slider alone changes the picture over its whole
range (0 -> 1, the others as they are): the weight each slider's error has on the look.

    .venv/bin/python scripts/slider_look.py [--faces 300] [--seed 5] [--range-faces 4]

About 2 min for 300 faces on 2 cores with the held-out renders cached.
"""

from __future__ import annotations

import argparse

import numpy as np

VARIANTS = ("the CNN's sliders", "every slider off by 0.05", "the default sliders")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces", type=int, default=300)
    parser.add_argument("--seed", type=int, default=5, help="draws the goal's directions")
    parser.add_argument("--model", default="default")
    parser.add_argument("--range-faces", type=int, default=4)
    args = parser.parse_args()

    from avatar3d.eval_sheet import head_picture, heldout_params
    from avatar3d.evaluate import SLIDER_GOAL, heldout_spec
    from avatar3d.fusion import DEFAULT_SLIDERS
    from avatar3d.param_arrays import SLIDER_FIELDS
    from avatar3d.pipeline import PhotoPipeline
    from avatar3d.synth import load_or_render
    from avatar3d.training import predict_arrays
    from server.process_setup import chibi_process_setup

    chibi_process_setup()
    arrays = load_or_render(heldout_spec(), log=print)
    faces = min(args.faces, len(arrays["sliders"]))
    forward = PhotoPipeline(args.model, device="cpu").regressor.forward
    predicted = predict_arrays(forward, arrays["crops"][:faces]).sliders
    rng = np.random.default_rng(args.seed)

    def picture(sliders: np.ndarray, i: int) -> np.ndarray:
        """Held-out face i's avatar with `sliders` (its own colours and classes)."""
        return head_picture(heldout_params(arrays, i, sliders)).astype(np.float32)

    changes = np.zeros((faces, len(VARIANTS)))
    for i in range(faces):
        truth = arrays["sliders"][i]
        off_by_goal = np.clip(truth + SLIDER_GOAL * rng.choice([-1.0, 1.0], truth.shape), 0, 1)
        reference = picture(truth, i)
        for k, sliders in enumerate((predicted[i], off_by_goal, DEFAULT_SLIDERS)):
            changes[i, k] = np.abs(picture(sliders, i) - reference).mean()
    print(f"change of the true avatar's studio picture, levels a pixel, {faces} held-out faces")
    print(f"{'sliders':28}{'mean':>8}{'median':>8}{'p90':>8}")
    for k, name in enumerate(VARIANTS):
        column = changes[:, k]
        print(f"{name:28}{column.mean():8.2f}{np.median(column):8.2f}"
              f"{np.percentile(column, 90):8.2f}")  # fmt: skip
    share = np.mean(changes[:, 0] <= changes[:, 1])
    print(f"faces where the CNN's sliders change the picture no more than the goal's: {share:.0%}")

    ranges = np.zeros((min(args.range_faces, faces), len(SLIDER_FIELDS)))
    for i in range(len(ranges)):
        for j in range(len(SLIDER_FIELDS)):
            ends = []
            for value in (0.0, 1.0):
                sliders = arrays["sliders"][i].copy()
                sliders[j] = value
                ends.append(picture(sliders, i))
            ranges[i, j] = np.abs(ends[1] - ends[0]).mean()
    print(f"\none slider 0 -> 1, levels a pixel, median of {len(ranges)} faces")
    for j in np.argsort(np.median(ranges, axis=0)):
        print(f"{SLIDER_FIELDS[j]:28}{np.median(ranges[:, j]):8.2f}")


if __name__ == "__main__":
    main()
