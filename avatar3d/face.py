"""Face detection, 478 MediaPipe landmarks, the several-faces policy and the aligned crop.

Pipeline of `FaceAnalyzer.analyze` on an (H, W, 3) uint8 RGB image:

1. MediaPipe's full-range face detector (BlazeFace, faces up to ~5 m) finds
   face boxes anywhere in the image; where the faces it finds are small, or every
   face is asked for, or neither it nor the fallback of step 2 finds one, it also
   reads overlapping tiles of the image: it misses many faces under a tenth of a
   photo's longer side. Where it finds none, it first reads the photo turned
   sideways and upside down (a photo whose orientation tag was lost).
   FaceMesh's own detector is short-range: it misses a face that fills less than
   ~10% of a large photo, and in a group photo it finds only the nearest faces,
   so it is not used for finding faces.
2. For each box (largest first, until twice `max_faces` faces are read, whether
   one face or every face is asked for: some fail the checks of step 3, and the
   detector's boxes rank faces a little differently from their landmarks, so one
   face asked for is the first of every face), square regions of
   1.8 and 2.6 x the box are cut out (turned upright by the detector's eye line in
   15 degree steps, the photo's edge repeated past it), resized to 320 px and passed
   to FaceMesh
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

The landmark layout, head pose, alignment fit, crop warp and the reading of FaceMesh's
landmark lists live in `landmarks.py` (numbering and the person's-own-left convention
are explained there); the detector's boxes, crops and tiles in `face_boxes.py`; what a
face found is (`FaceObservation`, its pose, crop and box) in `face_observation.py`.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import replace

import cv2
import numpy as np

from .errors import ChibiError
from .face_boxes import (
    Detection,
    bbox_area,
    detection_box,
    detection_roll,
    inside,
    iou,
    landmark_bbox,
    scale_box,
    signed_degrees,
    square_crop,
    tiles,
    turn_back,
    turn_photo,
)
from .face_observation import FaceObservation, observe_face
from .imageio import DEFAULT_LIMITS, ImageLimits, decode_image
from .landmarks import (
    LEFT_EYE_CORNERS,
    MIRROR_INDEX,
    RIGHT_EYE_CORNERS,
    landmarks_to_pixels,
    transform_points,
)
from .native_logs import quiet_native_logs

# Below this share of the image's longer side, the largest face found sends the detector
# over tiles too (`face_boxes.tiles`, `FaceAnalyzer._find_landmarks`; the astronaut's face
# is 0.20, Joe Biden's in his full-length photo 0.15); a tile's face that overlaps a face
# kept by more than TILE_OVERLAP (intersection over union) is the same face.
TILE_BELOW = 0.15
TILE_OVERLAP = 0.3
# FaceMesh's crops turn a rolled face upright in steps of this many degrees (the
# detector's eye line, rounded; `FaceAnalyzer._mesh_in_box`).
UPRIGHT_STEP = 15.0
# A face found in the photo turned over counts from this detector score, and the turns
# are read where no face in the photo as it lies scores this much: the six sample
# photos' faces score 0.79-0.91 upright, turned as upright, and an upright face that the
# detector also took for one upside down 0.66 (`FaceAnalyzer._turned_photo`).
TURNED_MIN_SCORE = 0.75
# The crop (times the landmarks' box) in which the detector confirms a face FaceMesh
# found on its own: the detector's usual framing of a face in a photo.
_FALLBACK_CONTEXT = 2.5


class FaceAnalyzer:
    """Finds faces and their landmarks with MediaPipe.

    Holds MediaPipe graphs, which are not thread-safe: calls on one instance are
    serialised by a lock. For parallel work create one analyzer per thread or
    process (`analyze_image` keeps one per thread). Use as a context manager or
    call `close()`.

    max_faces: at most this many faces are analysed (the largest ones); with
        `all_faces`, at most this many are returned, the largest of those that pass
        the checks below, read from up to twice as many detector boxes.
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
        with quiet_native_logs():
            self._detector = mp.solutions.face_detection.FaceDetection(
                model_selection=1, min_detection_confidence=min_confidence
            )
            # BlazeFace short-range, for faces that fill a crop (`_detected_around`)
            self._close_detector = mp.solutions.face_detection.FaceDetection(
                model_selection=0, min_detection_confidence=min_confidence
            )
            self._mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True,
                refine_landmarks=True,
                max_num_faces=1,
                min_detection_confidence=min_confidence,
            )
            # their threads log as the models open, after the constructors return: an
            # image through each graph waits for that
            blank = np.zeros((64, 64, 3), np.uint8)
            for graph in (self._detector, self._close_detector, self._mesh):
                graph.process(blank)
        self._first_run = True  # the mesh logs once more as it first reads a face
        self._closed = False

    # -- lifecycle ------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._detector.close()
                self._close_detector.close()
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
            with quiet_native_logs() if self._first_run else contextlib.nullcontext():
                found = self._find_landmarks(rgb, all_faces)
            self._first_run = self._first_run and not found  # the mesh ran once a face was found
        if not found:
            raise ChibiError("no_face", "no face was found in the image")
        height, width = rgb.shape[:2]
        faces = [observe_face(rgb, lm, score, (width, height)) for lm, score in found]
        faces.sort(key=lambda f: bbox_area(f.bbox), reverse=True)
        errors = [self._check(face) for face in faces]
        if not all_faces:
            if errors[0] is not None:
                raise errors[0]
            return faces[:1]
        passed = [face for face, error in zip(faces, errors, strict=True) if error is None]
        if not passed:
            raise errors[0]  # type: ignore[misc]
        return passed[: self.max_faces]

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

    def _find_landmarks(self, rgb: np.ndarray, every_face: bool) -> list[tuple[np.ndarray, float]]:
        """(478, 3) pixel landmarks and a score for every face found (caller holds the lock).

        The full-range detector reads the whole image shrunk to 192 px, where a face a
        tenth of the image's longer side is ~19 px, and it misses many of those: in a
        1280 px photo of six people round a table (faces of 98-145 px) it found three,
        each half of the photo all six. So where the largest face it finds is under
        `TILE_BELOW` of the longer side, or every face is asked for, it also reads
        overlapping tiles (`tiles`; four passes of ~3 ms). Where it finds no face, or none
        scoring `TURNED_MIN_SCORE`, it reads the photo turned upside down and sideways
        (`_turned_photo`) and keeps the turn's faces if it finds any; then the
        whole-image FaceMesh fallback comes (a face too close for the detector), and the
        tiles only if that finds none either: on close-ups a tile's detector took an eye
        or a lens for a small face.
        """
        height, width = rgb.shape[:2]
        detections = self._detections(rgb, 0, 0)
        if max((d.score for d in detections), default=0.0) < TURNED_MIN_SCORE:
            # an upside-down face can pass for an upright one, less surely
            detections = self._turned_photo(rgb) or detections
        detections.sort(key=lambda d: -bbox_area(d.box))
        largest = max((float(max(d.box[2:] - d.box[:2])) for d in detections), default=0.0)
        tiled = bool(detections) and (every_face or largest < TILE_BELOW * max(height, width))
        if tiled:
            detections = self._with_tiles(rgb, detections)
        read = 2 * self.max_faces
        found = self._landmarks_in(rgb, detections, read)
        if not found:
            landmarks = self._mesh_landmarks(rgb)
            if landmarks is not None and self._detected_around(rgb, landmarks):
                found.append((landmarks, 0.5))
        if not found and not tiled:
            found = self._landmarks_in(rgb, self._with_tiles(rgb, detections), read)
        return found

    def _landmarks_in(
        self, rgb: np.ndarray, detections: list[Detection], limit: int
    ) -> list[tuple[np.ndarray, float]]:
        """FaceMesh's landmarks in detector boxes, in their order, and their scores, until
        `limit` faces are found: a box that yields none (a tile's false face) takes no
        face's place. A detection to confirm (a tile's) counts only where the short-range
        detector finds the face FaceMesh found there (`_detected_around`)."""
        found: list[tuple[np.ndarray, float]] = []
        for detection in detections:
            if len(found) == limit:
                break
            box = detection.box
            landmarks = self._mesh_passes(rgb, detection)
            if landmarks is None:
                continue
            # read again where the detector's eye line was off by more than a step: FaceMesh's
            # own is surer (the astronaut lying sideways: 52-63 degrees for 90)
            roll = _eye_line_roll(landmarks)
            if abs(signed_degrees(roll - detection.roll)) > UPRIGHT_STEP:
                again = self._mesh_passes(rgb, replace(detection, roll=roll))
                landmarks = landmarks if again is None else again
            lm_box = landmark_bbox(landmarks)
            centre = ((lm_box[0] + lm_box[2]) / 2, (lm_box[1] + lm_box[3]) / 2)
            # FaceMesh may lock onto a neighbouring face inside the enlarged crop.
            if not inside(centre, scale_box(box, 1.3)):
                continue
            if any(iou(lm_box, landmark_bbox(other)) > 0.4 for other, _ in found):
                continue
            if detection.confirm and not self._detected_around(rgb, landmarks):
                continue
            found.append((landmarks, detection.score))
        return found

    def _mesh_passes(self, rgb: np.ndarray, detection: Detection) -> np.ndarray | None:
        """The mean of FaceMesh's passes over `detection`'s crops (`_mesh_in_box`)."""
        passes = [self._mesh_in_box(rgb, detection, c) for c in self.mesh_contexts]
        return _consistent_mean([p for p in passes if p is not None])

    def _with_tiles(self, rgb: np.ndarray, detections: list[Detection]) -> list[Detection]:
        """`detections` and the faces the detector finds over `tiles` of the image,
        largest first; a tile's face is left out where it overlaps a box kept already or
        its centre lies in one (part of a larger face), and marked to confirm."""
        height, width = rgb.shape[:2]
        found = []
        for x0, y0, x1, y1 in tiles(width, height):
            found += self._detections(np.ascontiguousarray(rgb[y0:y1, x0:x1]), x0, y0)
        kept = list(detections)
        # the surest first: a face cut by a tile's edge scores lower than the whole face
        for tile_face in sorted(found, key=lambda d: -d.score):
            box = tile_face.box
            centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
            if all(iou(box, other.box) < TILE_OVERLAP and not inside(centre, other.box)
                   for other in kept):  # fmt: skip
                tile_face.confirm = True
                kept.append(tile_face)
        return sorted(kept, key=lambda d: -bbox_area(d.box))

    def _detections(self, rgb: np.ndarray, x0: int, y0: int) -> list[Detection]:
        """The full-range detector's faces in `rgb`, a region whose top-left corner is
        (x0, y0) in the image, in image pixels."""
        height, width = rgb.shape[:2]
        offset = np.array([x0, y0, x0, y0], dtype=np.float64)
        return [
            Detection(
                detection_box(det, width, height) + offset,
                float(det.score[0]) if det.score else 0.0,
                detection_roll(det, width, height),
            )
            for det in self._detector.process(rgb).detections or []
        ]

    def _turned_photo(self, rgb: np.ndarray) -> list[Detection]:
        """The detector's faces in the photo turned half round or a quarter either way
        (the turn whose surest face is surest), in the photo's pixels and turned back, so
        that FaceMesh reads them upright (`turn_back`). A photo whose orientation tag was
        lost lies sideways or upside down, and there the detector mostly finds no face.
        FaceMesh on the whole photo then found one, but fitted upright over an upside-down
        face (the astronaut read smile 0.00 for 0.87, Obama face_width 0.25 for 0.49,
        Grace Hopper eye_size 0.00 for 0.52) and less well over a sideways one (the six
        sample photos' shape sliders 0.026-0.154 off the upright photo's on average)."""
        height, width = rgb.shape[:2]
        turns = {turn: self._detections(turn_photo(rgb, turn), 0, 0) for turn in (180, 90, 270)}
        turn, found = max(turns.items(), key=lambda item: max([d.score for d in item[1]] or [0]))
        return [turn_back(d, turn, width, height) for d in found if d.score >= TURNED_MIN_SCORE]

    def _detected_around(self, rgb: np.ndarray, landmarks: np.ndarray) -> bool:
        """Whether the short-range detector, shown a crop that frames FaceMesh's face,
        finds a face there. FaceMesh alone, on the whole image, took scikit-image's
        colour wheel for a face; the faces it finds where the full-range detector does
        not (too close to the camera, or half behind a face mask) are found in the crop.
        """
        box = landmark_bbox(landmarks)
        patch, to_crop = square_crop(rgb, box, _FALLBACK_CONTEXT)
        framed = transform_points(to_crop, box.reshape(2, 2)).ravel()
        for det in self._close_detector.process(patch).detections or []:
            x0, y0, x1, y1 = detection_box(det, patch.shape[1], patch.shape[0])
            if inside(((x0 + x1) / 2, (y0 + y1) / 2), framed):
                return True
        return False

    def _mesh_landmarks(self, rgb: np.ndarray) -> np.ndarray | None:
        """(478, 3) landmarks of the main face in `rgb` (pixels), or None."""
        height, width = rgb.shape[:2]
        result = self._mesh.process(rgb)
        direct = None
        if result.multi_face_landmarks:
            direct = landmarks_to_pixels(result.multi_face_landmarks[0], width, height)
        if not self.mirror_average:
            return direct
        result = self._mesh.process(cv2.flip(rgb, 1))  # 6 us; numpy's strided copy: 335
        if not result.multi_face_landmarks:
            return direct
        mirrored = landmarks_to_pixels(result.multi_face_landmarks[0], width, height)
        mirrored[:, 0] = width - mirrored[:, 0]
        mirrored = mirrored[MIRROR_INDEX]
        if direct is None:
            return mirrored
        return _consistent_mean([direct, mirrored])

    def _mesh_in_box(
        self, rgb: np.ndarray, detection: Detection, context: float
    ) -> np.ndarray | None:
        # The crop turns the face upright by the detector's eye line, in whole
        # UPRIGHT_STEPs: FaceMesh read a rolled head worse (`scripts/cut_faces.py
        # --roll`: the sample photos' and the group photo's 11 faces turned 15, 30
        # and 45 degrees moved the teacher's shape sliders 0.023-0.033, 0.044-0.068
        # and 0.086-0.091 on average, now 0.013-0.018, 0.016-0.026 and 0.019-0.031).
        # Turned by the eye line itself they read as well, but a face about upright
        # then turned with the detector's jitter: under `chibi eval`'s brightness
        # and JPEG changes chin_length moved 0.059 and mouth_width 0.072 (0.030 and
        # 0.050 unturned). It repeats the photo's edge past it: FaceMesh read a face
        # cut by the frame worse through a grey band (`scripts/cut_faces.py`: a
        # tenth of the face cut off at a side or the top, the mean change of the
        # teacher's shape sliders from the uncut face 0.034-0.043 against
        # 0.026-0.036). The short-range detector's crop (`_detected_around`) stays
        # grey: it confirmed 5 fewer of 160 chibi renders through repeated edges.
        roll = UPRIGHT_STEP * round(detection.roll / UPRIGHT_STEP)
        patch, to_crop = square_crop(rgb, detection.box, context, roll, edge_padding=True)
        lm = self._mesh_landmarks(patch)
        if lm is None:
            return None
        to_image = cv2.invertAffineTransform(to_crop)
        lm[:, :2] = transform_points(to_image, lm[:, :2])
        lm[:, 2] = lm[:, 2] * np.sqrt(abs(np.linalg.det(to_image[:, :2])))
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


def _eye_line_roll(landmarks: np.ndarray) -> float:
    """Degrees the eye line of (478, 3) pixel landmarks turns clockwise in the image, as
    the detector's roll is read (`face_boxes.detection_roll`)."""
    right = landmarks[list(RIGHT_EYE_CORNERS), :2].mean(0)
    left = landmarks[list(LEFT_EYE_CORNERS), :2].mean(0)
    return float(np.degrees(np.arctan2(left[1] - right[1], left[0] - right[0])))


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
