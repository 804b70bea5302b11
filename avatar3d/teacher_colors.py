"""The teacher's colours: skin, lips, iris, brows and hair sampled from a photo.

Robust medians in CIELab over landmark-defined regions (cheeks and
forehead, lips, iris ring, brows, and hair from MediaPipe selfie segmentation
minus the face), each keeping only the 20-80% L* band (highlights and shadows
rejected). A face larger than COLOR_FACE_PX (a selfie) is sampled on a copy of its
window reduced to that size, which keeps its colours within ~1 dE2000.
Colours are the photo's colours: no exposure or white-balance correction is
guessed (a 20% darker photo gives ~20% darker colours; see
`tests/test_teacher.py`). A white reference that every face carries was tried
(the whites of the eyes) and dropped: with glasses, narrowed or shadowed eyes
it is too small or too dark, and the correction then depends on eye shape.
Two exceptions lean on the skin scale (`skin_tones`): a photo without colour has its
skin and lips taken from the scale at the lightness it shows (`MONOCHROME_SATURATION`),
and a face under a coloured light (no skin's hue anywhere on it, lips of their own) has
that light taken out of its colours (`sample_colors`).

"left"/"right" are the person's own (MediaPipe's convention).
"""

from __future__ import annotations

import contextlib
import math
import threading
from typing import NamedTuple

import cv2
import numpy as np
from skimage.color import lab2rgb, rgb2lab

from .landmarks import (
    LEFT_BROW_LOWER,
    LEFT_BROW_UPPER,
    LEFT_IRIS,
    RIGHT_BROW_LOWER,
    RIGHT_BROW_UPPER,
    RIGHT_IRIS,
)
from .native_logs import quiet_native_logs
from .params import COLOR_FIELDS, AvatarParams, rgb_to_hex
from .skin_tones import SKIN_TO_LIPS, skin_scale_gain, skin_scale_lab, white_balanced
from .teacher_covers import (
    EYE_LENS_DISTANCE,
    cheek_cover,
    eye_hidden,
    forehead_covered,
    lips_alike,
    looks_like_skin,
    under_eye_distance,
)
from .teacher_hair import NOT_SKIN, hair_reach

# -- landmark groups (MediaPipe FaceMesh indices) -------------------------------------
FACE_OVAL = (10, 109, 67, 103, 54, 21, 162, 127, 234, 93, 132, 58, 172, 136, 150, 149, 176,
             148, 152, 377, 400, 378, 379, 365, 397, 288, 361, 323, 454, 356, 389, 251, 284,
             332, 297, 338)  # fmt: skip
RIGHT_EYE_RING = (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7)
LEFT_EYE_RING = (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249)
# The skin just below each eye, from under the lower lid down ~0.13 eye distances: what
# a sunglasses lens covers; skin behind clear glasses, below a shut eye, above a mask.
RIGHT_UNDER_EYE = (25, 110, 24, 23, 22, 26, 112, 232, 231, 230, 229, 228, 31)
LEFT_UNDER_EYE = (255, 339, 254, 253, 252, 256, 341, 452, 451, 450, 449, 448, 261)
LIPS_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37,
              39, 40, 185)  # fmt: skip
LIPS_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82,
              81, 80, 191)  # fmt: skip
# Skin patches: the landmarks lying in the cheek areas (x 3..6.6 cm, y -0.9..3.3 cm
# from the canonical origin) and on the lower forehead (from the top of the brows
# up to 1.5 cm above them; higher up, bangs often cover the skin); their convex
# hulls, minus the brows, are sampled.
RIGHT_CHEEK = (50, 101, 118, 119, 123, 147, 187, 205, 207, 213, 216)
LEFT_CHEEK = (280, 330, 347, 348, 352, 376, 411, 425, 427, 433, 436)
FOREHEAD = (69, 108, 151, 337, 299, 296, 336, 9, 107, 66)

