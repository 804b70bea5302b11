"""Neutral proportions of the chibi (metres, Y up, facing +Z, character's left = +X).

Feet stand on Y = 0, the whole avatar is about 1.1 m tall, and the head (chin to
the top of the hair) is about 40% of it. Everything here is the neutral
(all sliders 0.5) value; `sliders.py` moves things from there.
"""

from __future__ import annotations

import numpy as np

HEAD_CENTER = np.array([0.0, 0.87, 0.0])

# Humanoid joint rest positions (left side; the right side mirrors x).
BODY_JOINTS: dict[str, tuple[float, float, float]] = {
    "hips": (0.0, 0.40, 0.0),
    "spine": (0.0, 0.46, 0.0),
    "chest": (0.0, 0.52, 0.0),
    "upperChest": (0.0, 0.57, 0.0),
    "neck": (0.0, 0.625, 0.0),
    "head": (0.0, 0.69, 0.0),
    "leftShoulder": (0.035, 0.585, 0.0),
    "leftUpperArm": (0.095, 0.578, 0.0),
    "leftLowerArm": (0.215, 0.578, 0.0),
    "leftHand": (0.322, 0.578, 0.0),
    "leftUpperLeg": (0.055, 0.38, 0.0),
    "leftLowerLeg": (0.055, 0.22, 0.0),
    "leftFoot": (0.055, 0.055, 0.0),
    "leftToes": (0.055, 0.02, 0.065),
}

ARM_Y = 0.578

# Face features: anchor (x, y) on the front of the head and half sizes (w, h), metres.
EYE_ANCHOR = (0.076, 0.820)
EYE_HALF = (0.044, 0.050)
IRIS_HALF = (0.0180, 0.0235)
IRIS_CENTER = (0.0, -0.003)  # relative to the eye anchor, in the eye's tangent plane
BROW_ANCHOR = (0.080, 0.884)
BROW_HALF = (0.026, 0.012)
NOSE_ANCHOR = (0.0, 0.784)
NOSE_HALF = (0.008, 0.007)
MOUTH_ANCHOR = (0.0, 0.741)
MOUTH_HALF = (0.022, 0.014)
BLUSH_ANCHOR = (0.125, 0.758)
BLUSH_HALF = (0.024, 0.013)
EAR_ANCHOR = (0.0, 0.835, -0.01)  # x comes from the head surface

# Outward offsets of the face patches above the head surface (metres): different
# heights keep overlapping patches from z-fighting.
LIFT = {
    "blush": 0.0008,
    "nose": 0.0010,
    "mouth": 0.0012,
    "eye": 0.0015,
    "brow": 0.0020,
    "iris": 0.0020,
}

# Eye drawing layout in the eye region (local v, 0 = top; see avatar3d.texture):
# the eye white ends at the lower-lid line EYE_LID_V and the upper lash is drawn
# between the rows EYE_LASH_V at the eye's middle. The blink folds everything
# between the lash and the lid onto the lid line and keeps the lash as a thin
# dark band just above it.
EYE_LID_V = 0.78
EYE_LASH_V = (0.13, 0.26)


def mirror_x(point: tuple[float, float, float]) -> tuple[float, float, float]:
    return (-point[0], point[1], point[2])


def body_joint_positions() -> dict[str, np.ndarray]:
    """All humanoid body joints (both sides) except the eyes, name -> (3,) metres."""
    out: dict[str, np.ndarray] = {}
    for name, pos in BODY_JOINTS.items():
        out[name] = np.array(pos)
        if name.startswith("left"):
            out["right" + name[4:]] = np.array(mirror_x(pos))
    return out
