"""How a tight framing moves the photo path's params: a probe for #4.

A selfie or headshot often ends just below the chin or just above the hair, or cuts a
side. Then the 128 px crop the CNN reads reaches past the photo, where it is filled
with grey. For each sample photo FaceMesh reads, this crops the photo so that it ends
a given number of face heights (forehead landmark 10 to chin 152) below the chin or
above the forehead, or a given number of face widths beside the face's left edge, and
prints the share of the crop outside the photo and the change of the CNN's
`head_size` and `hair_length` and of the teacher's `chin_length` against the whole
photo.

    .venv/bin/python scripts/framing.py [--photos astronaut,grace_hopper] [--model NAME[:DIR]]

About 30 s for the six photos.
"""

from __future__ import annotations

import argparse
import io

import cv2
import numpy as np
from PIL import Image

from avatar3d.errors import ChibiError
from avatar3d.evaluate_real import real_photos
from avatar3d.imageio import decode_image
from avatar3d.landmarks import CROP_SIZE
from avatar3d.pipeline import PhotoPipeline

# (side, margin): the photo ends `margin` face heights below the chin / above the
# forehead, or starts `margin` face widths left of the face
FRAMINGS = [("below chin", m) for m in (0.4, 0.2, 0.1, 0.0)] + [
    ("above forehead", m) for m in (0.2, 0.0)
] + [("left of face", m) for m in (0.3, 0.0)]  # fmt: skip
FIELDS = ("head_size", "hair_length", "chin_length")


def crop_outside(observation) -> float:
    """Share (0..1) of the 128 px crop that lies outside the photo."""
    inverse = cv2.invertAffineTransform(observation.transform)
    corners = np.array([[0, 0, 1], [CROP_SIZE, 0, 1], [CROP_SIZE, CROP_SIZE, 1],
                        [0, CROP_SIZE, 1]], float) @ inverse.T  # fmt: skip
    width, height = observation.image_size
    photo = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    inside, _ = cv2.intersectConvexConvex(corners.astype(np.float32), photo)
    return max(0.0, 1.0 - inside / cv2.contourArea(corners.astype(np.float32)))


def framed(rgb: np.ndarray, landmarks: np.ndarray, side: str, margin: float) -> np.ndarray:
    height = landmarks[152, 1] - landmarks[10, 1]
    if side == "below chin":
        return rgb[: int(landmarks[152, 1] + margin * height)]
    if side == "above forehead":
        return rgb[max(0, int(landmarks[10, 1] - margin * height)) :]
    width = np.ptp(landmarks[:, 0])
    return rgb[:, max(0, int(landmarks[:, 0].min() - margin * width)) :]


def values(result) -> dict[str, float]:
    params = result.params
    return {"head_size": params.shape["head_size"], "hair_length": params.hair_length,
            "chin_length": params.shape["chin_length"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", help="comma-separated sample photo names (default: all)")
    parser.add_argument("--model", default="default", help="weights NAME[:DIR] (default: shipped)")
    args = parser.parse_args()
    wanted = set(args.photos.split(",")) if args.photos else None
    model, _, directory = args.model.partition(":")
    pipeline = PhotoPipeline(model, directory or None)
    changes_seen: dict[str, list[float]] = {field: [] for field in FIELDS}

    def analyse(rgb: np.ndarray):
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, "PNG")
        return pipeline.analyze(buffer.getvalue())[0]

    print("change against the whole photo: " + ", ".join(FIELDS))
    for name, data in real_photos():
        if wanted is not None and name not in wanted:
            continue
        rgb = decode_image(data)
        try:
            whole = analyse(rgb)
        except ChibiError as exc:
            print(f"{name}: skipped ({exc.code})")
            continue
        reference = values(whole)
        print(f"{name} (crop outside the photo: {100 * crop_outside(whole.observation):.1f} %)")
        for side, margin in FRAMINGS:
            try:
                result = analyse(framed(rgb, whole.observation.landmarks, side, margin))
            except ChibiError as exc:
                print(f"  {side} {margin:.1f}: {exc.code}")
                continue
            change = {f: value - reference[f] for f, value in values(result).items()}
            for field, value in change.items():
                changes_seen[field].append(abs(value))
            changes = "  ".join(f"{field} {value:+.2f}" for field, value in change.items())
            share = 100 * crop_outside(result.observation)
            print(f"  {side:15s}{margin:4.1f}  crop outside {share:4.1f} %  {changes}")
    print("over every framing, largest / mean change: " + ", ".join(
        f"{f} {max(v):.2f} / {np.mean(v):.3f}" for f, v in changes_seen.items() if v
    ))  # fmt: skip


if __name__ == "__main__":
    main()
