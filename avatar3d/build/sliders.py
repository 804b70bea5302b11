"""Identity sliders: smooth displacement fields over the head region.

Feature sliders (eye size/spacing/tilt/height, brows, nose, mouth, lips) set
the face patches' `Placement` (see face.py); the fields here reshape the head
itself and carry everything attached to it (patches, ears, hair, glasses,
hair joints, colliders) along, so nothing separates. All fields are smooth
functions of position, vectorised over (N, 3) point arrays in metres.
Every slider is 0..1 with 0.5 neutral; `k` below maps it to -1..1.
"""

from __future__ import annotations

import numpy as np

from .head import HEAD_CENTER
from .layout import BLUSH_ANCHOR, BODY_JOINTS, EYE_ANCHOR
from .shapes import smoothstep

HEAD_JOINT = np.array(BODY_JOINTS["head"])
_CHEEKS = np.array(
    [[BLUSH_ANCHOR[0], BLUSH_ANCHOR[1], 0.12], [-BLUSH_ANCHOR[0], BLUSH_ANCHOR[1], 0.12]]
)
_CHIN_Y = 0.665


def _k(shape: dict[str, float], name: str) -> float:
    return 2.0 * (shape[name] - 0.5)


def head_field(points: np.ndarray, shape: dict[str, float]) -> np.ndarray:
    """Apply the head-shape sliders to points (N, 3) of the head region; returns new (N, 3).

    face_width, face_length, jaw_width, chin_length, cheek_fullness, head_size.
    """
    p = np.array(points, np.float64, copy=True)
    kc = _k(shape, "cheek_fullness")
    if kc:
        radial = p - HEAD_CENTER
        radial /= np.linalg.norm(radial, axis=1, keepdims=True)
        for c in _CHEEKS:
            w = smoothstep(0.07, 0.0, np.linalg.norm(p - c, axis=1))
            p += (0.008 * kc * w)[:, None] * radial
    kch = _k(shape, "chin_length")
    if kch:
        w = smoothstep(0.745, 0.69, p[:, 1]) * smoothstep(0.0, 0.08, p[:, 2])
        p[:, 1] -= 0.012 * kch * w
    kj = _k(shape, "jaw_width")
    if kj:
        p[:, 0] *= 1.0 + 0.12 * kj * smoothstep(0.80, 0.70, p[:, 1])
    kl = _k(shape, "face_length")
    if kl:
        eye_y = EYE_ANCHOR[1]
        below = np.minimum(p[:, 1], eye_y) - eye_y
        # under the chin everything just moves along with it
        below = np.maximum(below, _CHIN_Y - eye_y)
        p[:, 1] += 0.09 * kl * below
    kw = _k(shape, "face_width")
    if kw:
        p[:, 0] *= 1.0 + 0.09 * kw * (0.6 + 0.4 * smoothstep(0.95, 0.82, p[:, 1]))
    kh = _k(shape, "head_size")
    if kh:
        p = HEAD_JOINT + (p - HEAD_JOINT) * (1.0 + 0.12 * kh)
    return p


def ear_scale(shape: dict[str, float]) -> float:
    """Uniform scale of the ears about their root."""
    return 1.0 + 0.3 * _k(shape, "ear_size")
