"""The teacher's glasses reading: is there a frame across the nose bridge?

Every pair of glasses crosses the nose between the eyes, and skin there is smooth:
between the inner ends of the brows and a little below the eye line, the bridge of a
frame is the only bar that runs across the nose. `bridge_contrast` measures the
strongest such bar (an edge down in brightness and one back up, or the reverse, close
together) as a Weber contrast, in a frame where the eyes are level and
`EYE_DISTANCE_PX` apart, so it does not depend on the photo's exposure, resolution or
head roll. A bar, not an edge: the edge of a hard shadow (a cap's brim, noon sun)
across the nose is one step, and an edge measure read it as a frame.

`GLASSES_CONTRAST` splits "none" from "a frame". Over the two real portraits the
machine has and the perturbations `chibi eval` applies (flip, +-20 % brightness,
0.8-1.2x scale, JPEG 50), the astronaut (no glasses) measures 0.004-0.012 and Grace
Hopper (heavy browline frames) 0.102-0.123; with their skin tinted to each Monk
swatch, 0.005-0.011 and 0.088-0.146; with a hard shadow edge drawn across the
astronaut's nose (30-70 % darker above it, over 0.05-0.4 eye distances), at most
0.019 (`scripts/glasses_reading.py` prints these). The threshold sits nearer the
astronaut's side, so thinner frames than Grace Hopper's still count (the renders' thin
wire frames want it there). On the held-out renders (`chibi eval`, section 1) the
reading is right on 96 % of the faces it is sure of. A hard shadow lying along a frame
can hide it (Grace Hopper's drop to 0.018 under some). Only the presence is read
here: which frame (round or square) is decided apart (`fusion.fuse_glasses`). Two
real faces are not a population: rimless frames, creases across the nose root and
very low brows are the cases to check on more photos.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .landmarks import similarity_fit, transform_points, warp_image

EYE_DISTANCE_PX = 48.0  # inter-pupil distance of the measuring frame
GLASSES_CONTRAST = 0.03
MAX_BAR = 0.2  # of the eye distance: the widest frame bar counted (~1.3 cm)
FULL_CONFIDENCE_FACTOR = 2.0  # a contrast this far from the threshold is read with certainty
# FaceMesh's lower contour of the inner brow ends (the strip starts just below them)
INNER_BROW_LOWER = (55, 65, 285, 295)
NOSE_ROOT = 168  # FaceMesh's point on the nose between the eyes
STRIP_HALF_WIDTH = 0.125  # of the eye distance, either side of the midpoint
STRIP_BELOW_EYES = 0.2  # of the eye distance, below the eye line
LUMINANCE_FLOOR = 8.0  # grey levels added to the mean, so near-black strips stay finite
LONGEST_BAR_PX = int(round(MAX_BAR * EYE_DISTANCE_PX))  # the widest bar in the measuring frame


def bridge_contrast(rgb: np.ndarray, landmarks: np.ndarray, eye_centres: np.ndarray) -> float:
    """Weber contrast of the strongest bar across the nose bridge (0 = smooth skin).

    A bar is an edge down in brightness and one back up (a dark frame), or the reverse
    (a bright one), at most `MAX_BAR` eye distances apart: a shadow's edge is one step
    and does not count. Its contrast is the weaker edge's step, in grey levels a pixel,
    over the strip's mean brightness.

    rgb: (H, W, 3) uint8; landmarks: (478, 2+) pixels; eye_centres: (2, 2) pixels.
    Returns NaN when the strip falls outside the image or has no height.
    """
    levelled = _levelled_strip(rgb, landmarks, eye_centres)
    if levelled is None:
        return float("nan")
    grey, top, bottom, columns = levelled
    # the bar's upper edge lies in the strip; its lower edge may lie up to LONGEST_BAR_PX below
    rows = slice(top, min(bottom + LONGEST_BAR_PX, grey.shape[0] - 1))
    step = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)[rows, columns].mean(axis=1) / 8.0
    upper = np.arange(len(step)) < bottom - top
    down, up = np.maximum(-step, 0.0), np.maximum(step, 0.0)
    strongest = 0.0
    for gap in range(1, LONGEST_BAR_PX + 1):
        dark = np.minimum(down[:-gap], up[gap:])
        light = np.minimum(up[:-gap], down[gap:])
        bars = np.maximum(dark, light)[upper[:-gap]]
        if len(bars):
            strongest = max(strongest, float(bars.max()))
    brightness = float(grey[top:bottom, columns].mean()) + LUMINANCE_FLOOR
    return strongest / brightness


def _levelled_strip(
    rgb: np.ndarray, landmarks: np.ndarray, eye_centres: np.ndarray
) -> tuple[np.ndarray, int, int, slice] | None:
    """The face around the eyes, levelled and scaled to `EYE_DISTANCE_PX` (grey float32,
    2 x 2 eye distances), with the strip's first and last row and its columns; None
    where it cannot be cut or reaches past the photo's edge."""
    eyes = np.array(sorted(np.asarray(eye_centres, np.float64), key=lambda p: p[0]))
    if not np.hypot(*(eyes[1] - eyes[0])) > 0:
        return None
    side = int(2 * EYE_DISTANCE_PX)
    centre = side / 2
    # eyes level, their midpoint at the centre (`warp_image` reduces a big face by area
    # first: a bilinear warp alone would skip thin frames)
    level_eyes = np.array([[centre - EYE_DISTANCE_PX / 2, centre],
                           [centre + EYE_DISTANCE_PX / 2, centre]])  # fmt: skip
    transform = similarity_fit(eyes, level_eyes, np.ones(2))
    level = warp_image(rgb, transform, side)
    marks = transform_points(transform, np.asarray(landmarks)[[*INNER_BROW_LOWER, NOSE_ROOT], :2])
    top = max(1, int(round(marks[:-1, 1].mean() + 0.04 * EYE_DISTANCE_PX)))
    bottom = int(round(centre + STRIP_BELOW_EYES * EYE_DISTANCE_PX))
    if bottom - top < 3:
        return None
    # centred on the nose, not between the eyes: a turned head moves the nose toward
    # the far eye, and the strip must not reach that eye's lids
    half = STRIP_HALF_WIDTH * EYE_DISTANCE_PX
    nose = float(np.clip(marks[-1, 0], half, side - half))
    columns = slice(int(round(nose - half)), int(round(nose + half)))
    # what is read must be the photo's: beyond its edge the warp paints flat grey, which
    # would read as bare skin with full confidence
    read = [[columns.start, top], [columns.stop, top], [columns.start, bottom + LONGEST_BAR_PX],
            [columns.stop, bottom + LONGEST_BAR_PX]]  # fmt: skip
    corners = transform_points(cv2.invertAffineTransform(transform), read)
    height, width = rgb.shape[:2]
    if not ((corners >= 0).all() and (corners <= (width, height)).all()):
        return None
    return cv2.cvtColor(level, cv2.COLOR_RGB2GRAY).astype(np.float32), top, bottom, columns


def glasses_reading(contrast: float) -> tuple[bool, float]:
    """(frame present, confidence 0..1 from how far the contrast is from the threshold)."""
    if not math.isfinite(contrast):
        return False, 0.0
    if contrast <= 0:  # not one grey level of change across the nose
        return False, 1.0
    margin = abs(math.log(contrast / GLASSES_CONTRAST)) / math.log(FULL_CONFIDENCE_FACTOR)
    return contrast >= GLASSES_CONTRAST, min(1.0, margin)
