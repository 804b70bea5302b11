"""Statistics of a .glb / .vrm file and the VRChat performance rank it would get.

`inspect_file(data)` reads the file from bytes (pygltflib, no temporary files)
and counts what VRChat's Avatar Performance Ranking looks at: triangles, skinned
and basic meshes, material slots, bones, texture memory and bounds.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import warnings
from typing import Any

import numpy as np
import pygltflib
from PIL import Image

from avatar3d.errors import ChibiError

RANKS: tuple[str, ...] = ("Excellent", "Good", "Medium", "Poor", "VeryPoor")

# Maximum value per rank (Excellent, Good, Medium, Poor); above Poor is VeryPoor.
# Source: VRChat creator documentation, "Performance Ranks - Value Maximums per
# Rank" (https://creators.vrchat.com/avatars/avatar-performance-ranking-system/,
# vrchat-community/creator-docs Docs/docs/avatars/avatar-performance-ranking-system.md,
# commit 723a30a, updated 2023-03-10), the "PC Limits" and "Quest Limits" tables.
# Only the rows a glTF/VRM file determines are encoded; texture memory is in MiB,
# bounds in metres per axis (x, y, z).
RANK_LIMITS: dict[str, dict[str, tuple]] = {
    "PC": {
        "triangles": (32_000, 70_000, 70_000, 70_000),
        "texture_memory_mb": (40, 75, 110, 150),
        "skinned_meshes": (1, 2, 8, 16),
        "meshes": (4, 8, 16, 24),
        "material_slots": (4, 8, 16, 32),
        "bones": (75, 150, 256, 400),
        "bounds_m": ((2.5, 2.5, 2.5), (4, 4, 4), (5, 6, 5), (5, 6, 5)),
    },
    "Quest": {
        "triangles": (7_500, 10_000, 15_000, 20_000),
        "texture_memory_mb": (10, 18, 25, 40),
        "skinned_meshes": (1, 1, 2, 2),
        "meshes": (1, 1, 2, 2),
        "material_slots": (1, 1, 2, 4),
        "bones": (75, 90, 150, 150),
        "bounds_m": ((2.5, 2.5, 2.5), (4, 4, 4), (5, 6, 5), (5, 6, 5)),
    },
}

_GLB_MAGIC = b"glTF"
_TRIANGLES, _TRIANGLE_STRIP, _TRIANGLE_FAN = 4, 5, 6


def _invalid(message: str) -> ChibiError:
    return ChibiError("invalid_model", message)


def load_gltf(data: bytes) -> pygltflib.GLTF2:
    """Parse a binary glTF (.glb / .vrm) from bytes.

    Bad input raises ChibiError("invalid_model").
    """
    if len(data) < 20 or data[:4] != _GLB_MAGIC:
        raise _invalid("not a binary glTF (.glb/.vrm) file: missing the 'glTF' header")
    version, length = struct.unpack_from("<II", data, 4)
    if version != 2:
        raise _invalid(f"unsupported glTF container version {version}, expected 2")
    if length > len(data):
        raise _invalid(f"file is truncated: header says {length} bytes, got {len(data)}")
    try:
        gltf = pygltflib.GLTF2.load_from_bytes(bytes(data[:length]))
    except Exception as exc:  # noqa: BLE001 - untrusted input into a third-party parser
        raise _invalid(f"cannot parse the glTF: {type(exc).__name__}: {exc}") from None
    if gltf is None:
        raise _invalid("the file has no JSON chunk")
    return gltf


def _accessor_count(gltf: pygltflib.GLTF2, index: int | None) -> int:
    if index is None or not 0 <= index < len(gltf.accessors):
        return 0
    count = gltf.accessors[index].count or 0
    if not isinstance(count, int) or count < 0:
        raise _invalid(f"accessor {index} has a count of {count!r}")
    return count


def _primitive_triangles(gltf: pygltflib.GLTF2, primitive: pygltflib.Primitive) -> int:
    mode = _TRIANGLES if primitive.mode is None else primitive.mode
    if primitive.indices is not None:
        n = _accessor_count(gltf, primitive.indices)
    else:
        n = _accessor_count(gltf, primitive.attributes.POSITION)
    if mode == _TRIANGLES:
        return n // 3
    if mode in (_TRIANGLE_STRIP, _TRIANGLE_FAN):
        return max(0, n - 2)
    return 0  # points and lines draw no triangles


def _texture_refs(value: Any, key: str = "") -> set[int]:
    """Texture indices referenced anywhere in a material's JSON (core and extensions)."""
    found: set[int] = set()
    if isinstance(value, dict):
        if "texture" in key.lower() and isinstance(value.get("index"), int):
            found.add(value["index"])
        for k, v in value.items():
            found |= _texture_refs(v, k)
    elif isinstance(value, list):
        for v in value:
            found |= _texture_refs(v, key)
    return found


