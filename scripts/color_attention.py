"""Where ChibiNet's colours look: a picture of the colour pool's softmax weights.

For a model with `color_pool` (the shipped `chibinet-mcer`), each colour averages the
crop's pixels and first-stage features over a softmax of the 64x64 positions of its
first stage (`ChibiNet.color_attention`). This script draws, for a few random
synthetic renders (made like the training set, `synth.photo_and_crop`) and the sample
photos `chibi eval` uses, the aligned crop and then one panel per colour (skin,
hair, iris, lips, brows) with the weights in yellow over the dimmed crop.

    .venv/bin/python scripts/color_attention.py -o attention.png [--model NAME]
        [--weights-dir DIR] [--renders 4] [--seed 3]

About 10 s on 2 cores. The photos stay in memory; only the picture is written.
"""

from __future__ import annotations

import argparse

import numpy as np

PANEL = 128  # pixels per panel (the crop's own size)


def _render_crops(count: int, seed: int) -> list[np.ndarray]:
    from avatar3d.build import build_avatar
    from avatar3d.synth import photo_and_crop, sample_params

    rng = np.random.default_rng(seed)
    crops = []
    for _ in range(count):
        params = sample_params(rng)
        crops.append(photo_and_crop(build_avatar(params), params, rng)[1])
    return crops


def _photo_crops() -> list[np.ndarray]:
    from avatar3d.errors import ChibiError
    from avatar3d.evaluate_real import real_photos
    from avatar3d.face import thread_analyzer
    from avatar3d.imageio import decode_image

    crops = []
    for _, data in real_photos():
        try:  # the cameraman looks down and away: face_too_rotated
            crops.append(thread_analyzer().analyze(decode_image(data))[0].crop)
        except ChibiError:
            pass
    return crops


def attention_picture(crops: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """crops (N, 128, 128, 3) uint8 and weights (N, 5, h, w) -> (N*128, 6*128, 3) uint8:
    per row the crop, then each colour's weights (scaled to their maximum) over it."""
    import cv2

    rows = []
    for crop, maps in zip(crops, weights, strict=True):
        panels = [crop]
        for m in maps:
            heat = cv2.resize(m / max(float(m.max()), 1e-12), (PANEL, PANEL))[..., None]
            glow = heat * np.array([255.0, 210.0, 0.0])
            panels.append((0.35 * crop + 0.65 * glow).clip(0, 255).astype(np.uint8))
        rows.append(np.concatenate(panels, axis=1))
    return np.concatenate(rows, axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", required=True, help="PNG to write")
    parser.add_argument("--model", default="default", help="weights name")
    parser.add_argument("--weights-dir", help="weights folder (default: the shipped ones)")
    parser.add_argument("--renders", type=int, default=4, help="synthetic renders to show")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()

    import torch
    from PIL import Image

    from avatar3d.param_arrays import COLOR_NAMES
    from avatar3d.regressor import crops_to_tensor, load_pretrained

    torch.set_num_threads(1)
    model = load_pretrained(args.model, args.weights_dir, device="cpu").eval()
    crops = np.stack(_render_crops(args.renders, args.seed) + _photo_crops())
    with torch.inference_mode():
        weights = model.color_attention(crops_to_tensor(crops)).numpy()
    Image.fromarray(attention_picture(crops, weights)).save(args.out)
    columns = ", ".join(["crop", *(n.removesuffix("_color") for n in COLOR_NAMES)])
    print(f"wrote {args.out}: {len(crops)} rows ({args.renders} renders, then the photos); "
          f"columns: {columns}")  # fmt: skip


if __name__ == "__main__":
    main()
