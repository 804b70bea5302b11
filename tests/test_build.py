"""The procedural chibi: budgets, rig, skin, morph targets, sliders, geometry sanity."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import trimesh

from avatar3d import atlas
from avatar3d.avatar import (
    MORPH_TARGET_NAMES,
    REQUIRED_HUMANOID_BONES,
    VRM0_REQUIRED_HUMANOID_BONES,
)
from avatar3d.build import MORPH_REGIONS, QUALITY_PRESETS, build_avatar, vertex_labels
from avatar3d.errors import ChibiError
from avatar3d.params import HAIR_STYLES, SHAPE_SLIDERS, AvatarParams

SAMPLES = sorted((Path(__file__).resolve().parents[1] / "samples" / "params").glob("*.json"))
EXTRA_BONES = ("chest", "upperChest", "neck", "leftShoulder", "rightShoulder", "leftEye",
               "rightEye", "leftToes", "rightToes")  # fmt: skip
HEAD_LABELS = {"head", "face_L", "face_R"}


def _shape(**values: float) -> dict[str, float]:
    shape = {name: 0.5 for name in SHAPE_SLIDERS}
    shape.update(values)
    return shape


_CACHE: dict = {}


def built(quality: str = "default", **fields):
    """Build (once per test module) the avatar for these params fields."""
    key = (quality, json.dumps(fields, sort_keys=True))
    if key not in _CACHE:
        params = AvatarParams(**fields)
        _CACHE[key] = (params, build_avatar(params, quality), vertex_labels(params, quality))
    return _CACHE[key]


STYLE_CASES = [("default", s, "round" if i % 2 else "none") for i, s in enumerate(HAIR_STYLES)]
STYLE_CASES += [("high", s, "square" if i % 2 else "none") for i, s in enumerate(HAIR_STYLES)]


@pytest.mark.parametrize("quality, style, glasses", STYLE_CASES)
def test_budget_and_basic_validity(quality, style, glasses):
    params, avatar, labels = built(quality, hair_style=style, glasses=glasses)
    budget = QUALITY_PRESETS[quality]
    assert avatar.triangle_count <= budget.max_triangles
    assert len(avatar.materials) <= budget.max_materials
    assert len(avatar.skeleton.names) <= budget.max_bones
    assert len(avatar.textures) == 1
    assert avatar.textures[0].shape == (budget.texture_size, budget.texture_size, 4)
    assert avatar.textures[0].dtype == np.uint8
    if quality == "default":
        assert len(avatar.submeshes) == 1 and len(avatar.materials) == 1
    v = len(avatar.vertices)
    assert avatar.vertices.dtype == np.float32 and avatar.vertices.shape == (v, 3)
    assert np.isfinite(avatar.vertices).all()
    assert np.allclose(np.linalg.norm(avatar.normals, axis=1), 1.0, atol=1e-4)
    assert avatar.uvs.shape == (v, 2) and avatar.uvs.dtype == np.float32
    assert labels.shape == (v,)
    faces = np.concatenate([s.faces for s in avatar.submeshes])
    assert faces.dtype == np.uint32 and faces.max() < v
    assert len(np.unique(faces)) == v  # no unused vertices
    for s in avatar.submeshes:
        assert 0 <= s.material < len(avatar.materials)
        assert avatar.materials[s.material].texture == 0
    assert _uvs_inside_regions(avatar.uvs)


def _uvs_inside_regions(uv: np.ndarray) -> bool:
    """Every UV lies inside one atlas region's inset rectangle (so filtering never bleeds)."""
    inside = np.zeros(len(uv), bool)
    for name in atlas.CELLS:
        u0, v0, u1, v1 = atlas.region_rect(name)
        inside |= (
            (uv[:, 0] >= u0 - 1e-6) & (uv[:, 0] <= u1 + 1e-6)
            & (uv[:, 1] >= v0 - 1e-6) & (uv[:, 1] <= v1 + 1e-6)
        )  # fmt: skip
    return bool(inside.all())


