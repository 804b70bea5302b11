"""Preview pictures of an avatar, rendered offscreen with pyrender (EGL).

Look: flat, unlit toon shading. The atlas colours are shown as they are (sRGB),
multiplied by a two-tone cel shade baked into vertex colours, with an
inverted-hull outline and a soft ground shadow on a light gradient background.

- `render_preview(avatar, size)`: PNG, two size x size views side by side
  (front and 3/4), full body.
- `render_thumbnail(avatar, size)`: square PNG, a 3/4 portrait of the head and
  upper body (the VRM thumbnail); `render_thumbnail_in_background` renders it on
  this process's thumbnail thread and returns a Future.
The same pictures of an existing .glb/.vrm file: `exporters.file_preview`.

One OffscreenRenderer is kept per thread (creating an EGL context is slow) and
reused; calls from several threads each get their own.
"""

from __future__ import annotations

import atexit
import os
import threading
import types
import weakref
from concurrent.futures import Future
from dataclasses import dataclass

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

import numpy as np  # noqa: E402
import OpenGL.GL as gl  # noqa: E402
import pyrender  # noqa: E402
from PIL import Image  # noqa: E402

from avatar3d.avatar import Avatar  # noqa: E402
from avatar3d.offscreen import offscreen_renderer  # noqa: E402
from avatar3d.params import linear_to_srgb  # noqa: E402

from .background import run_beside  # noqa: E402
from .gltf_writer import encode_png  # noqa: E402

# Background gradient (sRGB 0..255), top and bottom: pale sky to pale blush.
BACKGROUND_TOP = (232, 240, 251)
BACKGROUND_BOTTOM = (252, 238, 242)
SHADOW_RGB = (150, 140, 170)
OUTLINE_DARKEN = 0.38  # outline colour = the surface colour under it times this
OUTLINE_WIDTH = 0.0032  # of the avatar's height
SHADE_STRENGTH = 0.6  # how much of the material's shade colour the dark side gets
SUPERSAMPLE = 2  # render larger, then downsample: smooth edges beyond 4x MSAA
MAX_SIZE = 2048
MAX_SUPERSAMPLED = 1536  # above this many pixels, 4x MSAA alone is smooth enough (and 3x faster)
FAR = 50.0  # metres: the camera's far plane (or further for a model that big); the background
# quad stands just before it

_local = threading.local()
# every live renderer, so they are closed before the interpreter tears modules down
# (PyOpenGL then fails noisily inside pyrender's __del__)
_all_renderers: weakref.WeakSet = weakref.WeakSet()


@dataclass
class Part:
    """One drawable: positions (N, 3), normals (N, 3), uvs (N, 2) glTF, faces (F, 3), texture."""

    positions: np.ndarray
    normals: np.ndarray
    uvs: np.ndarray | None
    faces: np.ndarray
    texture: np.ndarray | None  # (H, W, 4) uint8 sRGB
    color: tuple[float, float, float, float]  # sRGB factor
    shade: tuple[float, float, float]  # sRGB multiplier on the shaded side
    double_sided: bool = False


def _parts_from_avatar(avatar: Avatar) -> list[Part]:
    parts = []
    for sub in avatar.submeshes:
        material = avatar.materials[sub.material]
        texture = None if material.texture is None else avatar.textures[material.texture]
        rgb = linear_to_srgb(material.base_color[:3])
        parts.append(
            Part(
                positions=np.asarray(avatar.vertices, np.float32),
                normals=np.asarray(avatar.normals, np.float32),
                uvs=np.asarray(avatar.uvs, np.float32),
                faces=np.asarray(sub.faces, np.int64),
                texture=texture,
                color=(*rgb, material.base_color[3]),
                shade=tuple(linear_to_srgb(material.shade_color)),
                double_sided=material.double_sided,
            )
        )
    return parts


