"""Face patches: eyes, irises, brows, nose, mouth and blush as small grids on the head.

Each patch is a grid (or, for the irises, a disc) laid in the tangent plane
of its anchor on the head surface and projected onto it a little above the
skin (`LIFT`). Its geometry is regenerated for every avatar from a
`Placement` (anchor, half sizes, tilt) that the identity sliders set, and the
morph targets re-run the same projection with displaced local coordinates,
so expressions always fit the slider-deformed face.

Local coordinates: a in [-1, 1] towards +X (the viewer's right), b in [-1, 1]
upwards; texture u = (a + 1) / 2 (mirrored for the right brow), v = (1 - b) / 2.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .. import atlas
from .head import front_direction, head_point, head_radius, tangent_frame
from .layout import (
    BLUSH_ANCHOR,
    BLUSH_HALF,
    BROW_ANCHOR,
    BROW_HALF,
    EYE_ANCHOR,
    EYE_HALF,
    EYE_LASH_V,
    EYE_LID_V,
    IRIS_CENTER,
    IRIS_HALF,
    LIFT,
    MOUTH_ANCHOR,
    MOUTH_HALF,
    NOSE_ANCHOR,
    NOSE_HALF,
)
from .shapes import Part, disc, grid_faces


@dataclass(frozen=True)
class PatchSpec:
    """Topology of one face patch.

    label: region label ("eye_L"...); region: atlas region; feature: "eye",
    "iris", "brow", "mouth", "nose" or "blush"; side: +1 character's left
    (+X), -1 right, 0 centre; bone: the joint it is skinned to.
    a, b: (N,) local coordinates of its vertices; faces (F, 3); uvs (N, 2) atlas.
    """

    label: str
    region: str
    feature: str
    side: int
    bone: str
    a: np.ndarray
    b: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray


@dataclass(frozen=True)
class Placement:
    """Where a feature sits: anchor (x, y) metres on the front of the head,
    half sizes (w, h) metres, tilt radians (counter-clockwise seen from the front),
    centre (dx, dy) metres of the patch relative to the anchor, before the tilt."""

    anchor: tuple[float, float]
    half: tuple[float, float]
    tilt: float = 0.0
    center: tuple[float, float] = (0.0, 0.0)


# Rows (v from the top) of the eye and mouth grids: the eye has a row on the
# lower-lid line; the mouth rows at v = 0.49 / 0.51 lie inside the dark slit drawn at
# v = 0.5, so pulling them apart opens a mouth that shows only the interior colour.
_EYE_V = {
    "default": (0.0, EYE_LASH_V[0], EYE_LASH_V[1], 0.4, 0.55, 0.67, EYE_LID_V, 1.0),
    "high": (
        0.0,
        0.07,
        EYE_LASH_V[0],
        0.2,
        EYE_LASH_V[1],
        0.33,
        0.4,
        0.48,
        0.55,
        0.62,
        0.67,
        0.73,
        EYE_LID_V,
        0.88,
        1.0,
    ),
}
_MOUTH_V = {
    "default": (0.0, 0.2, 0.36, 0.44, 0.49, 0.5, 0.51, 0.56, 0.64, 0.8, 1.0),
    "high": (
        0.0,
        0.1,
        0.2,
        0.28,
        0.36,
        0.42,
        0.46,
        0.49,
        0.5,
        0.51,
        0.54,
        0.58,
        0.64,
        0.72,
        0.8,
        0.9,
        1.0,
    ),
}
_COLS = {  # columns per feature (default, high)
    "eye": (7, 13),
    "mouth": (9, 15),
    "brow": (5, 9),
    "nose": (3, 5),
    "blush": (4, 7),
}
_ROWS = {"brow": (3, 5), "nose": (3, 5), "blush": (3, 5)}
_IRIS = {"default": (2, 12), "high": (3, 20)}  # rings, segments


def _grid_spec(label, region, feature, side, bone, cols_u, rows_v, mirror_u=False) -> PatchSpec:
    u = np.asarray(cols_u, np.float64)
    v = np.asarray(rows_v, np.float64)
    uu, vv = np.meshgrid(u, v)
    a = 2.0 * uu.ravel() - 1.0
    b = 1.0 - 2.0 * vv.ravel()
    # columns run towards +X and rows downwards: cross(+X, -Y) = -Z, so flip to face out
    faces = grid_faces(len(v), len(u))[:, ::-1]
    local_uv = np.stack([1.0 - uu.ravel() if mirror_u else uu.ravel(), vv.ravel()], -1)
    return PatchSpec(
        label, region, feature, side, bone, a, b, faces, atlas.to_region(region, local_uv)
    )


def patch_specs(quality: str) -> list[PatchSpec]:
    """All face patches for a quality ("default" or "high"), in build order."""
    q = 0 if quality == "default" else 1
    lin = {k: np.linspace(0.0, 1.0, v[q]) for k, v in _COLS.items()}
    rows = {k: np.linspace(0.0, 1.0, v[q]) for k, v in _ROWS.items()}
    specs = []
    for side, s in ((1, "L"), (-1, "R")):
        region = "eye_left" if side > 0 else "eye_right"
        specs.append(
            _grid_spec(f"eye_{s}", region, "eye", side, "head", lin["eye"], _EYE_V[quality])
        )
    for side, s in ((1, "L"), (-1, "R")):
        rings, segments = _IRIS[quality]
        _, uv, faces = disc(
            np.zeros(3), np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), 1, 1, rings, segments
        )
        a = 2.0 * uv[:, 0] - 1.0
        b = 1.0 - 2.0 * uv[:, 1]
        bone = "leftEye" if side > 0 else "rightEye"
        specs.append(
            PatchSpec(
                f"iris_{s}", "iris", "iris", side, bone, a, b, faces, atlas.to_region("iris", uv)
            )
        )
    for side, s in ((1, "L"), (-1, "R")):
        # the brow texture has its inner end at u = 0: mirror it on the right brow
        specs.append(
            _grid_spec(
                f"brow_{s}", "brow", "brow", side, "head", lin["brow"], rows["brow"], side < 0
            )
        )
    specs.append(_grid_spec("nose", "nose", "nose", 0, "head", lin["nose"], rows["nose"]))
    specs.append(_grid_spec("mouth", "mouth", "mouth", 0, "head", lin["mouth"], _MOUTH_V[quality]))
    for side, s in ((1, "L"), (-1, "R")):
        specs.append(
            _grid_spec(f"blush_{s}", "blush", "blush", side, "head", lin["blush"], rows["blush"])
        )
    return specs


def placements(shape: dict[str, float]) -> dict[str, Placement]:
    """Placement of every patch label from the identity sliders (0.5 = neutral)."""

    def k(name: str) -> float:  # slider -> [-1, 1]
        return 2.0 * (shape[name] - 0.5)

    eye_scale = 1.0 + 0.18 * k("eye_size")
    eye_x = EYE_ANCHOR[0] + 0.012 * k("eye_spacing")
    eye_y = EYE_ANCHOR[1] + 0.012 * k("eye_height")
    tilt = np.radians(10.0) * k("eye_tilt")
    brow_y = BROW_ANCHOR[1] + 0.012 * k("eye_height") + 0.008 * k("brow_height")
    brow_x = BROW_ANCHOR[0] + 0.012 * k("eye_spacing")
    brow_half = (BROW_HALF[0], BROW_HALF[1] * (1.0 + 0.2 * k("brow_thickness")))
    nose_scale = 1.0 + 0.4 * k("nose_size")
    mouth_half = (
        MOUTH_HALF[0] * (1.0 + 0.3 * k("mouth_width")),
        MOUTH_HALF[1] * (1.0 + 0.15 * k("lip_fullness")),
    )
    mouth_y = MOUTH_ANCHOR[1] + 0.010 * k("mouth_height")
    out: dict[str, Placement] = {}
    for side, s in ((1, "L"), (-1, "R")):
        eye_half = (EYE_HALF[0] * eye_scale, EYE_HALF[1] * eye_scale)
        out[f"eye_{s}"] = Placement((side * eye_x, eye_y), eye_half, side * tilt)
        out[f"iris_{s}"] = Placement(
            (side * eye_x, eye_y),
            (IRIS_HALF[0] * eye_scale, IRIS_HALF[1] * eye_scale),
            side * tilt,
            (IRIS_CENTER[0] * eye_scale, IRIS_CENTER[1] * eye_scale),
        )
        out[f"brow_{s}"] = Placement((side * brow_x, brow_y), brow_half, side * 0.5 * tilt)
        out[f"blush_{s}"] = Placement((side * BLUSH_ANCHOR[0], BLUSH_ANCHOR[1]), BLUSH_HALF)
    out["nose"] = Placement(NOSE_ANCHOR, (NOSE_HALF[0] * nose_scale, NOSE_HALF[1] * nose_scale))
    out["mouth"] = Placement((MOUTH_ANCHOR[0], mouth_y), mouth_half)
    return out


def neutral_placements() -> dict[str, Placement]:
    from ..params import SHAPE_SLIDERS

    return placements({name: 0.5 for name in SHAPE_SLIDERS})


def local_metres(spec: PatchSpec, place: Placement) -> np.ndarray:
    """(N, 2) local coordinates in metres before the tilt, relative to the anchor."""
    return np.stack(
        [place.center[0] + spec.a * place.half[0], place.center[1] + spec.b * place.half[1]], -1
    )


# (x, y, tilt) of an anchor -> its frame (`anchor_frames`); anchors repeat across morphs
_FRAMES: dict[tuple[float, float, float], np.ndarray] = {}
_MAX_FRAMES = 4096


def _frame_key(place: Placement) -> tuple[float, float, float]:
    return float(place.anchor[0]), float(place.anchor[1]), float(place.tilt)


def anchor_frames(places: Iterable[Placement]) -> None:
    """Compute and cache the frames of the placements' anchors not seen yet: (3, 3) rows,
    the anchor's surface point relative to HEAD_CENTER and its tilted tangent axes `right`
    and `up` (unit). All in one `front_direction` call (0.14 ms for any number of points;
    an avatar brings ~5 new anchors); a row does not depend on the others."""
    keys = list(dict.fromkeys(key for key in map(_frame_key, places) if key not in _FRAMES))
    if not keys:
        return
    if len(_FRAMES) + len(keys) > _MAX_FRAMES:
        _FRAMES.clear()
    x, y, _ = np.array(keys).T
    d = front_direction(x, y)
    right, up = tangent_frame(d)
    radius = head_radius(d)
    for n, key in enumerate(keys):
        c, s = np.cos(key[2]), np.sin(key[2])
        frame = np.stack([radius[n] * d[n], c * right[n] + s * up[n], c * up[n] - s * right[n]])
        frame.setflags(write=False)
        _FRAMES[key] = frame


def place_patch(
    spec: PatchSpec, place: Placement, local: np.ndarray, lift: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray]:
    """Project local metres (N, 2) (before the tilt) onto the head.

    Returns positions (N, 3) and unit directions (N, 3) from HEAD_CENTER.
    """
    d = patch_directions(place, local)
    return head_point(d, lift), d


def anchor_frame(place: Placement) -> np.ndarray:
    """(3, 3) rows of `place`'s anchor frame (see `anchor_frames`)."""
    key = _frame_key(place)
    if key not in _FRAMES:
        anchor_frames([place])
    return _FRAMES[key]