def test_deterministic_even_after_the_cache_is_rebuilt():
    from avatar3d import build

    params = AvatarParams(hair_style="twintails", glasses="round", shape=_shape(eye_size=0.8))
    first = build_avatar(params)
    build._base.cache_clear()
    second = build_avatar(params)
    for name in ("vertices", "normals", "uvs", "joints", "weights"):
        assert np.array_equal(getattr(first, name), getattr(second, name)), name
    assert np.array_equal(first.submeshes[0].faces, second.submeshes[0].faces)
    assert first.skeleton.names == second.skeleton.names
    assert np.array_equal(first.skeleton.positions, second.skeleton.positions)
    for name in MORPH_TARGET_NAMES:
        assert np.array_equal(first.morph_targets[name], second.morph_targets[name]), name
    assert np.array_equal(first.textures[0], second.textures[0])


def test_same_avatar_whatever_was_built_before():
    """Anchor frames are cached across avatars and computed several at a time: an avatar
    must not depend on which avatars came first (nor on how many points a call had)."""
    from avatar3d.build import face as build_face
    from avatar3d.build.head import front_direction
    from exporters import export

    params = AvatarParams(shape=_shape(eye_spacing=0.31, brow_height=0.72, mouth_height=0.2))
    others = [AvatarParams(shape=_shape(eye_spacing=v, brow_height=1 - v)) for v in (0.1, 0.9)]
    build_face._FRAMES.clear()
    alone = export(build_avatar(params), "glb")
    build_face._FRAMES.clear()
    for other in others:
        build_avatar(other)
    assert export(build_avatar(params), "glb") == alone
    x, y = np.random.default_rng(5).uniform([-0.05, 0.7], [0.05, 0.9], (300, 2)).T
    one_by_one = [front_direction(x[i : i + 1], y[i : i + 1])[0] for i in range(len(x))]
    assert np.array_equal(front_direction(x, y), np.stack(one_by_one))


@pytest.mark.parametrize("style", HAIR_STYLES)
def test_skeleton_is_a_humanoid_tree(style):
    _, avatar, _ = built(hair_style=style)
    sk = avatar.skeleton
    names = sk.names
    assert len(set(names)) == len(names)
    for bone in REQUIRED_HUMANOID_BONES + VRM0_REQUIRED_HUMANOID_BONES + EXTRA_BONES:
        assert bone in names
    assert names[0] == "hips" and sk.parents[0] == -1
    assert (sk.parents[1:] >= 0).all()
    assert all(sk.parents[i] < i for i in range(1, len(names)))  # parents before children
    assert sk.positions.shape == (len(names), 3)
    p = {n: sk.positions[i] for i, n in enumerate(names)}
    parent = {n: names[sk.parents[i]] for i, n in enumerate(names) if sk.parents[i] >= 0}
    assert parent["head"] == "neck" and parent["neck"] == "upperChest"
    assert parent["leftHand"] == "leftLowerArm" and parent["leftToes"] == "leftFoot"
    # T-pose, facing +Z, the character's left is +X
    assert p["leftHand"][0] > p["leftLowerArm"][0] > p["leftUpperArm"][0] > 0.05
    assert p["rightHand"][0] < -0.05
    assert abs(p["leftHand"][1] - p["leftUpperArm"][1]) < 1e-6
    assert p["head"][1] > p["neck"][1] > p["upperChest"][1] > p["chest"][1] > p["spine"][1]
    assert p["leftUpperLeg"][1] > p["leftLowerLeg"][1] > p["leftFoot"][1] > 0
    assert p["leftToes"][2] > p["leftFoot"][2]
    assert p["leftEye"][0] > 0 > p["rightEye"][0] and p["leftEye"][2] > 0.05
    hair = [n for n in names if n.startswith("hair_")]
    assert hair, "every style has spring joints"


