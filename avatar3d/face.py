"""Face detection, 478 MediaPipe landmarks, the several-faces policy and the aligned crop.

Pipeline of `FaceAnalyzer.analyze` on an (H, W, 3) uint8 RGB image:

1. MediaPipe's full-range face detector (BlazeFace, faces up to ~5 m) finds
   face boxes anywhere in the image. FaceMesh's own detector is short-range:
   it misses a face that fills less than ~10% of a large photo, and in a group
   photo it finds only the nearest faces, so it is not used for finding faces.
2. For each box (largest first, at most `max_faces`), square regions of
   1.8 and 2.6 x the box are cut out, resized to 320 px and passed to FaceMesh
   (`refine_landmarks=True`: 468 mesh points + 10 iris points), each also
   mirrored; the landmarks of these passes are mapped back to image pixels and
   averaged. FaceMesh's output jitters with its input framing by ~1-2% of the
   face (more than the 0.05 slider tolerance for thin features such as lips);
   averaging four framings cuts that jitter about in half. If the detector
   finds nothing, FaceMesh runs on the whole image as a fallback (it finds
   very close faces the detector misses).
3. Head pose (yaw, pitch, roll) comes from the 3D landmarks; the policy checks
   size and pose; a similarity transform from five stable landmarks cuts the
   128 x 128 aligned crop that the regressor reads.

Landmark numbering is MediaPipe's: "left" means the person's own left, which is
the image's right side in a non-mirrored photo (e.g. 263 = left eye outer corner,
473 = left iris centre).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import cv2
import numpy as np

from .errors import ChibiError
from .imageio import DEFAULT_LIMITS, ImageLimits, decode_image

CROP_SIZE = 128
NUM_LANDMARKS = 478

# Colour of crop pixels that fall outside the photo (neutral grey, like imageio's alpha).
CROP_BORDER_VALUE = (128, 128, 128)

RIGHT_EYE_CORNERS = (33, 133)  # outer, inner; the person's right eye (image left)
LEFT_EYE_CORNERS = (263, 362)
NOSE_TIP = 1
MOUTH_CORNERS = (61, 291)  # person's right, left
RIGHT_IRIS = (468, 469, 470, 471, 472)  # centre first, then 4 points on the rim
LEFT_IRIS = (473, 474, 475, 476, 477)

# -- canonical geometry ------------------------------------------------------
# Numbers below are derived from MediaPipe's canonical face model
# (mediapipe/modules/face_geometry/data/canonical_face_model.obj, in cm,
# x toward the person's left, y down, z away from the camera), the mean face
# FaceMesh is built around. The wheel does not ship that file; the few numbers
# we need were measured from it once.
#
# Crop layout: the canonical face is drawn at 4.5 px per cm with its origin at
# (64, 62): eye line at y = 50.2, the top of the face mesh (upper forehead) at
# y = 24.8, chin at y = 104.3, face contour at x = 29.5 / 98.5: the whole face
# plus about 5-6 cm of hair above and beside it (enough to tell hair styles).
ALIGN_LANDMARKS: tuple[tuple[int, ...], ...] = (
    RIGHT_EYE_CORNERS,  # right eye centre = mean of its corners
    LEFT_EYE_CORNERS,
    (NOSE_TIP,),
    (MOUTH_CORNERS[0],),
    (MOUTH_CORNERS[1],),
)
CANONICAL_CROP_POINTS = np.array(
    [[49.82, 50.19], [78.18, 50.19], [64.0, 67.07], [52.95, 81.54], [75.05, 81.54]],
    dtype=np.float64,
)
# Eyes dominate the fit: they move least with expression; the nose tip shifts
# with yaw and the mouth corners with a smile.
ALIGN_WEIGHTS = np.array([3.0, 3.0, 1.0, 1.0, 1.0])

# Head pose: the face's x axis comes from symmetric landmark pairs (left minus
# right), its down axis from the forehead/nose-bridge midline. On the canonical
# model that midline leans back by this angle, which defines pitch 0.
_POSE_PAIRS = np.array([(263, 33), (362, 133), (454, 234), (356, 127), (389, 162)])
_MIDLINE_UPPER = np.array([10, 151, 9, 8, 168])
_MIDLINE_LOWER = np.array([6, 197, 195, 5, 4])
_MIDLINE_TILT_DEG = 20.81
_T = math.radians(_MIDLINE_TILT_DEG)
# Columns: the canonical face's (x, down, z) axes as measured by `_face_axes`.
_CANONICAL_AXES = np.array(
    [[1.0, 0.0, 0.0], [0.0, math.cos(_T), math.sin(_T)], [0.0, -math.sin(_T), math.cos(_T)]]
)

# MIRROR_INDEX[i] is the landmark that mirrors landmark i across the face's
# midline (33 <-> 263, ...; 28 midline points map to themselves). Derived from
# the canonical model's exact left/right symmetry; for the irises, both rims are
# ordered (+x, top, -x, bottom) in the image, so 469 (+x of the right iris)
# mirrors 476 (-x of the left one).
MIRROR_INDEX = np.array(
    [
    0, 1, 2, 248, 4, 5, 6, 249, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 250, 251, 252,
    253, 254, 255, 256, 257, 258, 259, 260, 261, 262, 263, 264, 265, 266, 267, 268, 269,
    270, 271, 272, 273, 274, 275, 276, 277, 278, 279, 280, 281, 282, 283, 284, 285, 286,
    287, 288, 289, 290, 291, 292, 293, 294, 295, 296, 297, 298, 299, 300, 301, 302, 303,
    304, 305, 306, 307, 308, 309, 310, 311, 312, 313, 314, 315, 316, 317, 318, 319, 320,
    321, 322, 323, 94, 324, 325, 326, 327, 328, 329, 330, 331, 332, 333, 334, 335, 336, 337,
    338, 339, 340, 341, 342, 343, 344, 345, 346, 347, 348, 349, 350, 351, 352, 353, 354,
    355, 356, 357, 358, 359, 360, 361, 362, 363, 364, 365, 366, 367, 368, 369, 370, 371,
    372, 373, 374, 375, 376, 377, 378, 379, 151, 152, 380, 381, 382, 383, 384, 385, 386,
    387, 388, 389, 390, 164, 391, 392, 393, 168, 394, 395, 396, 397, 398, 399, 175, 400,
    401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417,
    418, 195, 419, 197, 420, 199, 200, 421, 422, 423, 424, 425, 426, 427, 428, 429, 430,
    431, 432, 433, 434, 435, 436, 437, 438, 439, 440, 441, 442, 443, 444, 445, 446, 447,
    448, 449, 450, 451, 452, 453, 454, 455, 456, 457, 458, 459, 460, 461, 462, 463, 464,
    465, 466, 467, 3, 7, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36,
    37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58,
    59, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80,
    81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 95, 96, 97, 98, 99, 100, 101, 102,
    103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113, 114, 115, 116, 117, 118, 119,
    120, 121, 122, 123, 124, 125, 126, 127, 128, 129, 130, 131, 132, 133, 134, 135, 136,
    137, 138, 139, 140, 141, 142, 143, 144, 145, 146, 147, 148, 149, 150, 153, 154, 155,
    156, 157, 158, 159, 160, 161, 162, 163, 165, 166, 167, 169, 170, 171, 172, 173, 174,
    176, 177, 178, 179, 180, 181, 182, 183, 184, 185, 186, 187, 188, 189, 190, 191, 192,
    193, 194, 196, 198, 201, 202, 203, 204, 205, 206, 207, 208, 209, 210, 211, 212, 213,
    214, 215, 216, 217, 218, 219, 220, 221, 222, 223, 224, 225, 226, 227, 228, 229, 230,
    231, 232, 233, 234, 235, 236, 237, 238, 239, 240, 241, 242, 243, 244, 245, 246, 247,
    473, 476, 475, 474, 477, 468, 471, 470, 469, 472,
    ]
)  # fmt: skip

# FaceMesh input side for the crops around a detection.
_MESH_INPUT_SIDE = 320


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


class FaceAnalyzer:
    """Finds faces and their landmarks with MediaPipe.

    Holds MediaPipe graphs, which are not thread-safe: calls on one instance are
    serialised by a lock. For parallel work create one analyzer per thread or
    process (`analyze_image` keeps one per thread). Use as a context manager or
    call `close()`.

    max_faces: at most this many faces are analysed (the largest ones).
    min_face_size: faces whose landmark box is smaller (pixels, longer side)
        answer `face_too_small`.
    max_yaw, max_pitch: degrees; faces turned further answer `face_too_rotated`.
        Roll (in-plane rotation) is not limited: the aligned crop undoes it.
    min_confidence: detector / FaceMesh confidence threshold 0..1.
    mesh_contexts: crop sizes (x the detection box) at which FaceMesh runs;
        their landmarks are averaged. One value is fastest; the default two
        halve the landmark jitter.
    mirror_average: also run FaceMesh on each mirrored crop and average
        (mirrored indices swapped back). FaceMesh is not exactly symmetric; this
        makes a mirrored photo give the mirrored landmarks.
    Each face costs len(mesh_contexts) x (2 if mirror_average else 1) FaceMesh runs.
    """

    def __init__(
        self,
        max_faces: int = 4,
        min_face_size: int = 48,
        max_yaw: float = 45.0,
        max_pitch: float = 35.0,
        min_confidence: float = 0.5,
        mesh_contexts: tuple[float, ...] = (1.8, 2.6),
        mirror_average: bool = True,
    ):
        if max_faces < 1:
            raise ValueError("max_faces must be at least 1")
        if not mesh_contexts or min(mesh_contexts) < 1.2:
            raise ValueError("mesh_contexts needs at least one crop size >= 1.2 x the face box")
        import mediapipe as mp  # heavy import, only when an analyzer is made

        self.max_faces = int(max_faces)
        self.min_face_size = float(min_face_size)
        self.max_yaw = float(max_yaw)
        self.max_pitch = float(max_pitch)
        self.mesh_contexts = tuple(float(c) for c in mesh_contexts)
        self.mirror_average = bool(mirror_average)
        self._lock = threading.Lock()
        self._detector = mp.solutions.face_detection.FaceDetection(
            model_selection=1, min_detection_confidence=min_confidence
        )
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True,
            refine_landmarks=True,
            max_num_faces=1,
            min_detection_confidence=min_confidence,
        )
        self._closed = False

    # -- lifecycle ------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._detector.close()
                self._mesh.close()
                self._closed = True

    def __enter__(self) -> FaceAnalyzer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- analysis ---------------------------------------------------------------
    def analyze(self, rgb: np.ndarray, all_faces: bool = False) -> list[FaceObservation]:
        """Faces in an (H, W, 3) uint8 RGB image, largest first.

        Returns only the largest face unless `all_faces`. The largest face
        decides: if it is too small or too rotated, that error is raised even
        when a smaller face would pass (a bystander's face must never silently
        replace the user's). With `all_faces`, faces that fail the checks are
        left out, and the largest face's error is raised if none passes.
        Raises ChibiError `invalid_image`, `no_face`, `face_too_small`,
        `face_too_rotated`.
        """
        rgb = _check_rgb(rgb)
        with self._lock:
            if self._closed:
                raise RuntimeError("FaceAnalyzer is closed")
            found = self._find_landmarks(rgb)
        if not found:
            raise ChibiError("no_face", "no face was found in the image")
        height, width = rgb.shape[:2]
        faces = [_observe(rgb, lm, score, (width, height)) for lm, score in found]
        faces.sort(key=lambda f: _bbox_area(f.bbox), reverse=True)
        errors = [self._check(face) for face in faces]
        if not all_faces:
            if errors[0] is not None:
                raise errors[0]
            return faces[:1]
        passed = [face for face, error in zip(faces, errors, strict=True) if error is None]
        if not passed:
            raise errors[0]  # type: ignore[misc]
        return passed

    def analyze_image(
        self, data: bytes, all_faces: bool = False, limits: ImageLimits = DEFAULT_LIMITS
    ) -> tuple[np.ndarray, list[FaceObservation]]:
        """Decode image bytes (`imageio.decode_image`) and `analyze` them with this analyzer.

        Returns (the decoded (H, W, 3) uint8 RGB image, its faces). Raises ChibiError
        `invalid_image`, `image_too_large`, `no_face`, `face_too_small`, `face_too_rotated`.
        """
        rgb = decode_image(data, limits)
        return rgb, self.analyze(rgb, all_faces=all_faces)

    def _check(self, face: FaceObservation) -> ChibiError | None:
        if face.size < self.min_face_size:
            return ChibiError(
                "face_too_small",
                f"the face is {face.size:.0f} px, at least {self.min_face_size:.0f} px is needed",
            )
        if abs(face.yaw) > self.max_yaw or abs(face.pitch) > self.max_pitch:
            return ChibiError(
                "face_too_rotated",
                f"the face is turned {face.yaw:+.0f} deg sideways and {face.pitch:+.0f} deg "
                f"up/down; at most {self.max_yaw:.0f} and {self.max_pitch:.0f} are allowed",
            )
        return None

    def _find_landmarks(self, rgb: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """(478, 3) pixel landmarks and a score for every face found (caller holds the lock)."""
        height, width = rgb.shape[:2]
        detections = self._detector.process(rgb).detections or []
        boxes = []
        for det in detections:
            rel = det.location_data.relative_bounding_box
            box = np.array(
                [
                    rel.xmin * width,
                    rel.ymin * height,
                    (rel.xmin + rel.width) * width,
                    (rel.ymin + rel.height) * height,
                ]
            )
            boxes.append((box, float(det.score[0]) if det.score else 0.0))
        boxes.sort(key=lambda item: _bbox_area(item[0]), reverse=True)
        found: list[tuple[np.ndarray, float]] = []
        for box, score in boxes[: self.max_faces]:
            passes = [self._mesh_in_box(rgb, box, c) for c in self.mesh_contexts]
            landmarks = _consistent_mean([p for p in passes if p is not None])
            if landmarks is None:
                continue
            lm_box = _landmark_bbox(landmarks)
            centre = ((lm_box[0] + lm_box[2]) / 2, (lm_box[1] + lm_box[3]) / 2)
            # FaceMesh may lock onto a neighbouring face inside the enlarged crop.
            if not _inside(centre, _scale_box(box, 1.3)):
                continue
            if any(_iou(lm_box, _landmark_bbox(other)) > 0.4 for other, _ in found):
                continue
            found.append((landmarks, score))
        if not found:
            landmarks = self._mesh_landmarks(rgb)
            if landmarks is not None:
                found.append((landmarks, 0.5))
        return found

    def _mesh_landmarks(self, rgb: np.ndarray) -> np.ndarray | None:
        """(478, 3) landmarks of the main face in `rgb` (pixels), or None."""
        height, width = rgb.shape[:2]
        result = self._mesh.process(rgb)
        direct = None
        if result.multi_face_landmarks:
            direct = _to_pixels(result.multi_face_landmarks[0], width, height)
        if not self.mirror_average:
            return direct
        result = self._mesh.process(cv2.flip(rgb, 1))  # 6 us; numpy's strided copy: 335
        if not result.multi_face_landmarks:
            return direct
        mirrored = _to_pixels(result.multi_face_landmarks[0], width, height)
        mirrored[:, 0] = width - mirrored[:, 0]
        mirrored = mirrored[MIRROR_INDEX]
        if direct is None:
            return mirrored
        return _consistent_mean([direct, mirrored])

    def _mesh_in_box(self, rgb: np.ndarray, box: np.ndarray, context: float) -> np.ndarray | None:
        side = context * max(box[2] - box[0], box[3] - box[1])
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        k = _MESH_INPUT_SIDE / side  # crop pixels per image pixel
        to_crop = np.array([[k, 0.0, -k * (cx - side / 2)], [0.0, k, -k * (cy - side / 2)]])
        patch = warp_image(rgb, to_crop, _MESH_INPUT_SIDE)
        lm = self._mesh_landmarks(patch)
        if lm is None:
            return None
        lm[:, 0] = lm[:, 0] / k + (cx - side / 2)
        lm[:, 1] = lm[:, 1] / k + (cy - side / 2)
        lm[:, 2] = lm[:, 2] / k
        return lm


# -- per-thread convenience -----------------------------------------------------
_THREAD = threading.local()


def thread_analyzer() -> FaceAnalyzer:
    """A FaceAnalyzer with default settings, one per thread, created on first use."""
    analyzer = getattr(_THREAD, "analyzer", None)
    if analyzer is None:
        analyzer = FaceAnalyzer()
        _THREAD.analyzer = analyzer
    return analyzer


def analyze_image(
    data: bytes, all_faces: bool = False, limits: ImageLimits = DEFAULT_LIMITS
) -> tuple[np.ndarray, list[FaceObservation]]:
    """Decode image bytes and analyse them: (the decoded (H, W, 3) uint8 RGB, faces).

    Uses this thread's cached analyzer (default settings). Raises ChibiError
    `invalid_image`, `image_too_large`, `no_face`, `face_too_small`, `face_too_rotated`.
    """
    return thread_analyzer().analyze_image(data, all_faces=all_faces, limits=limits)


# -- geometry -----------------------------------------------------------------------
def head_pose(landmarks: np.ndarray) -> tuple[float, float, float, np.ndarray]:
    """(yaw, pitch, roll) in degrees and the (3, 3) rotation Q from (478, 3) landmarks.

    Q's columns are the face's canonical axes (x toward the person's left, y
    down, z away from the camera) in image coordinates, so `(lm - c) @ Q`
    expresses landmarks in the face's own frame (frontalised). Sign conventions
    are those of `FaceObservation`.
    """
    axes = _face_axes(np.asarray(landmarks, dtype=np.float64))
    rotation = axes @ _CANONICAL_AXES.T
    forward = -rotation[:, 2]  # the canonical face looks toward -z (the camera)
    yaw = math.degrees(math.atan2(forward[0], -forward[2]))
    pitch = math.degrees(math.atan2(-forward[1], math.hypot(forward[0], forward[2])))
    roll = math.degrees(math.atan2(rotation[1, 0], rotation[0, 0]))
    return yaw, pitch, roll, rotation


def _face_axes(lm: np.ndarray) -> np.ndarray:
    x_axis = (lm[_POSE_PAIRS[:, 0]] - lm[_POSE_PAIRS[:, 1]]).sum(0)
    x_axis /= np.linalg.norm(x_axis) + 1e-12
    down = lm[_MIDLINE_LOWER].mean(0) - lm[_MIDLINE_UPPER].mean(0)
    down -= (down @ x_axis) * x_axis
    down /= np.linalg.norm(down) + 1e-12
    return np.stack([x_axis, down, np.cross(x_axis, down)], axis=1)


def alignment_transform(landmarks: np.ndarray) -> np.ndarray:
    """(2, 3) similarity transform, image pixels -> `CROP_SIZE` crop pixels.

    Weighted least squares (Umeyama) from the eye centres, nose tip and mouth
    corners to `CANONICAL_CROP_POINTS`.
    """
    lm = np.asarray(landmarks, dtype=np.float64)[:, :2]
    src = np.stack([lm[list(group)].mean(0) for group in ALIGN_LANDMARKS])
    return similarity_fit(src, CANONICAL_CROP_POINTS, ALIGN_WEIGHTS)


def similarity_fit(src: np.ndarray, dst: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted Umeyama: the (2, 3) rotation + uniform scale + translation mapping src -> dst."""
    w = weights / weights.sum()
    mu_src, mu_dst = w @ src, w @ dst
    src_c, dst_c = src - mu_src, dst - mu_dst
    cov = (dst_c * w[:, None]).T @ src_c
    u, s, vt = np.linalg.svd(cov)
    d = np.array([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rot = (u * d) @ vt
    var_src = float(w @ (src_c**2).sum(1))
    scale = float((s * d).sum() / max(var_src, 1e-12))
    linear = scale * rot
    return np.hstack([linear, (mu_dst - linear @ mu_src)[:, None]])


def warp_image(rgb: np.ndarray, transform: np.ndarray, size: int) -> np.ndarray:
    """Warp (H, W, 3) uint8 into a (size, size, 3) image with a (2, 3) image->output transform.

    When the transform shrinks by more than 2x, the source region is first
    reduced with area averaging so that the result does not alias.
    """
    transform = np.asarray(transform, dtype=np.float64)
    scale = math.sqrt(abs(np.linalg.det(transform[:, :2])))
    source = rgb
    if scale < 0.5:
        inverse = cv2.invertAffineTransform(transform)
        corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], float)
        pts = corners @ inverse.T
        height, width = rgb.shape[:2]
        x0 = int(np.clip(math.floor(pts[:, 0].min()) - 2, 0, width))
        x1 = int(np.clip(math.ceil(pts[:, 0].max()) + 2, 0, width))
        y0 = int(np.clip(math.floor(pts[:, 1].min()) - 2, 0, height))
        y1 = int(np.clip(math.ceil(pts[:, 1].max()) + 2, 0, height))
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            region = rgb[y0:y1, x0:x1]
            shrink = 2.0 * scale  # leaves a 2x reduction for the bilinear warp
            out_w = max(1, round((x1 - x0) * shrink))
            out_h = max(1, round((y1 - y0) * shrink))
            source = cv2.resize(region, (out_w, out_h), interpolation=cv2.INTER_AREA)
            # small pixel -> image pixel: img = small / f + offset
            fx, fy = out_w / (x1 - x0), out_h / (y1 - y0)
            to_image = np.array([[1 / fx, 0.0, x0], [0.0, 1 / fy, y0]])
            transform = np.hstack(
                [
                    transform[:, :2] @ to_image[:, :2],
                    (transform[:, :2] @ to_image[:, 2] + transform[:, 2])[:, None],
                ]
            )
    return cv2.warpAffine(
        source,
        transform,
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=CROP_BORDER_VALUE,
    )


def _observe(
    rgb: np.ndarray, landmarks: np.ndarray, score: float, image_size: tuple[int, int]
) -> FaceObservation:
    yaw, pitch, roll, _ = head_pose(landmarks)
    transform = alignment_transform(landmarks)
    crop = warp_image(rgb, transform, CROP_SIZE)
    crop_lm = landmarks[:, :2].astype(np.float64) @ transform[:, :2].T + transform[:, 2]
    return FaceObservation(
        landmarks=landmarks.astype(np.float32),
        bbox=tuple(float(v) for v in _landmark_bbox(landmarks)),  # type: ignore[arg-type]
        crop=crop,
        crop_landmarks=crop_lm.astype(np.float32),
        transform=transform,
        yaw=yaw,
        pitch=pitch,
        roll=roll,
        image_size=image_size,
        score=score,
    )


# One NormalizedLandmark on the wire when it holds x, y and z only, as FaceMesh writes them
# (proto2 floats, in field order): tag and length (0x0a 0x0f), then tag 0x0d and x, tag 0x15
# and y, tag 0x1d and z, each a 4-byte little-endian float.
_LANDMARK_WIRE = np.dtype(
    [
        ("head", "u1", 2),
        ("tx", "u1"),
        ("x", "<f4"),
        ("ty", "u1"),
        ("y", "<f4"),
        ("tz", "u1"),
        ("z", "<f4"),
    ]
)
_LANDMARK_TAGS = ((0x0A, 0x0F), 0x0D, 0x15, 0x1D)


def _wire_landmarks(raw: bytes) -> np.ndarray | None:
    """(N, 3) float64 x, y, z of a serialised NormalizedLandmarkList whose every landmark
    has the layout above, else None."""
    if len(raw) % _LANDMARK_WIRE.itemsize:
        return None
    rows = np.frombuffer(raw, _LANDMARK_WIRE)
    for name, tag in zip(("head", "tx", "ty", "tz"), _LANDMARK_TAGS, strict=True):
        if not (rows[name] == tag).all():
            return None
    return np.stack([rows["x"], rows["y"], rows["z"]], axis=-1).astype(np.float64)


def _to_pixels(face_landmarks: object, width: int, height: int) -> np.ndarray:
    """(N, 3) float64 pixels of a NormalizedLandmarkList."""
    pts = _wire_landmarks(face_landmarks.SerializeToString())  # type: ignore[attr-defined]
    if pts is None:  # another layout: field by field (160 us, against 10 us)
        pts = np.array([(p.x, p.y, p.z) for p in face_landmarks.landmark], dtype=np.float64)  # type: ignore[attr-defined]
    if pts.shape != (NUM_LANDMARKS, 3):
        raise RuntimeError(f"FaceMesh returned {pts.shape[0]} landmarks, expected {NUM_LANDMARKS}")
    return pts * np.array([width, height, width], dtype=np.float64)


def _consistent_mean(passes: list[np.ndarray]) -> np.ndarray | None:
    """Mean of the landmark passes that agree with the first one (same face)."""
    if not passes:
        return None
    first = passes[0]
    size = float(np.ptp(first[:, :2], axis=0).max())
    agree = [
        p for p in passes
        if np.median(np.linalg.norm(p[:, :2] - first[:, :2], axis=1)) < 0.1 * size
    ]  # fmt: skip
    return np.mean(agree, axis=0)


def _check_rgb(rgb: object) -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8:
        raise ChibiError("invalid_image", "expected an (H, W, 3) uint8 RGB array")
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ChibiError("invalid_image", f"expected an (H, W, 3) RGB array, got {rgb.shape}")
    return np.ascontiguousarray(rgb)


def _landmark_bbox(landmarks: np.ndarray) -> np.ndarray:
    xy = landmarks[:, :2]
    return np.concatenate([xy.min(0), xy.max(0)])


def _bbox_area(box: object) -> float:
    x0, y0, x1, y1 = box  # type: ignore[misc]
    return max(0.0, x1 - x0) * max(0.0, y1 - y0)


def _scale_box(box: np.ndarray, factor: float) -> np.ndarray:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    hw, hh = (box[2] - box[0]) * factor / 2, (box[3] - box[1]) * factor / 2
    return np.array([cx - hw, cy - hh, cx + hw, cy + hh])


def _inside(point: tuple[float, float], box: np.ndarray) -> bool:
    return bool(box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = _bbox_area(a) + _bbox_area(b) - inter
    return inter / union if union > 0 else 0.0
