"""Avatar -> bytes, one module per format (glb, vrm1, vrm0, preview, file_preview).

    from exporters import export_file
    data = export_file(avatar, "vrm1")  # a .vrm file, with its thumbnail

Every format is written in memory (no temporary files) by the shared
`exporters.gltf_writer`.
"""

from __future__ import annotations

from collections.abc import Callable

from avatar3d.avatar import Avatar

from .glb import export_glb
from .vrm0 import export_vrm0
from .vrm1 import export_vrm1

FORMATS: tuple[str, ...] = ("glb", "vrm1", "vrm0")
FILE_EXTENSIONS: dict[str, str] = {"glb": ".glb", "vrm1": ".vrm", "vrm0": ".vrm"}


def export(
    avatar: Avatar, fmt: str, thumbnail_png: bytes | Callable[[], bytes] | None = None
) -> bytes:
    """Write `avatar` in format `fmt` (one of FORMATS) and return the file's bytes.

    thumbnail_png: PNG bytes stored as the VRM thumbnail (VRM 1.0 meta.thumbnailImage,
    VRM 0.x meta.texture), or a callable that returns them, called once the rest of
    the file is written; plain glb has no thumbnail slot and ignores it.
    Raises ValueError for an unknown format, a thumbnail that is not a PNG, or an
    inconsistent Avatar.
    """
    if fmt == "glb":
        return export_glb(avatar)
    if fmt == "vrm1":
        return export_vrm1(avatar, thumbnail_png)
    if fmt == "vrm0":
        return export_vrm0(avatar, thumbnail_png)
    raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")


def export_file(avatar: Avatar, fmt: str, thumbnail: bool = True) -> bytes:
    """The file a user asks for: `export` in format `fmt`, with the VRM thumbnail
    (`preview.render_thumbnail`'s 1024 px portrait) unless `thumbnail` is False.

    The thumbnail renders on a background thread while the rest of the file is
    written; the writer takes its PNG last. glb has no thumbnail slot.

    A VRM file is complete without one (both specs make it optional; the files
    tests/test_threevrm.py loads in three-vrm have none). Leaving it out halves a
    VRM's conversion time, which suits bulk conversion and engines that load the
    avatar at run time; files meant for avatar hubs and pickers keep it.
    """
    if fmt == "glb" or not thumbnail:
        return export(avatar, fmt)
    from .preview import render_thumbnail_in_background  # pyrender and EGL only when needed

    return export(avatar, fmt, thumbnail_png=render_thumbnail_in_background(avatar).result)
