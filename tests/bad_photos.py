"""Bad and odd photos, built in memory, for the decoder's and the server's tests:
broken files, a decompression bomb (`blank_png`: huge in pixels, tiny in bytes), formats
we do not read, photos with no face, a tiny face, many faces, and photos in odd modes
(16-bit grey, CMYK, an animated GIF) that must convert (`photo_corpus`, from
scikit-image's astronaut)."""

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


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    )


def blank_png(width: int, height: int) -> bytes:
    """A valid 1-bit grayscale PNG of one colour: huge in pixels, tiny in bytes.

    Written chunk by chunk so that the test never holds the decoded pixels.
    """
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    parts = []
    block = row * max(1, min(height, 4_000_000 // len(row)))
    rows_per_block = len(block) // len(row)
    done = 0
    while done < height:
        n = min(rows_per_block, height - done)
        parts.append(compressor.compress(block[: n * len(row)]))
        done += n
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", b"".join(parts))
        + png_chunk(b"IEND", b"")
    )


def astronaut() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut())


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
        "png_bomb_30000": (blank_png(30000, 30000), {}, {"image_too_large"}),
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
