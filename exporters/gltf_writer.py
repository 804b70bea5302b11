"""Shared glTF 2.0 assembly for every exporter (glb, VRM 1.0, VRM 0.x).

One binary buffer holds everything: vertex attributes (one bufferView each),
triangle indices, sparse morph-target deltas, inverse bind matrices and PNG
images. The JSON side is a `pygltflib.GLTF2`; `GltfWriter.to_glb()` returns
the GLB container as bytes (nothing touches the disk).

Speed matters (an avatar is exported per request): numpy arrays go to the
buffer without copies or per-vertex Python loops, PNGs are encoded with one
numpy filter pass and zlib-ng's deflate (`zlib-ng`), and the JSON is written straight from
the pygltflib objects (see `_json_ready`).

Morph targets are written as sparse accessors: a face shape moves a few hundred
of the avatar's vertices, so storing only those makes the file several times
smaller. glTF 2.0 allows it, and three.js, UniVRM (which writes them itself) and
Blender read it.

Default morph weights: none are written, so every morph target rests at 0. The
photo's expression (a smile, a half-closed eye) is a moment, not part of the
face; baked into a rig as its rest state it would stack on top of whatever a
game drives (VRM expressions, face tracking, visemes) and a blink caught in the
photo would stay half-closed forever. The preview renderer can show it instead.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pygltflib as gl
from zlib_ng import zlib_ng

from avatar3d.avatar import Avatar

from .background import run_beside

GENERATOR = "chibi-avatar exporters 0.1"

ARRAY_BUFFER = 34962
ELEMENT_ARRAY_BUFFER = 34963
UNSIGNED_SHORT = 5123
UNSIGNED_INT = 5125
FLOAT = 5126

_COMPONENT_TYPES = {np.dtype(np.uint16): UNSIGNED_SHORT, np.dtype(np.uint32): UNSIGNED_INT,
                    np.dtype(np.float32): FLOAT}  # fmt: skip
_ACCESSOR_TYPES = {1: "SCALAR", 2: "VEC2", 3: "VEC3", 4: "VEC4", 16: "MAT4"}

# Rotating 180 degrees about Y turns the avatar from facing +Z to facing -Z
# (what VRM 0.x expects). A rotation, not a mirror: winding and handedness stay.
ROTATE_Y180 = np.array([-1.0, 1.0, -1.0], dtype=np.float32)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(image: np.ndarray) -> bytes:
    """(H, W, 3 or 4) uint8 sRGB -> PNG bytes (8-bit RGB or RGBA, as given).

    Every row uses PNG's "Up" filter (the difference to the row above: one numpy
    subtraction over whole rows), compressed by zlib-ng's deflate at level 2: a
    standard zlib stream, ~6x faster than zlib's level 1 and smaller (the 1024 px
    atlas: 17 -> 2.8 ms, 143 -> 119 kB; bench/bench_avatar.py compares). ISA-L
    (`isal`), used before, is faster still (1.1 ms), but the same pixels did not
    always give the same bytes in another process (5 of 1,900 processes, each
    compressing 12 atlases; zlib-ng 0 in the same processes), and exports must be
    reproducible. Pillow tries all five filters on every row, which is most of
    its cost. A constant alpha channel costs almost nothing after the filter, so
    RGBA stays RGBA (dropping it would mean a slow strided copy).
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"expected an (H, W, 3 or 4) uint8 image, got {image.dtype} {image.shape}")
    height, width, channels = image.shape
    rows = np.ascontiguousarray(image).reshape(height, width * channels)
    filtered = np.empty((height, 1 + width * channels), dtype=np.uint8)
    filtered[:, 0] = 2  # filter type "Up"
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])  # uint8 wraps modulo 256, as PNG wants
    header = struct.pack(">IIBBBBB", width, height, 8, 2 if channels == 3 else 6, 0, 0, 0)
    return b"".join([
        PNG_SIGNATURE,
        _png_chunk(b"IHDR", header),
        _png_chunk(b"IDAT", _deflate(memoryview(filtered).cast("B"))),
        _png_chunk(b"IEND", b""),
    ])  # fmt: skip


# Above this many bytes, `_deflate` works on two threads.
PARALLEL_DEFLATE_BYTES = 1 << 20


