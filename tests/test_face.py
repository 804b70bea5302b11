"""Face analysis on real photos (scikit-image's samples), through the user's path."""

from __future__ import annotations

import io
import math
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from avatar3d.errors import ChibiError
from avatar3d.face import FaceAnalyzer, analyze_image
from avatar3d.face_boxes import Detection, turn_back, turn_photo
from avatar3d.imageio import ImageLimits
from avatar3d.landmarks import (
    CANONICAL_CROP_POINTS,
    CROP_SIZE,
    crop_transform,
    head_pose,
    warp_image,
)


def jpeg_bytes(rgb: np.ndarray, quality: int = 92, **kwargs) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=quality, **kwargs)
    return buffer.getvalue()


def expect_code(code: str, call, *args, **kwargs) -> ChibiError:
    with pytest.raises(ChibiError) as info:
        call(*args, **kwargs)
    assert info.value.code == code, info.value
    return info.value


def test_one_face_fields(astronaut_face, astronaut):
    face = astronaut_face
    assert face.landmarks.shape == (478, 3) and face.landmarks.dtype == np.float32
    assert face.crop.shape == (CROP_SIZE, CROP_SIZE, 3) and face.crop.dtype == np.uint8
    assert face.crop_landmarks.shape == (478, 2) and face.crop_landmarks.dtype == np.float32
    assert face.transform.shape == (2, 3)
    assert face.image_size == (512, 512)
    # The face is where it is in this photo (the astronaut's head, upper middle).
    x0, y0, x1, y1 = face.bbox
    assert 160 < x0 < 200 and 250 < x1 < 290 and 50 < y0 < 90 and 160 < y1 < 200
    # Iris centres lie between their eye corners.
    lm = face.landmarks
    assert lm[33, 0] < lm[468, 0] < lm[133, 0]
    assert lm[362, 0] < lm[473, 0] < lm[263, 0]
    # A near-frontal portrait.
    assert abs(face.yaw) < 10 and abs(face.pitch) < 15 and abs(face.roll) < 10
    # crop_landmarks are the landmarks through the transform.
    mapped = lm[:, :2].astype(float) @ face.transform[:, :2].T + face.transform[:, 2]
    assert np.allclose(mapped, face.crop_landmarks, atol=1e-3)


def test_crop_puts_the_eyes_at_the_canonical_positions(astronaut_face):
    lm = astronaut_face.crop_landmarks
    eyes = np.stack([lm[[33, 133]].mean(0), lm[[263, 362]].mean(0)])
    assert np.abs(eyes - CANONICAL_CROP_POINTS[:2]).max() < 2.0
    # The crop really shows the face there: the eye region is darker than the cheeks.
    gray = astronaut_face.crop.mean(axis=2)
    for x, y in eyes.round().astype(int):
        eye_patch = gray[y - 2 : y + 3, x - 2 : x + 3]
        cheek_patch = gray[y + 12 : y + 17, x - 2 : x + 3]
        assert eye_patch.mean() < cheek_patch.mean()


