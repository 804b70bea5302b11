"""What hides a face's colours, painted over a photo to check the teacher against.

Face masks of any fabric, dark and mirrored sunglasses, bangs over the forehead, a
coloured light and black and white: the cases `teacher_colors` reads apart, by the rules of
`teacher_covers` (`scripts/covered_faces.py` prints how well; `tests/test_teacher_covers.py` and
`tests/test_skin_scale.py` hold the rules). Images are (H, W, 3) uint8 RGB; `face` is a
`face.FaceObservation` of the same photo.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
from PIL import Image

from .teacher_colors import FACE_OVAL, LEFT_BROW_UPPER, RIGHT_BROW_UPPER, _fill

# Fabrics of face masks, sRGB 0..255: those `teacher_covers.cheek_cover` tells from skin
# and, last, warm ones of a skin's chroma that it does not.
FABRICS: dict[str, tuple[int, int, int]] = {
    "light blue": (150, 190, 215), "green": (120, 170, 140), "blue-grey": (190, 198, 212),
    "black": (30, 30, 34), "charcoal": (70, 68, 66), "light grey": (180, 182, 185),
    "white": (236, 236, 238), "cream": (240, 233, 220), "red": (200, 40, 50),
    "orange": (230, 120, 40), "yellow": (235, 205, 60), "maroon": (120, 30, 40),
    "coral": (240, 128, 110), "pink": (230, 150, 170),
}  # fmt: skip
# Mirrored lenses: the light each reflects, by depth (H, W, 1) 0..1 down the lens.
MIRRORS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sky": lambda depth: np.where(
        depth < 0.55, np.array([215.0, 228.0, 245.0]) * (1 - 0.3 * depth),
        np.array([70.0, 62.0, 55.0]) + 20 * (depth - 0.55),
    ),  # a pale sky over a dark ground
    "gold": lambda depth: np.array([230.0, 170.0, 60.0]) * (0.7 + 0.5 * (1 - depth)),
    "blue": lambda depth: np.array([60.0, 120.0, 230.0]) * (0.6 + 0.6 * (1 - depth)),
    "silver": lambda depth: np.array([200.0, 200.0, 205.0]) * (1 - 0.5 * np.abs(depth - 0.5)),
}  # fmt: skip
# Hair of bangs, sRGB 0..255.
HAIRS: dict[str, tuple[int, int, int]] = {
    "black": (28, 24, 22), "dark brown": (60, 40, 28), "auburn": (120, 55, 30),
    "blonde": (200, 170, 110),
}  # fmt: skip
# Coloured lights, as gains on the photo's sRGB values.
LIGHTS: dict[str, tuple[float, float, float]] = {
    "blue": (0.7, 0.9, 1.3), "strong blue": (0.55, 0.8, 1.4), "cyan": (0.6, 1.0, 1.1),
    "green": (0.8, 1.15, 0.8), "magenta": (1.15, 0.8, 1.1), "tungsten": (1.2, 0.95, 0.6),
}  # fmt: skip


def paint_face_mask(
    rgb: np.ndarray, face, colour: tuple[int, int, int], seed: int = 0
) -> np.ndarray:
    """A face mask of fabric `colour` over the face below the middle of the nose: darker
    toward the chin as a fold's shade (by a quarter), in three pleats, darker toward the
    sides, with the weave's grain (sd 6 levels, drawn from `seed`)."""
    pts = face.landmarks[:, :2]
    shape = rgb.shape[:2]
    region = _fill(shape, pts[list(FACE_OVAL)]) & (np.arange(shape[0])[:, None] > pts[195, 1])
    region = cv2.dilate(region.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    down = (np.arange(shape[0]) - pts[195, 1]) / max(1.0, pts[152, 1] - pts[195, 1])
    shade = (1.0 - 0.25 * np.clip(down, 0, 1)) * (1.0 + 0.08 * np.sin(down * 6 * np.pi))
    across = (np.arange(shape[1]) - pts[1, 0]) / max(1.0, np.ptp(pts[:, 0]))
    light = (shade[:, None] * (1.0 - 0.15 * np.abs(across)[None, :]))[..., None]
    grain = np.random.default_rng(seed).normal(0.0, 6.0, rgb.shape)
    painted = np.where(region[..., None], np.array(colour) * light + grain, rgb)
    return np.clip(painted, 0, 255).astype(np.uint8)


def paint_bangs(
    rgb: np.ndarray, face, colour: tuple[int, int, int], reach: float = 0.0, seed: int = 0
) -> np.ndarray:
    """Bangs of hair `colour` over the forehead: from the photo's top down to `reach` eye
    distances below the brows' top (negative: above it), across the face's width and a
    fifth of an eye distance beyond, their lower edge uneven by strands (drawn from
    `seed`), in streaks along the hair (sd 12 levels) and with grain (sd 6)."""
    pts = face.landmarks[:, :2]
    distance = face.eye_distance
    left, right = pts[:, 0].min() - 0.2 * distance, pts[:, 0].max() + 0.2 * distance
    edge = pts[list(RIGHT_BROW_UPPER + LEFT_BROW_UPPER), 1].min() + reach * distance
    rng = np.random.default_rng(seed)
    columns = np.arange(rgb.shape[1])
    strands = np.repeat(rng.normal(0.0, 1.0, rgb.shape[1] // 4 + 1), 4)[: rgb.shape[1]]
    bottom = edge + 0.04 * distance * strands
    region = (np.arange(rgb.shape[0])[:, None] < bottom[None, :]) & (
        (columns > left) & (columns < right)
    )[None, :]
    streaks = (12.0 * strands)[None, :, None]
    grain = rng.normal(0.0, 6.0, rgb.shape)
    painted = np.where(region[..., None], np.array(colour) + streaks + grain, rgb)
    return np.clip(painted, 0, 255).astype(np.uint8)


def paint_lenses(
    rgb: np.ndarray, face, lens: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> np.ndarray:
    """Sunglasses: an ellipse over each eye filled with `lens(rgb, depth)` ((H, W, 3)
    float; depth (H, W, 1) 0..1 from the lens's top to its bottom), and a bar across the
    nose between them."""
    distance = face.eye_distance
    painted = rgb.astype(np.float64)
    rows = np.arange(rgb.shape[0])[:, None, None]
    for centre in face.eye_centres:
        mask = np.zeros(rgb.shape[:2], np.uint8)
        axes = (round(0.42 * distance), round(0.3 * distance))
        cv2.ellipse(mask, tuple(map(round, centre)), axes, 0, 0, 360, 255, -1)
        depth = np.clip((rows - centre[1] + axes[1]) / (2 * axes[1]), 0.0, 1.0)
        painted = np.where(mask[..., None] > 0, lens(rgb, depth), painted)
    a, b = (face.landmarks[i, :2] for i in (133, 362))
    cv2.line(painted, tuple(map(round, a)), tuple(map(round, b)), (30, 28, 26),
             max(2, round(0.05 * distance)))  # fmt: skip
    return np.clip(painted, 0, 255).round().astype(np.uint8)


def paint_dark_lenses(rgb: np.ndarray, face, transmit: float = 0.1) -> np.ndarray:
    """Lenses passing `transmit` of the light (dark grey-brown beyond it)."""
    beyond = np.array([12.0, 10.5, 9.0]) * (1 - transmit)
    return paint_lenses(rgb, face, lambda rgb, depth: rgb * transmit + beyond)


def paint_mirrored_lenses(rgb: np.ndarray, face, kind: str = "sky") -> np.ndarray:
    """Mirrored lenses reflecting `MIRRORS[kind]`."""
    return paint_lenses(rgb, face, lambda rgb, depth: MIRRORS[kind](depth))


def coloured_light(rgb: np.ndarray, gains: tuple[float, float, float]) -> np.ndarray:
    """The photo under a light of `gains` on its sRGB values (`LIGHTS`)."""
    return np.clip(np.rint(rgb * np.array(gains)), 0, 255).astype(np.uint8)


def black_and_white(
    rgb: np.ndarray, tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
) -> np.ndarray:
    """The photo in black and white (Pillow's luma), times `tint` (a scan's or a print's
    tone), as (H, W, 3)."""
    grey = np.asarray(Image.fromarray(rgb).convert("L"), np.float64)
    return np.clip(np.rint(grey[:, :, None] * np.array(tint)), 0, 255).astype(np.uint8)