# Faces larger than this (landmark box, pixels) have their colours sampled on a copy
# reduced to this size.
COLOR_FACE_PX = 256
# The iris ring's and the brows' pixels (after the percentile bands) from which their
# colours are read with full confidence. Faces made smaller until the eyes lie 20 px
# apart read the iris 5 dE2000 and the brows 3 from their colours as photographed, with
# 2-8 and 31-43 pixels left; counting to 40 and 60, the photo path handed them to the
# default below 30 and 24 px, 13 and up to 9 away (`scripts/cut_faces.py --shrink`,
# session 42).
IRIS_FULL_COUNT = 8
BROW_FULL_COUNT = 30
L_BAND = (20.0, 80.0)  # percentiles of L* kept in every colour region
# (contrast, ratio, under-eye distance) of one eye: `eye_shade`, `under_eye_distance`
EyeShade = tuple[float, float, float]
SIDES = ("right", "left")  # the person's own: the order of the eyes read here
# A photo without colour (black and white, or a faint tint from a scan) gave the
# astronaut grey skin (#bfbfbf) and grey lips. Such a photo is told by its saturation
# ((max - min) / max of the channels, the max floored at 32 levels so that dark noise
# does not count) over the window around the head: its 95th percentile is 0 in black
# and white and 0.05-0.06 under a faint warm tint, against 0.19 or more on the six
# sample photos (down to 8 % of their exposure, tinted to every Monk swatch, under every
# perturbation of `chibi eval`) and 0.165 or more on the training renders' crops; a
# stronger warm tone reads 0.12 and a sepia print 0.25, and keep their tone (session
# 36). The skin is then the skin scale's colour at the lightness read
# (`skin_tones.skin_scale_lab`) and the lips the renders' lips beside it at their own
# lightness: on the six photos in black and white, 6.2-12.9 dE2000 from the skin read
# in colour against 14.6-22.2 grey, and the lips 5.2-12.9 against 17.6-23.8. Hair,
# brows and irises keep their grey: grey occurs in all three.
MONOCHROME_SATURATION = 0.1

_THREAD = threading.local()


class ColorReading(NamedTuple):
    """What `sample_colors` reads of one face.

    colors: colour field -> "#rrggbb"; confidence: colour field -> 0..1; eyes: the
    person's right and left `EyeShade`; hidden: the parts a cover hides ("mouth",
    "eyes"); saturation: the window's `window_saturation`; skin_scale: the colour
    fields taken from the skin scale (a photo without colour, or a coloured light);
    white_balanced: whether a coloured light was taken out of the colours
    (`skin_tones.skin_scale_gain`; see `sample_colors`); hair_reach: how far down beside
    the face the hair reaches (`teacher_hair.hair_reach`).
    """

    colors: dict[str, str]
    confidence: dict[str, float]
    eyes: tuple[EyeShade, EyeShade]
    hidden: tuple[str, ...]
    saturation: float
    skin_scale: tuple[str, ...] = ()
    white_balanced: bool = False
    hair_reach: float = math.nan


def segment_person(rgb: np.ndarray) -> np.ndarray:
    """(H, W) float32 person probability 0..1 from MediaPipe selfie segmentation.

    One model per thread (MediaPipe graphs are not thread-safe)."""
    segmenter = getattr(_THREAD, "segmenter", None)
    # its model logs as it loads and first runs
    with quiet_native_logs() if segmenter is None else contextlib.nullcontext():
        if segmenter is None:
            import mediapipe as mp

            segmenter = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
            _THREAD.segmenter = segmenter
        mask = segmenter.process(np.ascontiguousarray(rgb)).segmentation_mask
    if mask is None:
        return np.zeros(rgb.shape[:2], np.float32)
    return np.asarray(mask, dtype=np.float32)