@pytest.mark.parametrize("style", HAIR_STYLES)
def test_spring_chains_and_colliders(style):
    _, avatar, _ = built(hair_style=style)
    sk = avatar.skeleton
    head = sk.index("head")
    assert len(avatar.spring_chains) >= 2
    longest = max(len(c.joints) for c in avatar.spring_chains)
    if style in ("long", "ponytail", "twintails"):
        assert longest >= 5
    for chain in avatar.spring_chains:
        assert len(chain.joints) >= 2
        assert sk.parents[chain.joints[0]] == head
        for a, b in zip(chain.joints, chain.joints[1:], strict=False):
            assert sk.parents[b] == a
        assert chain.colliders and all(0 <= c < len(avatar.colliders) for c in chain.colliders)
        # at rest no moving joint starts inside a collider (hair would jump on the first frame)
        for j in chain.joints[1:]:
            for c in chain.colliders:
                col = avatar.colliders[c]
                centre = sk.positions[col.joint] + np.array(col.offset)
                gap = np.linalg.norm(sk.positions[j] - centre) - col.radius - chain.hit_radius
                assert gap > -0.002, (chain.name, j, c, gap)
    assert any(sk.names[c.joint] == "head" for c in avatar.colliders)
    assert any(sk.names[c.joint] in ("neck", "upperChest") for c in avatar.colliders)
    # eye_offset: between the eyes, relative to the head joint
    mid = 0.5 * (sk.positions[sk.index("leftEye")] + sk.positions[sk.index("rightEye")])
    offset = np.array(avatar.eye_offset)
    assert abs(offset[0]) < 1e-6
    assert np.linalg.norm(sk.positions[head] + offset - mid) < 0.06
    assert offset[1] > 0.08 and offset[2] > 0.1


@pytest.mark.parametrize("quality", ["default", "high"])
def test_skin_weights(quality):
    _, avatar, labels = built(quality, hair_style="long", glasses="round")
    sk = avatar.skeleton
    j, w = avatar.joints, avatar.weights
    assert j.dtype == np.uint16 and j.shape == (len(avatar.vertices), 4)
    assert w.dtype == np.float32 and w.shape == j.shape
    assert (w >= 0).all() and np.allclose(w.sum(axis=1), 1.0, atol=1e-6)
    assert int(j.max()) < len(sk.names)
    head = sk.index("head")

    def only(mask, bone):
        return np.all((w[mask][:, 0] == 1.0) & (j[mask][:, 0] == bone))

    for label in ("head", "face_L", "eye_L", "mouth", "brow_R", "ear_L", "tongue", "glasses"):
        assert only(labels == label, head), label
    assert only(labels == "iris_L", sk.index("leftEye"))
    assert only(labels == "iris_R", sk.index("rightEye"))
    hair_bones = {i for i, n in enumerate(sk.names) if n.startswith("hair_")}
    hair = labels == "hair"
    on_chain = np.isin(j[hair], list(hair_bones)) & (w[hair] > 0)
    assert on_chain.any(axis=1).mean() > 0.4  # most locks hang from spring chains
    # smooth blends at the elbow and the knee: some vertices have two real influences
    for a, b in (
        ("leftUpperArm", "leftLowerArm"),
        ("leftUpperLeg", "leftLowerLeg"),
        ("neck", "head"),
        ("leftShoulder", "leftUpperArm"),
    ):
        ia, ib = sk.index(a), sk.index(b)
        both = ((j == ia) & (w > 0.2)).any(axis=1) & ((j == ib) & (w > 0.2)).any(axis=1)
        assert both.sum() >= 4, (a, b)


def _check_morphs(avatar, labels):
    assert list(avatar.morph_targets) == list(MORPH_TARGET_NAMES)
    for name, delta in avatar.morph_targets.items():
        assert delta.shape == avatar.vertices.shape and delta.dtype == np.float32, name
        mag = np.linalg.norm(delta, axis=1)
        floor = 0.0003 if name == "viseme_sil" else 0.002
        assert mag.max() >= floor, (name, mag.max())
        moved = set(labels[mag > 1e-6])
        assert moved <= MORPH_REGIONS[name], (name, moved - MORPH_REGIONS[name])


