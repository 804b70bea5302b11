"""Rendering for the synthetic training data: an avatar's head under a random camera and
lights (pyrender, offscreen EGL), made to look like a photo.

Photo look: a real-photo background (random crops of the sample images scikit-image
ships, never the faces used for evaluation), real photo texture as fine surface
detail, random key/fill light, white balance, exposure, blur, resolution loss,
sensor noise and JPEG artefacts. One OffscreenRenderer per thread.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass

import cv2
import numpy as np

from .avatar import Avatar
from .params import AvatarParams

# --------------------------------------------------------------------------- photo look
# Sample images installed packages ship, used as backgrounds and surface detail.
# Never the faces used for evaluation (astronaut, grace_hopper, camera).
_TEXTURE_NAMES = ("coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
                  "retina", "brick", "grass", "gravel", "coins", "page", "text", "moon",
                  "motorcycle_left", "colorwheel", "cell")  # fmt: skip
_textures: list[np.ndarray] | None = None


def photo_textures() -> list[np.ndarray]:
    """The real-photo texture pool: (H, W, 3) float32 0..1 images (loaded once)."""
    global _textures
    if _textures is None:
        from skimage import data

        pool = []
        for name in _TEXTURE_NAMES:
            loader = getattr(data, name, None)
            if loader is None:
                continue
            image = np.asarray(loader())
            if image.ndim == 2:
                image = np.repeat(image[..., None], 3, axis=2)
            image = image[..., :3]
            if image.dtype != np.uint8:
                image = (255 * (image.astype(np.float64) / max(image.max(), 1e-6))).astype(np.uint8)
            pool.append(image.astype(np.float32) / 255.0)
        _textures = pool
    return _textures


def _random_patch(rng: np.random.Generator, size: int) -> np.ndarray:
    """A (size, size, 3) float32 patch of a random texture at a random scale, flipped/tinted."""
    texture = photo_textures()[rng.integers(len(photo_textures()))]
    h, w = texture.shape[:2]
    side = int(rng.uniform(0.25, 1.0) * min(h, w))
    y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    shrink = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    patch = cv2.resize(texture[y : y + side, x : x + side], (size, size), interpolation=shrink)
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    # tint: mix towards grey and apply a random colour gain, so backgrounds vary in hue
    grey = patch.mean(axis=2, keepdims=True)
    patch = grey + (patch - grey) * rng.uniform(0.3, 1.3)
    return np.clip(patch * rng.uniform(0.6, 1.3, 3).astype(np.float32), 0.0, 1.0)


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A photo-like background (size, size, 3) float32: a blurred real texture or a gradient."""
    if rng.random() < 0.8:
        patch = _random_patch(rng, size)
        sigma = rng.uniform(0.0, 4.0)  # depth of field
        return cv2.GaussianBlur(patch, (0, 0), sigma) if sigma > 0.3 else patch
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    a, b = rng.uniform(0.05, 0.95, 3), rng.uniform(0.05, 0.95, 3)
    angle = rng.uniform(0, 2 * np.pi)
    t = np.clip(0.5 + (np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5)), 0, 1)[..., None]
    return (a * (1 - t) + b * t).astype(np.float32)


