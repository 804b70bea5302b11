"""Boxes, crops and tiles of face finding (`face.FaceAnalyzer`): plain geometry on
(x0, y0, x1, y1) pixel boxes and (H, W, 3) uint8 images; MediaPipe is only read here
(its detections), never run.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .landmarks import warp_image

# FaceMesh's input side for the crops around a detection (`square_crop`).
MESH_INPUT_SIDE = 320
# `tiles` cuts an image into tiles of this share of its longer side.
TILE_SIDE = 0.6


@dataclass
class Detection:
    """A face the full-range detector found: box (x0, y0, x1, y1) image pixels, score,
    roll (degrees, the eye line's turn in the image, clockwise), and whether the short-range
    detector must confirm it (a tile's, `FaceAnalyzer._with_tiles`)."""

    box: np.ndarray
    score: float
    roll: float
    confirm: bool = False


def square_crop(
    rgb: np.ndarray,
    box: np.ndarray,
    context: float,
    roll: float = 0.0,
    edge_padding: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """The (MESH_INPUT_SIDE, MESH_INPUT_SIDE, 3) square crop centred on `box`
    (x0, y0, x1, y1 pixels), `context` times its longer side, turned by `roll` degrees
    counter-clockwise (a face rolled that far clockwise stands upright in it), and its
    (2, 3) image -> crop transform. Past the image's edge the crop is grey, or with
    `edge_padding` repeats the edge's pixels (`warp_image`)."""  # fmt: skip
    side = context * max(box[2] - box[0], box[3] - box[1])
    centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
    k = MESH_INPUT_SIDE / side
    angle = np.radians(roll)
    # y points down: this turns image content counter-clockwise on screen by `roll`
    linear = k * np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
    to_crop = np.hstack([linear, (MESH_INPUT_SIDE / 2 - linear @ centre)[:, None]])
    return warp_image(rgb, to_crop, MESH_INPUT_SIDE, edge_padding), to_crop


def tiles(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """Overlapping regions (x0, y0, x1, y1) covering a width x height image: along each
    side longer than TILE_SIDE x the image's longer side, two of that length at its
    two ends. They overlap by at least a fifth of the longer side, so a face smaller
    than that lies whole inside one of them."""
    side = round(TILE_SIDE * max(width, height))

    def spans(length: int) -> list[tuple[int, int]]:
        return [(0, length)] if length <= side else [(0, side), (length - side, length)]

    return [(x0, y0, x1, y1) for y0, y1 in spans(height) for x0, x1 in spans(width)]


def detection_box(detection: object, width: int, height: int) -> np.ndarray:
    """(x0, y0, x1, y1) pixels of a MediaPipe detection in a `width` x `height` image."""
    rel = detection.location_data.relative_bounding_box  # type: ignore[attr-defined]
    return np.array([rel.xmin * width, rel.ymin * height,
                     (rel.xmin + rel.width) * width, (rel.ymin + rel.height) * height])  # fmt: skip


def detection_roll(detection: object, width: int, height: int) -> float:
    """Degrees the detected face's eye line turns clockwise in a `width` x `height`
    image (0 upright; the person's right eye is the image's left one)."""
    right, left = detection.location_data.relative_keypoints[:2]  # type: ignore[attr-defined]
    return float(np.degrees(np.arctan2((left.y - right.y) * height, (left.x - right.x) * width)))


def landmark_bbox(landmarks: np.ndarray) -> np.ndarray:
    xy = landmarks[:, :2]
    return np.concatenate([xy.min(0), xy.max(0)])


def bbox_area(box: object) -> float:
    x0, y0, x1, y1 = box  # type: ignore[misc]
    return max(0.0, x1 - x0) * max(0.0, y1 - y0)


def scale_box(box: np.ndarray, factor: float) -> np.ndarray:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    hw, hh = (box[2] - box[0]) * factor / 2, (box[3] - box[1]) * factor / 2
    return np.array([cx - hw, cy - hh, cx + hw, cy + hh])


def inside(point: tuple[float, float], box: np.ndarray) -> bool:
    return bool(box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3])


def iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = bbox_area(a) + bbox_area(b) - inter
    return inter / union if union > 0 else 0.0


_ROTATE = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


def turn_photo(rgb: np.ndarray, turn: int) -> np.ndarray:
    """`rgb` (H, W, 3) turned `turn` degrees clockwise (90, 180 or 270)."""
    return cv2.rotate(rgb, _ROTATE[turn])


def turn_back(detection: Detection, turn: int, width: int, height: int) -> Detection:
    """A detection in a `width` x `height` photo turned `turn` degrees clockwise
    (`turn_photo`), in the photo's own pixels: its box mapped back, its roll less
    `turn` (`signed_degrees`)."""
    u0, v0, u1, v1 = detection.box
    box = {
        90: (v0, height - u1, v1, height - u0),
        180: (width - u1, height - v1, width - u0, height - v0),
        270: (width - v1, u0, width - v0, u1),
    }[turn]
    roll = signed_degrees(detection.roll - turn)
    return Detection(np.array(box, dtype=np.float64), detection.score, roll, detection.confirm)


def signed_degrees(angle: float) -> float:
    """`angle` (degrees) as the same turn in [-180, 180)."""
    return (angle + 180.0) % 360.0 - 180.0
