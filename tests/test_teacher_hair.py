"""The teacher's hair length (`avatar3d.teacher_hair`): where the hair beside the face ends."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
from PIL import Image

from avatar3d.build import build_avatar, vertex_labels
from avatar3d.params import AvatarParams, hex_to_rgb
from avatar3d.synth_render import face_points, posed_vertices
from avatar3d.teacher import labels_to_params, measure
from avatar3d.teacher_colors import FACE_OVAL, _fill
from avatar3d.teacher_hair import SHORT_STYLE_REACH, hair_from_reach, hair_length_from_reach


def side_lock_reach(hair_length: float) -> float:
    """Where the short style's side locks end on the built avatar, eye line to chin = 1."""
    params = AvatarParams(hair_length=hair_length)
    avatar = build_avatar(params)
    vertices, labels = posed_vertices(avatar, params), vertex_labels(params)
    eye_y = face_points(avatar, params, vertices)[:2, 1].mean()
    face = vertices[np.isin(labels, ["face_L", "face_R"])]
    hair = vertices[labels == "hair"]
    beside = hair[(np.abs(hair[:, 0]) > 0.6 * np.abs(face[:, 0]).max()) & (hair[:, 2] > 0)]
    return float((eye_y - beside[:, 1].min()) / (eye_y - face[:, 1].min()))


def test_the_reach_maps_onto_the_short_styles_side_locks():
    ends = [side_lock_reach(0.0), side_lock_reach(1.0)]
    assert ends == pytest.approx(SHORT_STYLE_REACH, abs=0.01)
    assert hair_length_from_reach(side_lock_reach(0.5)) == pytest.approx(0.5, abs=0.05)
    assert hair_length_from_reach(-0.6) == 0.0 and hair_length_from_reach(1.0) == 1.0
    assert math.isnan(hair_length_from_reach(math.nan))
    # hair down to the chin, the last row read, is past the side locks: the long style
    assert hair_from_reach(0.95) == (None, 1.0) and hair_from_reach(1.0) == ("long", 0.0)
    style, length = hair_from_reach(math.nan)
    assert style is None and math.isnan(length)


def paint_hair_beside_the_face(rgb: np.ndarray, face, colour: str, down: float) -> np.ndarray:
    """Hair of `colour` hanging from the forehead's top beside the face, in strands, to
    `down` face heights below the chin (negative: above it)."""
    pts = face.landmarks[:, :2]
    shape = rgb.shape[:2]
    width, height = np.ptp(pts[:, 0]), np.ptp(pts[:, 1])
    oval = _fill(shape, pts[list(FACE_OVAL)])
    rows, cols = np.arange(shape[0])[:, None], np.arange(shape[1])[None, :]
    across = np.abs(cols - pts[[234, 454], 0].mean())
    beside = (cv2.dilate(oval.astype(np.uint8), np.ones((41, 41), np.uint8)) > 0) | (
        (across > 0.45 * width) & (across < 0.7 * width)
    )
    hanging = (rows > pts[10, 1] - 0.1 * height) & (rows < pts[152, 1] + down * height)
    region = beside & ~oval & hanging
    strands = 1.0 + 0.15 * np.sin(cols / 3.0) + np.random.default_rng(0).normal(0, 0.05, shape)
    painted = rgb.astype(np.float64)
    painted[region] = 255.0 * np.array(hex_to_rgb(colour)) * strands[region][:, None]
    return np.clip(painted, 0, 255).astype(np.uint8)


def test_hair_painted_down_beside_the_face_reads_longer(analyzer, astronaut, astronaut_face):
    plain = measure(astronaut, astronaut_face)
    # her bob ends beside the cheekbones, about where the shortest side locks do
    assert plain.hair_length <= 0.15 and plain.confidence["hair_length"] > 0.5
    assert plain.hair_style is None  # the photo path keeps its style (short)
    hairs = []
    for down in (-0.3, 0.0, 0.5):
        hair = plain.colors["hair_color"]
        painted = paint_hair_beside_the_face(astronaut, astronaut_face, hair, down)
        labels = measure(painted, analyzer.analyze(painted)[0])
        assert labels.confidence["hair_length"] > 0.5
        hairs.append((labels.hair_style, labels.hair_length))
        params = labels_to_params(labels)
        assert (params.hair_style, params.hair_length) == (
            labels.hair_style or "short",
            labels.hair_length,
        )
    assert hairs[0][0] is None and 0.5 < hairs[0][1] < 1.0  # short, to the jaw
    assert hairs[1] == hairs[2] == ("long", 0.0)  # to the chin or past it: long