def _read_colour_only(self: pyrender.Renderer, scene: pyrender.Scene, flags: int):
    """Stands in for pyrender 0.1.45's `Renderer._read_main_framebuffer` on our renderers.

    pyrender always reads the depth buffer back too and converts it to metres with
    numpy: at 1024 px that is most of the readback's cost, for a picture we never use.
    Resolve the multisampled colour buffer alone and read it as RGB.
    """
    width, height = self._main_fb_dims
    gl.glBindFramebuffer(gl.GL_READ_FRAMEBUFFER, self._main_fb_ms)
    gl.glBindFramebuffer(gl.GL_DRAW_FRAMEBUFFER, self._main_fb)
    gl.glBlitFramebuffer(
        0, 0, width, height, 0, 0, width, height, gl.GL_COLOR_BUFFER_BIT, gl.GL_LINEAR
    )
    gl.glBindFramebuffer(gl.GL_READ_FRAMEBUFFER, self._main_fb)
    gl.glPixelStorei(gl.GL_PACK_ALIGNMENT, 1)
    data = gl.glReadPixels(0, 0, width, height, gl.GL_RGB, gl.GL_UNSIGNED_BYTE)
    return np.frombuffer(data, np.uint8).reshape(height, width, 3)[::-1], None


def _configure_framebuffers(self: pyrender.Renderer) -> None:
    """Stands in for pyrender 0.1.45's `Renderer._configure_main_framebuffer` on our renderers.

    The same framebuffers (4x MSAA, resolved into a single-sample one), but the
    multisampled depth buffer has 16 bits, not 24: llvmpipe draws the 1024 px
    thumbnail ~15 % faster. `_render_view` moves the near plane up to the avatar, so
    16 bits still resolve depth to a tenth of a millimetre there.
    """
    size = (self.viewport_width, self.viewport_height)
    if self._main_fb is not None and self._main_fb_dims != size:
        self._delete_main_framebuffer()
    if self._main_fb is not None:
        return
    width, height = size
    self._main_cb, self._main_db, self._main_cb_ms, self._main_db_ms = gl.glGenRenderbuffers(4)
    storage = (
        (self._main_cb, 0, gl.GL_RGBA8),
        (self._main_db, 0, gl.GL_DEPTH_COMPONENT16),
        (self._main_cb_ms, 4, gl.GL_RGBA8),
        (self._main_db_ms, 4, gl.GL_DEPTH_COMPONENT16),
    )
    for buffer, samples, fmt in storage:
        gl.glBindRenderbuffer(gl.GL_RENDERBUFFER, buffer)
        gl.glRenderbufferStorageMultisample(gl.GL_RENDERBUFFER, samples, fmt, width, height)
    self._main_fb, self._main_fb_ms = gl.glGenFramebuffers(2)
    for framebuffer, colour, depth in (
        (self._main_fb, self._main_cb, self._main_db),
        (self._main_fb_ms, self._main_cb_ms, self._main_db_ms),
    ):
        gl.glBindFramebuffer(gl.GL_DRAW_FRAMEBUFFER, framebuffer)
        gl.glFramebufferRenderbuffer(
            gl.GL_DRAW_FRAMEBUFFER, gl.GL_COLOR_ATTACHMENT0, gl.GL_RENDERBUFFER, colour
        )
        gl.glFramebufferRenderbuffer(
            gl.GL_DRAW_FRAMEBUFFER, gl.GL_DEPTH_ATTACHMENT, gl.GL_RENDERBUFFER, depth
        )
    self._main_fb_dims = size


def _renderer(width: int, height: int) -> pyrender.OffscreenRenderer:
    renderer = getattr(_local, "renderer", None)
    if renderer is None:
        renderer = offscreen_renderer(width, height)
        for name, method in (
            ("_read_main_framebuffer", _read_colour_only),
            ("_configure_main_framebuffer", _configure_framebuffers),
        ):
            setattr(renderer._renderer, name, types.MethodType(method, renderer._renderer))
        _local.renderer = renderer
        _all_renderers.add(renderer)
    renderer.viewport_width, renderer.viewport_height = width, height
    return renderer