def test_morph_targets_present_visible_and_confined():
    _check_morphs(*built(hair_style="bob", glasses="round")[1:])


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_morph_targets_confined_at_extreme_sliders(value):
    shape = {name: value for name in SHAPE_SLIDERS}
    _check_morphs(*built(shape=shape)[1:])


def test_morph_targets_high_quality():
    _check_morphs(*built("high", hair_style="ponytail")[1:])


def test_morph_directions():
    _, avatar, labels = built()
    v, m = avatar.vertices, avatar.morph_targets
    eye_l, iris_l, iris_r = labels == "eye_L", labels == "iris_L", labels == "iris_R"
    # blinking lowers the left eye's upper rows and leaves the right eye alone
    assert m["blinkLeft"][eye_l, 1].min() < -0.01
    assert np.abs(m["blinkLeft"][labels == "eye_R"]).max() == 0.0
    assert np.array_equal(m["eyeBlinkLeft"], m["blinkLeft"])
    # the blink closes the iris to a line (zero height)
    faces = avatar.submeshes[0].faces
    iris_faces = faces[iris_l[faces].all(axis=1)]

    def area(points):
        p = points[iris_faces].astype(np.float64)
        return np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1).sum() / 2

    assert area(v + m["blinkLeft"]) < 0.02 * area(v)
    # look directions are the character's: lookLeft moves both irises to +X
    for mask in (iris_l, iris_r):
        assert m["lookLeft"][mask, 0].mean() > 0.005
        assert m["lookRight"][mask, 0].mean() < -0.005
        assert m["lookUp"][mask, 1].mean() > 0.005
    assert m["eyeLookOutLeft"][iris_l, 0].mean() > 0.005  # out = away from the nose
    assert m["eyeLookInRight"][iris_r, 0].mean() > 0.005
    # jaw open: the mouth opens (rows move apart) and the chin moves down
    mouth = labels == "mouth"
    dy = m["jawOpen"][mouth, 1]
    assert dy.min() < -0.008 and dy.max() > 0.001
    face = np.isin(labels, ["face_L", "face_R"])
    assert m["jawOpen"][face, 1].min() < -0.008
    # a left smile lifts the +X corner of the mouth
    corner = mouth & (v[:, 0] > v[mouth, 0].max() - 0.003)
    assert m["mouthSmileLeft"][corner, 1].mean() > 0.004
    other = mouth & (v[:, 0] < v[mouth, 0].min() + 0.003)
    assert np.abs(m["mouthSmileLeft"][other]).max() < 1e-4
    # cheek puff pushes the cheeks outwards (away from the head's centre)
    blush = labels == "blush_L"
    assert (m["cheekPuff"][blush] * (v[blush] - [0, 0.87, 0])).sum(axis=1).max() > 0
    # tongue out moves the tongue forward
    tongue = labels == "tongue"
    assert m["tongueOut"][tongue, 2].min() > 0.015


def _bbox(avatar, labels, label_set):
    mask = np.isin(labels, list(label_set))
    pts = avatar.vertices[mask]
    return pts.min(axis=0), pts.max(axis=0)


def _extent(avatar, labels, label_set):
    lo, hi = _bbox(avatar, labels, label_set)
    return hi - lo