def patch_directions(place: Placement, local: np.ndarray) -> np.ndarray:
    """Unit directions (N, 3) from HEAD_CENTER of local metres (N, 2) (before the tilt)."""
    return frame_directions(anchor_frame(place), local)


def frame_directions(frames: np.ndarray, local: np.ndarray) -> np.ndarray:
    """Unit directions (N, 3) from HEAD_CENTER of local metres (N, 2) in anchor frames:
    one (3, 3) for all points, or (N, 3, 3), one per point (the same arithmetic)."""
    base, right, up = frames[..., 0, :], frames[..., 1, :], frames[..., 2, :]
    q = base + local[:, :1] * right + local[:, 1:] * up
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def base_lift(spec: PatchSpec) -> float:
    return LIFT[spec.feature]


def patch_part(spec: PatchSpec, place: Placement, quality: str) -> Part:
    """The neutral geometry of one patch as a Part (positions get regenerated per avatar)."""
    positions, _ = place_patch(spec, place, local_metres(spec, place), base_lift(spec))
    material = "Body" if quality == "default" else "Face"
    return Part(
        label=spec.label,
        positions=positions,
        uvs=spec.uvs,
        faces=spec.faces,
        smooth=f"patch_{spec.label}",
        material=material,
    ).rigid(spec.bone)
