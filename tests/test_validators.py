"""The validators of tests/validators.py catch broken files: the structural checks, the
Khronos glTF-Validator and the VRM schemas, on the hand-built avatar's files broken one
way at a time; the VRM specification's own samples pass them."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from glb import build_glb, parse_glb
from handmade import handmade_avatar
from validators import (
    SHARED_DIR,
    Budget,
    gltf_validate_many,
    structure_problems,
    validate_vrm_schema,
    validator_problems,
)

import exporters

REFERENCE_DIR = SHARED_DIR / "reference-vrm"


@pytest.fixture(scope="module")
def files(thumbnail_png) -> dict[str, bytes]:
    """'handmade.<format>' -> the hand-built avatar exported in every format."""
    avatar = handmade_avatar()
    return {
        f"handmade.{fmt}": exporters.export(avatar, fmt, thumbnail_png) for fmt in exporters.FORMATS
    }


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
