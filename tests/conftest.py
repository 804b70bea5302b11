"""Fixtures shared by the test suites (keep this small; file checks live in validators.py)."""

from __future__ import annotations

import io

import pytest
from PIL import Image


@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory):
    """The session's cache of exported ChibiNet graphs (`avatar3d.onnx_net`), shared with
    the processes the tests start, instead of the checkout's `.cache/onnx`."""
    folder = tmp_path_factory.mktemp("onnx")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CHIBI_ONNX_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="session")
def default_avatar():
    """`build_avatar(AvatarParams())`, built once per session; treat it as read-only."""
    from avatar3d.build import build_avatar
    from avatar3d.params import AvatarParams

    return build_avatar(AvatarParams())


@pytest.fixture(scope="session")
def thumbnail_png() -> bytes:
    """A small, valid PNG to pass as a VRM thumbnail."""
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (250, 120, 90)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def group_photo():
    """The group photo (`sample_photos.GROUP_PHOTOS`): its (H, W, 3) uint8 RGB, its five
    readable faces left to right, and the `FaceAnalyzer` (up to 8 faces) that read them."""
    from avatar3d.face import FaceAnalyzer
    from avatar3d.imageio import decode_image
    from avatar3d.sample_photos import GROUP_PHOTOS, installed

    rgb = decode_image(dict(installed(GROUP_PHOTOS))["friends"])
    with FaceAnalyzer(max_faces=8) as every:
        faces = sorted(every.analyze(rgb, all_faces=True), key=lambda face: face.bbox[0])
        yield rgb, faces, every


@pytest.fixture(scope="module")
def analyzer():
    """A MediaPipe `FaceAnalyzer` shared by one test module."""
    from avatar3d.face import FaceAnalyzer

    with FaceAnalyzer() as face_analyzer:
        yield face_analyzer


@pytest.fixture(scope="module")
def astronaut():
    """scikit-image's astronaut: a real photo with one face, (512, 512, 3) uint8 RGB."""
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="module")
def astronaut_face(analyzer, astronaut):
    return analyzer.analyze(astronaut)[0]


@pytest.fixture(scope="module")
def hopper():
    """matplotlib's Grace Hopper: a real photo, browline glasses, (600, 512, 3) uint8 RGB."""
    import numpy as np
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        return np.asarray(Image.open(handle).convert("RGB"))
