import io
import threading

import numpy as np
import pytest
from PIL import Image

from avatar3d.errors import ChibiError
from avatar3d.params import AvatarParams, hex_to_rgb
from exporters.file_preview import load_avatar_file, render_file_preview
from exporters.preview import (
    BACKGROUND_BOTTOM,
    BACKGROUND_TOP,
    render_preview,
    render_thumbnail,
    render_thumbnail_in_background,
)

PARAMS = AvatarParams(skin_color="#f0c8a8", hair_color="#2f6fd0")


@pytest.fixture(scope="module")
def avatar():
    from avatar3d.build import build_avatar

    return build_avatar(PARAMS)


def _decode(png: bytes) -> np.ndarray:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int32)


def _share_near(image: np.ndarray, hex_colour: str, tolerance: int) -> float:
    rgb = np.round(np.array(hex_to_rgb(hex_colour)) * 255).astype(np.int32)
    return float(np.mean(np.all(np.abs(image - rgb) <= tolerance, axis=-1)))


def _foreground(image: np.ndarray) -> np.ndarray:
    """Pixels that differ clearly from the background gradient (any row's colour)."""
    top, bottom = np.array(BACKGROUND_TOP), np.array(BACKGROUND_BOTTOM)
    t = np.linspace(0, 1, image.shape[0])[:, None, None]
    background = top + (bottom - top) * t
    return np.abs(image - background).max(axis=-1) > 40


def test_preview_is_two_views_of_the_avatar(avatar):
    image = _decode(render_preview(avatar, 256))
    assert image.shape == (256, 512, 3)
    front, three_quarter = image[:, :256], image[:, 256:]
    for view in (front, three_quarter):
        assert 0.05 < _foreground(view).mean() < 0.8  # the avatar is there, and fits
        assert _share_near(view, PARAMS.skin_color, 12) > 0.003
        assert _share_near(view, PARAMS.hair_color, 40) > 0.005
    assert np.abs(front - three_quarter).mean() > 3  # different viewpoints


def test_thumbnail_is_a_square_portrait(avatar):
    image = _decode(render_thumbnail(avatar, 256))
    assert image.shape == (256, 256, 3)
    assert _share_near(image, PARAMS.skin_color, 12) > 0.03  # the face fills much of it
    assert _foreground(image).mean() > 0.3


