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