def sample_colors(
    rgb: np.ndarray,
    landmarks: np.ndarray,
    person_mask: np.ndarray | None = None,
    expression: dict[str, float] | None = None,
) -> ColorReading:
    """Robust colours of skin, lips, iris, brows and hair.

    rgb: (H, W, 3) uint8; landmarks: (478, 3) pixels; person_mask: (H, W) 0..1,
    or None to segment the region around the head here.
    The iris is sampled in the eyes `eye_hidden` does not hide (confidence 0 where
    neither shows: "eyes"). Where a face mask covers the cheeks (`cheek_cover`), the skin
    is read above it (the forehead, and below each eye where no lens covers it), if that
    is skin, and lips as close to the cover are the cover's ("mouth"). In a photo without
    colour the skin and lips come from the skin scale (`MONOCHROME_SATURATION`); under a
    coloured light the skin comes from it, and the light is taken out of the others.
    """
    expression = expression or {}
    height, width = rgb.shape[:2]
    xy = landmarks[:, :2]
    x0, y0 = xy.min(0)
    x1, y1 = xy.max(0)
    face_w, face_h = x1 - x0, y1 - y0
    # Work in a window around the head (hair reaches ~0.8 face heights above the mesh).
    win = (
        int(np.clip(math.floor(x0 - 0.7 * face_w), 0, width)),
        int(np.clip(math.floor(y0 - 0.8 * face_h), 0, height)),
        int(np.clip(math.ceil(x1 + 0.7 * face_w), 0, width)),
        int(np.clip(math.ceil(y1 + 0.1 * face_h), 0, height)),
    )
    if win[2] - win[0] < 2 or win[3] - win[1] < 2:
        unread = (math.nan, math.nan, math.nan)
        return ColorReading(
            _defaults(), {name: 0.0 for name in COLOR_FIELDS}, (unread, unread), (), math.nan
        )
    patch = rgb[win[1] : win[3], win[0] : win[2]]
    pts = xy - [win[0], win[1]]
    window_size = patch.shape[:2]
    # A large face (a selfie's is often 500+ px) is sampled at COLOR_FACE_PX: medians
    # of robust bands do not need more pixels, and every step below grows with them
    # (a 574 px face took 58 ms here, one of 256 px or less is sampled as it is).
    scale = COLOR_FACE_PX / max(face_w, face_h, 1.0)
    if scale < 1.0:
        size = (max(1, round(patch.shape[1] * scale)), max(1, round(patch.shape[0] * scale)))
        patch = cv2.resize(patch, size, interpolation=cv2.INTER_AREA)
        factors = np.array([size[0] / window_size[1], size[1] / window_size[0]])
        pts = pts * factors
        face_w, face_h = face_w * factors[0], face_h * factors[1]
    shape = patch.shape[:2]

    def hull(indices: tuple[int, ...]) -> np.ndarray:
        return _fill(shape, cv2.convexHull(pts[list(indices)].astype(np.float32)), convex=True)

    def ring(indices: tuple[int, ...]) -> np.ndarray:
        return _fill(shape, pts[list(indices)])

    lips_region = ring(LIPS_OUTER) & ~ring(LIPS_INNER)
    brow_region = (ring(RIGHT_BROW_UPPER + RIGHT_BROW_LOWER[::-1])
                   | ring(LEFT_BROW_UPPER + LEFT_BROW_LOWER[::-1]))  # fmt: skip
    margin = max(1, int(round(0.02 * max(face_w, face_h))))
    brow_grown = cv2.dilate(brow_region.astype(np.uint8), np.ones((2 * margin + 1,) * 2, np.uint8))
    forehead = hull(FOREHEAD) & (brow_grown == 0)
    cheeks = (hull(RIGHT_CHEEK) | hull(LEFT_CHEEK)) & (brow_grown == 0)
    under_eyes = (ring(RIGHT_UNDER_EYE), ring(LEFT_UNDER_EYE))
    under_eye_labs = [_robust_lab(patch[under_eye], L_BAND)[0] for under_eye in under_eyes]

    labs, confidence = {}, {name: 0.0 for name in COLOR_FIELDS}  # field -> CIELab read
    skin_lab, n_skin = _robust_lab(patch[forehead | cheeks], L_BAND)
    face_lab, n_face = skin_lab, n_skin
    forehead_lab = _robust_lab(patch[forehead], L_BAND)[0]
    lip_lab, n_lip = _robust_lab(patch[lips_region], L_BAND)
    cheeks_lab, n_cheeks = _robust_lab(patch[cheeks], L_BAND)
    if forehead_covered(forehead_lab, cheeks_lab, lip_lab):
        skin_lab, n_skin = face_lab, n_face = cheeks_lab, n_cheeks
    cover = cheek_cover(skin_lab, cheeks_lab, forehead_lab, lip_lab)
    if cover is not None:  # the cheeks are covered: the skin above the cover, if skin
        above = forehead.copy()
        for under_eye, under_eye_lab in zip(under_eyes, under_eye_labs, strict=True):
            # the cheeks' top, unless a lens covers it too
            if under_eye_distance(under_eye_lab, forehead_lab) <= EYE_LENS_DISTANCE:
                above |= under_eye
        skin_lab, n_skin = _robust_lab(patch[above], L_BAND)
        if skin_lab is not None and not looks_like_skin(skin_lab):
            skin_lab = None
    if skin_lab is not None:
        labs["skin_color"] = skin_lab
        confidence["skin_color"] = min(1.0, n_skin / 150.0)

    iris_region = np.zeros(shape, bool)
    eyes, eyes_hidden = [], []
    for side, eye_ring, iris, under_eye_lab in zip(
        SIDES, (RIGHT_EYE_RING, LEFT_EYE_RING), (RIGHT_IRIS, LEFT_IRIS), under_eye_labs, strict=True
    ):
        opening = ring(eye_ring)
        centre, radius = pts[iris[0]], _iris_radius(pts, iris)
        iris_ring = opening & _disk(shape, centre, 0.95 * radius)
        iris_ring &= ~_disk(shape, centre, 0.45 * radius)
        white = opening & ~_disk(shape, centre, 1.1 * radius)
        shade = eye_shade(patch, white, iris_ring)
        eyes.append((*shade, under_eye_distance(under_eye_lab, skin_lab)))
        eyes_hidden.append(eye_hidden(*eyes[-1], expression.get(f"blink_{side}", 0.0)))
        if not eyes_hidden[-1]:
            iris_region |= iris_ring
    mouth_covered = cover is not None and lip_lab is not None
    mouth_covered = mouth_covered and lips_alike(lip_lab, cover)
    lips_read = lip_lab is not None and not mouth_covered
    if lips_read:
        labs["lip_color"] = lip_lab
        confidence["lip_color"] = min(1.0, n_lip / 60.0) * 0.9
    # Brows: hairs are the darker half of the brow polygon (skin shows between them).
    brow_lab, n_brow = _robust_lab(patch[brow_region], (5.0, 50.0))
    if brow_lab is not None:
        labs["brow_color"] = brow_lab
        confidence["brow_color"] = min(1.0, n_brow / BROW_FULL_COUNT) * 0.7
    # Iris: ring between pupil and limbus inside the lids; the band drops the
    # pupil edge (darkest) and the catch-light (brightest).
    iris_lab, n_iris = _robust_lab(patch[iris_region], (15.0, 70.0))
    if iris_lab is not None:
        openness = 1.0 - max(expression.get("blink_left", 0.0), expression.get("blink_right", 0.0))
        labs["iris_color"] = iris_lab
        confidence["iris_color"] = min(1.0, n_iris / IRIS_FULL_COUNT) * 0.7 * openness

    if person_mask is None:
        person = segment_person(patch)
    else:
        person = np.asarray(person_mask, dtype=np.float32)[win[1] : win[3], win[0] : win[2]]
        if person.shape != shape:  # the window was reduced above
            person = cv2.resize(person, shape[::-1], interpolation=cv2.INTER_AREA)
    # Cheeks and forehead out of skin hues, and the lips not of their colour (no mask):
    # a coloured light (blue, green, cyan). Its gains onto the skin scale are taken out
    # of every colour, and the skin is the scale's. Over the six photos under four such
    # casts, where this held (16 of 24), the median errors against the daylight readings
    # fell: skin (the CNN's before) 10.8-19.9 -> 7.7-14.7 dE2000, lips 19.4-30.6 ->
    # 5.4-12.5, hair 14.9-21.7 -> 2.0-10.3, brows 14.2-21.5 -> 4.5-7.9, irises 7.8-14.1
    # -> 1.4-4.2 (session 36; `scripts/covered_faces.py`).
    cast = cover is not None and skin_lab is None and face_lab is not None and lips_read
    oval = _grown_oval(shape, pts)
    hair_lab_all = _to_lab(patch[_hair_region(pts, person, oval)])
    skin_like = face_lab if cast else skin_lab
    if skin_like is not None:
        # ears, neck and bare scalp are person-but-not-hair: drop skin-like pixels
        hair_lab_all = hair_lab_all[np.linalg.norm(hair_lab_all - skin_like, axis=1) > NOT_SKIN]
    hair_lab, n_hair = _robust_lab(hair_lab_all, L_BAND, is_lab=True)
    if hair_lab is not None:
        labs["hair_color"] = hair_lab
        expected = max(1.0, 0.15 * face_w * face_h)  # short hair covers ~15% of a face box
        confidence["hair_color"] = min(1.0, n_hair / expected) * 0.8
    reach = hair_reach(patch, pts, person, oval, skin_like, hair_lab)
    saturation = window_saturation(patch)
    scaled: tuple[str, ...] = ()
    if saturation < MONOCHROME_SATURATION and skin_lab is not None:
        labs["skin_color"] = skin_scale_lab(skin_lab[0])
        scaled = ("skin_color",)
        if lips_read:
            lips = labs["skin_color"][1:] + SKIN_TO_LIPS[1:]
            labs["lip_color"] = np.array([lip_lab[0], *lips])
            scaled += ("lip_color",)
    elif cast:
        gain = skin_scale_gain(face_lab)
        labs = {name: white_balanced(lab, gain) for name, lab in labs.items()}
        labs["skin_color"] = skin_scale_lab(face_lab[0])
        confidence["skin_color"] = min(1.0, n_face / 150.0)
        scaled = ("skin_color",)
    colors = _defaults() | {name: _lab_to_hex(lab) for name, lab in labs.items()}
    confidence = {k: float(v) for k, v in confidence.items()}
    hidden = tuple(
        part for part, hid in (("mouth", mouth_covered), ("eyes", all(eyes_hidden))) if hid
    )
    return ColorReading(
        colors, confidence, (eyes[0], eyes[1]), hidden, saturation, scaled, cast, reach
    )


