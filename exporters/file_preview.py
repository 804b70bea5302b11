"""Preview pictures of an existing .glb / .vrm file, drawn by `exporters.preview`'s renderer.

- `load_avatar_file(data)`: the file as a trimesh Scene (bad input: ChibiError
  `invalid_model`);
- `render_file_preview(data, size)`: PNG bytes like `preview.render_preview`.
"""

from __future__ import annotations

import io

import numpy as np
import trimesh

from avatar3d.errors import ChibiError
from avatar3d.params import linear_to_srgb

from .gltf_writer import encode_png
from .preview import Part, preview_image


def load_avatar_file(data: bytes) -> trimesh.Scene:
    """Load a .glb / .vrm file (bytes) as a trimesh Scene; bad input raises ChibiError."""
    if len(data) < 12 or data[:4] != b"glTF":
        raise ChibiError("invalid_model", "not a binary glTF (.glb/.vrm) file")
    try:
        loaded = trimesh.load(io.BytesIO(data), file_type="glb", force="scene", process=False)
    except Exception as exc:  # noqa: BLE001 - trimesh raises many types on bad files
        raise ChibiError("invalid_model", f"cannot read the model: {exc}") from None
    if not isinstance(loaded, trimesh.Scene) or not loaded.geometry:
        raise ChibiError("invalid_model", "the file holds no mesh to render")
    return loaded


def _parts_from_scene(scene: trimesh.Scene) -> list[Part]:
    parts = []
    for node in scene.graph.nodes_geometry:
        transform, name = scene.graph[node]
        mesh = scene.geometry[name]
        if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
            continue
        positions = trimesh.transform_points(mesh.vertices, transform).astype(np.float32)
        normals = mesh.vertex_normals @ transform[:3, :3].T
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-9)
        texture, uvs, color = None, None, (1.0, 1.0, 1.0, 1.0)
        visual = mesh.visual
        material = getattr(visual, "material", None)
        if material is not None:
            factor = getattr(material, "baseColorFactor", None)
            if factor is not None:
                factor = np.asarray(factor, np.float64)
                factor = factor / 255.0 if factor.max() > 1.0 else factor
                color = (*linear_to_srgb(factor[:3]), float(factor[3]))
            image = getattr(material, "baseColorTexture", None)
            if image is not None and getattr(visual, "uv", None) is not None:
                texture = np.asarray(image.convert("RGBA"))
                uvs = np.asarray(visual.uv, np.float32).copy()
                uvs[:, 1] = 1.0 - uvs[:, 1]  # trimesh keeps uv with v up; back to glTF
        parts.append(
            Part(
                positions=positions,
                normals=normals.astype(np.float32),
                uvs=uvs,
                faces=np.asarray(mesh.faces, np.int64),
                texture=texture,
                color=color,
                shade=(0.9, 0.86, 0.86),
            )
        )
    if not parts:
        raise ChibiError("invalid_model", "the file holds no triangles to render")
    return parts


def render_file_preview(data: bytes, size: int = 512) -> bytes:
    """PNG bytes like `render_preview`, for an existing .glb / .vrm file given as bytes.

    VRM 0.x files face -Z; they are turned around so the front view shows the face.
    """
    scene = load_avatar_file(data)
    parts = _parts_from_scene(scene)
    if b'"VRM"' in data[:200_000] and b'"VRMC_vrm"' not in data[:200_000]:
        turn = np.diag([-1.0, 1.0, -1.0]).astype(np.float32)  # 180 degrees about Y
        for part in parts:
            part.positions = part.positions @ turn
            part.normals = part.normals @ turn
    return encode_png(preview_image(parts, size))