def _deflate(data: memoryview, level: int = 2) -> bytes:
    """One zlib stream of `data`. A large input is cut in two and the halves deflate at
    once, the second on a helper thread (zlib-ng lets go of the GIL), joined as pigz
    does: the first half ends in a sync flush, the second is raw deflate, and the
    Adler-32 of the whole closes the stream. The 1024 px thumbnail: 3.8 -> 2.3 ms,
    0.2 % larger; the bytes depend only on the data, never on timing."""
    if len(data) < PARALLEL_DEFLATE_BYTES:
        return zlib_ng.compress(data, level)
    half = len(data) // 2

    def second_half() -> bytes:
        raw = zlib_ng.compressobj(level, zlib_ng.DEFLATED, -15)
        return raw.compress(data[half:]) + raw.flush()

    pending = run_beside("deflate", second_half)
    first = zlib_ng.compressobj(level, zlib_ng.DEFLATED, 15)
    head = first.compress(data[:half]) + first.flush(zlib_ng.Z_SYNC_FLUSH)
    return b"".join((head, pending.result(), struct.pack(">I", zlib_ng.adler32(data))))


def _json_ready(value: Any) -> Any:
    """A pygltflib object -> plain JSON data, leaving out unset (None) and empty fields.

    The same JSON pygltflib's own `gltf_to_json` writes (tests compare them), without
    its deep copy of every value, which made it the slowest step of an export.
    Plain dicts (extensions, extras) are kept as they are: an empty
    `"KHR_materials_unlit": {}` is meaningful. Exact types are tested first: an
    avatar's JSON has ~400 objects of ~12 fields each (isinstance chains cost 0.5 ms).
    """
    kind = type(value)
    if kind is list:
        return [item if type(item) in _SCALARS else _json_ready(item) for item in value]
    if kind in _SCALARS or not (
        hasattr(value, "__dataclass_fields__") or isinstance(value, gl.Attributes)
    ):
        return value
    out = {}
    for key, item in value.__dict__.items():
        kind = type(item)
        if kind in _SCALARS:
            if item is not None:
                out[key] = item
        elif kind is list or kind is dict or kind is str:
            if item:
                out[key] = _json_ready(item) if kind is list else item
        elif isinstance(item, (list, dict, str)) and len(item) == 0:
            continue
        else:
            out[key] = _json_ready(item)
    return out


_SCALARS = frozenset({int, float, bool, type(None)})


