"""Morph targets: every name in MORPH_TARGET_NAMES from a few reusable primitives.

A primitive is one displacement field, computed on the slider-deformed avatar:
 - patch primitives re-project a face patch with displaced local coordinates
   (eye lids, iris shifts, brows, lips) and push the result through the same
   head-shape field as the neutral patch, so they fit every face;
 - surface primitives move the head skin (jaw, cheeks) with smooth,
   compactly supported fields, and the tongue rigidly.
Each morph target is a weighted sum of primitives (`recipes.RECIPES`);
the patch primitives' points are turned into directions, projected onto the head
and put through the head-shape field in one call each, after all of them are laid
out (all three are pointwise, so this changes no value);
`MORPH_REGIONS` says which vertex region labels a target may move (tests check it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dataclass_field

import numpy as np

from ..avatar import MORPH_TARGET_NAMES
from .face import PatchSpec, Placement, anchor_frame, frame_directions, local_metres
from .head import head_point
from .layout import EYE_LASH_V, EYE_LID_V, LIFT
from .recipes import MORPH_REGIONS, RECIPES
from .shapes import smoothstep

__all__ = ["MORPH_REGIONS", "MorphContext", "morph_targets", "primitives"]

Part = tuple[np.ndarray, np.ndarray]  # (indices (n,), deltas (n, 3))
Primitive = list[Part]  # one displacement field; its parts' indices are disjoint

_B_LID = 1.0 - 2.0 * EYE_LID_V  # the lower-lid line in the eye's local b coordinate
_B_LASH = (1.0 - 2.0 * EYE_LASH_V[1], 1.0 - 2.0 * EYE_LASH_V[0])  # lash band, bottom/top
_SLIT_B = 0.02  # the mouth rows just above/below the slit centre (v = 0.49 / 0.51)


@dataclass
class MorphContext:
    """What the primitives need from one built avatar.

    positions: (V, 3) final neutral vertices; field: the head-shape field
    (points (N, 3) -> points); patches: label -> (spec, placement, vertex indices);
    head, tongue: vertex indices; blush: side -> indices; mouth_point, mouth_dir:
    the mouth centre (3,) and its outward direction (3,); cheeks: side -> centre (3,).
    """

    positions: np.ndarray
    field: Callable[[np.ndarray], np.ndarray]
    patches: dict[str, tuple[PatchSpec, Placement, np.ndarray]]
    head: np.ndarray
    tongue: np.ndarray
    blush: dict[int, np.ndarray]
    mouth_point: np.ndarray
    mouth_dir: np.ndarray
    cheeks: dict[int, np.ndarray]
    # patch points waiting for `_apply_field`: their anchor frame (3, 3), local metres
    # (n, 2), lifts (n,), vertex indices (n,) and the (n, 3) deltas to fill in
    pending: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = (
        dataclass_field(default_factory=list, repr=False)
    )
    # label -> the patch's neutral local metres (n, 2) and lifts (n,), read-only
    neutral: dict[str, tuple[np.ndarray, np.ndarray]] = dataclass_field(
        default_factory=dict, repr=False
    )


def _patch(ctx: MorphContext, label: str, fn) -> Primitive:
    """Re-project patch `label` with fn(spec, place, local (N, 2), lift (N,)) -> (local, lift).

    Its deltas are filled in by `_apply_field`: turning local metres into directions,
    projecting onto the head and the head-shape field cost ~0.1 ms a call whatever the
    number of points, and there are ~60 patch primitives."""
    spec, place, idx = ctx.patches[label]
    if label not in ctx.neutral:
        local = local_metres(spec, place)
        ctx.neutral[label] = local, np.full(len(local), LIFT[spec.feature])
    local, lift = ctx.neutral[label]
    new_local, new_lift = fn(spec, place, local.copy(), lift.copy())
    delta = np.empty((len(idx), 3), np.result_type(new_local, ctx.positions))
    lifts = np.broadcast_to(new_lift, len(idx))
    ctx.pending.append((anchor_frame(place), new_local, lifts, idx, delta))
    return [(idx, delta)]


def _apply_field(ctx: MorphContext) -> None:
    """Every pending patch's points onto the head and through its shape field at once
    (point by point, the same arithmetic as one patch at a time)."""
    if not ctx.pending:
        return
    counts = [len(local) for _, local, _, _, _ in ctx.pending]
    frames = np.repeat(np.stack([frame for frame, _, _, _, _ in ctx.pending]), counts, axis=0)
    local = np.concatenate([local for _, local, _, _, _ in ctx.pending])
    directions = frame_directions(frames, local)
    lifts = np.concatenate([lifts for _, _, lifts, _, _ in ctx.pending])
    shaped = ctx.field(head_point(directions, lifts))
    start = 0
    for _, _, _, idx, delta in ctx.pending:
        np.subtract(shaped[start : start + len(idx)], ctx.positions[idx], out=delta)
        start += len(idx)
    ctx.pending.clear()


def _combine(*prims: Primitive) -> Primitive:
    return [part for prim in prims for part in prim]


# --- eyes ------------------------------------------------------------------------------


def _eye_remap(ctx: MorphContext, side: str, xs, ys, iris: str) -> Primitive:
    """Remap the eye's rows: local b -> np.interp(b, xs, ys); the iris follows ("same"),
    collapses onto the lid line ("collapse") or stays ("keep").

    Rows fold rather than stretch: morph targets carry no normals, so a stretched
    patch would keep the normals of where its rows were and shade differently
    from the skin around it; folded away, the head's own skin shows instead."""
    eye_half = ctx.patches[f"eye_{side}"][1].half[1]

    def eye_fn(spec, place, local, lift):
        local[:, 1] = np.interp(local[:, 1] / eye_half, xs, ys) * eye_half
        return local, lift

    def iris_fn(spec, place, local, lift):
        if iris == "collapse":
            local[:, 1] = _B_LID * eye_half
            lift = lift - 0.0009  # tucked behind the closed lid
        else:
            local[:, 1] = np.interp(local[:, 1] / eye_half, xs, ys) * eye_half
        return local, lift

    prims = [_patch(ctx, f"eye_{side}", eye_fn)]
    if iris != "keep":
        prims.append(_patch(ctx, f"iris_{side}", iris_fn))
    return _combine(*prims)