def _drop_renderer() -> None:
    renderer = getattr(_local, "renderer", None)
    _local.renderer = None
    if renderer is not None:
        try:
            renderer.delete()
        except Exception:  # noqa: BLE001 - a broken context is dropped either way
            pass


@atexit.register
def _close_all_renderers() -> None:
    _local.renderer = None
    for renderer in list(_all_renderers):
        try:
            renderer.delete()
        except Exception:  # noqa: BLE001 - shutting down; nothing left to save
            pass


def _look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """4x4 camera pose at `eye` looking at `target` with +Y up (the camera looks down its -Z)."""
    forward = target - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, up, -forward, eye
    return pose


def _sample_texture(texture: np.ndarray, uvs: np.ndarray) -> np.ndarray:
    """Nearest texel (N, 3) float sRGB for glTF uvs (N, 2)."""
    h, w = texture.shape[:2]
    x = np.clip((uvs[:, 0] * w).astype(int), 0, w - 1)
    y = np.clip((uvs[:, 1] * h).astype(int), 0, h - 1)
    return texture[y, x, :3].astype(np.float32) / 255.0


class _Texture(pyrender.Texture):
    """An RGBA texture that pyrender uploads as it is.

    pyrender 0.1.45 copies the image three times, flips it upside down and always
    builds a mipmap chain. This one keeps the rows top first, so glTF uvs address it
    directly, and builds mipmaps only when the sampler reads them. It saves ~3 ms
    per 1024 px atlas.
    """

    def __init__(self, rgba: np.ndarray, mipmaps: bool):
        # LINEAR magnification; LINEAR_MIPMAP_LINEAR (trilinear) or LINEAR minification
        sampler = pyrender.Sampler(
            magFilter=gl.GL_LINEAR,
            minFilter=gl.GL_LINEAR_MIPMAP_LINEAR if mipmaps else gl.GL_LINEAR,
        )
        super().__init__(sampler=sampler, source_channels="RGBA")
        self._source = np.ascontiguousarray(rgba, np.uint8)
        self._mipmaps = mipmaps

    def _add_to_context(self) -> None:
        if self._texid is not None:
            raise ValueError("Texture already loaded into OpenGL context")
        height, width = self._source.shape[:2]
        self._texid = gl.glGenTextures(1)
        gl.glBindTexture(gl.GL_TEXTURE_2D, self._texid)
        gl.glTexImage2D(
            gl.GL_TEXTURE_2D, 0, gl.GL_RGBA8, width, height, 0, gl.GL_RGBA,
            gl.GL_UNSIGNED_BYTE, self._source,
        )  # fmt: skip
        if self._mipmaps:
            gl.glGenerateMipmap(gl.GL_TEXTURE_2D)
        for name, value in (
            (gl.GL_TEXTURE_MAG_FILTER, self.sampler.magFilter),
            (gl.GL_TEXTURE_MIN_FILTER, self.sampler.minFilter),
            (gl.GL_TEXTURE_WRAP_S, self.sampler.wrapS),
            (gl.GL_TEXTURE_WRAP_T, self.sampler.wrapT),
        ):
            gl.glTexParameteri(gl.GL_TEXTURE_2D, name, value)
        gl.glBindTexture(gl.GL_TEXTURE_2D, 0)