def surface_detail(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size) float32 multiplicative luminance detail around 1 from a real photo patch.

    The high-pass of a real texture, so flat toon shading picks up photographic grain.
    """
    patch = _random_patch(rng, size).mean(axis=2)
    high = patch - cv2.GaussianBlur(patch, (0, 0), 3.0)
    high /= max(float(high.std()), 1e-4)
    return (1.0 + rng.uniform(0.0, 0.04) * high).astype(np.float32)


def camera_finish(image: np.ndarray, rng: np.random.Generator, jpeg: bool = True) -> np.ndarray:
    """What a camera does to a (H, W, 3) float 0..1 image: white balance, exposure, blur,
    resolution loss, sensor noise, then JPEG at a random quality. Returns uint8."""

    from PIL import Image

    h, w = image.shape[:2]
    image = image * rng.uniform(0.92, 1.08, 3) * rng.uniform(0.8, 1.2)
    image = np.clip(image, 0.0, 1.0) ** rng.uniform(0.85, 1.15)
    sigma = rng.uniform(0.0, 1.0)
    if sigma > 0.3:
        image = cv2.GaussianBlur(image.astype(np.float32), (0, 0), sigma)
    if rng.random() < 0.25:  # a low-resolution camera, upscaled back
        factor = rng.uniform(0.45, 0.85)
        small = Image.fromarray(to_uint8(image)).resize(
            (max(8, int(w * factor)), max(8, int(h * factor))), Image.BILINEAR
        )
        image = np.asarray(small.resize((w, h), Image.BILINEAR), np.float32) / 255.0
    noise = rng.normal(0.0, 1.0, image.shape) * rng.uniform(0.0, 0.02)
    shot = rng.normal(0.0, 1.0, image.shape) * np.sqrt(np.clip(image, 0, 1)) * rng.uniform(0, 0.03)
    out = to_uint8(image + noise + shot)
    if jpeg:
        buffer = io.BytesIO()
        Image.fromarray(out).save(buffer, "JPEG", quality=int(rng.integers(35, 96)))
        out = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    return out


def to_uint8(image: np.ndarray) -> np.ndarray:
    """(..., 3) float sRGB 0..1 -> uint8, clipped and rounded."""
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


# --------------------------------------------------------------------------- rendering
RENDER_SIZE = 256
# Morph targets that show the photo's expression on a render (ARKit names, weights 0..1).
EXPRESSION_MORPHS: dict[str, tuple[str, ...]] = {
    "smile": ("mouthSmileLeft", "mouthSmileRight"),
    "mouth_open": ("jawOpen",),
    "blink_left": ("eyeBlinkLeft",),
    "blink_right": ("eyeBlinkRight",),
    "brow_raise": ("browInnerUp", "browOuterUpLeft", "browOuterUpRight"),
}
_local = threading.local()


def _renderer(size: int):
    from .offscreen import offscreen_renderer

    renderer = getattr(_local, "renderer", None)
    if renderer is None:
        renderer = _local.renderer = offscreen_renderer(size, size)
    renderer.viewport_width = renderer.viewport_height = size
    return renderer


def posed_vertices(avatar: Avatar, params: AvatarParams) -> np.ndarray:
    """(V, 3) vertices with the params' expression applied through the morph targets."""
    vertices = np.asarray(avatar.vertices, np.float64).copy()
    for name, morphs in EXPRESSION_MORPHS.items():
        weight = params.expression[name]
        for morph in morphs:
            if weight > 0 and morph in avatar.morph_targets:
                vertices += weight * avatar.morph_targets[morph]
    return vertices


def face_points(avatar: Avatar, params: AvatarParams, vertices: np.ndarray) -> np.ndarray:
    """(5, 3) 3D points matching `landmarks.ALIGN_LANDMARKS`: the person's right eye centre,
    left eye centre, nose tip, right and left mouth corners (the character's left is +X).

    Eye centre = midpoint of the eye patch's extreme corners, as FaceMesh's eye
    centre is the mean of the two eye corners.
    """
    from .build import vertex_labels

    labels = vertex_labels(params)

    def region(label: str) -> np.ndarray:
        return vertices[labels == label]

    def eye_centre(label: str) -> np.ndarray:
        pts = region(label)
        return 0.5 * (pts[pts[:, 0].argmin()] + pts[pts[:, 0].argmax()])

    nose = region("nose")
    mouth = region("mouth")
    return np.stack([
        eye_centre("eye_R"), eye_centre("eye_L"), nose[nose[:, 2].argmax()],
        mouth[mouth[:, 0].argmin()], mouth[mouth[:, 0].argmax()],
    ])  # fmt: skip


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """3x3 rotation: yaw about +Y, then pitch about +X, then roll about +Z (radians)."""
    cy, sy, cp, sp, cr, sr = (
        np.cos(yaw),
        np.sin(yaw),
        np.cos(pitch),
        np.sin(pitch),
        np.cos(roll),
        np.sin(roll),
    )
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return ry @ rx @ rz


@dataclass
class View:
    """A random camera and light set-up for one render (angles in radians)."""

    yaw: float
    pitch: float
    roll: float
    yfov: float
    fill: float  # fraction of the frame the face width takes
    shift: tuple[float, float]  # face centre offset in frame fractions
    key_dir: np.ndarray
    key_intensity: float
    key_color: np.ndarray
    fill_intensity: float
    ambient: float

    @classmethod
    def random(cls, rng: np.random.Generator) -> View:
        key = np.array([rng.uniform(-1, 1), rng.uniform(-0.3, 1.0), rng.uniform(0.3, 1.2)])
        warm = rng.uniform(-1, 1)
        return cls(
            yaw=np.radians(rng.uniform(-20, 20)), pitch=np.radians(rng.uniform(-12, 12)),
            roll=np.radians(rng.uniform(-12, 12)), yfov=rng.uniform(0.35, 0.6),
            fill=rng.uniform(0.45, 0.7), shift=(rng.uniform(-0.1, 0.1), rng.uniform(-0.08, 0.08)),
            key_dir=key / np.linalg.norm(key), key_intensity=rng.uniform(1.5, 4.5),
            key_color=np.array([1.0 + 0.08 * warm, 1.0, 1.0 - 0.1 * warm]),
            fill_intensity=rng.uniform(0.3, 1.5), ambient=rng.uniform(0.15, 0.5),
        )  # fmt: skip


