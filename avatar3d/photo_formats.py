"""The photo formats we accept, by Pillow format name and by file name ending.

Kept apart from `imageio` (which loads OpenCV and the decoders) so that listing a
folder of photos (`chibi batch`'s driver, `chibi label`) imports nothing heavy.
"""

from __future__ import annotations

# Pillow format names; anything else is `invalid_image`. HEIF comes from pillow-heif's
# plugin (HEIC is what iPhones save), AVIF from Pillow's own.
ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "HEIF", "AVIF")

# File name endings of those formats, lower case.
PHOTO_SUFFIXES: tuple[str, ...] = (
    ".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".heic", ".heif", ".avif"
)  # fmt: skip
