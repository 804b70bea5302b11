"""Safe decoding: every input class the service may receive, built in memory."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from bad_photos import blank_png, encode, png_chunk
from PIL import Image
from skimage import data

from avatar3d.errors import ChibiError
from avatar3d.imageio import ALPHA_BACKGROUND, ImageLimits, decode_image


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()


def expect_code(code: str, payload: bytes, limits: ImageLimits | None = None) -> ChibiError:
    with pytest.raises(ChibiError) as info:
        if limits is None:
            decode_image(payload)
        else:
            decode_image(payload, limits)
    assert info.value.code == code, info.value
    return info.value


# -- invalid_image ------------------------------------------------------------------
def test_empty_bytes():
    expect_code("invalid_image", b"")


def test_random_bytes():
    expect_code("invalid_image", np.random.default_rng(0).bytes(5000))


def test_html_text():
    expect_code("invalid_image", b"<!doctype html><html><body><img src=x></body></html>")


def test_not_bytes():
    expect_code("invalid_image", "a string, not bytes")  # type: ignore[arg-type]


def test_truncated_jpeg(astronaut):
    jpeg = encode(Image.fromarray(astronaut), "JPEG", quality=90)
    expect_code("invalid_image", jpeg[: len(jpeg) // 2])


def test_truncated_png(astronaut):
    png = encode(Image.fromarray(astronaut), "PNG")
    expect_code("invalid_image", png[: len(png) // 3])


def test_unsupported_format_is_refused(astronaut):
    tiff = encode(Image.fromarray(astronaut), "TIFF")
    assert Image.open(io.BytesIO(tiff)).size == (512, 512)  # Pillow could read it...
    error = expect_code("invalid_image", tiff)  # ...but only photo formats are accepted
    assert "JPEG" in error.message


# -- image_too_large ----------------------------------------------------------------
def test_png_bomb_header_is_refused_without_decoding():
    bomb = blank_png(30000, 30000)
    assert len(bomb) < 300_000  # 900 megapixels in a few hundred kilobytes
    expect_code("image_too_large", bomb)


def test_pillow_bomb_guard_maps_to_our_code():
    # With our own limits lifted, Pillow's DecompressionBombError must still map.
    lifted = ImageLimits(max_pixels=10**12, max_side=10**6)
    expect_code("image_too_large", blank_png(30000, 30000), lifted)


def test_pixel_and_side_limits():
    expect_code("image_too_large", blank_png(8000, 6000))  # 48 MP > 40 MP
    expect_code("image_too_large", blank_png(13000, 8))  # side > 12000
    small = blank_png(400, 300)
    assert decode_image(small).shape == (300, 400, 3)
    expect_code("image_too_large", small, ImageLimits(max_pixels=100_000))
    expect_code("image_too_large", small, ImageLimits(max_side=399))


def test_byte_limit(astronaut):
    jpeg = encode(Image.fromarray(astronaut), "JPEG", quality=90)
    expect_code("image_too_large", jpeg, ImageLimits(max_bytes=len(jpeg) - 1))
    expect_code("image_too_large", b"\xff" * (ImageLimits().max_bytes + 1))
    assert decode_image(jpeg, ImageLimits(max_bytes=len(jpeg))).shape == (512, 512, 3)


# -- formats and modes ----------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "GIF", "HEIF", "AVIF"])
def test_formats_decode_to_rgb(astronaut, fmt):
    rgb = decode_image(encode(Image.fromarray(astronaut), fmt))
    assert rgb.shape == (512, 512, 3) and rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    tolerance = {"JPEG": 6, "WEBP": 8, "GIF": 25, "HEIF": 6, "AVIF": 6}.get(fmt, 0)
    assert np.abs(rgb.astype(int) - astronaut).mean() <= tolerance  # GIF: 256 colours


# -- HEIC (what iPhones save) and AVIF -------------------------------------------------
def _with_declared_size(heif: bytes, width: int, height: int) -> bytes:
    """The file with its 'ispe' box (the image's declared width and height) rewritten."""
    at = heif.index(b"ispe") + 8  # box type, then version and flags
    return heif[:at] + struct.pack(">II", width, height) + heif[at + 8 :]


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_heic_and_avif_come_out_upright(astronaut, fmt):
    sideways = Image.fromarray(np.rot90(astronaut[:, :400]).copy())  # 512 wide, 400 tall
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 deg clockwise to display
    photo = encode(sideways, fmt, quality=90, exif=exif.tobytes())
    if fmt == "HEIF":  # as an iPhone writes it: HEIF's own rotation box besides the tag
        assert b"irot" in photo
    rgb = decode_image(photo)
    assert rgb.shape == (512, 400, 3)
    assert np.abs(rgb.astype(int) - astronaut[:, :400]).mean() < 6


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_truncated_heic_and_avif(astronaut, fmt):
    photo = encode(Image.fromarray(astronaut), fmt)
    for length in (len(photo) // 2, 40):
        expect_code("invalid_image", photo[:length])


def test_10bit_heic_is_scaled_to_8bit(astronaut):
    import pillow_heif

    deep = pillow_heif.from_bytes(
        "RGB;16", (512, 512), (astronaut.astype(np.uint16) * 257).tobytes()
    )
    buffer = io.BytesIO()
    deep.save(buffer, quality=90)  # 10 bits per channel, as HDR phone photos are
    assert pillow_heif.open_heif(io.BytesIO(buffer.getvalue()), False).info["bit_depth"] == 10
    rgb = decode_image(buffer.getvalue())
    assert rgb.dtype == np.uint8 and np.abs(rgb.astype(int) - astronaut).mean() < 4


def test_heic_declaring_too_many_pixels_is_refused_before_decoding(astronaut):
    heif = encode(Image.fromarray(astronaut), "HEIF")
    assert decode_image(_with_declared_size(heif, 512, 512)).shape == (512, 512, 3)
    # past our limits (48 MP; a 13000 px side), below Pillow's own guard: decoding these
    # would fail, so image_too_large shows the header was checked first
    expect_code("image_too_large", _with_declared_size(heif, 8000, 6000))
    expect_code("image_too_large", _with_declared_size(heif, 13000, 8))
    expect_code("image_too_large", _with_declared_size(heif, 30000, 30000))  # Pillow's guard


def test_gif_first_frame():
    frames = [Image.new("RGB", (32, 16), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    gif = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    assert Image.open(io.BytesIO(gif)).n_frames == 2
    rgb = decode_image(gif)
    assert rgb.shape == (16, 32, 3)
    assert tuple(rgb[8, 16]) == (255, 0, 0)


def test_16bit_grayscale_png_is_scaled_not_clipped():
    ramp = np.array([[0, 257, 32896, 65535]], dtype=np.uint16).repeat(3, axis=0)
    png = encode(Image.fromarray(ramp), "PNG")
    assert Image.open(io.BytesIO(png)).mode.startswith("I")
    rgb = decode_image(png)
    assert rgb.shape == (3, 4, 3)
    assert rgb[0, :, 0].tolist() == [0, 1, 128, 255]
    assert (rgb[..., 0] == rgb[..., 2]).all()


def test_16bit_rgb_png():
    # A 16-bit RGB PNG written by hand (Pillow cannot write one).
    pixels = np.zeros((2, 3, 3), dtype=">u2")
    pixels[..., 0] = 65535  # red
    raw = b"".join(b"\x00" + row.tobytes() for row in pixels)
    header = struct.pack(">IIBBBBB", 3, 2, 16, 2, 0, 0, 0)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(raw))
        + png_chunk(b"IEND", b"")
    )
    rgb = decode_image(png)
    assert rgb.shape == (2, 3, 3) and (rgb == [255, 0, 0]).all()


def test_cmyk_jpeg():
    cmyk = Image.new("CMYK", (40, 20), (0, 255, 255, 0))  # red in CMYK
    jpeg = encode(cmyk, "JPEG", quality=95)
    assert Image.open(io.BytesIO(jpeg)).mode == "CMYK"
    rgb = decode_image(jpeg)
    assert rgb.shape == (20, 40, 3)
    assert np.abs(rgb[10, 20].astype(int) - [255, 0, 0]).max() <= 8


def test_grayscale_jpeg(astronaut):
    gray = Image.fromarray(astronaut).convert("L")
    rgb = decode_image(encode(gray, "JPEG"))
    assert rgb.shape == (512, 512, 3)
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()


def test_alpha_is_composited_on_grey():
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:, :4] = (255, 0, 0, 255)  # opaque red left half, transparent right half
    rgb = decode_image(encode(Image.fromarray(rgba), "PNG"))
    assert tuple(rgb[0, 0]) == (255, 0, 0)
    assert tuple(rgb[0, 7]) == ALPHA_BACKGROUND


def test_palette_with_transparency():
    image = Image.new("P", (8, 8), 0)
    image.putpalette([255, 255, 0] + [0, 0, 255] * 255)
    image.paste(1, (4, 0, 8, 8))
    rgb = decode_image(encode(image, "PNG", transparency=0))
    assert tuple(rgb[0, 0]) == ALPHA_BACKGROUND
    assert tuple(rgb[0, 7]) == (0, 0, 255)


def test_exif_orientation_is_applied(astronaut):
    # Stored sideways (rotated 90 deg counter-clockwise) with the tag that says
    # "rotate 90 deg clockwise to display", as a phone writes it.
    sideways = Image.fromarray(np.rot90(astronaut).copy())
    exif = Image.Exif()
    exif[0x0112] = 6
    rgb = decode_image(encode(sideways, "PNG", exif=exif))
    assert np.array_equal(rgb, astronaut)


def test_large_sideways_phone_jpeg_comes_out_upright_and_reduced(astronaut):
    # The phone case: a big JPEG (DCT-scaled while decoding, then area-averaged)
    # stored sideways with its orientation tag.
    big = np.asarray(Image.fromarray(astronaut).resize((2400, 2400)))
    sideways = Image.fromarray(np.rot90(big[:, :1800]).copy())  # 1800 wide, 2400 tall upright
    exif = Image.Exif()
    exif[0x0112] = 6
    rgb = decode_image(encode(sideways, "JPEG", quality=90, exif=exif))
    expected = np.asarray(Image.fromarray(big[:, :1800]).resize((1200, 1600), Image.Resampling.BOX))
    assert rgb.shape == expected.shape  # upright: taller than wide
    assert np.abs(rgb.astype(int) - expected).mean() < 4


def test_broken_exif_is_ignored(astronaut):
    png = encode(Image.fromarray(astronaut), "PNG", exif=b"Exif\x00\x00garbage-not-tiff")
    assert decode_image(png).shape == (512, 512, 3)


@pytest.mark.parametrize("fmt", ["PNG", "AVIF"])
def test_large_photo_without_dct_scaling_is_reduced_by_area(astronaut, fmt):
    big = np.asarray(Image.fromarray(astronaut).resize((4000, 3000)))
    rgb = decode_image(encode(Image.fromarray(big), fmt, quality=95))
    expected = np.asarray(Image.fromarray(big).resize((1600, 1200), Image.Resampling.BOX))
    assert rgb.shape == expected.shape
    assert np.abs(rgb.astype(int) - expected).mean() < (0.5 if fmt == "PNG" else 3)


def test_large_photo_is_downscaled(astronaut):
    big = Image.fromarray(astronaut).resize((3200, 2400))
    jpeg = encode(big, "JPEG", quality=85)
    rgb = decode_image(jpeg)
    assert rgb.shape == (1200, 1600, 3)
    full = decode_image(jpeg, ImageLimits(working_side=0))
    assert full.shape == (2400, 3200, 3)
    # The reduced image is the full one, smaller (not a crop, not shifted).
    reduced = np.asarray(Image.fromarray(full).resize((1600, 1200), Image.Resampling.BOX))
    assert np.abs(reduced.astype(int) - rgb).mean() < 4


def test_a_large_mpo_photo_is_decoded_at_reduced_size_like_a_jpeg(astronaut):
    """Many phones and cameras save a JPEG with more pictures after the first (Pillow's
    MPO): its first picture takes the JPEG's DCT-scaled decode (43 against 78 ms at 12 MP),
    so it gives the very pixels of the same JPEG without the extra pictures."""
    big = Image.fromarray(astronaut).resize((4032, 3024))
    with_more = io.BytesIO()
    big.save(with_more, "MPO", save_all=True, append_images=[big.resize((640, 480))], quality=90)
    assert Image.open(io.BytesIO(with_more.getvalue())).format == "MPO"
    rgb = decode_image(with_more.getvalue())
    assert rgb.shape == (1200, 1600, 3)
    assert np.array_equal(rgb, decode_image(encode(big, "JPEG", quality=90)))
