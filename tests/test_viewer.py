"""The browser viewer (server/static/) against the real `chibi serve`, in headless Chromium.

tests/browser/viewer_check.mjs plays the user: opens http://127.0.0.1:PORT/, picks a
photo (a real one: scikit-image's astronaut, JPEG-encoded in memory) or sends a params
record, waits for the avatar, checks the bones, moves every expression slider and
counts the pixels each one changes, and downloads the .vrm and the .glb.
Screenshots land in tests/artifacts/viewer/ (gitignored).
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
from pathlib import Path

import pytest
from PIL import Image
from server_harness import ServerProcess
from threevrm import BROWSER_DIR, NODE, REPO_ROOT

from avatar3d.avatar import VRM_EXPRESSION_PRESETS

ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "viewer"
PARAMS = {"hair_style": "twintails", "hair_color": "#e07ab0", "iris_color": "#3a6fd0"}
# An expression must change at least this many pixels of the 680x700 stage.
MIN_CHANGED_PIXELS = 30


@pytest.fixture(scope="module")
def server():
    with ServerProcess("--workers", "1") as running:
        yield running


def _run_viewer(server: ServerProcess, label: str, **job: object) -> dict:
    job = {
        "url": f"http://127.0.0.1:{server.port}/",
        "label": label,
        "format": "vrm1",
        "screenshot_dir": str(ARTIFACTS),
        "timeout_ms": 150_000,
        **job,
    }
    for stale in ARTIFACTS.glob(f"viewer_{label}*.png"):
        stale.unlink()
    proc = subprocess.run(
        [NODE, str(BROWSER_DIR / "viewer_check.mjs")],
        input=json.dumps(job).encode(),
        capture_output=True,
        timeout=240,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-4000:]
    return json.loads(proc.stdout)


def _glb_json(head: str) -> dict:
    return json.loads(head.rstrip("\x00 "))


def _astronaut_jpeg() -> bytes:
    from skimage.data import astronaut

    out = io.BytesIO()  # photos stay in memory, never on disk
    Image.fromarray(astronaut()).save(out, format="JPEG", quality=92)
    return out.getvalue()


def _check_viewer_report(report: dict, source: str) -> None:
    assert "driver_error" not in report, report["driver_error"]
    assert report["viewer_errors"] == [], report["viewer_errors"]
    assert report["errors"] == [], report["errors"]  # console errors, page errors, HTTP 4xx/5xx
    assert report["warnings"] == [], report["warnings"]
    # Progress reached the page in protocol order.
    stages = ["started", "decoded", "face_found"] if source == "photo" else ["started"]
    stages += ["params", "built", "exported"]
    assert [s for s in report["progress"] if s in stages] == stages, report["progress"]
    assert report["meta_version"] == "1"
    assert [bone for bone, present in report["bones"].items() if not present] == []
    # A slider for every preset, and each one visibly changes the face.
    assert set(VRM_EXPRESSION_PRESETS) <= set(report["sliders"])
    dull = {
        name: pixels
        for name, pixels in report["expression_pixels"].items()
        if pixels < MIN_CHANGED_PIXELS
    }
    assert dull == {}, f"sliders that barely change the picture: {dull}"
    assert report["settle_ms"] >= 0, "the stage never came to rest with the idle animation off"
    assert report["pixels_after_reset"] == 0, "sliders back at 0 did not restore the picture"
    # Idle animation: the hair's spring bones move by themselves.
    assert report["spring_joints"] > 0
    assert report["idle_spring_swing_rad"] > 0.01
    # Downloads: the .vrm is the file on stage; the .glb is a plain glTF binary.
    vrm, glb = report["download_vrm"], report["download_glb"]
    assert vrm["name"].endswith(".vrm") and vrm["magic"] == "glTF"
    assert vrm["size"] == report["model_bytes"]
    assert "VRMC_vrm" in _glb_json(vrm["json_head"])["extensionsUsed"]
    assert glb["name"].endswith(".glb") and glb["magic"] == "glTF"
    assert "VRMC_vrm" not in _glb_json(glb["json_head"]).get("extensionsUsed", [])


# What the page loads from the server: its own files and, under /vendor/, three and
# three-vrm from the project's node_modules (package.json pins them; no CDN).
PAGE_FILES = ("/", "/viewer.js", "/client.js", "/viewer.css")
VENDOR_FILES = (
    "/vendor/three/build/three.module.js",
    "/vendor/three/build/three.core.js",
    "/vendor/three/examples/jsm/loaders/GLTFLoader.js",
    "/vendor/three/examples/jsm/utils/BufferGeometryUtils.js",
    "/vendor/three/examples/jsm/controls/OrbitControls.js",
    "/vendor/@pixiv/three-vrm/lib/three-vrm.module.js",
)


def test_server_serves_the_page_and_its_modules(server):
    missing = [path for path in PAGE_FILES + VENDOR_FILES if server.http(path)[0] != 200]
    assert missing == [], f"the server answers these paths with an error: {missing}"
    # Only those two packages, and nothing outside them.
    for path in ("/vendor/playwright-core/package.json", "/vendor/three/../../package.json"):
        assert server.http(path)[0] == 404, path


def test_viewer_generates_from_params(server):
    report = _run_viewer(server, "params", params=PARAMS)
    _check_viewer_report(report, "params")


def test_viewer_generates_from_a_real_photo(server):
    sources = server.health()["sources"]
    if not sources["photo"]:
        # The server itself says why (e.g. no regressor weights yet); its own tests own that.
        reason = next((line for line in server.log if "photo requests not available" in line), "")
        pytest.skip(f"the server cannot serve photos yet: {reason[-200:]}")
    photo = _astronaut_jpeg()
    report = _run_viewer(server, "photo", photo_b64=base64.b64encode(photo).decode())
    _check_viewer_report(report, "photo")


def test_viewer_shows_the_servers_error_code_for_a_bad_photo(server):
    expected = "invalid_image" if server.health()["sources"]["photo"] else "not_available"
    report = _run_viewer(server, "bad_photo", photo_b64=base64.b64encode(b"not a photo").decode())
    assert "driver_error" not in report, report["driver_error"]
    assert len(report["viewer_errors"]) == 1
    assert f"[{expected}]" in report["viewer_errors"][0]
    assert report["status"] == "Failed."
    assert report["errors"] == []  # shown to the user, not thrown


def test_viewer_controls_through_a_replaced_and_a_failed_avatar_and_the_webcam(server):
    """While avatar B is made, no download of A may start (a .glb click sent A's params,
    and the two requests left B on stage with A's params and files); a failed generation
    leaves B downloadable (the .vrm button did nothing); the webcam opens one stream, takes
    no photo before its first frame (an uncaught TypeError) and stops every stream."""
    job = {"url": f"http://127.0.0.1:{server.port}/", "timeout_ms": 120_000,
           "a": {"hair_color": "#e07ab0"}, "b": {"hair_color": "#3a6fd0"}}  # fmt: skip
    proc = subprocess.run(
        [NODE, str(BROWSER_DIR / "viewer_states.mjs")], input=json.dumps(job).encode(),
        capture_output=True, timeout=240, cwd=REPO_ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()[-4000:]
    report = json.loads(proc.stdout)
    assert "driver_error" not in report, report["driver_error"]
    assert report["page_errors"] == []
    assert report["while_generating"] == {"download-vrm": True, "download-glb": True}
    assert report["params_after_b"] == "#3a6fd0"
    assert [r["format"] for r in report["requests"]] == ["vrm1", "vrm1", "glb"]
    assert report["requests"][-1]["hair"] == "#3a6fd0"  # the glb of the avatar on stage
    assert report["vrm_b"]["name"].endswith(".vrm") and report["glb_b"]["name"].endswith(".glb")
    assert len(report["errors_shown"]) == 1
    assert report["after_failure"] == {"download-vrm": False, "download-glb": False}
    assert report["vrm_after_failure"]["size"] == report["vrm_b"]["size"]
    assert report["webcam_open"] == {"webcam-button": True}
    assert report["photo_taken"] is True
    assert report["streams"] and all(s == ["ended"] for s in report["streams"]), report["streams"]
