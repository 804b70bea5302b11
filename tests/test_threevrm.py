"""Files load in the real three.js + @pixiv/three-vrm, in headless Chromium.

One browser session loads every file of this module (see tests/threevrm.py).
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
