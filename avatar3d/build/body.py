"""The body below the head: neck, torso (shirt + pants), arms with mitten hands, legs, shoes.

Every piece is a closed tube (`shapes.sweep`) with smooth chibi profiles;
pieces that meet at a clothes border share their border ring and smooth
group, so the seam does not show in the shading. Skin weights come from
`rig.chain_weights` along each limb.
"""

from __future__ import annotations

import numpy as np

from .layout import ARM_Y, BODY_JOINTS
from .rig import blend_in, chain_weights, set_skin
from .shapes import Part, ellipsoid, sweep

X = np.array([1.0, 0.0, 0.0])
Y = np.array([0.0, 1.0, 0.0])
Z = np.array([0.0, 0.0, 1.0])

# torso profile: y, half width (x), half depth (z)
_TORSO = np.array(
    [
        [0.334, 0.050, 0.042],
        [0.345, 0.078, 0.060],
        [0.365, 0.094, 0.068],
        [0.390, 0.100, 0.071],
        [0.415, 0.099, 0.070],
        [0.450, 0.094, 0.067],
        [0.500, 0.097, 0.069],
        [0.545, 0.100, 0.071],
        [0.580, 0.096, 0.067],
        [0.605, 0.082, 0.058],
        [0.622, 0.058, 0.045],
        [0.632, 0.036, 0.032],
    ]
)
_WAIST_Y = 0.415  # shirt above, pants below

# arm profile along |x|: x, radius (horizontal), radius (vertical)
_SLEEVE = np.array([[0.060, 0.040, 0.040], [0.110, 0.039, 0.038], [0.160, 0.037, 0.036]])
_ARM = np.array(
    [
        [0.150, 0.031, 0.030],
        [0.215, 0.028, 0.027],
        [0.270, 0.027, 0.026],
        [0.315, 0.024, 0.023],
        [0.330, 0.024, 0.023],
    ]
)
# leg profile along y (top to bottom): y, radius x, radius z
_LEG = np.array(
    [
        [0.420, 0.052, 0.054],
        [0.380, 0.054, 0.055],
        [0.320, 0.050, 0.051],
        [0.260, 0.044, 0.045],
        [0.220, 0.041, 0.042],
        [0.160, 0.038, 0.039],
        [0.100, 0.036, 0.037],
        [0.060, 0.035, 0.036],
    ]
)


def _resample(profile: np.ndarray, count: int) -> np.ndarray:
    """Linearly resample a profile table (rows: coordinate, values...) to `count` rows."""
    t = np.linspace(profile[0, 0], profile[-1, 0], count)
    sign = 1.0 if profile[0, 0] < profile[-1, 0] else -1.0  # np.interp needs increasing x
    cols = [
        np.interp(sign * t, sign * profile[:, 0], profile[:, i]) for i in range(1, profile.shape[1])
    ]
    return np.column_stack([t] + cols)


def _torso(q: int) -> list[Part]:
    ys = np.linspace(_TORSO[0, 0], _TORSO[-1, 0], 12 if q == 0 else 30)
    ys = np.unique(np.round(np.append(ys, _WAIST_Y), 6))
    rows = np.column_stack([ys] + [np.interp(ys, _TORSO[:, 0], _TORSO[:, i]) for i in (1, 2)])
    segs = 16 if q == 0 else 32
    # split at the waist: pants below, shirt above, sharing the border ring
    cut = int(np.searchsorted(rows[:, 0], _WAIST_Y))
    parts = []
    for region, sl, caps in (
        ("pants", slice(0, cut + 1), (True, False)),
        ("shirt", slice(cut, None), (False, True)),
    ):
        r = rows[sl]
        path = np.column_stack([np.zeros(len(r)), r[:, 0], np.zeros(len(r))])
        # path +Y = cross(side=Z, up=X); seam at the back (angle pi from +Z)
        part = sweep(
            path,
            np.tile(Z, (len(r), 1)),
            np.tile(X, (len(r), 1)),
            r[:, 2],
            r[:, 1],
            segs,
            region,
            "body",
            "torso",
            phase=np.pi,
            cap_start=np.array([0.0, rows[0, 0] - 0.004, 0.0]) if caps[0] else False,
            cap_end=np.array([0.0, rows[-1, 0] + 0.003, 0.0]) if caps[1] else False,
        )
        pos = part.positions
        names, dense = chain_weights(
            pos[:, 1],
            [
                ("hips", -1.0),
                ("spine", 0.46),
                ("chest", 0.52),
                ("upperChest", 0.57),
                ("neck", 0.627),
            ],
            0.025,
        )
        for side, shoulder in ((1, "leftShoulder"), (-1, "rightShoulder")):
            amount = (
                np.clip((side * pos[:, 0] - 0.05) / 0.05, 0, 1)
                * np.clip((pos[:, 1] - 0.53) / 0.06, 0, 1)
            ) * 0.6
            names, dense = blend_in(names, dense, shoulder, amount)
        parts.append(set_skin(part, names, dense))
    return parts