def _iris_shift(ctx: MorphContext, side: str, dx: float, dy: float) -> Primitive:
    def fn(spec, place, local, lift):
        local[:, 0] += dx * place.half[0] / 0.018
        local[:, 1] += dy * place.half[1] / 0.0235
        return local, lift

    return _patch(ctx, f"iris_{side}", fn)


# --- brows, nose ---------------------------------------------------------------------


def _brow(ctx: MorphContext, side: str, inner_dy: float, outer_dy: float, dx_in: float = 0.0):
    sign = 1 if side == "L" else -1

    def fn(spec, place, local, lift):
        inner = (1.0 - sign * spec.a) / 2.0  # 1 at the end nearest the nose
        local[:, 1] += inner * inner_dy + (1.0 - inner) * outer_dy
        local[:, 0] -= sign * dx_in * inner
        return local, lift

    return _patch(ctx, f"brow_{side}", fn)


def _nose_sneer(ctx: MorphContext, sign: int) -> Primitive:
    def fn(spec, place, local, lift):
        w = smoothstep(-0.6, 1.0, sign * spec.a)
        local[:, 1] += 0.0030 * w + 0.0008
        local[:, 0] += sign * 0.0012 * w
        return local, lift + 0.0008 * w

    return _patch(ctx, "nose", fn)


# --- mouth, jaw, tongue --------------------------------------------------------------


def _mouth(ctx: MorphContext, fn) -> Primitive:
    return _patch(ctx, "mouth", fn)


def _jaw(ctx: MorphContext, down: float, forward: float, sideways: float) -> Primitive:
    """Move the head skin and tongue below the mouth line (a smooth, local field)."""
    idx = np.concatenate([ctx.head, ctx.tongue])
    p = ctx.positions[idx]
    m = ctx.mouth_point
    w = (
        smoothstep(m[1] + 0.002, m[1] - 0.012, p[:, 1])
        * smoothstep(0.085, 0.03, np.abs(p[:, 0] - m[0]))
        * smoothstep(m[2] - 0.08, m[2] - 0.04, p[:, 2])
    )
    delta = np.outer(w, [sideways, -down, forward - 0.3 * down])
    keep = w > 0
    return [(idx[keep], delta[keep])]


