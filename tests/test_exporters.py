"""Exporters: every format passes the Khronos glTF-Validator, the VRM schemas and the
structural checks of tests/validators.py, for real built avatars and for a small
hand-built one (tests/handmade.py).

One node process validates all files of this module (the `reports` fixture).
"""

from __future__ import annotations

import builtins
import io
import json
import tempfile
import zlib

import numpy as np
import pytest
from glb import parse_glb, read_accessor
from handmade import handmade_avatar
from PIL import Image
from validators import (
    DEFAULT_BUDGET,
    HIGH_BUDGET,
    assert_valid_file,
    expression_targets,
    gltf_validate_many,
    validate_vrm_schema,
    validator_problems,
)

import exporters
from avatar3d.avatar import (
    MORPH_TARGET_NAMES,
    VRM_EXPRESSION_PRESETS,
    Avatar,
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


def test_vrm0_materials_shade_as_their_vrm1_twins(files):
    """A 0.x file's _ShadeShift / _ShadeToony, migrated to MToon 1.0 as three-vrm's
    v0compat and UniVRM do, give the 1.0 file's factors: both files shade alike."""
    gltf1, _ = parse_glb(files["short.vrm1"])
    gltf0, _ = parse_glb(files["short.vrm0"])
    for material, properties in zip(
        gltf1["materials"], gltf0["extensions"]["VRM"]["materialProperties"], strict=True
    ):
        mtoon = material["extensions"]["VRMC_materials_mtoon"]
        shift0 = properties["floatProperties"]["_ShadeShift"]
        toony0 = properties["floatProperties"]["_ShadeToony"]
        toony1 = toony0 + (1 - toony0) * (0.5 + 0.5 * shift0)  # the migration's lerp
        shift1 = -shift0 - (1 - toony1)
        assert shift1 == pytest.approx(mtoon["shadingShiftFactor"], abs=1e-9)
        assert toony1 == pytest.approx(mtoon["shadingToonyFactor"], abs=1e-9)


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
