"""The procedural chibi base model: `AvatarParams` -> `Avatar`.

The neutral geometry of each (hair style, glasses, quality) is built once per
process and cached (`_base`); `build_avatar` then applies the params with
vectorised numpy: hair length (linear blend of the style at length 0 and 1),
face patch placements, the head-shape field, normals, skeleton, morph targets,
materials and the painted atlas.

Conventions: metres, Y up, facing +Z, the character's left is +X, T-pose,
feet on Y = 0, about 1.1 m tall with the head about 40% of it.

Region labels (`Avatar`-independent, for tests and tools): `vertex_labels(params,
quality)` gives each vertex's label ("eye_L", "iris_L", "mouth", "face_L",
"hair", "body"...); `MORPH_REGIONS` says which labels each morph target moves.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..avatar import Avatar, Material, Skeleton, SphereCollider, SpringChain, Submesh
from ..errors import ChibiError
from ..params import AvatarParams, hex_to_rgb
from .body import body_parts
from .face import (
    anchor_frames,
    local_metres,
    neutral_placements,
    patch_part,
    patch_specs,
    place_patch,
    placements,
)
from .glasses import glasses_parts
from .hair import COLLIDERS, ChainSpec, hair_parts
from .head import (
    HEAD_CENTER,
    ear_part,
    front_direction,
    head_grid_lookup,
    head_parts,
    head_point,
    head_radius,
    tongue_part,
)
from .layout import EYE_ANCHOR, LIFT, MOUTH_ANCHOR
from .morphs import MORPH_REGIONS, MorphContext, morph_targets
from .rig import build_skeleton, global_skin
from .shapes import Part, vertex_normals
from .sliders import HEAD_JOINT, ear_scale, head_field

__all__ = ["QUALITY_PRESETS", "Budget", "build_avatar", "MORPH_REGIONS", "vertex_labels"]


@dataclass(frozen=True)
class Budget:
    """Limits of a quality preset: triangles, materials, bones, atlas edge in pixels."""

    max_triangles: int
    max_materials: int
    max_bones: int
    texture_size: int


QUALITY_PRESETS: dict[str, Budget] = {
    # VRChat Quest "Excellent": one skinned mesh, one material, one 1024 texture
    "default": Budget(max_triangles=7500, max_materials=1, max_bones=75, texture_size=1024),
    # VRChat PC "Excellent"
    "high": Budget(max_triangles=32000, max_materials=4, max_bones=75, texture_size=2048),
}

_HEAD_GRID = {"default": (22, 36), "high": (44, 72)}  # (rings, segments) of the head sphere
_EYE_DEPTH = 0.035  # eye joints sit this far behind the eye surface (m)


@dataclass
class _Base:
    """The cached neutral avatar of one (hair style, glasses, quality)."""

    positions: np.ndarray  # (V, 3) at hair length 0, neutral sliders
    hair_idx: np.ndarray  # hair vertex indices
    hair_delta: np.ndarray  # (H, 3) hair length 1 minus length 0
    uvs: np.ndarray
    weld: np.ndarray
    labels: np.ndarray
    joints: np.ndarray
    weights: np.ndarray
    faces_by_material: list[tuple[str, np.ndarray]]
    all_faces: np.ndarray
    skeleton_names: list[str]
    skeleton_parents: np.ndarray
    skeleton_positions: np.ndarray  # hair joints at length 0
    hair_joint_delta: np.ndarray  # (B, 3), zero for non-hair joints
    chains: list[ChainSpec]
    chain_joints: list[list[int]]
    patches: list  # (PatchSpec, vertex indices)
    head_idx: np.ndarray
    head_front_start: int
    region_idx: np.ndarray  # vertices moved by the head-shape field
    ears: list  # (indices, root point)
    tongue_idx: np.ndarray
    glasses_idx: np.ndarray
    blush_idx: dict


def _offsets(parts: list[Part]) -> list[int]:
    return list(np.cumsum([0] + [p.n for p in parts]))


@lru_cache(maxsize=64)
def _base(style: str, glasses: str, quality: str) -> _Base:
    rings, segments = _HEAD_GRID[quality]
    places = neutral_placements()
    specs = patch_specs(quality)
    head = head_parts(rings, segments)
    ears = (
        [ear_part(1, 5, 10), ear_part(-1, 5, 10)]
        if quality == "default"
        else [ear_part(1, 9, 18), ear_part(-1, 9, 18)]
    )
    tongue = tongue_part(5, 8) if quality == "default" else tongue_part(8, 14)
    patches = [patch_part(s, places[s.label], quality) for s in specs]
    hair0, chains, joints0 = hair_parts(style, 0.0, quality)
    hair1, _, joints1 = hair_parts(style, 1.0, quality)
    accessories = glasses_parts(glasses, quality)
    body = body_parts(quality)
    groups = [head, ears, [tongue], patches, hair0, accessories, body]
    parts = [p for g in groups for p in g]
    offs = _offsets(parts)
    starts = {}
    i = 0
    for name, g in zip(
        ("head", "ears", "tongue", "patches", "hair", "glasses", "body"), groups, strict=True
    ):
        starts[name] = (offs[i], offs[i + len(g)])
        i += len(g)

    def span(name: str) -> np.ndarray:
        return np.arange(*starts[name])

    positions = np.concatenate([p.positions for p in parts])
    hair_idx = span("hair")
    hair_delta = np.concatenate([p.positions for p in hair1]) - positions[hair_idx]

    # skeleton with neutral eyes
    landmark = _landmark_directions(places)
    eye_pos = _eye_joints(np.stack([landmark["eye_L"], landmark["eye_R"]]), lambda p: p)
    skeleton, chain_joints = build_skeleton(
        eye_pos, [(c.name, j) for c, j in zip(chains, joints0, strict=True)]
    )
    hair_joint_delta = np.zeros_like(skeleton.positions)
    for indices, j0, j1 in zip(chain_joints, joints0, joints1, strict=True):
        hair_joint_delta[indices] = j1 - j0
    joints, weights = global_skin(parts, skeleton)

    # weld: same smooth group + same position -> one normal
    keys = np.concatenate(
        [np.full(p.n, hash_group) for hash_group, p in zip(_group_ids(parts), parts, strict=True)]
    )
    rounded = np.round(positions * 1e6).astype(np.int64)
    _, weld = np.unique(np.column_stack([keys, rounded]), axis=0, return_inverse=True)
    labels = np.concatenate(
        [
            p.vertex_labels if p.vertex_labels is not None else np.full(p.n, p.label, dtype=object)
            for p in parts
        ]
    )
    faces = [(p.material, p.faces + off) for p, off in zip(parts, offs, strict=False)]
    material_names = ["Body"] if quality == "default" else ["Body", "Face", "Hair"]
    by_material = []
    for name in material_names:
        chosen = [f for m, f in faces if (m if quality != "default" else "Body") == name]
        by_material.append((name, np.concatenate(chosen).astype(np.uint32)))
    patch_list = []
    o = starts["patches"][0]
    for spec, part in zip(specs, patches, strict=True):
        patch_list.append((spec, np.arange(o, o + part.n)))
        o += part.n
    ear_list = []
    o = starts["ears"][0]
    for part in ears:
        idx = np.arange(o, o + part.n)
        root = part.positions.mean(axis=0)
        root[0] = np.sign(root[0]) * (abs(root[0]) - 0.008)  # scale about the base of the ear
        ear_list.append((idx, root))
        o += part.n
    region_idx = np.arange(starts["head"][0], starts["glasses"][1])
    return _Base(
        positions=positions,
        hair_idx=hair_idx,
        hair_delta=hair_delta,
        uvs=np.concatenate([p.uvs for p in parts]).astype(np.float32),
        weld=weld.ravel(),
        labels=labels,
        joints=joints,
        weights=weights,
        faces_by_material=by_material,
        all_faces=np.concatenate([f for _, f in by_material]).astype(np.int64),
        skeleton_names=skeleton.names,
        skeleton_parents=skeleton.parents,
        skeleton_positions=skeleton.positions,
        hair_joint_delta=hair_joint_delta,
        chains=chains,
        chain_joints=chain_joints,
        patches=patch_list,
        head_idx=span("head"),
        head_front_start=starts["head"][0],
        region_idx=region_idx,
        ears=ear_list,
        tongue_idx=span("tongue"),
        glasses_idx=span("glasses"),
        blush_idx={
            1: next(i for s, i in patch_list if s.label == "blush_L"),
            -1: next(i for s, i in patch_list if s.label == "blush_R"),
        },
    )


def _group_ids(parts: list[Part]) -> list[int]:
    names: dict[str, int] = {}
    return [names.setdefault(p.smooth, len(names)) for p in parts]


def _landmark_directions(places: dict) -> dict[str, np.ndarray]:
    """Unit directions (3,) from HEAD_CENTER of the front surface points the rig and the
    morphs hang on: "eye_L", "eye_R" and "mouth" (their anchors) and the cheeks "blush_L",
    "blush_R" (a little outward and below theirs). One `front_direction` call: each costs
    0.14 ms, whatever the number of points."""
    points = []
    for label in ("eye_L", "eye_R", "mouth"):
        points.append(places[label].anchor)
    for side, label in ((1, "blush_L"), (-1, "blush_R")):
        a = places[label].anchor
        points.append((a[0] + side * 0.004, a[1] - 0.010))
    x, y = np.array(points, np.float64).T
    d = front_direction(x, y)
    return dict(zip(("eye_L", "eye_R", "mouth", "blush_L", "blush_R"), d, strict=True))


def _eye_joints(eye_dirs: np.ndarray, field) -> np.ndarray:
    """(2, 3) left and right eye joint positions behind the eye patches; eye_dirs (2, 3)."""
    return field(HEAD_CENTER + (head_radius(eye_dirs) - _EYE_DEPTH)[:, None] * eye_dirs)


def _check_quality(quality: str) -> Budget:
    if quality not in QUALITY_PRESETS:
        raise ChibiError(
            "invalid_quality", f"unknown quality {quality!r}; one of {', '.join(QUALITY_PRESETS)}"
        )
    return QUALITY_PRESETS[quality]


def vertex_labels(params: AvatarParams, quality: str = "default") -> np.ndarray:
    """(V,) region label of every vertex of `build_avatar(params, quality)` (same order)."""
    _check_quality(quality)
    return _base(params.hair_style, params.glasses, quality).labels


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    c = np.asarray(c, np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _materials(params: AvatarParams, quality: str) -> list[Material]:
    skin = np.array(hex_to_rgb(params.skin_color))
    hair = np.array(hex_to_rgb(params.hair_color))
    # shaded side: a warmer, darker skin (MToon shade colours are linear)
    skin_shade = tuple(float(x) for x in _srgb_to_linear(skin * np.array([0.86, 0.72, 0.74])))
    hair_shade = tuple(float(x) for x in _srgb_to_linear(hair * 0.7))
    body = Material("Body", texture=0, shade_color=skin_shade, outline_width=0.002)
    if quality == "default":
        return [body]
    return [
        body,
        Material("Face", texture=0, shade_color=skin_shade, outline_width=0.0),
        Material("Hair", texture=0, shade_color=hair_shade, outline_width=0.002),
    ]


def build_avatar(params: AvatarParams, quality: str = "default") -> Avatar:
    """Build the rigged, skinned, expressive chibi for `params`.

    quality: "default" (VRChat Quest Excellent budget) or "high" (PC Excellent).
    Deterministic: the same params give identical arrays.
    """
    budget = _check_quality(quality)
    base = _base(params.hair_style, params.glasses, quality)
    shape = params.shape
    rings, segments = _HEAD_GRID[quality]

    pos = base.positions.copy()
    pos[base.hair_idx] += params.hair_length * base.hair_delta
    places = placements(shape)
    anchor_frames(places.values())
    dirs = {}
    for spec, idx in base.patches:
        place = places[spec.label]
        pos[idx], dirs[spec.label] = place_patch(
            spec, place, local_metres(spec, place), LIFT[spec.feature]
        )
    scale = ear_scale(shape)
    for idx, root in base.ears:
        pos[idx] = root + (pos[idx] - root) * scale
    mouth_dy = places["mouth"].anchor[1] - MOUTH_ANCHOR[1]
    pos[base.tongue_idx, 1] += mouth_dy
    if len(base.glasses_idx):
        g = base.glasses_idx
        eye_dx = places["eye_L"].anchor[0] - EYE_ANCHOR[0]
        pos[g, 0] += eye_dx * np.clip(pos[g, 0] / 0.03, -1.0, 1.0)
        pos[g, 1] += places["eye_L"].anchor[1] - EYE_ANCHOR[1]

    def field(points: np.ndarray) -> np.ndarray:
        return head_field(points, shape)

    pos[base.region_idx] = field(pos[base.region_idx])

    normals = vertex_normals(pos, base.all_faces, base.weld)
    for spec, idx in base.patches:
        # patches borrow the head's normals so the toon shading does not outline them
        look, w = head_grid_lookup(dirs[spec.label], rings, segments)
        n = np.einsum("nk,nkc->nc", w, normals[base.head_front_start + look])
        normals[idx] = n / np.linalg.norm(n, axis=1, keepdims=True)

    # skeleton: body joints fixed, eyes and hair joints follow the head
    joint_pos = base.skeleton_positions + params.hair_length * base.hair_joint_delta
    hair_joints = np.concatenate(base.chain_joints) if base.chain_joints else np.zeros(0, int)
    joint_pos[hair_joints] = field(joint_pos[hair_joints])
    landmark = _landmark_directions(places)
    eye_dirs = np.stack([landmark["eye_L"], landmark["eye_R"]])
    eyes = _eye_joints(eye_dirs, field)
    names = base.skeleton_names
    joint_pos[names.index("leftEye")], joint_pos[names.index("rightEye")] = eyes[0], eyes[1]
    skeleton = Skeleton(
        names=list(names), parents=base.skeleton_parents.copy(), positions=joint_pos
    )

    head_scale = 1.0 + 0.12 * 2.0 * (shape["head_size"] - 0.5)
    colliders = []
    for joint, offset, radius in COLLIDERS:
        j = skeleton.index(joint)
        if joint == "head":
            centre = field((HEAD_JOINT + np.array(offset))[None, :])[0]
            offset = tuple(float(x) for x in centre - joint_pos[j])
            radius = radius * head_scale
        colliders.append(
            SphereCollider(joint=j, offset=tuple(float(x) for x in offset), radius=float(radius))
        )
    springs = [
        SpringChain(
            name=c.name,
            joints=list(j),
            stiffness=c.stiffness,
            drag=c.drag,
            gravity_power=c.gravity,
            hit_radius=c.hit_radius,
            colliders=list(c.colliders),
        )
        for c, j in zip(base.chains, base.chain_joints, strict=True)
    ]

    eye_mid = field(head_point(eye_dirs)).mean(axis=0)
    eye_offset = tuple(float(x) for x in eye_mid - joint_pos[names.index("head")])

    mouth_d = landmark["mouth"][None]
    cheeks = {
        side: field(head_point(landmark[label][None]))[0]
        for side, label in ((1, "blush_L"), (-1, "blush_R"))
    }
    ctx = MorphContext(
        positions=pos,
        field=field,
        patches={spec.label: (spec, places[spec.label], idx) for spec, idx in base.patches},
        head=base.head_idx,
        tongue=base.tongue_idx,
        blush=base.blush_idx,
        mouth_point=field(head_point(mouth_d))[0],
        mouth_dir=mouth_d[0],
        cheeks=cheeks,
    )
    morphs = morph_targets(ctx)

    from ..texture import paint_atlas

    textures = [paint_atlas(params, budget.texture_size)]
    return Avatar(
        name=params.name,
        vertices=pos.astype(np.float32),
        normals=normals.astype(np.float32),
        uvs=base.uvs.copy(),
        submeshes=[
            Submesh(faces=f.copy(), material=i) for i, (_, f) in enumerate(base.faces_by_material)
        ],
        joints=base.joints.copy(),
        weights=base.weights.copy(),
        skeleton=skeleton,
        morph_targets=morphs,
        materials=_materials(params, quality),
        textures=textures,
        spring_chains=springs,
        colliders=colliders,
        eye_offset=eye_offset,
        params=params,
    )
