"""`FaceObservation`, one face found in an image, and how one is made from its landmarks
(`observe_face`: pose, the regressor's aligned crop, the box). `avatar3d.face` finds
the landmarks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .face_boxes import landmark_bbox
from .landmarks import (
    CROP_SIZE,
    LEFT_EYE_CORNERS,
    RIGHT_EYE_CORNERS,
    alignment_transform,
    head_pose,
    transform_points,
    warp_image,
)


@dataclass
class FaceObservation:
    """One face found in an image.

    landmarks: (478, 3) float32; x, y in pixels of the decoded image, z (depth,
        smaller = closer to the camera, 0 near the head centre) in the same
        pixel scale.
    bbox: (x0, y0, x1, y1) pixels, the box around all landmarks (may extend
        past the image edge for a face cut by the frame).
    crop: (128, 128, 3) uint8 RGB aligned face crop, the regressor's input.
    crop_landmarks: (478, 2) float32 landmarks in crop pixels.
    transform: (2, 3) float64 similarity transform, image pixels -> crop pixels
        (crop = transform[:, :2] @ xy + transform[:, 2]).
    yaw, pitch, roll: head pose in degrees. yaw > 0: the face turns toward the
        image's right (the person's own left in a non-mirrored photo); pitch > 0:
        the face looks up; roll > 0: the head is tilted clockwise in the image.
        Yaw and pitch are the head's own (the roll turned out first).
    image_size: (width, height) of the decoded image in pixels.
    score: detector confidence 0..1 (0.5 for a face found by the whole-image
        FaceMesh fallback, which reports no confidence).
    """

    landmarks: np.ndarray
    bbox: tuple[float, float, float, float]
    crop: np.ndarray
    crop_landmarks: np.ndarray
    transform: np.ndarray
    yaw: float
    pitch: float
    roll: float
    image_size: tuple[int, int]
    score: float = 1.0

    @property
    def size(self) -> float:
        """The longer side of `bbox` in pixels (what `min_face_size` is compared with)."""
        x0, y0, x1, y1 = self.bbox
        return max(x1 - x0, y1 - y0)

    @property
    def eye_centres(self) -> np.ndarray:
        """(2, 2) pixel centres of the person's right and left eye (mean of the corners)."""
        lm = self.landmarks[:, :2]
        return np.stack(
            [lm[list(RIGHT_EYE_CORNERS)].mean(0), lm[list(LEFT_EYE_CORNERS)].mean(0)]
        ).astype(np.float64)

    @property
    def eye_distance(self) -> float:
        """Pixels between the eyes' centres (`eye_centres`)."""
        right, left = self.eye_centres
        return float(np.linalg.norm(left - right))


def observe_face(
    rgb: np.ndarray, landmarks: np.ndarray, score: float, image_size: tuple[int, int]
) -> FaceObservation:
    """The face of `landmarks` ((478, 3) pixels of the (H, W, 3) uint8 `rgb`): its pose,
    its aligned crop and its box."""
    yaw, pitch, roll, _ = head_pose(landmarks)
    transform = alignment_transform(landmarks)
    crop = warp_image(rgb, transform, CROP_SIZE)
    crop_lm = transform_points(transform, landmarks[:, :2])
    return FaceObservation(
        landmarks=landmarks.astype(np.float32),
        bbox=tuple(float(v) for v in landmark_bbox(landmarks)),  # type: ignore[arg-type]
        crop=crop,
        crop_landmarks=crop_lm.astype(np.float32),
        transform=transform,
        yaw=yaw,
        pitch=pitch,
        roll=roll,
        image_size=image_size,
        score=score,
    )
