"""pyrender offscreen renderers that can be deleted without breaking the others.

Every EGL context of a process shares one EGL display. pyrender 0.1.45's
`EGLPlatform.delete_context` destroys its context and then calls eglTerminate on that
display, so deleting one renderer (explicitly, or when the thread that kept it ends)
destroyed every other renderer's context as soon as it was no longer current: the
next render failed with EGL_BAD_CONTEXT. Renderers made here destroy only their own
context; the display stays initialised for the life of the process.
"""

from __future__ import annotations

import os
import types
from typing import Any


def offscreen_renderer(width: int, height: int) -> Any:
    """A `pyrender.OffscreenRenderer` (width x height pixels) whose `delete()` leaves
    the shared EGL display alone. EGL unless `PYOPENGL_PLATFORM` says otherwise (a
    process that loaded OpenGL before this keeps the platform it chose then)."""
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")  # no display here
    import pyrender

    renderer = pyrender.OffscreenRenderer(width, height)
    platform = renderer._platform
    if hasattr(platform, "_egl_context"):  # EGL (the default here), not OSMesa
        platform.delete_context = types.MethodType(_destroy_context_only, platform)
    return renderer


def _destroy_context_only(platform: Any) -> None:
    """Stands in for pyrender 0.1.45's `EGLPlatform.delete_context`, without eglTerminate."""
    from OpenGL.EGL import eglDestroyContext

    if platform._egl_display is not None and platform._egl_context is not None:
        eglDestroyContext(platform._egl_display, platform._egl_context)
        platform._egl_context = None
