"""Avatar -> binary glTF (.glb): skinned mesh, skeleton, named morph targets,
`KHR_materials_unlit` toon materials and the embedded PNG texture atlas."""

from __future__ import annotations

from avatar3d.avatar import Avatar

from .gltf_writer import GltfWriter, write_avatar


def export_glb(avatar: Avatar) -> bytes:
    """The avatar as GLB bytes, facing +Z, metres, Y up."""
    writer = GltfWriter()
    write_avatar(writer, avatar)
    return writer.to_glb()