def _neck(q: int) -> Part:
    # rings at the neck and head joints so both blend smoothly
    ys = np.array([0.60, 0.625, 0.65, 0.67, 0.69, 0.71, 0.745])
    if q:
        ys = np.interp(np.linspace(0, len(ys) - 1, 13), np.arange(len(ys)), ys)
    path = np.column_stack([np.zeros_like(ys), ys, np.zeros_like(ys)])
    segs = 12 if q == 0 else 24
    part = sweep(
        path,
        np.tile(Z, (len(ys), 1)),
        np.tile(X, (len(ys), 1)),
        0.033,
        0.036,
        segs,
        "skin",
        "neck",
        "neck",
        phase=np.pi,
    )
    return set_skin(
        part,
        *chain_weights(
            part.positions[:, 1], [("upperChest", -1.0), ("neck", 0.625), ("head", 0.69)], 0.02
        ),
    )


def _limb_frame(count: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    # arms run along +-X: cross(side_axis, up_axis) must be the path direction
    if side > 0:
        return np.tile(Y, (count, 1)), np.tile(Z, (count, 1))  # cross(Y, Z) = +X
    return np.tile(Z, (count, 1)), np.tile(Y, (count, 1))  # cross(Z, Y) = -X


def _arm_chain(side: int) -> list[tuple[str, float]]:
    s = "left" if side > 0 else "right"
    return [
        ("upperChest", -1.0),
        (f"{s}Shoulder", BODY_JOINTS["leftShoulder"][0]),
        (f"{s}UpperArm", BODY_JOINTS["leftUpperArm"][0]),
        (f"{s}LowerArm", BODY_JOINTS["leftLowerArm"][0]),
        (f"{s}Hand", BODY_JOINTS["leftHand"][0]),
    ]


def _arm(side: int, q: int) -> list[Part]:
    segs = 10 if q == 0 else 20
    parts = []
    for region, label, table, count in (
        ("shirt", "body", _SLEEVE, 4 if q == 0 else 8),
        ("skin", "body", _ARM, 7 if q == 0 else 16),
    ):
        r = _resample(table, count)
        path = np.column_stack([side * r[:, 0], np.full(len(r), ARM_Y), np.zeros(len(r))])
        s_axis, u_axis = _limb_frame(len(r), side)
        rad_s, rad_u = (r[:, 2], r[:, 1]) if side > 0 else (r[:, 1], r[:, 2])
        # seam underneath the arm
        part = sweep(
            path,
            s_axis,
            u_axis,
            rad_s,
            rad_u,
            segs,
            region,
            label,
            f"{region}_arm{side}",
            phase=np.pi if side > 0 else -np.pi / 2,
        )
        parts.append(part)
    # mitten hand: flat (thin in y), wide in z, with a small thumb
    hand_x = np.linspace(0.318, 0.405, 6 if q == 0 else 12)
    t = (hand_x - hand_x[0]) / (hand_x[-1] - hand_x[0])
    width = 0.030 * np.sqrt(np.clip(1.0 - (1.6 * t - 0.6) ** 2, 0.05, 1.0)) + 0.004
    thick = 0.018 * np.sqrt(np.clip(1.0 - (1.6 * t - 0.6) ** 2, 0.05, 1.0)) + 0.003
    path = np.column_stack([side * hand_x, np.full(len(t), ARM_Y), np.zeros(len(t))])
    s_axis, u_axis = _limb_frame(len(t), side)
    rad_s, rad_u = (thick, width) if side > 0 else (width, thick)
    parts.append(
        sweep(
            path,
            s_axis,
            u_axis,
            rad_s,
            rad_u,
            segs,
            "skin",
            "body",
            f"hand{side}",
            phase=np.pi if side > 0 else -np.pi / 2,
            cap_end=np.array([side * 0.412, ARM_Y, 0.0]),
        )
    )
    thumb_center = np.array([side * 0.338, ARM_Y + 0.002, 0.030])
    thumb_axis = np.array([side * 0.5, 0.0, 1.0])
    thumb_axis /= np.linalg.norm(thumb_axis)
    up = Y if side > 0 else -Y
    parts.append(
        ellipsoid(
            thumb_center,
            np.cross(up, thumb_axis),
            up,
            (0.011, 0.010, 0.018),
            5 if q == 0 else 9,
            8 if q == 0 else 14,
            "skin",
            "body",
            f"thumb{side}",
        )
    )
    for part in parts:
        set_skin(part, *chain_weights(side * part.positions[:, 0], _arm_chain(side), 0.025))
    return parts


def _leg(side: int, q: int) -> list[Part]:
    s = "left" if side > 0 else "right"
    x = side * BODY_JOINTS["leftUpperLeg"][0]
    r = _resample(_LEG, 9 if q == 0 else 22)
    # a ring right at the knee so it bends smoothly
    ys = np.unique(np.append(r[:, 0], BODY_JOINTS["leftLowerLeg"][1]))[::-1]
    r = np.column_stack([ys] + [np.interp(-ys, -_LEG[:, 0], _LEG[:, i]) for i in (1, 2)])
    path = np.column_stack([np.full(len(r), x), r[:, 0], np.zeros(len(r))])
    # path -Y = cross(side=X, up=Z); seam at the back (angle -pi/2 from +X is -Z)
    leg = sweep(
        path,
        np.tile(X, (len(r), 1)),
        np.tile(Z, (len(r), 1)),
        r[:, 1],
        r[:, 2],
        12 if q == 0 else 24,
        "pants",
        "body",
        f"leg{side}",
        phase=-np.pi / 2,
    )
    chain = [
        ("hips", -10.0),
        (f"{s}UpperLeg", -0.385),
        (f"{s}LowerLeg", -0.22),
        (f"{s}Foot", -0.055),
    ]
    set_skin(leg, *chain_weights(-leg.positions[:, 1], chain, 0.035))
    # shoe: a rounded box along +Z with a flat sole on y = 0
    zs = np.linspace(-0.050, 0.100, 8 if q == 0 else 18)
    t = (zs - zs[0]) / (zs[-1] - zs[0])
    rx = 0.030 + 0.012 * np.sin(np.pi * np.clip(t * 1.1, 0, 1)) ** 0.5
    ry = 0.040 - 0.018 * t
    rx = rx * np.sqrt(np.clip(1.0 - (2.0 * t - 1.0) ** 8, 0.02, 1.0))
    ry = ry * np.sqrt(np.clip(1.0 - (2.0 * t - 1.0) ** 8, 0.02, 1.0))
    path = np.column_stack([np.full(len(zs), x), np.full(len(zs), 0.036), zs])
    shoe = sweep(
        path,
        np.tile(X, (len(zs), 1)),
        np.tile(Y, (len(zs), 1)),
        rx,
        ry,
        12 if q == 0 else 24,
        "shoes",
        "body",
        f"shoe{side}",
        phase=-np.pi / 2,
        cap_start=np.array([x, 0.036, -0.058]),
        cap_end=np.array([x, 0.030, 0.108]),
    )
    shoe.positions[:, 1] = np.maximum(shoe.positions[:, 1], 0.0)  # flat sole
    set_skin(
        shoe, *chain_weights(shoe.positions[:, 2], [(f"{s}Foot", -1.0), (f"{s}Toes", 0.045)], 0.015)
    )
    return [leg, shoe]


def body_parts(quality: str) -> list[Part]:
    """Neck, torso, both arms with hands, both legs with shoes."""
    q = 0 if quality == "default" else 1
    parts = _torso(q) + [_neck(q)]
    for side in (1, -1):
        parts += _arm(side, q) + _leg(side, q)
    return parts
