"""MediaPipe's 478 face landmarks: their layout, the head pose read from them, the
aligned crop they define, and FaceMesh's landmark lists read as pixels.

Pure geometry on (478, 3) landmark arrays and images, with no MediaPipe call inside: the
face analyser (`face.py`), the teacher, the synthetic renders and the tests share it.
Numbering is MediaPipe's: "left" means the person's own left, which is the image's
right side in a non-mirrored photo (e.g. 263 = left eye outer corner, 473 = left
iris centre).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

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
# The brows' upper and lower contour rows, from the inner end outward.
RIGHT_BROW_UPPER, RIGHT_BROW_LOWER = (70, 63, 105, 66, 107), (46, 53, 52, 65, 55)
LEFT_BROW_UPPER, LEFT_BROW_LOWER = (300, 293, 334, 296, 336), (276, 283, 282, 295, 285)

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


def head_pose(landmarks: np.ndarray) -> tuple[float, float, float, np.ndarray]:
    """(yaw, pitch, roll) in degrees and the (3, 3) rotation Q from (478, 3) landmarks.

    Q's columns are the face's canonical axes (x toward the person's left, y
    down, z away from the camera) in image coordinates, so `(lm - c) @ Q`
    expresses landmarks in the face's own frame (frontalised). Sign conventions
    are those of `face.FaceObservation`. The roll is the face's turn in the image
    plane; yaw and pitch are read once it is turned out, so turning the photo moves
    the roll alone.
    """
    axes = _face_axes(np.asarray(landmarks, dtype=np.float64))
    rotation = axes @ _CANONICAL_AXES.T
    roll = math.atan2(rotation[1, 0], rotation[0, 0])
    # yaw and pitch in the head's own frame: the face's forward direction (the canonical
    # face looks toward -z, the camera) turned back by the roll in the image plane
    cos, sin = math.cos(roll), math.sin(roll)
    x, y, z = -rotation[:, 2]
    forward = (cos * x + sin * y, -sin * x + cos * y, z)
    yaw = math.degrees(math.atan2(forward[0], -forward[2]))
    pitch = math.degrees(math.atan2(-forward[1], math.hypot(forward[0], forward[2])))
    return yaw, pitch, math.degrees(roll), rotation


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
    return crop_transform(np.stack([lm[list(group)].mean(0) for group in ALIGN_LANDMARKS]))


def crop_transform(
    points: np.ndarray,
    weights: np.ndarray = ALIGN_WEIGHTS,
    zoom: float = 1.0,
    centre: tuple[float, float] = (CROP_SIZE / 2, CROP_SIZE / 2),
) -> np.ndarray:
    """(2, 3) image pixels -> crop pixels from the 5 alignment points (5, 2) pixels, in
    `ALIGN_LANDMARKS`' order: the weighted fit onto `CANONICAL_CROP_POINTS`, magnified
    `zoom` times about crop point `centre` (which stays put). The probes in `scripts/`
    try other weights and zooms; the pipeline and the training renders use the defaults.
    """
    fit = similarity_fit(points, CANONICAL_CROP_POINTS, weights)
    if zoom == 1.0:
        return fit
    magnified = zoom * fit
    magnified[:, 2] += (1.0 - zoom) * np.asarray(centre, np.float64)
    return magnified


def transform_points(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 2) points mapped by a (2, 3) affine transform."""
    return np.asarray(points, np.float64) @ transform[:, :2].T + transform[:, 2]


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


def warp_image(
    rgb: np.ndarray, transform: np.ndarray, size: int, edge_padding: bool = False
) -> np.ndarray:
    """Warp (H, W, 3) uint8 into a (size, size, 3) image with a (2, 3) image->output transform.

    When the transform shrinks by more than 2x, the source region is first
    reduced with area averaging so that the result does not alias. Output pixels
    beyond the image are grey (`CROP_BORDER_VALUE`), or with `edge_padding` its
    nearest edge pixel repeated.
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
    # Transforms here map continuous coordinates (pixel i spans [i, i + 1), as landmarks
    # and mirroring use them); OpenCV samples pixel centres at whole numbers.
    transform = transform.copy()
    transform[:, 2] += transform[:, :2] @ [0.5, 0.5] - 0.5
    return cv2.warpAffine(
        source,
        transform,
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE if edge_padding else cv2.BORDER_CONSTANT,
        borderValue=CROP_BORDER_VALUE,
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


def wire_landmarks(raw: bytes) -> np.ndarray | None:
    """(N, 3) float64 x, y, z of a serialised NormalizedLandmarkList whose every landmark
    has the layout above, else None."""
    if len(raw) % _LANDMARK_WIRE.itemsize:
        return None
    rows = np.frombuffer(raw, _LANDMARK_WIRE)
    for name, tag in zip(("head", "tx", "ty", "tz"), _LANDMARK_TAGS, strict=True):
        if not (rows[name] == tag).all():
            return None
    return np.stack([rows["x"], rows["y"], rows["z"]], axis=-1).astype(np.float64)


def landmarks_to_pixels(face_landmarks: object, width: int, height: int) -> np.ndarray:
    """(N, 3) float64 pixels of FaceMesh's NormalizedLandmarkList in a `width` x `height`
    image (x, y; z in the scale of x)."""
    pts = wire_landmarks(face_landmarks.SerializeToString())  # type: ignore[attr-defined]
    if pts is None:  # another layout: field by field (160 us, against 10 us)
        pts = np.array([(p.x, p.y, p.z) for p in face_landmarks.landmark], dtype=np.float64)  # type: ignore[attr-defined]
    if pts.shape != (NUM_LANDMARKS, 3):
        raise RuntimeError(f"FaceMesh returned {pts.shape[0]} landmarks, expected {NUM_LANDMARKS}")
    return pts * np.array([width, height, width], dtype=np.float64)
