"""Build + export one avatar per format, and our glb writer against trimesh's own glb export.

Both sides of the ratio run in the same process, interleaved, on the same mesh.
"""

from __future__ import annotations

import io
import zlib

import numpy as np
import trimesh
from PIL import Image
from zlib_ng import zlib_ng

from avatar3d.build import build_avatar
from avatar3d.params import AvatarParams
from exporters import FORMATS, export
from exporters.glb import export_glb
from exporters.gltf_writer import encode_png

from .common import median, time_runs

REPEAT = 21


def _trimesh_scene(avatar) -> trimesh.Trimesh:
    """The same triangles, UVs and texture as a plain trimesh (trimesh has no skin or morphs)."""
    faces = np.concatenate([s.faces for s in avatar.submeshes])
    material = trimesh.visual.material.PBRMaterial(
        baseColorTexture=Image.fromarray(avatar.textures[0])
    )
    visual = trimesh.visual.TextureVisuals(uv=avatar.uvs, material=material)
    return trimesh.Trimesh(
        avatar.vertices, faces, vertex_normals=avatar.normals, visual=visual, process=False
    )


def _varied_faces(params: AvatarParams, count: int) -> list[AvatarParams]:
    """`count` copies of `params` with seeded identity sliders, as photos give them (the
    default face leaves every head-shape field at rest, which costs less). Brow thickness
    stays at 0.5, as the teacher reports it."""
    rng = np.random.default_rng(0)
    faces = []
    for _ in range(count):
        face = AvatarParams.from_dict(params.to_dict())
        for name in face.shape:
            if name != "brow_thickness":
                face.shape[name] = round(float(rng.uniform(0.1, 0.9)), 4)
        faces.append(face)
    return faces


def main() -> None:
    params = AvatarParams.from_json(open("samples/params/default.json").read())
    print("== avatar build + export (default quality, median of", REPEAT, "runs) ==")
    build_ms = median(time_runs(lambda: build_avatar(params), REPEAT))
    avatar = build_avatar(params)
    print(f"build_avatar            {build_ms:8.1f} ms  ({avatar.triangle_count} triangles)")
    faces = _varied_faces(params, 20)
    varied = [t for face in faces for t in time_runs(lambda face=face: build_avatar(face), 3)]
    print(f"build_avatar, {len(faces)} faces, every slider off 0.5 {median(varied):5.1f} ms")
    for fmt in FORMATS:
        export_ms = median(time_runs(lambda fmt=fmt: export(avatar, fmt), REPEAT))
        size = len(export(avatar, fmt))
        total_ms = median(time_runs(lambda fmt=fmt: export(build_avatar(params), fmt), REPEAT))
        print(
            f"{fmt:5s} export {export_ms:8.1f} ms   build+export {total_ms:8.1f} ms"
            f"   {size / 1e6:.2f} MB"
        )

    mesh = _trimesh_scene(avatar)
    ours, theirs = [], []
    for _ in range(REPEAT):  # interleaved so both see the same machine load
        ours += time_runs(lambda: export_glb(avatar), 1, warmup=0)
        theirs += time_runs(lambda: mesh.export(file_type="glb"), 1, warmup=0)
    ours_ms, theirs_ms = median(ours), median(theirs)
    buffer = io.BytesIO(mesh.export(file_type="glb"))
    print(
        f"glb writer: ours {ours_ms:.1f} ms (skin + {len(avatar.morph_targets)} morph targets)"
        f" vs trimesh {theirs_ms:.1f} ms (mesh + texture only, {len(buffer.getvalue()) / 1e6:.2f}"
        f" MB); ratio ours/trimesh = {ours_ms / theirs_ms:.2f}"
    )

    # the atlas PNG's deflate, zlib-ng (what encode_png uses) vs zlib's fastest level
    filtered = zlib.decompress(_idat(encode_png(avatar.textures[0])))
    ng_ms, zlib_ms = [], []
    for _ in range(REPEAT):
        ng_ms += time_runs(lambda: zlib_ng.compress(filtered, 2), 1, warmup=0)
        zlib_ms += time_runs(lambda: zlib.compress(filtered, 1), 1, warmup=0)
    print(
        f"atlas PNG deflate ({len(filtered) / 1e6:.1f} MB filtered): zlib-ng level 2 "
        f"{median(ng_ms):.1f} ms ({len(zlib_ng.compress(filtered, 2)) / 1e3:.0f} kB) vs zlib "
        f"level 1 {median(zlib_ms):.1f} ms ({len(zlib.compress(filtered, 1)) / 1e3:.0f} kB)"
    )


def _idat(png: bytes) -> bytes:
    """The IDAT payload of a PNG written by encode_png (one IDAT chunk)."""
    start = png.index(b"IDAT")
    (length,) = np.frombuffer(png[start - 4 : start], ">u4")
    return png[start + 4 : start + 4 + int(length)]