def test_a_magnified_crop_keeps_its_centre_and_scales_about_it():
    """`crop_transform(zoom=...)`, as the probes in scripts/ use it: the five points land
    on the canonical ones at zoom 1, and `zoom` times as far from `centre` otherwise."""
    rng = np.random.default_rng(4)
    angle, scale, shift = 0.3, 2.5, np.array([40.0, -7.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = (CANONICAL_CROP_POINTS - shift) @ np.linalg.inv(rotation).T
    points += rng.normal(0.0, 0.01, points.shape)
    fit = crop_transform(points)
    assert np.abs(points @ fit[:, :2].T + fit[:, 2] - CANONICAL_CROP_POINTS).max() < 0.05
    centre = np.array([64.0, 63.0])
    zoomed = crop_transform(points, zoom=3.0, centre=tuple(centre))
    at_zoom = points @ zoomed[:, :2].T + zoomed[:, 2]
    at_one = points @ fit[:, :2].T + fit[:, 2]
    assert np.allclose(at_zoom - centre, 3.0 * (at_one - centre))


def test_no_face(analyzer):
    expect_code("no_face", analyzer.analyze, data.chelsea())  # a cat
    expect_code("no_face", analyzer.analyze, data.coffee())
    # FaceMesh's own detector, the fallback on the whole image, took this for a face
    expect_code("no_face", analyzer.analyze, np.ascontiguousarray(data.colorwheel()[..., :3]))
    expect_code("no_face", analyzer.analyze, np.full((200, 300, 3), 90, np.uint8))
    noise = np.random.default_rng(1).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    expect_code("no_face", analyzer.analyze, noise)
    for shape in ((1, 1, 3), (1, 2000, 3), (1600, 2, 3)):  # degenerate but valid arrays
        expect_code("no_face", analyzer.analyze, np.zeros(shape, np.uint8))


def test_bad_arrays(analyzer):
    expect_code("invalid_image", analyzer.analyze, np.zeros((64, 64), np.uint8))
    expect_code("invalid_image", analyzer.analyze, np.zeros((64, 64, 3), np.float32))
    expect_code("invalid_image", analyzer.analyze, np.zeros((0, 64, 3), np.uint8))
    expect_code("invalid_image", analyzer.analyze, "not an array")


def test_tiny_face(analyzer, astronaut):
    tiny = cv2.resize(astronaut, None, fx=0.4, fy=0.4, interpolation=cv2.INTER_AREA)
    error = expect_code("face_too_small", analyzer.analyze, tiny)
    assert "48 px" in error.message
    # The same photo a little larger passes.
    ok = cv2.resize(astronaut, None, fx=0.55, fy=0.55, interpolation=cv2.INTER_AREA)
    assert analyzer.analyze(ok)[0].size >= 48


def test_small_face_in_a_large_photo(analyzer, astronaut):
    # FaceMesh's own short-range detector misses this face; the full-range one finds it.
    canvas = np.full((1200, 1600, 3), 120, np.uint8)
    canvas[600:1112, 1000:1512] = astronaut
    face = analyzer.analyze(canvas)[0]
    assert 1150 < (face.bbox[0] + face.bbox[2]) / 2 < 1300


def test_small_faces_of_a_group_photo_are_found_on_tiles(analyzer, astronaut):
    # Four faces of 70-88 px in a 1600 px photo: shrunk to the full-range detector's
    # 192 px they are ~10 px, and it finds none of them (the analysis answered no_face);
    # over overlapping tiles of the photo it finds all four, each once.
    canvas = np.full((1200, 1600, 3), 110, np.uint8)
    spots = [(80, 100, 70), (900, 150, 76), (300, 700, 82), (1100, 650, 88)]
    for i, (x, y, face_px) in enumerate(spots):
        k = face_px / 104  # the astronaut's face is ~104 px wide
        small = cv2.resize(astronaut, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
        height, width = small.shape[:2]
        canvas[y : y + height, x : x + width] = small if i % 2 == 0 else small[:, ::-1]
    assert analyzer._detections(canvas, 0, 0) == []  # the whole photo at once: none
    faces = analyzer.analyze(canvas, all_faces=True)
    assert len(faces) == 4
    sizes = [face.size for face in faces]
    assert sizes == sorted(sizes, reverse=True)  # largest first
    lefts = sorted(face.bbox[0] for face in faces)
    assert np.all(np.diff(lefts) > 100)  # four faces, not one twice
    assert np.allclose(analyzer.analyze(canvas)[0].bbox, faces[0].bbox, atol=1)


def test_several_faces(analyzer, astronaut):
    small = cv2.resize(astronaut, (307, 307), interpolation=cv2.INTER_AREA)
    canvas = np.full((512, 512 + 307, 3), 255, np.uint8)
    canvas[:, :512] = astronaut
    canvas[:307, 512:] = small
    faces = analyzer.analyze(canvas, all_faces=True)
    assert len(faces) == 2
    assert faces[0].size > faces[1].size * 1.4  # largest first
    assert faces[0].bbox[2] < 512 < faces[1].bbox[0]
    only = analyzer.analyze(canvas)
    assert len(only) == 1 and np.allclose(only[0].bbox, faces[0].bbox, atol=1)
    # Mirrored layout: the policy follows size, not position.
    mirrored = np.ascontiguousarray(canvas[:, ::-1])
    assert analyzer.analyze(mirrored)[0].bbox[0] > 300


def test_face_rotated_90_degrees_is_found_and_aligned(analyzer, astronaut, astronaut_face):
    face = analyzer.analyze(np.ascontiguousarray(np.rot90(astronaut)))[0]
    # In-plane rotation is not a pose problem: roll ~ -90, yaw/pitch unchanged,
    # and the crop is upright again.
    assert abs(face.roll + 90) < 10
    assert abs(face.yaw - astronaut_face.yaw) < 8 and abs(face.pitch - astronaut_face.pitch) < 8
    eyes = np.stack(
        [face.crop_landmarks[[33, 133]].mean(0), face.crop_landmarks[[263, 362]].mean(0)]
    )
    assert np.abs(eyes - CANONICAL_CROP_POINTS[:2]).max() < 2.0


def test_face_too_rotated(analyzer, astronaut, astronaut_face):
    strict = (abs(astronaut_face.pitch) - 1.0, abs(astronaut_face.yaw) + 5.0)
    saved = analyzer.max_pitch, analyzer.max_yaw
    analyzer.max_pitch, analyzer.max_yaw = strict
    try:
        expect_code("face_too_rotated", analyzer.analyze, astronaut)
    finally:
        analyzer.max_pitch, analyzer.max_yaw = saved


@pytest.mark.parametrize("turn", [90, 180, 270])
def test_a_box_found_in_a_turned_photo_maps_back_onto_the_photo(turn):
    """`turn_back` undoes `turn_photo`: a block's box found in the turned photo lands on the
    block in the photo itself, and an eye line level there has turned by `turn`."""
    photo = np.zeros((120, 200, 3), np.uint8)
    photo[30:50, 140:170] = 255  # rows 30-49, columns 140-169: the box (140, 30, 170, 50)
    rows, cols = np.nonzero(np.asarray(turn_photo(photo, turn))[:, :, 0])
    found = Detection(np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]), 0.9, 0.0)
    back = turn_back(found, turn, width=200, height=120)
    assert np.allclose(back.box, [140, 30, 170, 50])
    assert back.roll == {90: -90.0, 180: -180.0, 270: 90.0}[turn]
    assert back.score == 0.9


def _rotate_y(landmarks: np.ndarray, degrees: float) -> np.ndarray:
    a = math.radians(degrees)
    # Positive angle turns the face toward the image's right (x grows where z was negative).
    rot = np.array([[math.cos(a), 0, -math.sin(a)], [0, 1, 0], [math.sin(a), 0, math.cos(a)]])
    centre = landmarks.mean(0)
    return (landmarks - centre) @ rot.T + centre


def _rotate_z(landmarks: np.ndarray, degrees: float) -> np.ndarray:
    """Turned `degrees` clockwise in the image (y points down) about the landmarks' centre."""
    a = math.radians(degrees)
    rot = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    centre = landmarks.mean(0)
    return (landmarks - centre) @ rot.T + centre


def test_head_pose_follows_a_known_rotation(astronaut_face):
    """Yaw and pitch are the head's own: turning the photo moves the roll alone (read in
    the photo's frame, a rolled face's pitch took in its yaw: a face of the group photo
    rolled 32 degrees and turned 34 read pitch -16.4, its own 0.9); turned about the
    vertical axis once upright, the yaw follows and the pitch stays."""
    lm = astronaut_face.landmarks.astype(np.float64)
    yaw0, pitch0, roll0, _ = head_pose(lm)
    for turn in (-40.0, -15.0, 15.0, 40.0):
        yaw, pitch, roll, _ = head_pose(_rotate_z(lm, turn))
        assert abs(roll - (roll0 + turn)) < 0.5, (turn, roll)
        assert abs(yaw - yaw0) < 0.5 and abs(pitch - pitch0) < 0.5, turn
    upright = _rotate_z(lm, -roll0)
    for turn in (-60.0, -30.0, 30.0, 60.0):
        yaw, pitch, _, _ = head_pose(_rotate_y(upright, turn))
        assert abs(yaw - (yaw0 + turn)) < 2.5, (turn, yaw)
        assert abs(pitch - pitch0) < 3.0
    # Canonical-model conventions: a face exactly frontal has pose ~0 after mirroring
    # out its own yaw.
    assert abs(yaw0) < 10


@pytest.mark.parametrize("scale", [1.7, 0.75, 0.3])  # 0.3: reduced by area first
def test_warp_of_a_mirrored_image_is_the_mirrored_warp(astronaut, scale):
    width = astronaut.shape[1]
    angle = math.radians(12.0)
    rotation = scale * np.array(
        [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]
    )
    transform = np.hstack([rotation, [[-60.3], [-41.7]]])
    # x -> W - x in the image and u -> 128 - u in the output (continuous coordinates)
    flip = np.diag([-1.0, 1.0])
    mirrored = np.hstack([
        flip @ rotation @ flip,
        (flip @ (rotation @ [width, 0.0] + transform[:, 2]) + [128.0, 0.0])[:, None],
    ])  # fmt: skip
    direct = warp_image(astronaut, transform, 128).astype(int)
    of_mirror = warp_image(np.ascontiguousarray(astronaut[:, ::-1]), mirrored, 128)[:, ::-1]
    assert np.abs(direct - of_mirror).mean() < 0.05


def test_exif_rotated_photo_gives_the_same_landmarks(astronaut, astronaut_face):
    upright_rgb, upright = analyze_image(jpeg_bytes(astronaut))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated 90 deg counter-clockwise: rotate clockwise to display
    rgb, faces = analyze_image(jpeg_bytes(np.ascontiguousarray(np.rot90(astronaut)), exif=exif))
    assert rgb.shape == (512, 512, 3)
    diff = np.abs(faces[0].landmarks[:, :2] - upright[0].landmarks[:, :2])
    assert np.median(diff) < 1.0 and diff.mean() < 1.5


def test_analyze_image_errors():
    expect_code("invalid_image", analyze_image, b"GIF89a not really")
    expect_code("no_face", analyze_image, jpeg_bytes(data.chelsea()))


def test_analyzer_analyze_image_with_limits(analyzer, astronaut):
    payload = jpeg_bytes(astronaut)
    rgb, faces = analyzer.analyze_image(payload)
    assert rgb.shape == (512, 512, 3) and len(faces) == 1
    expect_code(
        "image_too_large", analyzer.analyze_image, payload, limits=ImageLimits(max_pixels=512 * 511)
    )


def test_close_up_beyond_the_detector_is_found_by_the_fallback(analyzer, astronaut):
    # The face overflows the frame: BlazeFace full-range finds nothing, FaceMesh's
    # own detector on the whole image does.
    close_up = cv2.resize(astronaut[80:170, 185:265], (600, 675), interpolation=cv2.INTER_CUBIC)
    face = analyzer.analyze(close_up)[0]
    assert face.size > 500
    eyes = np.stack(
        [face.crop_landmarks[[33, 133]].mean(0), face.crop_landmarks[[263, 362]].mean(0)]
    )
    assert np.abs(eyes - CANONICAL_CROP_POINTS[:2]).max() < 2.0


def test_threads_get_their_own_analyzer_and_agree(astronaut):
    payload = jpeg_bytes(astronaut)
    _, reference = analyze_image(payload)

    def run(_: int) -> np.ndarray:
        return analyze_image(payload)[1][0].landmarks

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run, range(4)))
    for landmarks in results:
        assert np.allclose(landmarks, reference[0].landmarks, atol=1e-3)