def window_saturation(patch: np.ndarray) -> float:
    """The 95th percentile over the (H, W, 3) uint8 `patch` (every third pixel of every
    third row) of (max - min) / max of each pixel's channels, the max floored at 32
    levels: 0 in black and white. About 0.4 ms for a window of 600 x 500 pixels."""
    red, green, blue = (patch[::3, ::3, channel] for channel in range(3))
    top = np.maximum(np.maximum(red, green), blue)
    spread = (top - np.minimum(np.minimum(red, green), blue)).astype(np.float32)
    saturation = (spread / np.maximum(top, 32).astype(np.float32)).ravel()
    if len(saturation) == 0:
        return math.nan
    k = int(0.95 * (len(saturation) - 1))
    return float(np.partition(saturation, k)[k])


def eye_shade(patch: np.ndarray, white: np.ndarray, iris: np.ndarray) -> tuple[float, float]:
    """(contrast, ratio) of one eye in the (H, W, 3) uint8 `patch`: the L* of its white
    (the 75th percentile over the (H, W) mask `white`, the opening outside the iris)
    minus that of its iris (the 25th over `iris`, the iris ring), and the same two as
    a ratio of luminances (infinite over a black iris). NaN with fewer than 8 pixels in
    either mask."""
    if white.sum() < 8 or iris.sum() < 8:
        return math.nan, math.nan
    white_l = float(np.percentile(_to_lab(patch[white])[:, 0], 75))
    iris_l = float(np.percentile(_to_lab(patch[iris])[:, 0], 25))
    iris_y = _luminance(iris_l)
    return white_l - iris_l, _luminance(white_l) / iris_y if iris_y > 0 else math.inf