class GltfWriter:
    """Builds one glTF asset: a `pygltflib.GLTF2` plus the bytes of its single buffer."""

    def __init__(self) -> None:
        self.gltf = gl.GLTF2(asset=gl.Asset(generator=GENERATOR, version="2.0"))
        self._parts: list[bytes | memoryview] = []
        self._size = 0
        self._deferred_images: list[tuple[int, Callable[[], bytes]]] = []

    # -- binary data -------------------------------------------------------
    def _append(self, data: bytes | np.ndarray) -> tuple[int, int]:
        """Append raw bytes (no copy), padded to 4 bytes; returns (offset, length)."""
        if isinstance(data, np.ndarray):
            data = memoryview(np.ascontiguousarray(data)).cast("B")
        offset, length = self._size, len(data)
        self._parts.append(data)
        self._size += length
        padding = -self._size % 4
        if padding:
            self._parts.append(b"\0" * padding)
            self._size += padding
        return offset, length

    def add_buffer_view(self, data: bytes | np.ndarray, target: int | None = None) -> int:
        offset, length = self._append(data)
        self.gltf.bufferViews.append(
            gl.BufferView(buffer=0, byteOffset=offset, byteLength=length, target=target)
        )
        return len(self.gltf.bufferViews) - 1

    def add_accessor(
        self, array: np.ndarray, target: int | None = ARRAY_BUFFER, bounds: bool = False
    ) -> int:
        """A tightly packed accessor in its own bufferView. array: (N,), (N, k) or (N, 4, 4)."""
        array = np.ascontiguousarray(array)
        count = array.shape[0]
        width = int(np.prod(array.shape[1:], dtype=np.int64)) if array.ndim > 1 else 1
        accessor = gl.Accessor(
            bufferView=self.add_buffer_view(array, target),
            componentType=_COMPONENT_TYPES[array.dtype],
            count=count,
            type=_ACCESSOR_TYPES[width],
        )
        if bounds:
            flat = array.reshape(count, width)
            accessor.min = flat.min(axis=0).tolist()
            accessor.max = flat.max(axis=0).tolist()
        self.gltf.accessors.append(accessor)
        return len(self.gltf.accessors) - 1

    def add_sparse_vec3_accessors(self, deltas: np.ndarray, signs: np.ndarray | None) -> list[int]:
        """One sparse VEC3 float accessor (with min/max) per target of (T, V, 3) float32 deltas.

        Only rows that are not all zero are stored, found for all targets at once;
        every target's indices share one bufferView and every target's values
        another. `signs` (3,) multiplies the stored values (VRM 0.x's rotation). A
        target that is zero everywhere still stores one zero row, because some
        importers expect every morph target to have a sparse part or a bufferView.
        """
        target_count, vertex_count = deltas.shape[:2]
        if target_count == 0:
            return []
        # (T, V) rows with a non-zero component: OR the float bits, shifting out the sign so
        # -0.0 counts as zero (10x faster than `(deltas != 0).any(axis=2)`).
        bits = np.ascontiguousarray(deltas).view(np.uint32)
        moved = ((bits[..., 0] | bits[..., 1] | bits[..., 2]) << 1) != 0
        moved[~moved.any(axis=1), 0] = True
        targets, rows = np.nonzero(moved)  # ordered by target, then by row
        counts = np.bincount(targets, minlength=target_count)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        values = deltas[targets, rows]
        if signs is not None:
            values *= signs
        low = np.minimum.reduceat(values, starts, axis=0)
        high = np.maximum.reduceat(values, starts, axis=0)
        partial = counts < vertex_count  # rows left out are zero, so 0 lies within the bounds
        low[partial] = np.minimum(low[partial], 0.0)
        high[partial] = np.maximum(high[partial], 0.0)
        index_dtype = np.dtype(np.uint16 if vertex_count <= 65535 else np.uint32)
        # Offsets stay multiples of each component's size, as glTF requires.
        index_view = self.add_buffer_view(rows.astype(index_dtype))
        value_view = self.add_buffer_view(values.astype(np.float32, copy=False))
        first = len(self.gltf.accessors)
        for count, start, lo, hi in zip(counts.tolist(), starts.tolist(), low.tolist(),
                                        high.tolist(), strict=True):  # fmt: skip
            sparse = gl.Sparse(
                count=count,
                indices=gl.AccessorSparseIndices(
                    bufferView=index_view,
                    byteOffset=start * index_dtype.itemsize,
                    componentType=_COMPONENT_TYPES[index_dtype],
                ),
                values=gl.AccessorSparseValues(bufferView=value_view, byteOffset=start * 12),
            )
            self.gltf.accessors.append(
                gl.Accessor(
                    byteOffset=None,  # no bufferView: the base values are all zero
                    componentType=FLOAT,
                    count=vertex_count,
                    type="VEC3",
                    min=lo,
                    max=hi,
                    sparse=sparse,
                )
            )
        return list(range(first, len(self.gltf.accessors)))

    def add_png_image(self, png: bytes | Callable[[], bytes], name: str) -> int:
        """An image from PNG bytes, or from a callable that returns them: it is called
        when the file is finished (`to_json`), after every other part, so the PNG can be
        made meanwhile (the VRM thumbnail renders while the rest is written); its
        bufferView then comes last in the buffer. Returns the image's index."""
        self.gltf.images.append(gl.Image(mimeType="image/png", name=name))
        index = len(self.gltf.images) - 1
        if callable(png):
            self._deferred_images.append((index, png))
        else:
            self._fill_image(index, png)
        return index

    def _fill_image(self, index: int, png: bytes) -> None:
        image = self.gltf.images[index]
        if png[:8] != PNG_SIGNATURE:
            raise ValueError(f"image {image.name!r} is not a PNG")
        image.bufferView = self.add_buffer_view(png)

    def add_texture(self, image: int, sampler: int = 0) -> int:
        if not self.gltf.samplers:
            # Clamp: the atlas's regions must not bleed into each other at the border.
            self.gltf.samplers.append(
                gl.Sampler(magFilter=9729, minFilter=9987, wrapS=33071, wrapT=33071)
            )
        self.gltf.textures.append(gl.Texture(sampler=sampler, source=image))
        return len(self.gltf.textures) - 1

    def use_extension(self, name: str) -> None:
        if name not in self.gltf.extensionsUsed:
            self.gltf.extensionsUsed.append(name)

    # -- container -----------------------------------------------------------
    def to_json(self) -> bytes:
        """The glTF JSON, UTF-8; NaN or infinity anywhere raises ValueError."""
        for index, make_png in self._deferred_images:
            self._fill_image(index, make_png())
        self._deferred_images = []
        self.gltf.buffers = [gl.Buffer(byteLength=self._size)]
        data = _json_ready(self.gltf)
        return json.dumps(data, separators=(",", ":"), allow_nan=False).encode()

    def to_glb(self) -> bytes:
        """The GLB container: header, JSON chunk (space-padded), BIN chunk (zero-padded)."""
        text = self.to_json()
        text += b" " * (-len(text) % 4)
        total = 12 + 8 + len(text) + 8 + self._size
        return b"".join([
            struct.pack("<4sII", b"glTF", 2, total),
            struct.pack("<I4s", len(text), b"JSON"),
            text,
            struct.pack("<I4s", self._size, b"BIN\0"),
            *self._parts,
        ])  # fmt: skip