def test_shared_analyzer_is_safe_across_threads(analyzer, astronaut, astronaut_face):
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda _: analyzer.analyze(astronaut)[0].landmarks, range(6)))
    for landmarks in results:
        assert np.allclose(landmarks, astronaut_face.landmarks, atol=1e-3)


def test_closed_analyzer_refuses_work(astronaut):
    face_analyzer = FaceAnalyzer()
    face_analyzer.close()
    face_analyzer.close()  # idempotent
    with pytest.raises(RuntimeError):
        face_analyzer.analyze(astronaut)


def test_facemesh_time_per_image(analyzer, astronaut):
    analyzer.analyze(astronaut)  # warm
    times = []
    for _ in range(7):
        start = time.perf_counter()
        analyzer.analyze(astronaut)
        times.append(time.perf_counter() - start)
    median_ms = 1000 * float(np.median(times))
    print(f"\nface analysis (detection, FaceMesh, pose, crop) 512x512: {median_ms:.1f} ms median")
    assert median_ms < 250  # generous: shared 2-core CI machines


def test_landmarks_read_from_wire_bytes_equal_field_by_field():
    """`landmarks_to_pixels` reads FaceMesh's landmarks from their serialised bytes; a
    list of another layout (visibility set, a z left out) is read field by field, to the
    same values."""
    from mediapipe.framework.formats import landmark_pb2

    from avatar3d.landmarks import NUM_LANDMARKS, landmarks_to_pixels, wire_landmarks

    rng = np.random.default_rng(3)
    values = rng.uniform(-1.0, 2.0, (NUM_LANDMARKS, 3)).astype(np.float32)
    plain, other = landmark_pb2.NormalizedLandmarkList(), landmark_pb2.NormalizedLandmarkList()
    for n, (x, y, z) in enumerate(values.tolist()):
        plain.landmark.add(x=x, y=y, z=z)
        if n == 7:
            other.landmark.add(x=x, y=y)  # z unset reads 0.0
        else:
            other.landmark.add(x=x, y=y, z=z, visibility=0.5)
    assert wire_landmarks(plain.SerializeToString()) is not None  # the fast path
    assert wire_landmarks(other.SerializeToString()) is None
    scale = np.array([640.0, 480.0, 640.0])
    assert np.array_equal(landmarks_to_pixels(plain, 640, 480), values.astype(np.float64) * scale)
    expected = values.astype(np.float64)
    expected[7, 2] = 0.0
    assert np.array_equal(landmarks_to_pixels(other, 640, 480), expected * scale)
    short = landmark_pb2.NormalizedLandmarkList(landmark=plain.landmark[:5])
    with pytest.raises(RuntimeError, match="landmarks"):
        landmarks_to_pixels(short, 640, 480)
