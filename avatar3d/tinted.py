"""Real photos with the skin recoloured to another tone: a check of the photo path
across skin tones on human faces, where the synthetic renders are chibi faces.

`tint_skin` changes the skin's albedo the way a different person under the same light
would look: every skin pixel's linear RGB is multiplied by target / reference, per
channel, so the shading (and the camera's clipping of highlights) is kept. The
reference is the median skin colour of the face. The lips are scaled with the skin;
eyes and brows keep their colours, and the camera's exposure stays what it was for
this person, so this is a crude stand-in for photos of darker and lighter skin: good
for asking whether a face is still found and measured, not for fine colour figures.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from skimage.color import lab2rgb, rgb2lab

from .params import hex_to_rgb, linear_to_srgb, srgb_to_linear
from .teacher_colors import (
    FACE_OVAL,
    LEFT_BROW_LOWER,
    LEFT_BROW_UPPER,
    LEFT_EYE_RING,
    LIPS_OUTER,
    RIGHT_BROW_LOWER,
    RIGHT_BROW_UPPER,
    RIGHT_EYE_RING,
    _fill,
    segment_person,
)

SKIN_CHROMA_RADIUS = 12.0  # Lab a*b* distance from the face's median that still counts as skin
SKIN_LIGHTNESS_RADIUS = 30.0  # and L* distance (shading on the neck and ears)


def skin_mask(rgb: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(soft mask (H, W) float32 0..1, the face's median skin colour (3,) CIELab).

    rgb: (H, W, 3) uint8; landmarks: (478, 3) FaceMesh points in pixels. The mask is the
    face oval (lips included) without eyes and brows, plus the person's pixels (MediaPipe
    selfie segmentation) of the face's skin colour: neck, ears, hands. The reference
    leaves the lips out."""
    shape = rgb.shape[:2]
    pts = landmarks[:, :2]

    def region(indices: tuple[int, ...]) -> np.ndarray:
        return _fill(shape, pts[list(indices)])

    eyes_brows = region(RIGHT_EYE_RING) | region(LEFT_EYE_RING)
    eyes_brows |= region(RIGHT_BROW_UPPER + RIGHT_BROW_LOWER[::-1])
    eyes_brows |= region(LEFT_BROW_UPPER + LEFT_BROW_LOWER[::-1])
    face = region(FACE_OVAL) & ~eyes_brows
    lab = rgb2lab(rgb / 255.0)
    reference = np.median(lab[face & ~region(LIPS_OUTER)], axis=0)
    like_skin = (np.linalg.norm(lab[..., 1:] - reference[1:], axis=-1) < SKIN_CHROMA_RADIUS) & (
        np.abs(lab[..., 0] - reference[0]) < SKIN_LIGHTNESS_RADIUS
    )
    person = segment_person(rgb) > 0.5
    mask = ((face | (person & like_skin)) & ~eyes_brows).astype(np.float32)
    return cv2.GaussianBlur(mask, (0, 0), 1.5), reference


def tint_skin(rgb: np.ndarray, landmarks: np.ndarray, target: str) -> np.ndarray:
    """The photo (H, W, 3) uint8 with its skin recoloured to `target` ("#rrggbb" sRGB),
    shading kept (see the module docstring)."""
    return _tinted(rgb, *skin_mask(rgb, landmarks), target)


def _tinted(rgb: np.ndarray, mask: np.ndarray, reference: np.ndarray, target: str) -> np.ndarray:
    reference_linear = srgb_to_linear(lab2rgb(reference[None, None])[0, 0])
    gain = srgb_to_linear(hex_to_rgb(target)) / np.maximum(reference_linear, 1e-4)
    tinted = linear_to_srgb(srgb_to_linear(rgb / 255.0) * gain) * 255.0
    blended = rgb * (1.0 - mask[..., None]) + tinted * mask[..., None]
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def evaluate_tinted(
    pipeline: Any, photos: list[tuple[str, bytes]], tones: tuple[str, ...]
) -> dict[str, Any]:
    """Each photo's largest face tinted to each tone, through the photo path.

    pipeline: a `PhotoPipeline`; photos: (name, encoded bytes), those whose face is not
    found untinted are left out. Returns {"photos": names used, "tones": tones,
    "found": per tone the share of faces found, "photo_path": per tone the mean skin
    colour dE2000 of the params the photo path returns against the tone}.
    """
    from .errors import ChibiError
    from .evaluate import delta_e
    from .imageio import decode_image

    used, found, errors = [], np.zeros(len(tones)), [[] for _ in tones]
    for name, data in photos:
        rgb = decode_image(data)
        try:
            face = pipeline.analyzer.analyze(rgb)[0]
        except ChibiError:
            continue  # e.g. the cameraman, turned too far sideways
        used.append(name)
        mask, reference = skin_mask(rgb, face.landmarks)
        for k, tone in enumerate(tones):
            tinted = _tinted(rgb, mask, reference, tone)
            try:
                result = pipeline.analyze_faces(tinted, pipeline.analyzer.analyze(tinted))[0]
            except ChibiError:
                continue
            found[k] += 1
            got = np.array(result.params.color_rgb("skin_color"))
            errors[k].append(float(delta_e(got, np.array(hex_to_rgb(tone)))))
    return {
        "photos": used,
        "tones": list(tones),
        "found": (found / max(len(used), 1)).tolist(),
        "photo_path": [float(np.mean(e)) if e else float("nan") for e in errors],
    }