def render_view(
    avatar: Avatar, params: AvatarParams, view: View, size: int = RENDER_SIZE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render the head: (rgb (size, size, 3) float 0..1, alpha (size, size) float,
    the 5 alignment points (5, 2) in pixels)."""
    import pyrender

    vertices = posed_vertices(avatar, params)
    points3d = face_points(avatar, params, vertices)
    centre = 0.5 * (points3d[0] + points3d[1])  # between the eyes
    target = centre + np.array([0.0, -0.02, 0.0])
    face_width = 2.2 * abs(points3d[1, 0] - points3d[0, 0])  # roughly cheek to cheek
    distance = face_width / (view.fill * 2 * np.tan(view.yfov / 2))
    rotation = _rotation(view.yaw, view.pitch, view.roll)
    eye = target + rotation @ np.array([0.0, 0.0, distance])
    pose = np.eye(4)
    pose[:3, :3] = rotation
    pose[:3, 3] = eye
    # shift the face off-centre by moving the camera sideways in its own frame
    half = distance * np.tan(view.yfov / 2)
    pose[:3, 3] -= rotation @ np.array([view.shift[0] * 2 * half, view.shift[1] * 2 * half, 0.0])

    scene = pyrender.Scene(ambient_light=np.full(3, view.ambient), bg_color=[0, 0, 0, 0])
    for sub in avatar.submeshes:
        material = avatar.materials[sub.material]
        texture = None
        if material.texture is not None:
            image = avatar.textures[material.texture]
            if image.shape[0] > 512:  # a 256 px render never samples finer texels
                image = cv2.resize(image, (512, 512), interpolation=cv2.INTER_AREA)
            texture = pyrender.Texture(source=image,
                                       source_channels="RGBA")  # fmt: skip
        mat = pyrender.MetallicRoughnessMaterial(
            baseColorFactor=material.base_color, baseColorTexture=texture, metallicFactor=0.0,
            roughnessFactor=0.75, alphaMode=material.alpha_mode,
            alphaCutoff=material.alpha_cutoff, doubleSided=material.double_sided,
        )  # fmt: skip
        used = np.unique(sub.faces)
        remap = np.full(len(vertices), -1, np.int64)
        remap[used] = np.arange(len(used))
        primitive = pyrender.Primitive(
            positions=vertices[used].astype(np.float32), normals=avatar.normals[used],
            texcoord_0=np.column_stack([avatar.uvs[used, 0], 1.0 - avatar.uvs[used, 1]]),
            indices=remap[sub.faces].astype(np.uint32), material=mat,
        )  # fmt: skip
        scene.add(pyrender.Mesh([primitive]))
    scene.add(pyrender.PerspectiveCamera(yfov=view.yfov, znear=0.02, zfar=5.0), pose=pose)
    key = np.eye(4)
    key[:3, :3] = _look_rotation(view.key_dir)
    scene.add(
        pyrender.DirectionalLight(color=view.key_color, intensity=view.key_intensity), pose=key
    )
    fill = np.eye(4)
    fill[:3, :3] = _look_rotation(np.array([-view.key_dir[0], 0.2, 1.0]))
    scene.add(pyrender.DirectionalLight(intensity=view.fill_intensity), pose=fill)
    color, _ = _renderer(size).render(scene, flags=pyrender.RenderFlags.RGBA)
    rgba = color.astype(np.float32) / 255.0
    points2d = _project(points3d, pose, view.yfov, size)
    return rgba[..., :3], rgba[..., 3], points2d


def _look_rotation(direction: np.ndarray) -> np.ndarray:
    """Rotation whose -Z axis points from `direction` towards the origin (a light shining
    from `direction`)."""
    z = direction / np.linalg.norm(direction)
    x = np.cross([0.0, 1.0, 0.0], z)
    if np.linalg.norm(x) < 1e-6:
        x = np.array([1.0, 0.0, 0.0])
    x /= np.linalg.norm(x)
    return np.column_stack([x, np.cross(z, x), z])


def _project(points: np.ndarray, pose: np.ndarray, yfov: float, size: int) -> np.ndarray:
    """World points (N, 3) -> pixel coordinates (N, 2) for a square pyrender camera."""
    cam = (points - pose[:3, 3]) @ pose[:3, :3]  # world -> camera frame
    f = 0.5 * size / np.tan(yfov / 2)
    x = size / 2 + f * cam[:, 0] / -cam[:, 2]
    y = size / 2 - f * cam[:, 1] / -cam[:, 2]
    return np.column_stack([x, y])