def _image_size(gltf: pygltflib.GLTF2, image: pygltflib.Image) -> tuple[int, int]:
    """(width, height) of an embedded image; only the header is decoded."""
    if image.bufferView is not None:
        view = gltf.bufferViews[image.bufferView]
        start = view.byteOffset or 0
        raw = gltf.binary_blob()[start : start + view.byteLength]
    elif image.uri and image.uri.startswith("data:"):
        raw = base64.b64decode(image.uri.split(",", 1)[1])
    else:
        raise _invalid("an image is stored outside the file; only embedded images are supported")
    try:  # the header alone: Pillow's bomb guard is a warning below 2x its limit
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw)) as img:
                return img.size
    except Image.DecompressionBombError as exc:
        raise _invalid(f"an embedded image is too large for any engine: {exc}") from None
    except (OSError, ValueError) as exc:
        raise _invalid(f"an embedded image cannot be decoded: {exc}") from None


def _mip_chain_bytes(width: int, height: int, bytes_per_pixel: int = 4) -> int:
    """Bytes of an uncompressed texture with its full mipmap chain (about 4/3 of the base)."""
    total = 0
    while True:
        total += width * height * bytes_per_pixel
        if width == 1 and height == 1:
            return total
        width, height = max(1, width // 2), max(1, height // 2)


def _format(gltf: pygltflib.GLTF2) -> str:
    extensions = gltf.extensions or {}
    if "VRMC_vrm" in extensions:
        return "VRM 1.0"
    if "VRM" in extensions:
        return "VRM 0.x"
    return "glb"


def _springs(gltf: pygltflib.GLTF2) -> dict[str, int]:
    """Spring-bone chains / joints / colliders (VRMC_springBone or VRM 0.x secondaryAnimation)."""
    extensions = gltf.extensions or {}
    if "VRMC_springBone" in extensions:
        spring = extensions["VRMC_springBone"]
        springs = spring.get("springs", [])
        return {
            "chains": len(springs),
            "joints": sum(len(s.get("joints", [])) for s in springs),
            "colliders": len(spring.get("colliders", [])),
        }
    secondary = extensions.get("VRM", {}).get("secondaryAnimation")
    if secondary:
        groups = secondary.get("boneGroups", [])
        return {
            "chains": sum(len(g.get("bones", [])) for g in groups),
            "joints": 0,  # VRM 0.x names chain roots only; joints follow the node tree
            "colliders": sum(
                len(g.get("colliders", [])) for g in secondary.get("colliderGroups", [])
            ),
        }
    return {"chains": 0, "joints": 0, "colliders": 0}


def _rank_one(limits: tuple, value: Any) -> str:
    for rank, limit in zip(RANKS, limits, strict=False):
        if isinstance(limit, tuple):
            if all(v <= lim for v, lim in zip(value, limit, strict=True)):
                return rank
        elif value <= limit:
            return rank
    return RANKS[-1]


def performance_ranks(stats: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Rank per platform: {"PC": {"rank": ..., "by_stat": {stat: rank}, "limited_by": [...]}}."""
    result = {}
    for platform, table in RANK_LIMITS.items():
        by_stat = {stat: _rank_one(limits, stats[stat]) for stat, limits in table.items()}
        worst = max(RANKS.index(r) for r in by_stat.values())
        result[platform] = {
            "rank": RANKS[worst],
            "by_stat": by_stat,
            "limited_by": [s for s, r in by_stat.items() if RANKS.index(r) == worst and worst > 0],
        }
    return result


def _local_matrix(node: pygltflib.Node) -> np.ndarray:
    """The node's 4x4 transform (column vectors); identity where the file's is malformed."""
    try:
        if node.matrix is not None and len(node.matrix) == 16:
            return np.array(node.matrix, dtype=np.float64).reshape(4, 4).T  # column-major
        x, y, z, w = node.rotation if node.rotation is not None else (0.0, 0.0, 0.0, 1.0)
        rotation = np.array([
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ])  # fmt: skip
        matrix = np.eye(4)
        matrix[:3, :3] = rotation * np.asarray(node.scale or (1.0, 1.0, 1.0), dtype=np.float64)
        matrix[:3, 3] = node.translation or (0.0, 0.0, 0.0)
        return matrix
    except (TypeError, ValueError):
        return np.eye(4)


def _world_matrices(gltf: pygltflib.GLTF2) -> list[np.ndarray]:
    """Every node's transform to the scene (4x4), through its parents; a cycle, which a
    valid file has not, is cut where it closes."""
    parents: dict[int, int] = {}
    for index, node in enumerate(gltf.nodes):
        for child in node.children or []:
            parents.setdefault(child, index)
    world: list[np.ndarray | None] = [None] * len(gltf.nodes)
    for start in range(len(gltf.nodes)):
        chain, seen, node = [], set(), start
        while node is not None and world[node] is None and node not in seen:
            seen.add(node)
            chain.append(node)
            node = parents.get(node)
        matrix = world[node] if node is not None and world[node] is not None else np.eye(4)
        for index in reversed(chain):
            matrix = matrix @ _local_matrix(gltf.nodes[index])
            world[index] = matrix
    return world  # type: ignore[return-value]


def _box_corners(low: list[float], high: list[float]) -> np.ndarray:
    """The 8 corners (8, 3) of an axis-aligned box."""
    return np.array([[(low, high)[(i >> axis) & 1][axis] for axis in range(3)] for i in range(8)])


def inspect_gltf(gltf: pygltflib.GLTF2, file_size: int = 0) -> dict[str, Any]:
    """Statistics of a parsed glTF; see `inspect_file`."""
    triangles = vertices = material_slots = skinned = basic = 0
    morph_names: list[str] = []
    morph_count = 0
    corners: list[np.ndarray] = []  # of each primitive's box, in the scene (metres)
    world = _world_matrices(gltf)
    for node, to_scene in zip(gltf.nodes, world, strict=True):
        if node.mesh is None or not 0 <= node.mesh < len(gltf.meshes):
            continue
        mesh = gltf.meshes[node.mesh]
        skinned += node.skin is not None
        basic += node.skin is None
        material_slots += len(mesh.primitives)
        # primitives of one mesh may share a vertex buffer (one per material of a mesh)
        positions = {p.attributes.POSITION for p in mesh.primitives}
        vertices += sum(_accessor_count(gltf, position) for position in positions)
        for primitive in mesh.primitives:
            triangles += _primitive_triangles(gltf, primitive)
            position = primitive.attributes.POSITION
            if position is None:
                continue
            accessor = gltf.accessors[position]
            if len(accessor.min or ()) != 3 or len(accessor.max or ()) != 3:
                raise _invalid(f"POSITION accessor {position} lacks the min/max glTF requires")
            box = _box_corners(accessor.min, accessor.max)
            if node.skin is None:  # a skinned mesh ignores its node's transform (glTF 2.0)
                box = box @ to_scene[:3, :3].T + to_scene[:3, 3]
            corners.append(box)
        targets = len(mesh.primitives[0].targets or []) if mesh.primitives else 0
        morph_count += targets
        names = (mesh.extras or {}).get("targetNames") or []
        morph_names += [n for n in names if n not in morph_names]
    bones = sorted({j for skin in gltf.skins for j in skin.joints})
    texture_ids: set[int] = set()
    for material in gltf.materials:
        texture_ids |= _texture_refs(json.loads(material.to_json()))
    vrm0 = (gltf.extensions or {}).get("VRM", {})
    for props in vrm0.get("materialProperties", []):  # VRM 0.x MToon textures
        texture_ids |= {
            i for i in props.get("textureProperties", {}).values() if isinstance(i, int)
        }
    image_ids = {
        gltf.textures[t].source
        for t in texture_ids
        if 0 <= t < len(gltf.textures) and gltf.textures[t].source is not None
    }
    texture_bytes = sum(_mip_chain_bytes(*_image_size(gltf, gltf.images[i])) for i in image_ids)
    if corners:
        every = np.concatenate(corners)
        bounds = [round(float(extent), 4) for extent in every.max(axis=0) - every.min(axis=0)]
    else:
        bounds = [0.0] * 3
    stats: dict[str, Any] = {
        "format": _format(gltf),
        "file_size": file_size,
        "triangles": triangles,
        "vertices": vertices,
        "skinned_meshes": skinned,
        "meshes": basic,
        "materials": len(gltf.materials),
        "material_slots": material_slots,
        "bones": len(bones),
        "morph_targets": {"count": morph_count, "names": morph_names},
        "textures": len(image_ids),
        "texture_memory_bytes": texture_bytes,
        "texture_memory_mb": round(texture_bytes / 2**20, 2),
        "bounds_m": bounds,
        "spring_bones": _springs(gltf),
    }
    stats["performance"] = performance_ranks(stats)
    return stats


def inspect_file(data: bytes) -> dict[str, Any]:
    """Statistics of a .glb / .vrm file given as bytes.

    Returns a JSON-serialisable dict: format ("glb" | "VRM 1.0" | "VRM 0.x"),
    triangles, vertices, skinned_meshes, meshes (non-skinned), materials (distinct),
    material_slots (primitives, each a draw call), bones (distinct skin joints),
    morph_targets {count, names}, textures, texture_memory_bytes / _mb (uncompressed
    RGBA with mipmaps, the way VRChat estimates it for uncompressed textures),
    bounds_m (x, y, z extent in metres), spring_bones {chains, joints, colliders},
    and performance {"PC"|"Quest": {rank, by_stat, limited_by}}.
    PhysBone limits are not ranked: a VRM's springs become PhysBones only when
    someone converts the avatar in Unity. Bad input raises ChibiError('invalid_model').
    """
    gltf = load_gltf(data)
    try:
        return inspect_gltf(gltf, file_size=len(data))
    except (AttributeError, TypeError, IndexError, KeyError, ValueError, RecursionError) as exc:
        # JSON that parses but breaks the glTF schema (wrong types, dangling indices, extras
        # nested too deep to walk)
        raise _invalid(f"malformed glTF: {type(exc).__name__}: {exc}") from None


def format_report(stats: dict[str, Any]) -> str:
    """A human-readable table of `inspect_file`'s result."""
    morphs = stats["morph_targets"]
    springs = stats["spring_bones"]
    rows = [
        ("format", stats["format"]),
        ("file size", f"{stats['file_size'] / 2**20:.2f} MiB"),
        ("triangles", f"{stats['triangles']:,}"),
        ("vertices", f"{stats['vertices']:,}"),
        ("skinned meshes", stats["skinned_meshes"]),
        ("meshes", stats["meshes"]),
        ("materials", f"{stats['materials']} ({stats['material_slots']} slots)"),
        ("bones", stats["bones"]),
        ("morph targets", morphs["count"]),
        ("textures", stats["textures"]),
        ("texture memory", f"{stats['texture_memory_mb']:.2f} MiB"),
        ("bounds", " x ".join(f"{b:.2f}" for b in stats["bounds_m"]) + " m"),
        ("spring bones", f"{springs['chains']} chains, {springs['colliders']} colliders"),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k.ljust(width)}  {v}" for k, v in rows]
    lines.append("")
    lines.append("VRChat performance rank")
    for platform, rank in stats["performance"].items():
        limited = f" (limited by {', '.join(rank['limited_by'])})" if rank["limited_by"] else ""
        lines.append(f"  {platform.ljust(6)} {rank['rank']}{limited}")
    return "\n".join(lines)
