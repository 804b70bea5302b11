"""Files load in the real three.js + @pixiv/three-vrm, in headless Chromium.

One browser session loads every file of this module (see tests/threevrm.py):
the two reference VRMs from ../shared, two broken files (the harness must catch
them), and our own avatars built from a few params as VRM 1.0, VRM 0.x and glb.
Screenshots land in tests/artifacts/threevrm/ (gitignored).
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from threevrm import SHARED_DIR, load_in_threevrm, missing_bones

import exporters
from avatar3d.avatar import MORPH_TARGET_NAMES, VRM_EXPRESSION_PRESETS
from avatar3d.build import build_avatar
from avatar3d.params import AvatarParams

ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "threevrm"
REFERENCE_DIR = SHARED_DIR / "reference-vrm"
REFERENCE_FILES = (
    "VRMC_vrm_expressions_isBinary_Overridden.vrm",
    "VRMC_materials_mtoon_UV_Animation_Test.vrm",
)
# Bones every VRM (0.x and 1.0) must map, as three-vrm names them.
REQUIRED_BONES = (
    "hips", "spine", "head",
    "leftUpperArm", "leftLowerArm", "leftHand", "rightUpperArm", "rightLowerArm", "rightHand",
    "leftUpperLeg", "leftLowerLeg", "leftFoot", "rightUpperLeg", "rightLowerLeg", "rightFoot",
)  # fmt: skip
# VRM 0.x also requires these; our avatars always have them.
OUR_REQUIRED_BONES = REQUIRED_BONES + ("chest", "neck")
# A few avatars that differ in every kind of parameter (shape, expression, colour, hair, glasses).
OUR_PARAMS: dict[str, AvatarParams] = {
    "default": AvatarParams(),
    "twintails": AvatarParams.from_dict({
        "shape": {"eye_size": 0.9, "face_width": 0.2, "head_size": 0.8, "mouth_width": 0.3},
        "expression": {"smile": 0.7},
        "hair_style": "twintails", "hair_length": 1.0, "hair_color": "#e07ab0",
        "iris_color": "#3a6fd0", "name": "Twin",
    }),
    "glasses": AvatarParams.from_dict({
        "shape": {"eye_size": 0.1, "jaw_width": 0.9, "chin_length": 0.8, "nose_size": 1.0},
        "expression": {"mouth_open": 0.6, "blink_left": 1.0},
        "hair_style": "spiky", "hair_length": 0.0, "hair_color": "#222222",
        "skin_color": "#8d5524", "glasses": "round", "name": "Specs",
    }),
    "long_high": AvatarParams(hair_style="long", hair_length=1.0, glasses="square"),
}  # fmt: skip
# Labels ending in "_high" are built with the high-quality preset (PC budget).
OUR_FORMATS = {"vrm1": "vrm", "vrm0": "vrm", "glb": "glb"}
OUR_FILES = [f"ours_{p}_{fmt}.{ext}" for p in OUR_PARAMS for fmt, ext in OUR_FORMATS.items()]
OUR_VRMS = [name for name in OUR_FILES if name.endswith(".vrm")]


def _glb_without_vrm(vrm_bytes: bytes) -> bytes:
    """The same binary glTF with the VRMC_vrm extension renamed away (a plain, valid glb)."""
    json_len = struct.unpack_from("<I", vrm_bytes, 12)[0]
    chunk = vrm_bytes[20 : 20 + json_len].replace(b'"VRMC_vrm"', b'"XXXX_vrm"')
    return vrm_bytes[:20] + chunk + vrm_bytes[20 + json_len :]


@pytest.fixture(scope="module")
def reports() -> dict[str, dict]:
    files = {name: (REFERENCE_DIR / name).read_bytes() for name in REFERENCE_FILES}
    # Broken inputs: the harness must report them as failures, not pass them.
    files["broken_truncated.vrm"] = files[REFERENCE_FILES[0]][:3000]
    files["broken_not_vrm.vrm"] = _glb_without_vrm(files[REFERENCE_FILES[0]])
    for label, params in OUR_PARAMS.items():
        avatar = build_avatar(params, "high" if label.endswith("_high") else "default")
        for fmt, ext in OUR_FORMATS.items():
            files[f"ours_{label}_{fmt}.{ext}"] = exporters.export(avatar, fmt)
    result = load_in_threevrm(files)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for name, report in result.items():
        if report.get("screenshot"):
            (ARTIFACTS / f"{name}.png").write_bytes(report["screenshot"])
    return result


def _describe(report: dict) -> str:
    return f"load_error={report.get('load_error')} errors={report['errors']}"


def _assert_rendered_something(png: bytes) -> None:
    """The screenshot is a PNG whose pixels are not all the background colour."""
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    background = image[0, 0]
    covered = np.any(np.abs(image - background) > 8, axis=-1).mean()
    assert covered > 0.02, f"only {covered:.1%} of the screenshot differs from the background"


@pytest.mark.parametrize("name", REFERENCE_FILES)
def test_reference_vrm_loads_cleanly(reports, name):
    report = reports[name]
    assert report["ok"], _describe(report)
    assert report["warnings"] == []
    assert report["meta_version"] == "1"
    assert missing_bones(report, REQUIRED_BONES) == []
    # VRM 1.0 faces +Z, so the avatar's left hand is on +X.
    assert report["humanoid"]["leftHand"]["world_position"][0] > 0
    _assert_rendered_something(report["screenshot"])


def test_reference_expressions_can_be_set(reports):
    report = reports["VRMC_vrm_expressions_isBinary_Overridden.vrm"]
    assert report["expression_names"] == ["happy", "blink"]
    for name, result in report["expressions"].items():
        assert result["preset"] and result["set_ok"], (name, result["error"])
        # This sample binds its expressions to texture transforms, not morph targets.
        assert result["binds"] == ["textureTransform", "textureTransform"]
    assert report["expressions"]["blink"]["is_binary"]


def test_reference_mtoon_materials(reports):
    assert reports["VRMC_materials_mtoon_UV_Animation_Test.vrm"]["materials"] == ["MToonMaterial"]


def test_harness_reports_broken_files(reports):
    truncated = reports["broken_truncated.vrm"]
    assert not truncated["loaded"] and not truncated["ok"]
    assert truncated["load_error"]
    not_vrm = reports["broken_not_vrm.vrm"]
    assert not not_vrm["ok"]
    assert "no VRM" in not_vrm["load_error"]


# -- our own avatars -------------------------------------------------------------


@pytest.mark.parametrize("name", OUR_VRMS)
def test_our_vrm_loads_without_errors(reports, name):
    report = reports[name]
    assert report["ok"], _describe(report)
    # three-vrm warns about files it half understands (unknown presets, missing nodes...).
    assert report["warnings"] == []
    assert report["meta_version"] == ("0" if "_vrm0." in name else "1")
    assert "MToonMaterial" in report["materials"], report["materials"]
    _assert_rendered_something(report["screenshot"])


@pytest.mark.parametrize("name", OUR_VRMS)
def test_our_vrm_humanoid(reports, name):
    report = reports[name]
    assert missing_bones(report, OUR_REQUIRED_BONES) == []
    raw_nodes = [report["humanoid"][bone]["raw"] for bone in OUR_REQUIRED_BONES]
    assert len(set(raw_nodes)) == len(raw_nodes), "two humanoid bones share a node"
    # After three-vrm's rotateVRM0 both versions face +Z: the avatar's left is +X.
    # A VRM 0.x that faces +Z in the file (instead of -Z) ends up mirrored here.
    bone = report["humanoid"]
    assert bone["leftHand"]["world_position"][0] > 0.1
    assert bone["rightHand"]["world_position"][0] < -0.1
    assert bone["head"]["world_position"][1] > bone["hips"]["world_position"][1]
    low, high = report["bounding_box"]["min"], report["bounding_box"]["max"]
    assert abs(low[1]) < 0.03, f"feet at y={low[1]:.3f} m, expected 0"
    assert 0.9 <= high[1] - low[1] <= 1.3, f"height {high[1] - low[1]:.2f} m"


@pytest.mark.parametrize("name", OUR_VRMS)
def test_our_vrm_every_expression_moves_the_mesh(reports, name):
    report = reports[name]
    # VRM 0.x has no "surprised" preset (three-vrm maps joy/sorrow/fun/a/blink_l... to
    # the 1.0 names); every other preset must be there, as a preset.
    presets = [p for p in VRM_EXPRESSION_PRESETS if not ("_vrm0." in name and p == "surprised")]
    missing = [p for p in presets if p not in report["expression_names"]]
    assert missing == [], f"presets missing from the file: {missing}"
    problems = {}
    # Every expression in the file, preset or custom; "neutral" binds nothing by design.
    for expression, result in report["expressions"].items():
        if not result["set_ok"]:
            problems[expression] = f"setValue/update threw: {result['error']}"
        elif expression != "neutral" and not result["changed"]:
            problems[expression] = f"no morph influence changed (binds: {result['binds']})"
    assert problems == {}
    # Distinct presets drive distinct morph targets (catches binds all pointing at one index).
    changed = {p: tuple(report["expressions"][p]["changed"]) for p in presets}
    assert len(set(changed.values())) == len(changed), changed


@pytest.mark.parametrize("name", OUR_VRMS)
def test_our_vrm_spring_bones_swing(reports, name):
    report = reports[name]
    assert report["spring_joint_count"] > 0
    assert report["spring_collider_count"] > 0
    assert report["spring_max_swing_rad"] > 0.05, "hair did not swing when the body moved"


@pytest.mark.parametrize("label", OUR_PARAMS)
def test_our_glb_loads_in_gltfloader_with_morph_names(reports, label):
    report = reports[f"ours_{label}_glb.glb"]
    assert report["ok"], _describe(report)
    assert report["warnings"] == []
    skinned = [mesh for mesh in report["meshes"] if mesh["skinned"]]
    assert len(skinned) >= 1
    for mesh in skinned:
        assert mesh["morph_targets"] == list(MORPH_TARGET_NAMES), mesh["name"]
    _assert_rendered_something(report["screenshot"])
