"""Bad and odd photos for the server tests: broken files, a decompression bomb, formats
we do not read, photos with no face, a tiny face, many faces, and photos in odd modes
(16-bit grey, CMYK, an animated GIF) that must convert. Built in memory from
scikit-image's astronaut."""

from __future__ import annotations

import io
import os
import struct
import zlib
from typing import Any

import numpy as np
from PIL import Image


def encode(image: Image.Image, fmt: str, **kwargs: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def astronaut() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut())


def png_bomb(side: int = 30000) -> bytes:
    """A valid 1-bit... 8-bit grey PNG of side x side zero pixels (~900 MB decoded, ~1 MB file)."""
    compressor = zlib.compressobj(9)
    row = bytes(side + 1)
    body = b"".join(compressor.compress(row * 500) for _ in range(side // 500))
    body += compressor.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )


def photo_corpus() -> dict[str, tuple[bytes, dict, set[str]]]:
    """name -> (photo bytes, options, acceptable outcomes: error codes or "ok")."""
    face = astronaut()
    jpeg = encode(face, "JPEG", quality=90)
    gray16 = Image.fromarray(np.asarray(face.convert("L"), np.uint16) * 257)  # mode I;16
    noise = np.random.default_rng(0).integers(0, 255, (300, 300, 3), np.uint8)
    frames = [face, face.transpose(Image.FLIP_LEFT_RIGHT)]
    tiles = Image.new("RGB", (1024, 1024))
    for x in (0, 512):
        for y in (0, 512):
            tiles.paste(face, (x, y))
    tiny = Image.new("RGB", (800, 800), (90, 120, 90))
    tiny.paste(face.resize((40, 40)), (380, 380))
    gradient = np.linspace(0, 255, 400 * 400 * 3).reshape(400, 400, 3).astype(np.uint8)
    return {
        "truncated_jpeg": (jpeg[: len(jpeg) // 2], {}, {"invalid_image"}),
        "empty_photo": (b"", {}, {"invalid_image"}),
        "random_bytes_photo": (os.urandom(5000), {}, {"invalid_image"}),
        "html_photo": (b"<!doctype html><html><body>hi</body></html>", {}, {"invalid_image"}),
        "png_bomb_30000": (png_bomb(), {}, {"image_too_large"}),
        "tiff_photo": (encode(face, "TIFF"), {}, {"invalid_image"}),
        "noise_no_face": (encode(Image.fromarray(noise), "PNG"), {}, {"no_face"}),
        "gradient_no_face": (encode(Image.fromarray(gradient), "JPEG"), {}, {"no_face"}),
        "tiny_face": (encode(tiny, "PNG"), {}, {"face_too_small", "no_face"}),
        "animated_gif": (
            encode(frames[0], "GIF", save_all=True, append_images=frames[1:]),
            {},
            {"ok"},
        ),
        "png_16bit": (encode(gray16, "PNG"), {}, {"ok"}),
        "cmyk_jpeg": (encode(face.convert("CMYK"), "JPEG"), {}, {"ok"}),
        "many_faces": (encode(tiles, "JPEG"), {}, {"ok"}),
        "many_faces_all": (encode(tiles, "JPEG"), {"all_faces": True}, {"ok"}),
    }
