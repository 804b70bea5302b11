"""Exporters: every format passes the Khronos glTF-Validator, the VRM schemas and the
structural checks of tests/validators.py, for real built avatars and for a small
hand-built one; the validators themselves are shown to catch broken files.

One node process validates all files of this module (the `reports` fixture).
"""

from __future__ import annotations

import builtins
import copy
import io
import json
import tempfile
import zlib

import numpy as np
import pytest
from PIL import Image
from validators import (
    DEFAULT_BUDGET,
    HIGH_BUDGET,
    SHARED_DIR,
    Budget,
    assert_valid_file,
    build_glb,
    expression_targets,
    gltf_validate_many,
    parse_glb,
    read_accessor,
    structure_problems,
    validate_vrm_schema,
    validator_problems,
)

import exporters
from avatar3d.avatar import (
    MORPH_TARGET_NAMES,
    VRM_EXPRESSION_PRESETS,
    Avatar,
    Material,
    Skeleton,
    SphereCollider,
    SpringChain,
    Submesh,
)
from avatar3d.build import build_avatar
from avatar3d.params import AvatarParams
from exporters.gltf_writer import GltfWriter, encode_png, write_avatar

# (label, params, quality): varied hair styles, both qualities.
BUILT = (
    ("short", AvatarParams(), "default"),
    (
        "twintails",
        AvatarParams(hair_style="twintails", hair_length=0.9, glasses="round"),
        "default",
    ),
    ("bun", AvatarParams(hair_style="bun", name="Bun"), "high"),
    ("long", AvatarParams(hair_style="long", hair_length=1.0, shape={"head_size": 0.9}), "high"),
)
BUDGETS = {"default": DEFAULT_BUDGET, "high": HIGH_BUDGET}
REFERENCE_DIR = SHARED_DIR / "reference-vrm"


# -- a hand-built avatar: boxes on a humanoid skeleton --------------------------------
# It pins the exporters' own contract on paths the builder may not take: an all-zero
# morph target, a MASK double-sided material, two joint influences, a hair chain.