def test_a_beard_joined_to_the_hair_is_not_long_hair(analyzer, astronaut, astronaut_face):
    """A full beard in the hair's colour, joined to it by wide sideburns over the ears,
    fills the bands down to the chin as long hair would. Where the chin itself is hair,
    the length is left unread (the fallback's); a beard below the sideburns' gap is short."""
    pts = astronaut_face.landmarks[:, :2]
    oval = _fill(astronaut.shape[:2], pts[list(FACE_OVAL)])
    eye_y, chin_y = pts[[33, 133, 263, 362], 1].mean(), pts[152, 1]
    rows = (np.arange(astronaut.shape[0]) - eye_y)[:, None] / (chin_y - eye_y)
    colour = 255.0 * np.array(hex_to_rgb(measure(astronaut, astronaut_face).colors["hair_color"]))
    grain = np.random.default_rng(0).normal(1.0, 0.08, astronaut.shape[:2])[..., None]
    readings = []
    for rim, top in ((0.25, -0.2), (0.15, 0.0)):  # face widths; eye line to chin = 1
        side = 2 * int(rim * np.ptp(pts[:, 0])) + 1
        grown = cv2.dilate(oval.astype(np.uint8), np.ones((side, side), np.uint8)) > 0
        beard = (grown & ~oval & (rows > top) & (rows < 1.3)) | (oval & (rows > 0.75))
        painted = astronaut.astype(np.float64)
        painted[beard] = (colour * grain)[beard]
        painted = np.clip(painted, 0, 255).astype(np.uint8)
        labels = measure(painted, analyzer.analyze(painted)[0])
        readings.append((labels.measurements["hair_reach"], labels.hair_style))
    assert math.isnan(readings[0][0]) and readings[0][1] is None
    assert readings[1][0] < 0.2 and readings[1][1] is None


def test_a_photo_cut_beside_the_face_leaves_the_length_unread(analyzer, astronaut, astronaut_face):
    pts = astronaut_face.landmarks[:, :2]
    left, right = int(pts[:, 0].min()) - 4, int(pts[:, 0].max()) + 4
    cut = np.ascontiguousarray(astronaut[:, left:right])
    labels = measure(cut, analyzer.analyze(cut)[0])
    assert math.isnan(labels.measurements["hair_reach"])
    assert labels.confidence["hair_length"] == 0.0 and labels.hair_length == 0.5
    assert labels.hair_style is None


def test_the_photo_path_takes_the_hair_length_from_the_teacher(tmp_path, capsys, astronaut):
    """`chibi params --sources`, as a user runs it (the CNN alone gave her 0.24, and the
    four short-haired men of the sample photos 0.36-0.80)."""
    from server.cli import main

    photo = tmp_path / "astronaut.png"
    Image.fromarray(astronaut).save(photo)
    assert main(["params", "--sources", str(photo)]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["sources"]["hair_length"] == "teacher"
    assert AvatarParams.from_dict(record["params"]).hair_length <= 0.15


def test_a_group_photo_gives_long_hair_to_the_women_whose_hair_falls_past_the_chin(
    tmp_path, capsys
):
    """The group photo (`sample_photos.GROUP_PHOTOS`), through `chibi params --all-faces
    --sources`: its four largest faces are two short-haired men and two women whose hair
    falls to the shoulders and past them (the detector over the whole photo found three of
    them; `face_boxes.tiles`). The women get the long style from the teacher, the men keep
    the default short one, with the shortest side locks."""
    from avatar3d.sample_photos import GROUP_PHOTOS, installed
    from server.cli import main

    photo = tmp_path / "friends.jpg"
    photo.write_bytes(dict(installed(GROUP_PHOTOS))["friends"])
    assert main(["params", "--all-faces", "--sources", str(photo)]) == 0
    faces = json.loads(capsys.readouterr().out)
    assert len(faces) == 4
    hair = sorted(
        (face["params"]["hair_style"], face["params"]["hair_length"], face["sources"]["hair_style"])
        for face in faces
    )
    assert hair == [("long", 0.0, "teacher")] * 2 + [("short", 0.0, "default")] * 2


def test_hair_tied_up_is_not_long(group_photo):
    """The second face from the left of the group photo: her hair is tied up, so beside
    her face there is none, and she keeps the short style (from every perturbation
    `chibi eval` applies, as the four others keep theirs: scratch check, session 38)."""
    rgb, faces, _ = group_photo
    assert len(faces) == 5  # the sixth is turned 46 degrees away
    tied = faces[1]
    assert tied.size == min(face.size for face in faces)  # the smallest of the five
    labels = measure(rgb, tied)
    assert labels.hair_style is None and labels.hair_length == 0.0
    assert labels.confidence["hair_length"] > 0.25
