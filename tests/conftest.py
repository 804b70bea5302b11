"""Fixtures shared by the test suites (keep this small; file checks live in validators.py)."""

from __future__ import annotations

import io

import pytest
from PIL import Image


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