_JOINTS = (  # name, parent, position (metres; faces +Z, the character's left is +X)
    ("hips", None, (0.0, 0.45, 0.0)), ("spine", "hips", (0.0, 0.52, 0.0)),
    ("chest", "spine", (0.0, 0.60, 0.0)), ("upperChest", "chest", (0.0, 0.66, 0.0)),
    ("neck", "upperChest", (0.0, 0.72, 0.0)), ("head", "neck", (0.0, 0.76, 0.0)),
    ("leftEye", "head", (0.06, 0.92, 0.14)), ("rightEye", "head", (-0.06, 0.92, 0.14)),
    ("leftShoulder", "upperChest", (0.04, 0.70, 0.0)),
    ("leftUpperArm", "leftShoulder", (0.10, 0.70, 0.0)),
    ("leftLowerArm", "leftUpperArm", (0.22, 0.70, 0.0)),
    ("leftHand", "leftLowerArm", (0.33, 0.70, 0.0)),
    ("rightShoulder", "upperChest", (-0.04, 0.70, 0.0)),
    ("rightUpperArm", "rightShoulder", (-0.10, 0.70, 0.0)),
    ("rightLowerArm", "rightUpperArm", (-0.22, 0.70, 0.0)),
    ("rightHand", "rightLowerArm", (-0.33, 0.70, 0.0)),
    ("leftUpperLeg", "hips", (0.06, 0.42, 0.0)),
    ("leftLowerLeg", "leftUpperLeg", (0.06, 0.22, 0.0)),
    ("leftFoot", "leftLowerLeg", (0.06, 0.05, 0.0)), ("leftToes", "leftFoot", (0.06, 0.01, 0.06)),
    ("rightUpperLeg", "hips", (-0.06, 0.42, 0.0)),
    ("rightLowerLeg", "rightUpperLeg", (-0.06, 0.22, 0.0)),
    ("rightFoot", "rightLowerLeg", (-0.06, 0.05, 0.0)),
    ("rightToes", "rightFoot", (-0.06, 0.01, 0.06)),
    ("hair1", "head", (0.0, 1.02, -0.16)), ("hair2", "hair1", (0.0, 0.92, -0.19)),
    ("hair3", "hair2", (0.0, 0.82, -0.20)),
)  # fmt: skip
_CUBE = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64)
_CUBE_FACES = np.array(
    [[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
     [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]], dtype=np.uint32,
)  # fmt: skip
ZERO_TARGET = "tongueOut"


def handmade_avatar() -> Avatar:
    """A 1 m box figure with every humanoid bone, every morph target and a hair chain."""
    names = [j[0] for j in _JOINTS]
    parents = np.array([names.index(p) if p else -1 for _, p, _ in _JOINTS])
    positions = np.array([j[2] for j in _JOINTS], dtype=np.float64)
    head = names.index("head")
    centres = positions + np.where(np.arange(len(names))[:, None] == head, [0.0, 0.14, 0.0], 0.0)
    half = np.where(np.arange(len(names))[:, None] == head, [0.16, 0.16, 0.15], 0.025)
    vertices = (centres[:, None, :] + _CUBE[None] * half[:, None, :]).reshape(-1, 3)
    normals = vertices - np.repeat(centres, 8, axis=0)
    joints = np.zeros((len(vertices), 4), dtype=np.uint16)
    weights = np.zeros((len(vertices), 4), dtype=np.float32)
    joints[:, 0] = np.repeat(np.arange(len(names)), 8)
    weights[:, 0] = 1.0
    # The lower corners of limb boxes also follow the parent joint.
    blended = np.flatnonzero((np.arange(len(vertices)) % 8 < 4) & (parents[joints[:, 0]] >= 0))
    blended = blended[joints[blended, 0] != head]
    joints[blended, 1] = parents[joints[blended, 0]]
    weights[blended, :2] = (0.75, 0.25)
    is_hair = np.array([n.startswith("hair") for n in names])
    faces = (_CUBE_FACES[None] + 8 * np.arange(len(names))[:, None, None]).astype(np.uint32)
    rng = np.random.default_rng(7)
    morph_targets = {}
    for name in MORPH_TARGET_NAMES:
        delta = np.zeros_like(vertices, dtype=np.float32)
        if name != ZERO_TARGET:  # three front corners of the head box (the "face")
            moved = 8 * head + rng.choice([1, 3, 5, 7], size=3, replace=False)
            delta[moved] = rng.normal(0.0, 0.01, size=(3, 3))
        morph_targets[name] = delta
    texture = np.full((256, 256, 4), 200, dtype=np.uint8)
    texture[200:, 200:, 3] = 0  # a cut-out corner for the MASK material
    hair = [names.index(n) for n in ("hair1", "hair2", "hair3")]
    return Avatar(
        name="Handmade",
        vertices=vertices.astype(np.float32),
        normals=(normals / np.linalg.norm(normals, axis=1, keepdims=True)).astype(np.float32),
        uvs=rng.uniform(0.05, 0.7, size=(len(vertices), 2)).astype(np.float32),
        submeshes=[
            Submesh(faces[~is_hair].reshape(-1, 3), 0),
            Submesh(faces[is_hair].reshape(-1, 3), 1),
        ],
        joints=joints,
        weights=weights,
        skeleton=Skeleton(names=names, parents=parents, positions=positions),
        morph_targets=morph_targets,
        materials=[
            Material(name="body", base_color=(1.0, 0.9, 0.85, 1.0), outline_width=0.002),
            Material(
                name="hair", alpha_mode="MASK", double_sided=True, shade_color=(0.3, 0.2, 0.2)
            ),
        ],
        textures=[texture],
        spring_chains=[SpringChain(name="hair_back", joints=hair, colliders=[0])],
        colliders=[SphereCollider(joint=head, offset=(0.0, 0.14, 0.0), radius=0.15)],
        eye_offset=(0.0, 0.16, 0.14),
    )


# -- fixtures --------------------------------------------------------------------------


def _png(size: int, colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def avatars() -> dict[str, tuple[Avatar, str]]:
    """label -> (avatar, quality)."""
    result = {label: (build_avatar(params, quality), quality) for label, params, quality in BUILT}
    result["handmade"] = (handmade_avatar(), "default")
    return result


@pytest.fixture(scope="module")
def files(avatars, thumbnail_png) -> dict[str, bytes]:
    """'<label>.<format>' -> exported bytes, for every avatar and format. The built
    avatars get their thumbnail as a callable (as `export_file` passes the one it
    renders meanwhile), the hand-made one as bytes."""
    return {
        f"{label}.{fmt}": exporters.export(
            avatar, fmt, thumbnail_png if label == "handmade" else lambda: thumbnail_png
        )
        for label, (avatar, _quality) in avatars.items()
        for fmt in exporters.FORMATS
    }


@pytest.fixture(scope="module")
def reports(files) -> dict[str, dict]:
    return gltf_validate_many(files)


def _names() -> list[str]:
    return [
        f"{label}.{fmt}"
        for label in [b[0] for b in BUILT] + ["handmade"]
        for fmt in exporters.FORMATS
    ]


# -- every file is valid -----------------------------------------------------------------


@pytest.mark.parametrize("name", _names())
def test_file_passes_validator_schemas_and_structure(name, files, reports, avatars):
    data, report = files[name], reports[name]
    assert report["issues"]["numErrors"] == 0, validator_problems(report)
    assert_valid_file(data, name, BUDGETS[avatars[name.split(".")[0]][1]], report=report)
    gltf, _ = parse_glb(data)
    fmt = name.split(".")[1]
    expected = {
        "glb": [],
        "vrm1": ["VRMC_vrm", "VRMC_springBone", "VRMC_materials_mtoon"],
        "vrm0": ["VRM"],
    }
    assert validate_vrm_schema(gltf) == expected[fmt]
    # What the validator reports beyond errors/warnings: only infos we expect.
    infos = {m["code"] for m in report["issues"]["messages"] if m["severity"] == 2}
    assert infos <= {"UNSUPPORTED_EXTENSION", "UNUSED_OBJECT", "NODE_EMPTY"}, infos


def test_warnings_the_validator_gives_are_exactly_the_documented_ones(files, reports):
    """VRM 1.0: one MULTIPLE_EXTENSIONS per material; VRM 0.x: one INVALID_EXTENSION_NAME_FORMAT."""
    for name, report in reports.items():
        gltf, _ = parse_glb(files[name])
        warnings = sorted(m["code"] for m in report["issues"]["messages"] if m["severity"] == 1)
        expected = {
            "glb": [],
            "vrm1": ["MULTIPLE_EXTENSIONS"] * len(gltf["materials"]),
            "vrm0": ["INVALID_EXTENSION_NAME_FORMAT"],
        }[name.split(".")[1]]
        assert warnings == expected, name


# -- contents ------------------------------------------------------------------------------


def _positions(data: bytes) -> tuple[dict, bytes, np.ndarray]:
    gltf, binary = parse_glb(data)
    attributes = gltf["meshes"][0]["primitives"][0]["attributes"]
    return gltf, binary, read_accessor(gltf, binary, attributes["POSITION"])


def _morph(gltf: dict, binary: bytes, name: str) -> np.ndarray:
    index = gltf["meshes"][0]["extras"]["targetNames"].index(name)
    return read_accessor(
        gltf, binary, gltf["meshes"][0]["primitives"][0]["targets"][index]["POSITION"]
    )


def test_glb_round_trips_the_avatar(avatars, files):
    """Positions, normals, uvs, skin, every morph target (sparse) and faces read back exactly."""
    for label, (avatar, _q) in avatars.items():
        gltf, binary = parse_glb(files[f"{label}.glb"])
        primitives = gltf["meshes"][0]["primitives"]
        attributes = primitives[0]["attributes"]
        for key, array in (("POSITION", avatar.vertices), ("NORMAL", avatar.normals),
                           ("TEXCOORD_0", avatar.uvs), ("JOINTS_0", avatar.joints),
                           ("WEIGHTS_0", avatar.weights)):  # fmt: skip
            np.testing.assert_array_equal(read_accessor(gltf, binary, attributes[key]), array)
        assert gltf["meshes"][0]["extras"]["targetNames"] == list(avatar.morph_targets)
        assert list(avatar.morph_targets) == list(MORPH_TARGET_NAMES)
        for name, delta in avatar.morph_targets.items():
            np.testing.assert_array_equal(_morph(gltf, binary, name), delta)
        for primitive, sub in zip(primitives, avatar.submeshes, strict=True):
            faces = read_accessor(gltf, binary, primitive["indices"]).reshape(-1, 3)
            np.testing.assert_array_equal(faces, sub.faces)
        assert "weights" not in gltf["meshes"][0]  # morph targets rest at 0 (see gltf_writer)
        assert all("KHR_materials_unlit" in m["extensions"] for m in gltf["materials"])


def test_vrm1_faces_plus_z_and_vrm0_is_turned_180_degrees(avatars, files):
    for label, (avatar, _q) in avatars.items():
        gltf1, bin1, pos1 = _positions(files[f"{label}.vrm1"])
        gltf0, bin0, pos0 = _positions(files[f"{label}.vrm0"])
        head = avatar.skeleton.positions[avatar.skeleton.index("head")]
        # The mouth (what "aa" moves) is in front of the head joint: +Z in 1.0, -Z in 0.x.
        mouth = np.flatnonzero(np.abs(avatar.morph_targets["aa"]).sum(axis=1) > 0)
        assert pos1[mouth, 2].mean() > head[2] + 0.02
        assert pos0[mouth, 2].mean() < -head[2] - 0.02
        np.testing.assert_array_equal(pos0, pos1 * [-1, 1, -1])
        np.testing.assert_array_equal(
            _morph(gltf0, bin0, "blinkLeft"), _morph(gltf1, bin1, "blinkLeft") * [-1, 1, -1]
        )
        # The character's left eye: +X in 1.0, -X in 0.x (node translations follow).
        eye1 = gltf1["nodes"][
            gltf1["extensions"]["VRMC_vrm"]["humanoid"]["humanBones"]["leftEye"]["node"]
        ]
        bones0 = {
            b["bone"]: b["node"] for b in gltf0["extensions"]["VRM"]["humanoid"]["humanBones"]
        }
        assert eye1["translation"][0] > 0 > gltf0["nodes"][bones0["leftEye"]]["translation"][0]


def test_vrm1_expressions_bind_the_morph_target_of_the_same_name(files):
    for name in [n for n in files if n.endswith(".vrm1")]:
        gltf, _ = parse_glb(files[name])
        assert expression_targets(gltf) == {p: [p] for p in VRM_EXPRESSION_PRESETS}
        preset = gltf["extensions"]["VRMC_vrm"]["expressions"]["preset"]
        assert (
            preset["happy"]["overrideBlink"] == "blend" and preset["aa"]["overrideBlink"] == "none"
        )
        assert all(
            preset[b]["overrideBlink"] == "none" for b in ("blink", "blinkLeft", "blinkRight")
        )


def test_vrm0_blend_shapes_map_the_presets(files):
    expected = {"neutral": [], "a": ["aa"], "i": ["ih"], "u": ["ou"], "e": ["ee"], "o": ["oh"],
                "blink": ["blink"], "blink_l": ["blinkLeft"], "blink_r": ["blinkRight"],
                "joy": ["happy"], "angry": ["angry"], "sorrow": ["sad"], "fun": ["relaxed"],
                "lookup": ["lookUp"], "lookdown": ["lookDown"], "lookleft": ["lookLeft"],
                "lookright": ["lookRight"], "Surprised": ["surprised"]}  # fmt: skip
    for name in [n for n in files if n.endswith(".vrm0")]:
        gltf, _ = parse_glb(files[name])
        assert expression_targets(gltf) == expected
        groups = gltf["extensions"]["VRM"]["blendShapeMaster"]["blendShapeGroups"]
        assert {b["weight"] for g in groups for b in g["binds"]} == {100.0}


def test_vrm_materials_springs_and_thumbnail(avatars, files, thumbnail_png):
    for label, (avatar, _q) in avatars.items():
        gltf1, bin1 = parse_glb(files[f"{label}.vrm1"])
        gltf0, bin0 = parse_glb(files[f"{label}.vrm0"])
        vrm1, vrm0 = gltf1["extensions"]["VRMC_vrm"], gltf0["extensions"]["VRM"]
        for material in gltf1["materials"]:
            assert set(material["extensions"]) == {"VRMC_materials_mtoon", "KHR_materials_unlit"}
        properties = vrm0["materialProperties"]
        assert [p["shader"] for p in properties] == ["VRM/MToon"] * len(avatar.materials)
        assert all(
            0 <= p["textureProperties"]["_MainTex"] < len(gltf0["textures"]) for p in properties
        )
        # Thumbnails: 1.0 points at the image, 0.x at a texture of it; the bytes are ours.
        view1 = gltf1["bufferViews"][gltf1["images"][vrm1["meta"]["thumbnailImage"]]["bufferView"]]
        texture0 = gltf0["textures"][vrm0["meta"]["texture"]]
        view0 = gltf0["bufferViews"][gltf0["images"][texture0["source"]]["bufferView"]]
        for view, binary in ((view1, bin1), (view0, bin0)):
            assert (
                binary[view["byteOffset"] : view["byteOffset"] + view["byteLength"]]
                == thumbnail_png
            )
        # Spring bones: one spring per chain, colliders on the head.
        springs = gltf1["extensions"]["VRMC_springBone"]
        assert len(springs["springs"]) == len(avatar.spring_chains) >= 1
        head1 = vrm1["humanoid"]["humanBones"]["head"]["node"]
        assert any(c["node"] == head1 for c in springs["colliders"])
        groups0 = vrm0["secondaryAnimation"]["boneGroups"]
        assert [g["bones"] for g in groups0] == [[c.joints[0]] for c in avatar.spring_chains]
        assert vrm1["lookAt"]["type"] == "bone" and vrm0["firstPerson"]["lookAtTypeName"] == "Bone"


def test_gaze_falls_back_to_expressions_without_weighted_eye_bones():
    avatar = handmade_avatar()
    eyes = [avatar.skeleton.index(e) for e in ("leftEye", "rightEye")]
    avatar.joints[np.isin(avatar.joints, eyes)] = avatar.skeleton.index("head")
    gltf1, _ = parse_glb(exporters.export(avatar, "vrm1"))
    look_at = gltf1["extensions"]["VRMC_vrm"]["lookAt"]
    assert look_at["type"] == "expression" and look_at["rangeMapVerticalUp"]["outputScale"] == 1.0
    gltf0, _ = parse_glb(exporters.export(avatar, "vrm0"))
    assert gltf0["extensions"]["VRM"]["firstPerson"]["lookAtTypeName"] == "BlendShape"


def test_a_deferred_thumbnail_is_made_once_after_the_rest(thumbnail_png):
    """A callable thumbnail is called once, when everything else is written: its bytes
    come last in the buffer, and a non-PNG from it is refused like PNG bytes are."""
    avatar = handmade_avatar()
    calls = []

    def make_thumbnail() -> bytes:
        calls.append("thumbnail")
        return thumbnail_png

    for fmt in ("vrm1", "vrm0"):
        calls.clear()
        data = exporters.export(avatar, fmt, make_thumbnail)
        gltf, binary = parse_glb(data)
        (image,) = [image for image in gltf["images"] if image["name"] == "thumbnail"]
        view = gltf["bufferViews"][image["bufferView"]]
        assert calls == ["thumbnail"]
        assert view["byteOffset"] == max(v.get("byteOffset", 0) for v in gltf["bufferViews"])
        assert binary[view["byteOffset"] : view["byteOffset"] + view["byteLength"]] == (
            thumbnail_png
        )
    with pytest.raises(ValueError, match="not a PNG"):
        exporters.export(avatar, "vrm1", lambda: b"GIF89a....")


# -- the facade and bad input -----------------------------------------------------------------


def test_facade_formats_and_errors(thumbnail_png):
    avatar = handmade_avatar()
    assert exporters.FORMATS == ("glb", "vrm1", "vrm0")
    assert exporters.FILE_EXTENSIONS == {"glb": ".glb", "vrm1": ".vrm", "vrm0": ".vrm"}
    assert exporters.export(avatar, "glb", thumbnail_png) == exporters.export(avatar, "glb")
    with pytest.raises(ValueError, match="unknown format"):
        exporters.export(avatar, "fbx")
    with pytest.raises(ValueError, match="not a PNG"):
        exporters.export(avatar, "vrm1", b"GIF89a....")
    broken = handmade_avatar()
    broken.vertices[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        exporters.export(broken, "glb")
    broken = handmade_avatar()
    broken.submeshes[0].faces[0, 0] = len(broken.vertices)
    with pytest.raises(ValueError, match="vertex"):
        exporters.export(broken, "vrm0")
    broken = handmade_avatar()
    broken.skeleton.parents[broken.skeleton.index("spine")] = -1  # a second root
    with pytest.raises(ValueError, match="one tree"):
        exporters.export(broken, "vrm1")
    broken = handmade_avatar()
    broken.spring_chains[0].colliders = [7]
    with pytest.raises(ValueError, match="missing collider"):
        exporters.export(broken, "vrm1")


def test_png_encoder_round_trips_through_pillow():
    """Small images and large ones (over PARALLEL_DEFLATE_BYTES: deflated in two halves on
    two threads, one zlib stream that zlib and Pillow read, the same bytes every time)."""
    from exporters.gltf_writer import PARALLEL_DEFLATE_BYTES, _deflate

    rng = np.random.default_rng(3)
    large = (700, 600, 3)
    assert large[0] * (1 + large[1] * large[2]) > PARALLEL_DEFLATE_BYTES
    for shape in ((37, 53, 3), (64, 64, 4), (1, 5, 4), large):
        image = rng.integers(0, 256, size=shape, dtype=np.uint8)
        image[: shape[0] // 2] = 17  # a flat half, as in a toon atlas
        png = encode_png(image)
        decoded = np.asarray(Image.open(io.BytesIO(png)))
        np.testing.assert_array_equal(decoded, image)
        assert encode_png(image) == png
    with pytest.raises(ValueError):
        encode_png(np.zeros((4, 4), dtype=np.uint8))
    data = rng.integers(0, 4, size=3 * PARALLEL_DEFLATE_BYTES // 2, dtype=np.uint8).tobytes()
    assert zlib.decompress(_deflate(memoryview(data))) == data  # zlib checks the Adler-32


def test_json_is_what_pygltflib_writes():
    """The writer's fast JSON path gives the same document as pygltflib's own serializer."""
    writer = GltfWriter()
    write_avatar(writer, handmade_avatar(), rotate_y180=True)
    ours = json.loads(writer.to_json())
    assert ours == json.loads(writer.gltf.gltf_to_json())
    assert ours["materials"][0]["extensions"] == {"KHR_materials_unlit": {}}


def test_exporters_write_no_files(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("an exporter touched the file system")

    avatar = handmade_avatar()
    monkeypatch.setattr(builtins, "open", refuse)
    for name in (
        "NamedTemporaryFile",
        "TemporaryFile",
        "mkstemp",
        "mkdtemp",
        "SpooledTemporaryFile",
    ):
        monkeypatch.setattr(tempfile, name, refuse)
    for fmt in exporters.FORMATS:
        assert exporters.export(avatar, fmt, _png(8, (1, 2, 3)))[:4] == b"glTF"


# -- the validators catch broken files ------------------------------------------------------


def _broken(data: bytes, change) -> bytes:
    gltf, binary = parse_glb(data)
    gltf = copy.deepcopy(gltf)
    binary = change(gltf, binary) or binary
    return build_glb(gltf, binary)


def test_structure_checks_catch_broken_files(files):
    vrm1, vrm0 = files["handmade.vrm1"], files["handmade.vrm0"]
    assert structure_problems(vrm1) == [] and structure_problems(vrm0) == []

    def shift_joint(g, b):
        g["nodes"][3]["translation"][1] += 0.01

    def share_bone(g, b):
        bones = g["extensions"]["VRMC_vrm"]["humanoid"]["humanBones"]
        bones["spine"]["node"] = bones["chest"]["node"]

    def bad_expression(g, b):
        g["extensions"]["VRMC_vrm"]["expressions"]["preset"]["aa"]["morphTargetBinds"][0][
            "index"
        ] = 999

    def weights_from_normals(g, b):
        attributes = g["meshes"][0]["primitives"][0]["attributes"]
        attributes["WEIGHTS_0"] = attributes["TEXCOORD_0"]

    def unchain_spring(g, b):
        g["extensions"]["VRMC_springBone"]["springs"][0]["joints"].reverse()

    def nan_position(g, b):
        view = g["bufferViews"][
            g["accessors"][g["meshes"][0]["primitives"][0]["attributes"]["POSITION"]]["bufferView"]
        ]
        return b[: view["byteOffset"]] + np.float32(np.nan).tobytes() + b[view["byteOffset"] + 4 :]

    def drop_neck(g, b):
        bones = g["extensions"]["VRM"]["humanoid"]["humanBones"]
        bones[:] = [x for x in bones if x["bone"] != "neck"]

    def missing_node(g, b):
        g["extensions"]["VRM"]["secondaryAnimation"]["boneGroups"][0]["bones"] = [len(g["nodes"])]

    cases = [
        (vrm1, shift_joint, "inverse binds"),
        (vrm1, share_bone, "share a node"),
        (vrm1, bad_expression, "no morph target 999"),
        (vrm1, weights_from_normals, "sum to 1"),
        (vrm1, unchain_spring, "not below the one before"),
        (vrm1, nan_position, "NaN"),
        (vrm0, drop_neck, "neck is not mapped"),
        (vrm0, missing_node, "is not one of"),
    ]
    for data, change, expected in cases:
        problems = structure_problems(_broken(data, change))
        assert any(expected in p for p in problems), (change.__name__, problems)
    tight = Budget(max_triangles=10, max_materials=1, max_bones=5, max_texture_size=64)
    problems = structure_problems(vrm1, tight)
    assert {p.split(":")[0] for p in problems} == {
        "triangles",
        "materials",
        "bones",
        "image 0 size",
    }


def test_gltf_validator_and_schemas_catch_broken_files(files):
    import jsonschema

    def wrong_count(g, b):
        g["accessors"][g["meshes"][0]["primitives"][0]["attributes"]["NORMAL"]]["count"] += 1

    broken = _broken(files["handmade.glb"], wrong_count)
    report = gltf_validate_many({"broken.glb": broken})["broken.glb"]
    assert report["issues"]["numErrors"] > 0 and validator_problems(report, parse_glb(broken)[0])
    gltf, _ = parse_glb(files["handmade.vrm1"])
    gltf["extensions"]["VRMC_vrm"]["meta"]["avatarPermission"] = "anyone"
    with pytest.raises(jsonschema.ValidationError):
        validate_vrm_schema(gltf)
    gltf, _ = parse_glb(files["handmade.vrm0"])
    gltf["extensions"]["VRM"]["blendShapeMaster"]["blendShapeGroups"][1]["presetName"] = "smile"
    with pytest.raises(jsonschema.ValidationError):
        validate_vrm_schema(gltf)


def test_reference_vrm_files_pass_the_validators():
    """Sanity check of the validators on the VRM spec's own samples (../shared/reference-vrm)."""
    import jsonschema

    names = (
        "VRMC_materials_mtoon_UV_Animation_Test.vrm",
        "VRMC_vrm_expressions_isBinary_Overridden.vrm",
    )
    data = {n: (REFERENCE_DIR / n).read_bytes() for n in names}
    reports = gltf_validate_many(data)
    for name in names:
        gltf, _ = parse_glb(data[name])
        # Their PNGs carry colour-space chunks the validator does not support; our exception
        # for MToon + unlit filters the MULTIPLE_EXTENSIONS warnings of the MToon sample.
        problems = validator_problems(reports[name], gltf)
        assert problems and all(p.startswith("IMAGE_FEATURES_UNSUPPORTED") for p in problems), (
            problems
        )
        assert structure_problems(data[name]) == []
    mtoon_sample, isbinary_sample = (parse_glb(data[n])[0] for n in names)
    assert validate_vrm_schema(mtoon_sample) == ["VRMC_vrm", "VRMC_materials_mtoon"]
    # The hand-written isBinary sample has "references": [], which the schema's minItems 1 rejects.
    with pytest.raises(jsonschema.ValidationError, match="should be non-empty"):
        validate_vrm_schema(isbinary_sample)
    isbinary_sample["extensions"]["VRMC_vrm"]["meta"]["references"] = ["vrm-specification"]
    assert validate_vrm_schema(isbinary_sample) == ["VRMC_vrm"]
