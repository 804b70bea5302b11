"""Glasses frames: two rims (round or square), a bridge and two temples, as thin tubes."""

from __future__ import annotations

import numpy as np

from .head import front_direction, head_point
from .layout import EYE_ANCHOR
from .shapes import Part, frame_from_tangent, path_tangents, smooth_path, sweep

_RIM_FORWARD = 0.024  # rim plane in front of the eye surface (m)
_TUBE = 0.0028  # tube radius (m)


def _rim_outline(kind: str, count: int) -> np.ndarray:
    """(count, 2) closed rim outline (last != first) around its centre, metres, CCW."""
    a = np.linspace(0.0, 2.0 * np.pi, count, endpoint=False)
    if kind == "round":
        return np.stack([0.047 * np.cos(a), 0.043 * np.sin(a)], -1)
    # a rounded rectangle as a superellipse
    c, s = np.cos(a), np.sin(a)
    return np.stack(
        [0.050 * np.sign(c) * np.abs(c) ** 0.35, 0.038 * np.sign(s) * np.abs(s) ** 0.35], -1
    )


def glasses_parts(kind: str, quality: str) -> list[Part]:
    """Frames for `kind` ("round" or "square"), rigid on the head; [] for "none"."""
    if kind == "none":
        return []
    q = 0 if quality == "default" else 1
    sides = 4 if q == 0 else 8
    parts = []
    eye_dir = front_direction(np.array([EYE_ANCHOR[0]]), np.array([EYE_ANCHOR[1]]))
    eye_z = head_point(eye_dir)[0, 2] + _RIM_FORWARD
    inner, outer = {}, {}
    for side in (1, -1):
        outline = _rim_outline(kind, 16 if q == 0 else 32)
        yaw = np.radians(10.0) * side  # rims follow the face's curve a little
        x = outline[:, 0] * np.cos(yaw)
        z = eye_z - outline[:, 0] * np.sin(yaw)
        ring = np.column_stack([side * EYE_ANCHOR[0] + x, EYE_ANCHOR[1] + outline[:, 1], z])
        loop = np.concatenate([ring, ring[:1]])
        tangents = path_tangents(np.concatenate([ring[-1:], ring, ring[:2]]))[1:-1]
        s_axis, u_axis = frame_from_tangent(tangents, np.array([0.0, 0.0, 1.0]))
        parts.append(
            sweep(
                loop,
                s_axis,
                u_axis,
                _TUBE,
                _TUBE,
                sides,
                "glasses",
                "glasses",
                f"rim{side}",
                cap_start=False,
                cap_end=False,
            )
        )
        inner[side] = ring[np.argmin(side * ring[:, 0])]
        outer[side] = ring[np.argmax(side * ring[:, 0])]
    bridge = smooth_path(
        np.array([inner[1], 0.5 * (inner[1] + inner[-1]) + [0, 0.008, 0.004], inner[-1]]), 5
    )
    for side in (1, -1):
        start = outer[side]
        back = []
        for z in (0.10, 0.03, -0.03):
            d = np.array([[side * 0.2, -0.02, z]])
            back.append(head_point(d / np.linalg.norm(d), 0.007)[0])
        temple = smooth_path(np.array([start, start + [side * 0.02, 0.0, -0.03]] + back), 6)
        parts.append(_tube(temple, sides, f"temple{side}"))
    parts.append(_tube(bridge, sides, "bridge"))
    return [p.rigid("head") for p in parts]


def _tube(path: np.ndarray, sides: int, smooth: str) -> Part:
    side, up = frame_from_tangent(path_tangents(path), np.array([0.0, 1.0, 0.0]))
    return sweep(path, side, up, _TUBE, _TUBE, sides, "glasses", "glasses", smooth)