def _open(ctx: MorphContext) -> Primitive:
    def fn(spec, place, local, lift):
        lens = np.clip(1.0 - spec.a**2, 0.0, 1.0) ** 0.7
        up = np.clip(spec.b / _SLIT_B, 0.0, 1.0)
        low = np.clip(-spec.b / _SLIT_B, 0.0, 1.0)
        local[:, 1] += (0.004 * up - 0.018 * low) * lens
        return local, lift

    # the chin drops less than the lower lip: the lip slides down over the skin
    return _combine(_mouth(ctx, fn), _jaw(ctx, 0.009, 0.0, 0.0))


def _jaw_move(ctx: MorphContext, forward: float, sideways: float) -> Primitive:
    def fn(spec, place, local, lift):
        low = np.clip(-spec.b / _SLIT_B, 0.0, 1.0)
        local[:, 0] += sideways * low
        return local, lift + forward * low

    return _combine(_mouth(ctx, fn), _jaw(ctx, 0.0, forward, sideways))


def _lip(ctx: MorphContext, dy_of) -> Primitive:
    """Generic lip move: dy_of(a, b, y) -> (dx, dy, dlift) in metres."""

    def fn(spec, place, local, lift):
        dx, dy, dl = dy_of(spec.a, spec.b, local[:, 1])
        local[:, 0] += dx
        local[:, 1] += dy
        return local, lift + dl

    return _mouth(ctx, fn)


def _tongue_out(ctx: MorphContext) -> Primitive:
    delta = ctx.mouth_dir * 0.028 + np.array([0.0, -0.006, 0.0])
    return [(ctx.tongue, np.tile(delta, (len(ctx.tongue), 1)))]


# --- cheeks --------------------------------------------------------------------------


def _cheek(ctx: MorphContext, side: int, out: float, up: float) -> Primitive:
    idx = np.concatenate([ctx.head, ctx.blush[side]])
    p = ctx.positions[idx]
    rel = (p - ctx.cheeks[side]) / np.array([0.05, 0.03, 0.04])
    w = smoothstep(1.0, 0.0, np.linalg.norm(rel, axis=1))
    radial = p - (ctx.cheeks[side] - np.array([side * 0.1, 0.0, 0.1]))
    radial /= np.linalg.norm(radial, axis=1, keepdims=True)
    delta = w[:, None] * (out * radial + np.array([0.0, up, 0.0]))
    keep = w > 0
    return [(idx[keep], delta[keep])]