@dataclass
class AvatarIndices:
    """Where `write_avatar` put the avatar's parts in the glTF arrays."""

    mesh: int
    mesh_node: int
    joint_nodes: list[int]  # skeleton joint i -> node index
    materials: list[int]  # avatar material i -> glTF material index
    textures: list[int]  # avatar texture i -> glTF texture index
    morph_targets: dict[str, int]  # morph target name -> target index in the mesh


def check_avatar(avatar: Avatar) -> None:
    """Cheap consistency checks so a broken Avatar fails loudly instead of writing a broken file."""
    v = len(avatar.vertices)
    shapes = {"vertices": (avatar.vertices, 3), "normals": (avatar.normals, 3),
              "uvs": (avatar.uvs, 2), "joints": (avatar.joints, 4),
              "weights": (avatar.weights, 4)}  # fmt: skip
    for name, (array, width) in shapes.items():
        if array.shape != (v, width):
            raise ValueError(f"avatar.{name} has shape {array.shape}, expected ({v}, {width})")
    for name in ("vertices", "normals", "uvs", "weights"):
        if not np.isfinite(getattr(avatar, name)).all():
            raise ValueError(f"avatar.{name} contains NaN or infinity")
    if avatar.triangle_count == 0 or v == 0:
        raise ValueError("the avatar has no triangles")
    skeleton = avatar.skeleton
    joint_count = len(skeleton.names)
    parents = np.asarray(skeleton.parents)
    if parents.shape != (joint_count,) or skeleton.positions.shape != (joint_count, 3):
        raise ValueError("the skeleton's names, parents and positions differ in length")
    if (parents >= np.arange(joint_count)).any() or (parents < 0).sum() != 1:
        raise ValueError("the skeleton must be one tree, parents listed before their children")
    if len(set(skeleton.names)) != joint_count or not np.isfinite(skeleton.positions).all():
        raise ValueError("skeleton joint names must be unique and positions finite")
    if v and int(avatar.joints.max()) >= joint_count:
        raise ValueError("avatar.joints refers to a joint the skeleton does not have")
    for sub in avatar.submeshes:
        if (
            sub.faces.ndim != 2
            or sub.faces.shape[1] != 3
            or not 0 <= sub.material < len(avatar.materials)
        ):
            raise ValueError("a submesh has malformed faces or an unknown material")
        if sub.faces.size and (int(sub.faces.max()) >= v or int(sub.faces.min()) < 0):
            raise ValueError("a submesh refers to a vertex the avatar does not have")
    for name, delta in avatar.morph_targets.items():
        if delta.shape != (v, 3) or not np.isfinite(delta).all():
            raise ValueError(f"morph target {name!r} must be finite with shape ({v}, 3)")
    for material in avatar.materials:
        if material.texture is not None and not 0 <= material.texture < len(avatar.textures):
            raise ValueError(f"material {material.name!r} refers to a missing texture")
    for chain in avatar.spring_chains:
        if not chain.joints or not all(0 <= j < joint_count for j in chain.joints):
            raise ValueError(f"spring chain {chain.name!r} refers to a missing joint")
        if not all(0 <= c < len(avatar.colliders) for c in chain.colliders):
            raise ValueError(f"spring chain {chain.name!r} refers to a missing collider")
    if not all(0 <= c.joint < joint_count for c in avatar.colliders):
        raise ValueError("a collider hangs on a missing joint")


