"""The teacher's glasses reading on the sample photos, and what it withstands (#4).

For each sample photo FaceMesh reads (scikit-image's astronaut, no glasses;
matplotlib's Grace Hopper, browline frames; the four White House photos of
`avatar3d.sample_photos`, no glasses), it prints the range of
`teacher_glasses.bridge_contrast` over groups of variants, against the threshold
`GLASSES_CONTRAST` (frame at or above it):

- `chibi eval`'s perturbations (flip, +-20 % brightness, 0.8-1.2x scale, JPEG 50);
- 0.5x and 3x the size, and turned 15 degrees in the image;
- the skin tinted to each Monk swatch (`avatar3d.tinted`);
- a hard shadow edge across the nose, half way from the brows down to the eyes,
  30-70 % darker above, 0.05-0.4 eye distances soft (a cap's brim, noon sun);
- a poor camera: JPEG 10, sensor noise, defocus, motion blur, a dark gamma, greyscale.

    .venv/bin/python scripts/glasses_reading.py

About 55 s.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

from avatar3d.errors import ChibiError
from avatar3d.evaluate_real import PERTURBATIONS, perturb, real_faces
from avatar3d.face import thread_analyzer
from avatar3d.imageio import decode_image
from avatar3d.synth import MONK_SKIN_TONES
from avatar3d.teacher_glasses import GLASSES_CONTRAST, bridge_contrast
from avatar3d.tinted import tint_skin


def resized(rgb: np.ndarray, factor: float) -> np.ndarray:
    size = (round(rgb.shape[1] * factor), round(rgb.shape[0] * factor))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=quality)
    return decode_image(buffer.getvalue())


def shadowed(rgb: np.ndarray, face, darker: float, softness: float) -> np.ndarray:
    """`darker` less light above an edge `softness` eye distances wide, half way from the
    inner brows down to the eye line."""
    eyes = face.eye_centres
    distance = float(np.linalg.norm(eyes[1] - eyes[0]))
    edge = (face.landmarks[[55, 65, 285, 295], 1].mean() + eyes[:, 1].mean()) / 2
    rows = np.arange(rgb.shape[0], dtype=np.float64)[:, None, None]
    light = np.clip((rows - edge) / (softness * distance) + 0.5, 0.0, 1.0)
    return (rgb * (1.0 - darker * (1.0 - light))).round().astype(np.uint8)


def poor_camera(rgb: np.ndarray) -> list[np.ndarray]:
    noise = np.random.default_rng(0).normal(0.0, 16.0, rgb.shape)
    return [
        jpeg(rgb, 10),
        np.clip(rgb + noise, 0, 255).astype(np.uint8),
        cv2.GaussianBlur(rgb, (0, 0), 1.5),
        cv2.filter2D(rgb, -1, np.ones((1, 9)) / 9),
        (255 * (rgb / 255.0) ** 2).astype(np.uint8),
        np.repeat(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None], 3, 2),
    ]


def contrast(rgb: np.ndarray) -> float:
    """The reading on the largest face, NaN where FaceMesh finds none."""
    rgb = np.ascontiguousarray(rgb)
    try:
        face = thread_analyzer().analyze(rgb)[0]
    except ChibiError:
        return float("nan")
    return bridge_contrast(rgb, face.landmarks, face.eye_centres)


def main() -> None:
    print(f"bridge contrast (a frame at >= {GLASSES_CONTRAST}): min - max over each group")
    for name, rgb, face in real_faces():
        turned = np.asarray(Image.fromarray(rgb).rotate(15, Image.Resampling.BICUBIC))
        groups = {
            "the photo": [rgb],
            "eval's perturbations": [decode_image(perturb(rgb, kind)) for kind in PERTURBATIONS],
            "0.5x, 3x, turned 15 deg": [resized(rgb, 0.5), resized(rgb, 3.0), turned],
            "tinted to each Monk swatch": [
                tint_skin(rgb, face.landmarks, tone) for tone in MONK_SKIN_TONES
            ],
            "a shadow edge across the nose": [
                shadowed(rgb, face, darker, softness)
                for darker in (0.3, 0.5, 0.7)
                for softness in (0.05, 0.1, 0.2, 0.4)
            ],
            "a poor camera": poor_camera(rgb),
        }
        print(name)
        for group, images in groups.items():
            values = np.array([contrast(image) for image in images])
            found = np.isfinite(values)
            span = f"{values[found].min():.4f} - {values[found].max():.4f}" if found.any() else "-"
            print(f"  {group:32} {span}   ({found.sum()}/{len(values)} faces found)")


if __name__ == "__main__":
    main()