def primitives(ctx: MorphContext) -> dict[str, Primitive]:
    """Every primitive displacement field of this avatar, by name."""

    def lens(a):
        return np.clip(1.0 - a**2, 0.0, 1.0) ** 0.5

    def corner(a, sign):
        return smoothstep(0.2, 1.0, sign * a)

    def half(a, sign):
        return smoothstep(-0.4, 1.0, sign * a)

    zero = 0.0
    hw = ctx.patches["mouth"][1].half[0]
    out: dict[str, Primitive] = {
        "open": _open(ctx),
        "tongue": _tongue_out(ctx),
        "jaw_forward": _jaw_move(ctx, 0.006, 0.0),
        "jaw_left": _jaw_move(ctx, 0.0, 0.008),
        "wide": _lip(ctx, lambda a, b, y: (0.35 * a * hw, 0.001 * a**2, zero)),
        "narrow": _lip(ctx, lambda a, b, y: (-0.38 * a * hw, zero, zero)),
        "forward": _lip(ctx, lambda a, b, y: (zero, zero, 0.005 * lens(a) * (1 - b**2))),
        "shift_left": _lip(ctx, lambda a, b, y: (0.008 + 0 * a, zero, zero)),
        "close": _lip(
            ctx,
            lambda a, b, y: (
                zero,
                -0.8 * y * smoothstep(1.0, 0.3, np.abs(b)),
                0.002 * lens(a) * (1 - b**2),
            ),
        ),
        "roll_lower": _lip(
            ctx,
            lambda a, b, y: (
                zero,
                0.0055 * np.clip(1 - np.abs(b + 0.4) / 0.4, 0, 1),
                -0.0015 * np.clip(1 - np.abs(b + 0.4) / 0.4, 0, 1),
            ),
        ),
        "roll_upper": _lip(
            ctx,
            lambda a, b, y: (
                zero,
                -0.0045 * np.clip(1 - np.abs(b - 0.4) / 0.4, 0, 1),
                -0.0015 * np.clip(1 - np.abs(b - 0.4) / 0.4, 0, 1),
            ),
        ),
        "shrug_lower": _lip(ctx, lambda a, b, y: (zero, 0.004 * np.clip(-b, 0, 1) * lens(a), zero)),
        "shrug_upper": _lip(ctx, lambda a, b, y: (zero, 0.0035 * np.clip(b, 0, 1) * lens(a), zero)),
    }
    for sign, s in ((1, "L"), (-1, "R")):
        out[f"corner_up_{s}"] = _lip(
            ctx, lambda a, b, y, g=sign: (g * 0.002 * corner(a, g), 0.007 * corner(a, g), zero)
        )
        out[f"corner_down_{s}"] = _lip(
            ctx, lambda a, b, y, g=sign: (zero, -0.006 * corner(a, g), zero)
        )
        out[f"corner_out_{s}"] = _lip(
            ctx, lambda a, b, y, g=sign: (g * 0.006 * corner(a, g), -0.0015 * corner(a, g), zero)
        )
        out[f"dimple_{s}"] = _lip(
            ctx,
            lambda a, b, y, g=sign: (
                g * 0.004 * corner(a, g),
                0.001 * corner(a, g),
                -0.0008 * corner(a, g),
            ),
        )
        out[f"press_{s}"] = _lip(
            ctx,
            lambda a, b, y, g=sign: (
                g * 0.0015 * half(a, g),
                -0.6 * y * smoothstep(0.6, 0.2, np.abs(b)) * half(a, g),
                -0.003 * half(a, g) * lens(a),
            ),
        )
        out[f"upper_up_{s}"] = _lip(
            ctx,
            lambda a, b, y, g=sign: (
                zero,
                0.006 * np.clip(b / _SLIT_B, 0, 1) * half(a, g) * lens(a),
                zero,
            ),
        )
        out[f"lower_down_{s}"] = _lip(
            ctx,
            lambda a, b, y, g=sign: (
                zero,
                -0.007 * np.clip(-b / _SLIT_B, 0, 1) * half(a, g) * lens(a),
                zero,
            ),
        )
        out[f"close_{s}"] = _eye_remap(
            ctx,
            s,
            [-1.0, _B_LID, _B_LASH[0], _B_LASH[1], 1.0],
            [-1.0, _B_LID, _B_LID + 0.002, _B_LID + 0.09, _B_LID + 0.11],
            "collapse",
        )
        out[f"squint_{s}"] = _eye_remap(
            ctx, s, [-1, _B_LID, 0.55, 1], [-1, _B_LID + 0.35, 0.45, 1], "same"
        )
        out[f"wide_{s}"] = _eye_remap(ctx, s, [-1, _B_LID, 1], [-1, _B_LID, 1.22], "keep")
        out[f"iris_x_{s}"] = _iris_shift(ctx, s, 0.011, 0.0)
        out[f"iris_y_{s}"] = _iris_shift(ctx, s, 0.0, 0.008)
        out[f"brow_up_{s}"] = _brow(ctx, s, 0.010, 0.010)
        out[f"brow_down_{s}"] = _brow(ctx, s, -0.009, -0.005, 0.002)
        out[f"brow_inner_up_{s}"] = _brow(ctx, s, 0.010, 0.0)
        out[f"brow_outer_up_{s}"] = _brow(ctx, s, 0.0, 0.010)
        out[f"brow_angry_{s}"] = _brow(ctx, s, -0.008, 0.002, 0.002)
        out[f"cheek_puff_{s}"] = _cheek(ctx, sign, 0.008, 0.0)
        out[f"cheek_squint_{s}"] = _cheek(ctx, sign, 0.001, 0.005)
        out[f"sneer_{s}"] = _nose_sneer(ctx, sign)
    _apply_field(ctx)
    return out


def morph_targets(ctx: MorphContext) -> dict[str, np.ndarray]:
    """name -> (V, 3) float32 deltas for every MORPH_TARGET_NAMES entry, in order."""
    prims = primitives(ctx)
    count = len(ctx.positions)
    out = {}
    for name in MORPH_TARGET_NAMES:
        delta = np.zeros((count, 3), np.float64)
        for prim, weight in RECIPES[name]:
            for idx, d in prims[prim]:
                delta[idx] += weight * d  # a part's indices are unique
        out[name] = delta.astype(np.float32)
    return out
