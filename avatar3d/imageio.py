"""Safe decoding of untrusted image bytes into an 8-bit RGB array.

Photos come from the network, so decoding is defensive:

- only photo formats are opened: JPEG, PNG, WebP, BMP, GIF, HEIC/HEIF (what
  iPhones save; `pillow-heif`) and AVIF (Pillow is never asked to guess among its
  other, rarer decoders);
- the byte size, the pixel count and the longest side are checked from the
  header, *before* the pixels are decoded, so a decompression bomb (a tiny PNG
  that claims 30000 x 30000 pixels) costs nothing;
- EXIF orientation is applied, so a phone photo taken sideways comes out
  upright (HEIF's own rotation and mirroring are applied by libheif, which then
  marks the EXIF orientation as done);
- every mode Pillow can produce (grayscale, 16-bit, palette, CMYK, alpha...)
  ends up as (H, W, 3) uint8 sRGB; transparent pixels are composited on grey;
- very large photos are reduced right away (JPEG DCT scaling with
  `Image.draft`, then OpenCV's area averaging), because face analysis never
  needs more than about 1600 px and every later step gets faster.

Every failure is a `ChibiError` with code `invalid_image` or `image_too_large`.
The function is pure (no global state is changed), so it is safe to call from
several threads at once.
"""

from __future__ import annotations

import io
import math
import os
import stat
from dataclasses import dataclass

import cv2
import numpy as np
import pillow_heif
from PIL import ExifTags, Image, ImageOps

from .errors import ChibiError
from .photo_formats import ALLOWED_FORMATS

# Pillow opens HEIF through pillow-heif's plugin (format "HEIF"); AVIF is Pillow's own.
pillow_heif.register_heif_opener()

# Transparent pixels are composited on this neutral grey: it is neither skin
# nor hair coloured, so it does not bias colour sampling, and faces stay
# detectable on it.
ALPHA_BACKGROUND: tuple[int, int, int] = (128, 128, 128)


@dataclass(frozen=True)
class ImageLimits:
    """Limits applied before decoding.

    max_bytes: size of the encoded file in bytes.
    max_pixels: width * height as declared in the header.
    max_side: the longer of width and height, in pixels.
    working_side: after decoding, images whose longer side exceeds this are
        downscaled to it (0 keeps the full resolution).
    """

    max_bytes: int = 20_000_000
    max_pixels: int = 40_000_000
    max_side: int = 12_000
    working_side: int = 1600


DEFAULT_LIMITS = ImageLimits()