def _meshes(
    parts: list[Part], light_dir: np.ndarray, outline: float, mipmaps: bool
) -> list[pyrender.Mesh]:
    """Textured cel-shaded meshes plus their inverted-hull outlines.

    mipmaps: sample the textures trilinearly (views where they shrink, e.g. the
    full-body previews); without, bilinearly (close-ups, where texels grow: no
    mipmap chain to build, and the eyes stay crisper).
    """
    meshes = []
    for part in parts:
        used = np.unique(part.faces)
        # two-tone cel shade: lit side 1, shaded side the material's shade colour
        lit = np.clip((part.normals @ light_dir + 0.25) / 0.35, 0.0, 1.0)
        # anime faces stay clean: only half the material's shade colour, on the far side
        shade = 1.0 - SHADE_STRENGTH * (1.0 - np.asarray(part.shade, np.float32))
        colors = np.ones((len(part.positions), 4), np.float32)
        colors[:, :3] = shade + (1.0 - shade) * lit[:, None]
        material = pyrender.MetallicRoughnessMaterial(
            baseColorFactor=part.color,
            doubleSided=part.double_sided,
            baseColorTexture=None if part.texture is None else _Texture(part.texture, mipmaps),
        )
        meshes.append(
            pyrender.Mesh(
                [
                    pyrender.Primitive(
                        positions=part.positions,
                        normals=part.normals,
                        texcoord_0=part.uvs,
                        color_0=colors,
                        indices=part.faces,
                        material=material,
                    )
                ]
            )
        )
        if outline <= 0 or len(used) == 0:
            continue
        # inverted hull: pushed out along the normals, winding flipped so only its back shows
        if part.texture is not None and part.uvs is not None:
            surface = _sample_texture(part.texture, part.uvs)
        else:
            surface = np.tile(np.asarray(part.color[:3], np.float32), (len(part.positions), 1))
        hull_colors = np.ones((len(part.positions), 4), np.float32)
        hull_colors[:, :3] = surface * OUTLINE_DARKEN
        meshes.append(
            pyrender.Mesh(
                [
                    pyrender.Primitive(
                        positions=part.positions + part.normals * outline,
                        color_0=hull_colors,
                        indices=part.faces[:, ::-1],
                        material=pyrender.MetallicRoughnessMaterial(doubleSided=False),
                    )
                ]
            )
        )
    return meshes


def _camera_space_quad(
    pose: np.ndarray, corners: np.ndarray, colors: np.ndarray, faces: np.ndarray
) -> pyrender.Primitive:
    """An opaque, unlit primitive given in camera space: corners (N, 3), colors (N, 3) 0..1."""
    world = corners @ pose[:3, :3].T + pose[:3, 3]
    rgba = np.ones((len(corners), 4), np.float32)
    rgba[:, :3] = colors
    return pyrender.Primitive(
        positions=world.astype(np.float32),
        color_0=rgba,
        indices=faces,
        material=pyrender.MetallicRoughnessMaterial(doubleSided=True),
    )


def _gradient_at(rows: np.ndarray, size: int) -> np.ndarray:
    """(N, 3) 0..1 sRGB background colour at image rows (N,) (0 = top, size - 1 = bottom)."""
    t = np.clip(rows / max(size - 1, 1), 0.0, 1.0)[:, None]
    top, bottom = np.array(BACKGROUND_TOP) / 255.0, np.array(BACKGROUND_BOTTOM) / 255.0
    return top + (bottom - top) * t


