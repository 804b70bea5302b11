"""The teacher's glasses reading: is there a frame across the nose bridge?

Every pair of glasses crosses the nose between the eyes, and skin there is smooth:
between the inner ends of the brows and a little below the eye line, the bridge of a
frame is the only edge that runs across the nose. `bridge_contrast` measures the
strongest such edge as a Weber contrast (its brightness step over the strip's mean
brightness), in a frame where the eyes are level and `EYE_DISTANCE_PX` apart, so it
does not depend on the photo's exposure, resolution or head roll.

`GLASSES_CONTRAST` splits "none" from "a frame". Over the two real portraits the
machine has and the perturbations `chibi eval` applies (flip, +-20 % brightness,
0.8-1.2x scale, JPEG 50), the astronaut (no glasses) measures 0.014-0.018 and Grace
Hopper (heavy browline frames) 0.104-0.124; with their skin tinted to each Monk
swatch, 0.010-0.022 and 0.098-0.147. The threshold sits near the geometric middle of
the two ranges. On the held-out renders (`chibi eval`, section 1) the reading is
right on 96 % of the faces it is sure of. Only the presence is read here: which
frame (round or square) is the CNN's to say (`fusion.fuse_glasses`).
Two real faces are not a population: thin rimless frames, deep horizontal creases
between the eyes or very low brows are the cases to check on more photos.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

EYE_DISTANCE_PX = 48.0  # inter-pupil distance of the measuring frame
GLASSES_CONTRAST = 0.045
FULL_CONFIDENCE_FACTOR = 2.0  # a contrast this far from the threshold is read with certainty
# FaceMesh's lower contour of the inner brow ends (the strip starts just below them)
INNER_BROW_LOWER = (55, 65, 285, 295)
NOSE_ROOT = 168  # FaceMesh's point on the nose between the eyes
STRIP_HALF_WIDTH = 0.125  # of the eye distance, either side of the midpoint
STRIP_BELOW_EYES = 0.2  # of the eye distance, below the eye line
LUMINANCE_FLOOR = 8.0  # grey levels added to the mean, so near-black strips stay finite


def bridge_contrast(rgb: np.ndarray, landmarks: np.ndarray, eye_centres: np.ndarray) -> float:
    """Weber contrast of the strongest edge across the nose bridge (0 = smooth skin).

    rgb: (H, W, 3) uint8; landmarks: (478, 2+) pixels; eye_centres: (2, 2) pixels.
    Returns NaN when the strip falls outside the image or has no height.
    """
    xy = np.asarray(landmarks, np.float64)[:, :2]
    left, right = sorted(np.asarray(eye_centres, np.float64), key=lambda p: p[0])
    step = right - left
    distance = float(np.hypot(*step))
    if not distance > 0:
        return float("nan")
    # the square within one eye distance of the eyes' midpoint holds the strip at any roll
    middle = (left + right) / 2
    x0, y0 = np.maximum(np.floor(middle - distance).astype(int), 0)
    x1, y1 = np.ceil(middle + distance).astype(int)
    window = rgb[y0:y1, x0:x1]
    if window.shape[0] < 2 or window.shape[1] < 2:
        return float("nan")
    origin = np.array([x0, y0], np.float64)
    # a big face is reduced by area first: a bilinear warp alone would skip thin frames
    reduce = min(1.0, EYE_DISTANCE_PX / distance)
    if reduce < 1.0:
        size = (max(2, round(window.shape[1] * reduce)), max(2, round(window.shape[0] * reduce)))
        window = cv2.resize(window, size, interpolation=cv2.INTER_AREA)
    # window pixels -> measuring frame: eyes level, their midpoint at the centre
    angle = -math.atan2(step[1], step[0])
    rest = EYE_DISTANCE_PX / distance / reduce
    rotation = rest * np.array([[math.cos(angle), -math.sin(angle)],
                                [math.sin(angle), math.cos(angle)]])  # fmt: skip
    side = int(2 * EYE_DISTANCE_PX)
    centre = side / 2
    offset = np.array([centre, centre]) - rotation @ ((middle - origin) * reduce)
    transform = np.column_stack([rotation, offset])
    level = cv2.warpAffine(window, transform, (side, side), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
    marks = ((xy[[*INNER_BROW_LOWER, NOSE_ROOT]] - origin) * reduce) @ transform[:, :2].T + offset
    top = max(1, int(round(marks[:-1, 1].mean() + 0.04 * EYE_DISTANCE_PX)))
    bottom = int(round(centre + STRIP_BELOW_EYES * EYE_DISTANCE_PX))
    # centred on the nose, not between the eyes: a turned head moves the nose toward
    # the far eye, and the strip must not reach that eye's lids
    half = STRIP_HALF_WIDTH * EYE_DISTANCE_PX
    nose = float(np.clip(marks[-1, 0], half, side - half))
    first, last = int(round(nose - half)), int(round(nose + half))
    if bottom - top < 3:
        return float("nan")
    grey = cv2.cvtColor(level, cv2.COLOR_RGB2GRAY).astype(np.float32)
    vertical = np.abs(cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)) / 8.0  # grey levels a pixel
    strip = vertical[top:bottom, first:last]
    brightness = float(grey[top:bottom, first:last].mean()) + LUMINANCE_FLOOR
    return float(strip.mean(axis=1).max() / brightness)


def glasses_reading(contrast: float) -> tuple[bool, float]:
    """(frame present, confidence 0..1 from how far the contrast is from the threshold)."""
    if not math.isfinite(contrast):
        return False, 0.0
    if contrast <= 0:  # not one grey level of change across the nose
        return False, 1.0
    margin = abs(math.log(contrast / GLASSES_CONTRAST)) / math.log(FULL_CONFIDENCE_FACTOR)
    return contrast >= GLASSES_CONTRAST, min(1.0, margin)
