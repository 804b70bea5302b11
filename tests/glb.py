"""GLB files as plain data for the tests: parse one into its JSON and BIN chunk, read an
accessor as a numpy array, build one back (e.g. deliberately broken)."""

from __future__ import annotations

import json
import struct

import numpy as np


def parse_glb(data: bytes) -> tuple[dict, bytes]:
    """(JSON dict, BIN chunk bytes) of a GLB file."""
    magic, version, length = struct.unpack_from("<4sII", data, 0)
    assert magic == b"glTF" and version == 2 and length == len(data), "not a GLB 2.0 file"
    json_length, json_type = struct.unpack_from("<I4s", data, 12)
    assert json_type == b"JSON"
    gltf_json = json.loads(data[20 : 20 + json_length])
    binary = b""
    at = 20 + json_length
    if at < len(data):
        bin_length, bin_type = struct.unpack_from("<I4s", data, at)
        assert bin_type == b"BIN\0"
        binary = data[at + 8 : at + 8 + bin_length]
    return gltf_json, binary


_DTYPES = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32,
           5126: np.float32}  # fmt: skip
_WIDTHS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}


def _rows(
    gltf: dict, binary: bytes, where: dict, dtype: type, count: int, width: int
) -> np.ndarray:
    """(count, width) values stored at `where` (bufferView, byteOffset), honouring byteStride."""
    view = gltf["bufferViews"][where["bufferView"]]
    start = view.get("byteOffset", 0) + where.get("byteOffset", 0)
    row_bytes = np.dtype(dtype).itemsize * width
    stride = view.get("byteStride", row_bytes)
    raw = np.frombuffer(binary, np.uint8, count=stride * (count - 1) + row_bytes, offset=start)
    rows = np.lib.stride_tricks.as_strided(raw, shape=(count, row_bytes), strides=(stride, 1))
    return rows.copy().view(dtype).reshape(count, width)


def read_accessor(gltf: dict, binary: bytes, index: int) -> np.ndarray:
    """An accessor's values as a dense (count, width) array, sparse substitution applied."""
    accessor = gltf["accessors"][index]
    dtype, count = _DTYPES[accessor["componentType"]], accessor["count"]
    width = _WIDTHS[accessor["type"]]
    if "bufferView" in accessor:
        values = _rows(gltf, binary, accessor, dtype, count, width)
    else:  # all zeros, unless sparse says otherwise
        values = np.zeros((count, width), dtype=dtype)
    sparse = accessor.get("sparse")
    if sparse:
        indices = sparse["indices"]
        rows = _rows(gltf, binary, indices, _DTYPES[indices["componentType"]], sparse["count"], 1)
        values[rows[:, 0]] = _rows(gltf, binary, sparse["values"], dtype, sparse["count"], width)
    return values


def build_glb(gltf_json: dict, binary: bytes) -> bytes:
    """A GLB from a JSON dict and a BIN chunk (e.g. to write a deliberately broken file)."""
    text = json.dumps(gltf_json).encode()
    text += b" " * (-len(text) % 4)
    binary += b"\0" * (-len(binary) % 4)
    length = 12 + 8 + len(text) + 8 + len(binary)
    header = struct.pack("<4sII", b"glTF", 2, length)
    chunks = struct.pack("<I4s", len(text), b"JSON") + text
    return header + chunks + struct.pack("<I4s", len(binary), b"BIN\0") + binary