def _backdrop(
    pose: np.ndarray,
    yfov: float,
    size: int,
    shadow_at: np.ndarray | None,
    shadow_radius: float,
    far: float = FAR,
) -> list[pyrender.Primitive]:
    """The background gradient and the soft ground shadow, drawn by GL behind the avatar.

    Drawing them as geometry (instead of compositing the render over a numpy
    background) lets GL resolve the anti-aliased edges against the real background
    and leaves nothing to blend per pixel on the CPU.

    The background is a quad filling the view near the far plane. The shadow is an
    ellipse parallel to the image plane, centred on the projection of `shadow_at`
    (world (3,), the feet) but pushed back behind the avatar so the feet cover it;
    its vertex colours are the background mixed towards SHADOW_RGB, so it is opaque.
    """
    focal = 0.5 * size / np.tan(yfov / 2)  # pixels per unit of (camera x / depth)
    primitives = []
    depth = 0.9 * far
    half = depth * np.tan(yfov / 2) * 1.02  # a little past the edges
    corners = np.array([[-half, -half, -depth], [half, -half, -depth],
                        [half, half, -depth], [-half, half, -depth]])  # fmt: skip
    rows = size / 2 - corners[:, 1] / depth * focal - 0.5
    primitives.append(
        _camera_space_quad(
            pose, corners, _gradient_at(rows, size), np.array([[0, 1, 2], [0, 2, 3]])
        )
    )
    if shadow_at is None:
        return primitives
    foot = np.linalg.inv(pose) @ np.append(shadow_at, 1.0)
    foot_depth = -foot[2]
    behind = foot_depth + 2.0 * shadow_radius  # past the back of the avatar
    scale = focal / foot_depth  # pixels per metre at the feet
    rx, ry = max(shadow_radius * 1.1 * scale, 1.0), max(shadow_radius * 0.35 * scale, 1.0)
    # rings in d = r^2 (the falloff's variable) out to where the shadow has faded away
    radii = np.sqrt(np.linspace(0.0, 4.0, 25))
    angles = np.linspace(0.0, 2 * np.pi, 64, endpoint=False)
    ring, angle = np.meshgrid(radii[1:], angles, indexing="ij")
    offsets = np.concatenate([[[0.0, 0.0]], np.stack([np.cos(angle) * ring * rx,
                              np.sin(angle) * ring * ry], axis=-1).reshape(-1, 2)])  # fmt: skip
    x_px = foot[0] * scale + offsets[:, 0]  # from the image centre, y up
    y_px = foot[1] * scale + offsets[:, 1]
    corners = np.column_stack(
        [x_px / focal * behind, y_px / focal * behind, np.full(len(x_px), -behind)]
    )
    d = (offsets[:, 0] / rx) ** 2 + (offsets[:, 1] / ry) ** 2
    weight = (0.45 * np.exp(-2.5 * d))[:, None]
    background = _gradient_at(size / 2 - y_px - 0.5, size)
    colors = background + (np.array(SHADOW_RGB) / 255.0 - background) * weight
    k = np.arange(len(angles))
    k1 = (k + 1) % len(angles)
    fan = np.column_stack([np.zeros_like(k), 1 + k, 1 + k1])  # around the centre
    inner = 1 + len(angles) * np.arange(len(radii) - 2)[:, None]  # each ring's first vertex
    outer = inner + len(angles)  # the next ring's
    quads = np.stack([inner + k, outer + k, outer + k1, inner + k, outer + k1, inner + k1], -1)
    faces = np.concatenate([fan, quads.reshape(-1, 3)])
    primitives.append(_camera_space_quad(pose, corners, colors, faces))
    return primitives


def _render_view(
    parts: list[Part],
    lo: np.ndarray,
    hi: np.ndarray,
    size: int,
    yaw_deg: float,
    frame_lo: float,
    frame_hi: float,
    pitch_deg: float = 4.0,
    ground_shadow: bool = True,
    mipmaps: bool = True,
) -> np.ndarray:
    """One square view (size, size, 3) uint8; the band frame_lo..frame_hi (metres, Y) fills it."""
    ss = SUPERSAMPLE if size * SUPERSAMPLE <= MAX_SUPERSAMPLED else 1
    px = size * ss
    yfov = np.radians(22.0)
    height = float(hi[1] - lo[1])
    centre = np.array([(lo[0] + hi[0]) / 2, (frame_lo + frame_hi) / 2, (lo[2] + hi[2]) / 2])
    radius_xz = 0.5 * float(np.hypot(hi[0] - lo[0], hi[2] - lo[2]))
    half = 0.5 * (frame_hi - frame_lo) * 1.08  # a little air around the subject
    distance = half / np.tan(yfov / 2) + radius_xz
    yaw, pitch = np.radians(yaw_deg), np.radians(pitch_deg)
    direction = np.array([np.sin(yaw) * np.cos(pitch), np.sin(pitch), np.cos(yaw) * np.cos(pitch)])
    pose = _look_at(centre + direction * distance, centre)
    # key light from the camera's upper left, so faces read clearly in every view
    light = pose[:3, :3] @ np.array([-0.45, 0.55, 0.7])
    light /= np.linalg.norm(light)
    scene = pyrender.Scene(
        bg_color=[*np.array(BACKGROUND_TOP) / 255.0, 1.0], ambient_light=[1.0] * 3
    )
    # One node whose primitives keep a fixed order (opaque first, as pyrender sorts nodes):
    # pyrender draws separate nodes in set order, which changes between calls and processes,
    # and surfaces that tie in depth then make the PNG differ (VRM files were not byte-stable).
    meshes = _meshes(parts, light, OUTLINE_WIDTH * height, mipmaps)
    primitives = [primitive for mesh in meshes for primitive in mesh.primitives]
    feet = np.array([centre[0], lo[1], centre[2]]) if ground_shadow else None
    # the near plane just before the avatar's bounding box (depth is linear, so its
    # nearest point is a corner): the 16-bit depth buffer's precision goes where it is used;
    # the far plane past it, for a file in centimetres too
    corners = np.array(np.meshgrid(*zip(lo, hi, strict=True), indexing="ij")).reshape(3, -1).T
    depths = (corners - pose[:3, 3]) @ -pose[:3, 2]
    znear = max(0.05, 0.9 * float(depths.min()))
    far = max(FAR, 2.0 * float(depths.max()))
    primitives += _backdrop(pose, yfov, px, feet, radius_xz, far)
    scene.add(pyrender.Mesh(sorted(primitives, key=lambda p: p.is_transparent)))
    scene.add(
        pyrender.PerspectiveCamera(yfov=yfov, aspectRatio=1.0, znear=znear, zfar=far), pose=pose
    )
    try:
        color, _ = _renderer(px, px).render(scene, flags=pyrender.RenderFlags.FLAT)
    except Exception:
        _drop_renderer()  # a broken context must not poison later calls
        raise
    if ss > 1:  # box-filter down to the asked size
        color = np.asarray(Image.fromarray(color).reduce(ss))
    return np.ascontiguousarray(color)