def write_avatar(writer: GltfWriter, avatar: Avatar, rotate_y180: bool = False) -> AvatarIndices:
    """Write the avatar's skinned mesh, skeleton, materials and textures into `writer`.

    rotate_y180: turn the avatar to face -Z (VRM 0.x). Materials get
    `KHR_materials_unlit` (the toon look any glTF viewer can show); format
    modules add their own extensions to them afterwards.
    """
    check_avatar(avatar)
    gltf = writer.gltf
    signs = ROTATE_Y180 if rotate_y180 else None

    def turned(array: np.ndarray) -> np.ndarray:
        array = np.asarray(array, dtype=np.float32)
        return array * signs if signs is not None else array

    # -- skeleton: one node per joint, translations relative to the parent ----
    skeleton = avatar.skeleton
    offsets = turned(skeleton.local_offsets()) + 0.0  # + 0.0 turns -0.0 into 0.0 for the JSON
    joint_nodes = list(range(len(gltf.nodes), len(gltf.nodes) + len(skeleton.names)))
    children: list[list[int]] = [[] for _ in skeleton.names]
    for joint, parent in enumerate(skeleton.parents.tolist()):
        if parent >= 0:
            children[parent].append(joint_nodes[joint])
    for joint, name in enumerate(skeleton.names):
        gltf.nodes.append(
            gl.Node(name=name, translation=offsets[joint].tolist(), children=children[joint])
        )
    roots = [joint_nodes[j] for j in np.flatnonzero(skeleton.parents < 0).tolist()]

    # Inverse bind matrices: joints carry no rest rotation, so each is a pure
    # translation by minus the joint's world position (column-major MAT4).
    inverse_binds = np.tile(np.eye(4, dtype=np.float32), (len(skeleton.names), 1, 1))
    inverse_binds[:, 3, :3] = -turned(skeleton.positions)
    gltf.skins.append(
        gl.Skin(
            name="skin",
            inverseBindMatrices=writer.add_accessor(inverse_binds, target=None),
            skeleton=roots[0],
            joints=joint_nodes,
        )
    )

    # -- textures and materials ---------------------------------------------
    textures = [
        writer.add_texture(writer.add_png_image(encode_png(image), f"texture{i}"))
        for i, image in enumerate(avatar.textures)
    ]
    writer.use_extension("KHR_materials_unlit")
    materials = []
    for material in avatar.materials:
        pbr = gl.PbrMetallicRoughness(
            baseColorFactor=[float(c) for c in material.base_color],
            metallicFactor=0.0,
            roughnessFactor=1.0,
        )
        if material.texture is not None:
            pbr.baseColorTexture = gl.TextureInfo(index=textures[material.texture])
        gltf.materials.append(
            gl.Material(
                name=material.name,
                pbrMetallicRoughness=pbr,
                alphaMode=material.alpha_mode,
                alphaCutoff=material.alpha_cutoff if material.alpha_mode == "MASK" else None,
                doubleSided=material.double_sided,
                extensions={"KHR_materials_unlit": {}},
            )
        )
        materials.append(len(gltf.materials) - 1)

    # -- mesh: shared vertex attributes, one primitive per submesh ------------
    positions = turned(avatar.vertices)
    attributes = {
        "POSITION": writer.add_accessor(positions, bounds=True),
        "NORMAL": writer.add_accessor(turned(avatar.normals)),
        "TEXCOORD_0": writer.add_accessor(np.asarray(avatar.uvs, dtype=np.float32)),
        "JOINTS_0": writer.add_accessor(np.asarray(avatar.joints, dtype=np.uint16)),
        "WEIGHTS_0": writer.add_accessor(np.asarray(avatar.weights, dtype=np.float32)),
    }
    names = list(avatar.morph_targets)
    deltas = np.zeros((0, len(positions), 3), dtype=np.float32)
    if names:
        deltas = np.stack([avatar.morph_targets[n] for n in names]).astype(np.float32, copy=False)
    targets = [{"POSITION": a} for a in writer.add_sparse_vec3_accessors(deltas, signs)]
    index_dtype = np.uint16 if len(positions) <= 65535 else np.uint32
    primitives = []
    for sub in avatar.submeshes:
        if len(sub.faces) == 0:
            continue  # glTF accessors cannot be empty
        indices = writer.add_accessor(
            np.asarray(sub.faces, dtype=index_dtype).reshape(-1), target=ELEMENT_ARRAY_BUFFER
        )
        primitives.append(
            gl.Primitive(
                attributes=gl.Attributes(**attributes),
                indices=indices,
                material=materials[sub.material],
                targets=targets,
                # UniVRM reads target names per primitive, three.js and Blender per mesh.
                extras={"targetNames": names} if names else {},
            )
        )
    gltf.meshes.append(
        gl.Mesh(name="Body", primitives=primitives, extras={"targetNames": names} if names else {})
    )
    mesh = len(gltf.meshes) - 1
    # The skinned mesh's node is a scene root: parent transforms do not apply to skinned meshes.
    gltf.nodes.append(gl.Node(name="Body", mesh=mesh, skin=len(gltf.skins) - 1))
    mesh_node = len(gltf.nodes) - 1
    gltf.scenes.append(gl.Scene(name="Scene", nodes=roots + [mesh_node]))
    gltf.scene = 0
    return AvatarIndices(
        mesh=mesh,
        mesh_node=mesh_node,
        joint_nodes=joint_nodes,
        materials=materials,
        textures=textures,
        morph_targets={n: i for i, n in enumerate(names)},
    )