def _same_picture(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal but for a few pixels (llvmpipe's threaded rasteriser may differ at single edges)."""
    return a.shape == b.shape and float(np.mean(np.abs(a - b).max(axis=-1) > 3)) < 0.002


def test_repeated_and_threaded_calls_reuse_renderers_and_agree(avatar):
    first = _decode(render_preview(avatar, 128))
    again = _decode(render_preview(avatar, 128))
    assert _same_picture(first, again)
    results = {}

    def work():
        results["thread"] = _decode(render_preview(avatar, 128))

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=120)
    assert _same_picture(results["thread"], first)


def test_a_finished_threads_renderer_leaves_the_others_working(avatar):
    """The renderer of a thread that ends is deleted; that must not end the EGL display
    every context shares. pyrender's own delete called eglTerminate, and the main thread's
    renderer then failed with EGL_BAD_CONTEXT once another context (here one like the
    synthetic-set renderer's) had been made current, and again after that one's delete."""
    import gc

    import pyrender

    from avatar3d.offscreen import offscreen_renderer

    first = _decode(render_preview(avatar, 128))
    thread = threading.Thread(target=lambda: render_preview(avatar, 96))
    thread.start()
    thread.join(timeout=120)
    gc.collect()  # the thread's renderer is gone
    other = offscreen_renderer(64, 64)
    try:
        scene = pyrender.Scene(bg_color=(1.0, 0.0, 0.0, 1.0))
        scene.add(pyrender.OrthographicCamera(1.0, 1.0))
        colour, _ = other.render(scene, flags=pyrender.RenderFlags.FLAT)
        assert tuple(colour[32, 32, :3]) == (255, 0, 0)
        assert _same_picture(_decode(render_preview(avatar, 128)), first)
    finally:
        other.delete()
    assert _same_picture(_decode(render_preview(avatar, 128)), first)


@pytest.mark.parametrize("size", [0, 8, 5000, 100.5])
def test_bad_size_is_rejected(avatar, size):
    with pytest.raises(ValueError):
        render_preview(avatar, size)


def test_preview_of_an_exported_file(avatar):
    from exporters import export

    for fmt in ("glb", "vrm0"):
        data = export(avatar, fmt)
        scene = load_avatar_file(data)
        assert len(scene.geometry) >= 1
        image = _decode(render_file_preview(data, 128))
        assert image.shape == (128, 256, 3)
        front = image[:, :128]
        assert _share_near(front, PARAMS.skin_color, 14) > 0.002, fmt  # faces the camera


@pytest.mark.parametrize("data", [b"", b"not a model", b"glTF\x02\x00\x00\x00" + b"\x00" * 20])
def test_bad_files_raise_invalid_model(data):
    with pytest.raises(ChibiError) as info:
        render_file_preview(data, 64)
    assert info.value.code == "invalid_model"


def test_textures_keep_their_orientation_in_previews_and_thumbnails():
    """A quad whose texture is red on top (glTF v = 0) and blue below shows red above blue,
    through both samplers (the previews' trilinear one, the thumbnail's bilinear one)."""
    from exporters.preview import Part, preview_image, thumbnail_image

    texture = np.zeros((64, 64, 4), np.uint8)
    texture[:32] = (220, 30, 30, 255)
    texture[32:] = (30, 30, 220, 255)
    quad = Part(
        positions=np.array([[-0.5, 0, 0], [0.5, 0, 0], [0.5, 1, 0], [-0.5, 1, 0]], np.float32),
        normals=np.tile(np.array([0, 0, 1], np.float32), (4, 1)),
        uvs=np.array([[0, 1], [1, 1], [1, 0], [0, 0]], np.float32),
        faces=np.array([[0, 1, 2], [0, 2, 3]]),
        texture=texture,
        color=(1.0, 1.0, 1.0, 1.0),
        shade=(1.0, 1.0, 1.0),
        double_sided=True,
    )
    for image in (preview_image([quad], 64)[:, :64], thumbnail_image([quad], 64)):
        image = image.astype(np.int32)
        red = (image[..., 0] > 150) & (image[..., 1] < 80) & (image[..., 2] < 80)
        blue = (image[..., 2] > 150) & (image[..., 0] < 80) & (image[..., 1] < 80)
        assert red.sum() > 50 and blue.sum() > 50
        rows = np.arange(image.shape[0])[:, None]
        both = red.any(axis=0) & blue.any(axis=0)  # columns with both colours
        lowest_red = np.where(red, rows, -1).max(axis=0)
        highest_blue = np.where(blue, rows, image.shape[0]).min(axis=0)
        assert both.sum() > 10 and np.all(lowest_red[both] < highest_blue[both])


def test_export_file_renders_the_thumbnail_in_the_background_like_in_the_foreground(avatar):
    """`export_file` (the CLI's, the server's and batch's path) renders the VRM thumbnail
    on the thumbnail thread while it writes the rest: the same file as with the
    thumbnail rendered first, in this thread, and as with helper threads switched off
    (what a server worker does when every core is busy)."""
    import exporters
    from exporters.background import use_helper_threads

    assert render_thumbnail_in_background(avatar, 128).result() == render_thumbnail(avatar, 128)
    assert any(thread.name.startswith("chibi-thumbnail") for thread in threading.enumerate())
    for fmt in ("vrm1", "vrm0"):
        expected = exporters.export(avatar, fmt, render_thumbnail(avatar))
        assert exporters.export_file(avatar, fmt) == expected
        use_helper_threads(False)
        try:
            assert exporters.export_file(avatar, fmt) == expected
        finally:
            use_helper_threads(True)
        assert exporters.export_file(avatar, fmt, thumbnail=False) == exporters.export(avatar, fmt)
    assert exporters.export_file(avatar, "glb") == exporters.export(avatar, "glb")


def test_with_helper_threads_off_the_work_runs_here_and_errors_still_arrive():
    from exporters.background import run_beside, use_helper_threads

    use_helper_threads(False)
    try:
        here = run_beside("test", threading.current_thread)
        assert here.done() and here.result() is threading.current_thread()
        with pytest.raises(ZeroDivisionError):
            run_beside("test", lambda: 1 / 0).result()
    finally:
        use_helper_threads(True)
    assert run_beside("test", threading.current_thread).result() is not threading.current_thread()