def _check_size(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or not 16 <= size <= MAX_SIZE:
        raise ValueError(f"size must be an integer in [16, {MAX_SIZE}], got {size!r}")


def _bounds(parts: list[Part]) -> tuple[np.ndarray, np.ndarray]:
    used = np.concatenate([p.positions[np.unique(p.faces)] for p in parts if len(p.faces)])
    return used.min(axis=0), used.max(axis=0)


def preview_image(parts: list[Part], size: int = 512) -> np.ndarray:
    """(size, 2 * size, 3) uint8: full-body front view and 3/4 view side by side."""
    _check_size(size)
    lo, hi = _bounds(parts)
    views = [_render_view(parts, lo, hi, size, yaw, lo[1], hi[1]) for yaw in (0.0, 35.0)]
    return np.concatenate(views, axis=1)


def thumbnail_image(parts: list[Part], size: int = 1024) -> np.ndarray:
    """(size, size, 3) uint8: 3/4 portrait of the head and upper body."""
    _check_size(size)
    lo, hi = _bounds(parts)
    height = float(hi[1] - lo[1])
    top = hi[1] + 0.04 * height  # headroom: the near side of the head projects larger
    return _render_view(
        parts, lo, hi, size, 22.0, top - 0.6 * height, top, 6.0, ground_shadow=False, mipmaps=False
    )


def render_preview(avatar: Avatar, size: int = 512) -> bytes:
    """PNG bytes, (2 * size) x size: the avatar in rest pose from the front and from 3/4."""
    return encode_png(preview_image(_parts_from_avatar(avatar), size))


def render_thumbnail(avatar: Avatar, size: int = 1024) -> bytes:
    """PNG bytes, size x size: a 3/4 portrait of the head and upper body (VRM thumbnail)."""
    return encode_png(thumbnail_image(_parts_from_avatar(avatar), size))


def render_thumbnail_in_background(avatar: Avatar, size: int = 1024) -> Future[bytes]:
    """`render_thumbnail` on this process's thumbnail thread (one, with its own GL
    context): the caller writes the rest of the file meanwhile. While llvmpipe's
    threads draw, the caller's thread would only wait; a VRM 1.0 export there hides
    ~2 ms of a photo's ~70 on 2 cores (`python -m bench regressor`). `avatar` must
    not change until the Future is done."""
    return run_beside("thumbnail", render_thumbnail, avatar, size)