@pytest.mark.parametrize(
    "slider, label_set, axis, moved_labels",
    [
        ("eye_size", {"eye_L"}, 0, {"eye_L", "eye_R", "iris_L", "iris_R"}),
        ("mouth_width", {"mouth"}, 0, {"mouth"}),
        ("ear_size", {"ear_L"}, 1, {"ear_L", "ear_R"}),
        ("brow_thickness", {"brow_L"}, 1, {"brow_L", "brow_R"}),
        ("nose_size", {"nose"}, 0, {"nose"}),
        ("lip_fullness", {"mouth"}, 1, {"mouth"}),
        ("face_width", HEAD_LABELS, 0, None),
        ("head_size", HEAD_LABELS, 1, None),
        ("face_length", HEAD_LABELS, 1, None),
    ],
)
def test_sliders_grow_their_feature(slider, label_set, axis, moved_labels):
    low = built(shape=_shape(**{slider: 0.0}))
    high = built(shape=_shape(**{slider: 1.0}))
    assert _extent(high[1], high[2], label_set)[axis] > _extent(low[1], low[2], label_set)[axis]
    if moved_labels is not None:  # feature sliders change only their feature
        changed = np.linalg.norm(high[1].vertices - low[1].vertices, axis=1) > 1e-7
        assert set(high[2][changed]) <= moved_labels


def test_position_sliders_move_features():
    def centre(shape, label):
        _, avatar, labels = built(shape=shape)
        return avatar.vertices[labels == label].mean(axis=0)

    assert centre(_shape(eye_spacing=1.0), "eye_L")[0] > centre(_shape(eye_spacing=0.0), "eye_L")[0]
    assert centre(_shape(eye_height=1.0), "eye_R")[1] > centre(_shape(eye_height=0.0), "eye_R")[1]
    assert (
        centre(_shape(brow_height=1.0), "brow_L")[1] > centre(_shape(brow_height=0.0), "brow_L")[1]
    )
    assert (
        centre(_shape(mouth_height=1.0), "mouth")[1] > centre(_shape(mouth_height=0.0), "mouth")[1]
    )
    cheeks = centre(_shape(cheek_fullness=1.0), "blush_L") - [0, 0.87, 0]
    thin = centre(_shape(cheek_fullness=0.0), "blush_L") - [0, 0.87, 0]
    assert np.linalg.norm(cheeks) > np.linalg.norm(thin)

    def jaw(value):
        _, avatar, labels = built(shape=_shape(jaw_width=value))
        low = np.isin(labels, list(HEAD_LABELS)) & (avatar.vertices[:, 1] < 0.74)
        return np.ptp(avatar.vertices[low, 0])

    assert jaw(1.0) > jaw(0.0) + 0.01
    chin_long = built(shape=_shape(chin_length=1.0))
    chin_short = built(shape=_shape(chin_length=0.0))
    assert _bbox(*chin_long[1:], HEAD_LABELS)[0][1] < _bbox(*chin_short[1:], HEAD_LABELS)[0][1]

    # tilt: the outer corner of the left eye goes up with eye_tilt
    def lid_slope(value):  # the blink folds the eye onto its (tilted) lower-lid line
        _, avatar, labels = built(shape=_shape(eye_tilt=value))
        iris = labels == "iris_L"
        closed = avatar.vertices[iris] + avatar.morph_targets["blinkLeft"][iris]
        return np.polyfit(closed[:, 0], closed[:, 1], 1)[0]

    assert lid_slope(1.0) > lid_slope(0.5) + 0.1 > lid_slope(0.0) + 0.2