def read_photo_file(path: str | os.PathLike, max_bytes: int = DEFAULT_LIMITS.max_bytes) -> bytes:
    """A photo file's bytes, for jobs that read many: ChibiError io_error (missing,
    unreadable, not a regular file: a folder, or a FIFO, which would block) or
    image_too_large (over `max_bytes`, found without reading it all)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO named x.jpg must not hang
    except OSError as exc:
        raise ChibiError("io_error", f"cannot open the photo: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ChibiError("io_error", "not a regular file")
    with os.fdopen(fd, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ChibiError("image_too_large", f"the file is over {max_bytes} bytes")
    return data


def decode_image(data: bytes, limits: ImageLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Decode untrusted image bytes to an upright (H, W, 3) uint8 sRGB array.

    Raises `ChibiError`:
      - `invalid_image`: empty, truncated or corrupt data, not an image, or a
        format outside `ALLOWED_FORMATS`;
      - `image_too_large`: more than `limits.max_bytes` bytes, or a header that
        declares more than `limits.max_pixels` pixels or a side longer than
        `limits.max_side` (also when Pillow's own decompression-bomb guard trips).
    The result is at most `limits.working_side` pixels on its longer side.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ChibiError("invalid_image", f"image data must be bytes, got {type(data).__name__}")
    size = len(data)
    if size == 0:
        raise ChibiError("invalid_image", "image data is empty")
    if size > limits.max_bytes:
        raise ChibiError(
            "image_too_large", f"image is {size} bytes, the limit is {limits.max_bytes} bytes"
        )
    try:
        with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as image:
            _check_declared_size(image.size, limits)
            rgb = _decode_checked(image, limits.working_side)
    except ChibiError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ChibiError("image_too_large", f"image has too many pixels ({exc})") from None
    except MemoryError:
        raise ChibiError("image_too_large", "image needs too much memory to decode") from None
    except Image.UnidentifiedImageError:
        raise ChibiError(
            "invalid_image", f"not a supported image; use one of {', '.join(ALLOWED_FORMATS)}"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure is bad input, never a crash
        raise ChibiError("invalid_image", f"cannot decode image: {_short(exc)}") from None
    return rgb


def _check_declared_size(size: tuple[int, int], limits: ImageLimits) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ChibiError("invalid_image", f"image declares an empty size {width}x{height}")
    # Pillow warns above Image.MAX_IMAGE_PIXELS and refuses above twice that; an
    # image it would warn about is refused here as well, so its guard always maps
    # to our code.
    max_pixels = limits.max_pixels
    if Image.MAX_IMAGE_PIXELS:
        max_pixels = min(max_pixels, Image.MAX_IMAGE_PIXELS)
    if max(width, height) > limits.max_side:
        raise ChibiError(
            "image_too_large",
            f"image is {width}x{height}, the longest side allowed is {limits.max_side} px",
        )
    if width * height > max_pixels:
        raise ChibiError(
            "image_too_large",
            f"image is {width}x{height} = {width * height} pixels, the limit is {max_pixels}",
        )


def _decode_checked(image: Image.Image, working_side: int) -> np.ndarray:
    """Decode an opened, size-checked image into an upright uint8 RGB array."""
    image.seek(0)  # GIF / animated WebP / APNG: the first frame only
    # MPO: a JPEG carrying more pictures after the first (many phones' and cameras' photos)
    if working_side and image.format in ("JPEG", "MPO"):
        # DCT scaling decodes a 4000 px JPEG at 1/2, 1/4 or 1/8 size directly:
        # much faster and lighter than decoding everything and resizing.
        # draft() never goes below the requested size.
        longest = max(image.size)
        if longest > working_side:
            scale = working_side / longest
            image.draft(None, (math.ceil(image.width * scale), math.ceil(image.height * scale)))
    image.load()
    image = _to_rgb(_exif_upright(image))
    factor = max(image.size) // working_side if working_side else 0
    if factor >= 2:
        # a box filter in Pillow first (for formats without JPEG's DCT scaling): the
        # copy into numpy below is then factor^2 smaller (12 MP HEIC: 52 -> 30 ms)
        image = image.reduce(factor)
    rgb = np.asarray(image, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3:  # defensive: _to_rgb guarantees this
        raise ChibiError("invalid_image", f"unexpected decoded shape {rgb.shape}")
    height, width = rgb.shape[:2]
    if working_side and max(width, height) > working_side:
        scale = working_side / max(width, height)
        new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
        # area averaging: anti-aliased like Lanczos for a shrink, and a 12 MP phone
        # photo's reduction takes 12 ms instead of Pillow's Lanczos's 33-37 ms
        rgb = cv2.resize(rgb, new_size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb)


def _exif_upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation tag; a broken EXIF block leaves the image as it is."""
    try:
        if image.getexif().get(ExifTags.Base.Orientation, 1) == 1:
            return image  # upright already: exif_transpose would still copy every pixel
        upright = ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - corrupt EXIF is common and harmless
        return image
    return upright if upright is not None else image


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit 'RGB'."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        # 16/32-bit grayscale: Pillow's convert('L') clips instead of scaling.
        values = np.asarray(image).astype(np.float64)
        top = 65535.0 if mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        gray = np.clip(np.rint(values * (255.0 / top)), 0, 255).astype(np.uint8)
        return Image.fromarray(np.repeat(gray[:, :, None], 3, axis=2))
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*ALPHA_BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    # L, 1, P, CMYK (Adobe's inverted CMYK is handled by the JPEG plugin), YCbCr, LAB, HSV
    return image.convert("RGB")


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