def _luminance(lightness: float) -> float:
    """CIE L* -> relative luminance Y (0..1)."""
    f = (lightness + 16.0) / 116.0
    return f**3 if f > 6.0 / 29.0 else 3.0 * (6.0 / 29.0) ** 2 * (f - 4.0 / 29.0)


def _grown_oval(shape: tuple[int, int], pts: np.ndarray) -> np.ndarray:
    """(H, W) bool: the face oval grown by 4 % of the face's size."""
    oval = _fill(shape, pts[list(FACE_OVAL)])
    face_size = float(np.ptp(pts[:, 0]) + np.ptp(pts[:, 1])) / 2
    grow = max(1, int(round(0.04 * face_size)))
    return cv2.dilate(oval.astype(np.uint8), np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)) > 0


def _hair_region(pts: np.ndarray, person: np.ndarray, oval: np.ndarray) -> np.ndarray:
    """Person pixels around and above the head, outside the grown face `oval`."""
    above_mouth = np.arange(oval.shape[0])[:, None] < pts[[61, 291], 1].mean()
    return (person > 0.5) & ~oval & above_mouth


def _to_lab(pixels: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 sRGB -> (N, 3) CIELab (D65)."""
    if len(pixels) == 0:
        return np.zeros((0, 3))
    return rgb2lab(pixels[None].astype(np.float64) / 255.0)[0]


def _robust_lab(
    pixels: np.ndarray, band: tuple[float, float], is_lab: bool = False
) -> tuple[np.ndarray | None, int]:
    """Median Lab of the pixels (N, 3) uint8 sRGB, or Lab if `is_lab`, whose L* lies in
    the given percentile band."""
    if len(pixels) < 3:
        return None, 0
    lab = pixels if is_lab else _to_lab(pixels)
    low, high = np.percentile(lab[:, 0], band)
    kept = lab[(lab[:, 0] >= low) & (lab[:, 0] <= high)]
    if len(kept) == 0:
        return None, 0
    return np.median(kept, axis=0), len(kept)


def _lab_to_hex(lab: np.ndarray) -> str:
    return rgb_to_hex(np.clip(lab2rgb(np.asarray(lab, dtype=np.float64)[None, None])[0, 0], 0, 1))


def _defaults() -> dict[str, str]:
    defaults = AvatarParams()
    return {name: getattr(defaults, name) for name in COLOR_FIELDS}


def _fill(shape: tuple[int, int], polygon: np.ndarray, convex: bool = False) -> np.ndarray:
    """Boolean mask of a polygon in (sub-)pixel coordinates (1/16 px precision)."""
    mask = np.zeros(shape, np.uint8)
    contour = np.round(np.asarray(polygon, dtype=np.float64).reshape(-1, 2) * 16).astype(np.int32)
    if convex:
        cv2.fillConvexPoly(mask, contour, 1, lineType=cv2.LINE_8, shift=4)
    else:
        cv2.fillPoly(mask, [contour], 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


def _disk(shape: tuple[int, int], centre: np.ndarray, radius: float) -> np.ndarray:
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (xx + 0.5 - centre[0]) ** 2 + (yy + 0.5 - centre[1]) ** 2 <= radius**2


def _iris_radius(pts: np.ndarray, iris: tuple[int, ...]) -> float:
    return float(np.linalg.norm(pts[list(iris[1:])] - pts[iris[0]], axis=1).mean())