@pytest.mark.parametrize("head_size", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("style", ["short", "bun", "spiky"])
def test_proportions(style, head_size):
    _, avatar, labels = built(hair_style=style, shape=_shape(head_size=head_size))
    v = avatar.vertices
    assert abs(v[:, 1].min()) < 0.001  # feet on the ground
    assert 1.0 <= avatar.height <= 1.2
    chin = v[np.isin(labels, list(HEAD_LABELS)), 1].min()
    fraction = (v[:, 1].max() - chin) / avatar.height
    assert 0.35 <= fraction <= 0.45, fraction
    assert abs(v[:, 0].mean()) < 0.01  # roughly symmetric


def test_hair_length_lengthens_the_hair_and_its_chains():
    short = built(hair_style="long", hair_length=0.0)[1]
    long = built(hair_style="long", hair_length=1.0)[1]
    assert long.vertices[:, 1].min() <= short.vertices[:, 1].min()
    labels = built(hair_style="long", hair_length=0.0)[2]
    hair = labels == "hair"
    assert long.vertices[hair, 1].min() < short.vertices[hair, 1].min() - 0.1
    tips = [c.joints[-1] for c in long.spring_chains if c.name.startswith("back")]
    assert (long.skeleton.positions[tips, 1] < short.skeleton.positions[tips, 1] - 0.1).all()


def test_mesh_is_closed_where_it_should_be():
    _, avatar, labels = built(glasses="round")
    faces = np.concatenate([s.faces for s in avatar.submeshes])
    whole = trimesh.Trimesh(avatar.vertices, faces, process=False)
    assert whole.is_winding_consistent
    # the head surface on its own is a closed, outward-facing solid
    head = np.isin(labels, list(HEAD_LABELS))
    head_faces = faces[head[faces].all(axis=1)]
    mesh = trimesh.Trimesh(avatar.vertices, head_faces, process=False)
    mesh.merge_vertices()
    mesh.remove_unreferenced_vertices()
    assert mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0
    # every other closed piece too: all components but the open patches and the hair cap
    merged = trimesh.Trimesh(avatar.vertices, faces, process=False)
    merged.merge_vertices()
    closed = [c for c in merged.split(only_watertight=True)]
    assert len(closed) >= 20
    assert all(c.volume > 0 for c in closed)  # wound counter-clockwise from outside


def test_normals_face_outwards():
    _, avatar, _ = built()
    faces = np.concatenate([s.faces for s in avatar.submeshes])
    p = avatar.vertices[faces].astype(np.float64)
    face_n = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    vert_n = avatar.normals[faces].sum(axis=1)
    agree = (face_n * vert_n).sum(axis=1) > 0
    assert agree.mean() > 0.99


def test_materials():
    params, avatar, _ = built()
    (body,) = avatar.materials
    assert body.name == "Body" and body.texture == 0 and body.alpha_mode == "OPAQUE"
    assert 0.0 < body.outline_width <= 0.005
    assert all(0.0 <= c <= 1.0 for c in body.shade_color)
    assert avatar.params is params and avatar.name == params.name
    high = built("high")[1]
    assert [m.name for m in high.materials] == ["Body", "Face", "Hair"]


def test_expression_is_carried_not_baked():
    smile = built(
        expression={
            "smile": 1.0,
            "mouth_open": 0.0,
            "blink_left": 1.0,
            "blink_right": 0.0,
            "brow_raise": 0.0,
        }
    )
    plain = built()
    assert np.array_equal(smile[1].vertices, plain[1].vertices)
    assert smile[1].params.expression["smile"] == 1.0


def test_unknown_quality_is_a_clear_error():
    with pytest.raises(ChibiError) as err:
        build_avatar(AvatarParams(), "ultra")
    assert err.value.code == "invalid_quality"


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_sample_params_build(path):
    params = AvatarParams.from_json(path.read_text())
    avatar = build_avatar(params)
    assert avatar.triangle_count <= QUALITY_PRESETS["default"].max_triangles
    assert avatar.name == params.name


def test_samples_cover_styles_and_glasses():
    params = [AvatarParams.from_json(p.read_text()) for p in SAMPLES]
    assert any(p.name for p in params) and len(params) >= 5
    assert {"default"} <= {p.stem for p in SAMPLES}
    assert len({p.hair_style for p in params}) >= 5
    assert {"round", "square"} <= {p.glasses for p in params}


def test_cached_build_is_fast():
    params = AvatarParams(hair_style="long", glasses="round")
    build_avatar(params)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        build_avatar(params)
        times.append(time.perf_counter() - start)
    # generous bound for a loaded 2-core CI machine; ~20-40 ms when idle
    assert min(times) < 0.25
