"""Load glTF / VRM files in the real three.js + @pixiv/three-vrm, in headless Chromium.

`load_in_threevrm(files)` serves the given file bytes, three and three-vrm (from the
repo's node_modules, no CDN) and the harness page (tests/browser/) on a local
HTTP server bound to 127.0.0.1, then runs tests/browser/run.mjs (playwright-core
driving Debian's /usr/bin/chromium, WebGL through SwiftShader) once for all files:
one browser start, one fresh page per file.

A report (a dict, one per file name) holds:
  loaded (bool), load_error (str | None), ok (loaded and no errors),
  errors (list[str]: page errors, console errors, failed / 4xx-5xx requests),
  warnings (list[str]: console warnings, e.g. three-vrm complaining about the file),
  meta_version ("0" | "1" for VRM), meta_name,
  humanoid ({bone: {"raw": node name, "normalized": bool, "world_position": [x, y, z]}},
      world positions in metres after three-vrm's VRMUtils.rotateVRM0 for 0.x, so
      both versions face +Z and the avatar's left is +X),
  expression_names (list[str]),
  expressions ({name: {"preset", "set_ok", "error", "changed" (morph target names whose
      influence moved after setValue(name, 1); vrm.update(1/60)), "binds", "is_binary"}}),
  spring_joint_count, spring_collider_count, spring_max_swing_rad (largest joint rotation
      after a 1 m sideways move in 20 frames), look_at_type, materials (three.js types),
  meshes (every mesh: name, skinned, bones, vertices, material, morph_targets),
  bounding_box ({"min": [x, y, z], "max": [x, y, z]}, metres),
  screenshot (PNG bytes of a front view, when asked), elapsed_ms.
Files ending in .vrm load with the VRM plugin; .glb / .gltf with GLTFLoader alone.
"""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"
BROWSER_DIR = REPO_ROOT / "tests" / "browser"
NODE = "node"

# URL path prefixes served from the repo (everything else is 404).
STATIC_PREFIXES: tuple[str, ...] = (
    "/node_modules/three/",
    "/node_modules/@pixiv/",
    "/tests/browser/",
)
CONTENT_TYPES: dict[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".png": "image/png",
    ".glb": "model/gltf-binary",
    ".vrm": "model/gltf-binary",
    ".gltf": "model/gltf+json",
}


class ThreeVrmError(RuntimeError):
    """The harness itself failed (browser did not start, driver crashed or timed out)."""


def _handler_for(files: dict[str, bytes]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
            body = None
            if path.startswith("/files/"):
                body = files.get(path[len("/files/") :])
            elif path.startswith(STATIC_PREFIXES):
                target = (REPO_ROOT / path.lstrip("/")).resolve()
                # resolve() undoes any "..": the target must stay inside the repo.
                if target.is_file() and REPO_ROOT in target.parents:
                    body = target.read_bytes()
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            suffix = Path(path).suffix.lower()
            self.send_header("Content-Type", CONTENT_TYPES.get(suffix, "application/octet-stream"))
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "max-age=600")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep test output clean

    return Handler


@contextmanager
def serve(files: dict[str, bytes]) -> Iterator[str]:
    """Serve `files` at /files/<name> plus the harness and three/three-vrm; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(files))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _kind(name: str) -> str:
    suffix = Path(name).suffix.lower()
    if suffix == ".vrm":
        return "vrm"
    if suffix in (".glb", ".gltf"):
        return "gltf"
    raise ValueError(f"{name}: expected a .vrm, .glb or .gltf file name")


def load_in_threevrm(
    files: dict[str, bytes], screenshots: bool = True, timeout_s: float = 180.0
) -> dict[str, dict]:
    """Load every file in one headless-Chromium session; returns {name: report} (see module doc).

    files: file name (its suffix picks the loader) -> file bytes.
    Raises ThreeVrmError when the browser or driver fails, not when a file fails to load.
    """
    kinds = {name: _kind(name) for name in files}
    with serve(files) as base_url:
        job = {
            "page": f"{base_url}/tests/browser/load_vrm.html",
            "timeout_ms": int(timeout_s * 1000),
            "items": [
                {
                    "name": name,
                    "url": "/files/" + urllib.parse.quote(name),
                    "kind": kind,
                    "screenshot": screenshots,
                }
                for name, kind in kinds.items()
            ],
        }
        try:
            proc = subprocess.run(
                [NODE, str(BROWSER_DIR / "run.mjs")],
                input=json.dumps(job).encode(),
                capture_output=True,
                timeout=timeout_s,
                cwd=REPO_ROOT,
            )
        except subprocess.TimeoutExpired as exc:
            raise ThreeVrmError(f"run.mjs timed out after {timeout_s} s") from exc
    if proc.returncode != 0:
        raise ThreeVrmError(f"run.mjs failed ({proc.returncode}): {proc.stderr.decode()[-4000:]}")
    result = json.loads(proc.stdout)
    reports = result["reports"]
    for report in reports.values():
        png = report.pop("screenshot_png", None)
        report["screenshot"] = base64.b64decode(png) if png else None
        report["ok"] = bool(report["loaded"]) and not report["errors"]
        report["browser"] = result["browser"]
        report["webgl"] = result.get("webgl")
    return reports


def missing_bones(report: dict, bones: tuple[str, ...] | list[str]) -> list[str]:
    """The names in `bones` that three-vrm did not map to both a raw and a normalized node."""
    humanoid = report.get("humanoid") or {}
    return [b for b in bones if not (humanoid.get(b, {}).get("raw") and humanoid[b]["normalized"])]
