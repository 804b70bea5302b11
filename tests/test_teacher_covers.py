"""The teacher on covered faces: glasses, dark and mirrored lenses, face masks, bangs."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
from PIL import Image
from test_teacher import brighten, jpeg, teach

from avatar3d.painted import HAIRS, paint_bangs, paint_dark_lenses, paint_mirrored_lenses
from avatar3d.params import AvatarParams, hex_delta_e, hex_to_lab
from avatar3d.teacher import HIDDEN_WITH_THE_EYES, HIDDEN_WITH_THE_MOUTH, measure
from avatar3d.teacher_colors import SIDES
from avatar3d.teacher_covers import (
    EYE_HIDDEN_CONTRAST,
    EYE_HIDDEN_RATIO,
    EYE_LENS_DISTANCE,
    FOREHEAD_COVER_DARKER,
    cheek_cover,
    eye_hidden,
    forehead_covered,
    looks_like_skin,
)
from avatar3d.teacher_glasses import GLASSES_CONTRAST, bridge_contrast, glasses_reading


def assert_glasses(labels, wears: bool, sure: float = 0.5) -> None:
    assert labels.glasses is wears and labels.confidence["glasses"] >= sure


def paint_line(rgb: np.ndarray, face, start: int, end: int, drop: float) -> np.ndarray:
    """A dark line, as thick as a plastic frame, from landmark `start` to `end`, moved
    `drop` eye distances down (negative: up)."""
    distance = face.eye_distance
    shift = np.array([0.0, drop * distance])
    a, b = (face.landmarks[i, :2] + shift for i in (start, end))
    painted = rgb.copy()
    thickness = max(2, round(0.06 * distance))
    cv2.line(painted, tuple(map(round, a)), tuple(map(round, b)), (45, 35, 30), thickness)
    return painted


def test_glasses_are_seen_on_grace_hopper_and_not_on_the_astronaut(
    analyzer, astronaut, astronaut_face, hopper
):
    assert_glasses(measure(astronaut, astronaut_face), False, 0.9)
    larger = cv2.resize(hopper, None, fx=2.5, fy=2.5, interpolation=cv2.INTER_CUBIC)
    for variant in (hopper, hopper[:, ::-1], brighten(hopper, 0.8), jpeg(hopper, 50), larger):
        assert_glasses(teach(analyzer, variant), True, 0.9)
    assert_glasses(teach(analyzer, brighten(astronaut, 0.8)), False, 0.9)


def test_a_bridge_across_the_nose_is_glasses_and_a_line_elsewhere_is_not(
    analyzer, astronaut, astronaut_face
):
    """The reading looks for a bar across the nose between the eyes, and only there:
    the same dark line drawn between the inner eye corners reads as a frame, drawn
    across the forehead above the brows or across the chin it does not."""
    inner_corners = (133, 362)
    bridge = teach(analyzer, paint_line(astronaut, astronaut_face, *inner_corners, 0.0))
    assert_glasses(bridge, True)
    for drop in (-0.55, 1.3):  # above the brows; across the chin
        elsewhere = teach(analyzer, paint_line(astronaut, astronaut_face, *inner_corners, drop))
        assert elsewhere.glasses is False, drop
    bare = bridge_contrast(astronaut, astronaut_face.landmarks, astronaut_face.eye_centres)
    assert bridge.measurements["bridge_contrast"] > 3 * bare


def test_glasses_reading_and_its_confidence():
    assert glasses_reading(2 * GLASSES_CONTRAST) == (True, 1.0)
    assert glasses_reading(GLASSES_CONTRAST / 2) == (False, 1.0)
    present, unsure = glasses_reading(1.1 * GLASSES_CONTRAST)
    assert present and 0.0 < unsure < 0.2
    assert glasses_reading(float("nan")) == (False, 0.0)
    assert glasses_reading(0.0) == (False, 1.0)


def test_the_glasses_reading_holds_on_every_monk_swatch(
    analyzer, astronaut, astronaut_face, hopper
):
    """A dark frame on dark skin shows less contrast: with their skin tinted to each of
    the ten swatches, Grace Hopper still wears glasses and the astronaut still does not."""
    from avatar3d.synth import MONK_SKIN_TONES
    from avatar3d.tinted import tint_skin

    hopper_face = analyzer.analyze(hopper)[0]
    for rgb, face, wears in ((astronaut, astronaut_face, False), (hopper, hopper_face, True)):
        for tone in MONK_SKIN_TONES:
            assert_glasses(teach(analyzer, tint_skin(rgb, face.landmarks, tone)), wears)


@pytest.mark.parametrize("darker", [0.3, 0.7])
@pytest.mark.parametrize("softness", [0.05, 0.2])
def test_a_shadow_edge_across_the_nose_is_not_glasses(
    analyzer, astronaut, astronaut_face, darker, softness
):
    """A cap's brim or the noon sun can draw a hard shadow across the nose: one edge,
    where a frame has two. The face above the edge is `darker`, the edge `softness` eye
    distances wide, half way from the brows down to the eyes."""
    brows = astronaut_face.landmarks[[55, 65, 285, 295], 1].mean()
    edge = (brows + astronaut_face.eye_centres[:, 1].mean()) / 2
    rows = np.arange(astronaut.shape[0], dtype=np.float64)[:, None, None]
    light = np.clip((rows - edge) / (softness * astronaut_face.eye_distance) + 0.5, 0.0, 1.0)
    shaded = (astronaut * (1.0 - darker * (1.0 - light))).round().astype(np.uint8)
    assert_glasses(teach(analyzer, shaded), False)


WEBCAM_FLAWS = {
    "jpeg 10": lambda rgb: jpeg(rgb, 10),
    "sensor noise": lambda rgb: np.clip(
        rgb + np.random.default_rng(0).normal(0.0, 16.0, rgb.shape), 0, 255
    ).astype(np.uint8),
    "out of focus": lambda rgb: cv2.GaussianBlur(rgb, (0, 0), 1.5),
    "motion blur": lambda rgb: cv2.filter2D(rgb, -1, np.ones((1, 9)) / 9),
    "dark gamma": lambda rgb: (255 * (rgb / 255.0) ** 2).astype(np.uint8),
    "greyscale": lambda rgb: np.repeat(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None], 3, 2),
}


@pytest.mark.parametrize("flaw", list(WEBCAM_FLAWS))
def test_the_glasses_reading_survives_a_poor_camera(analyzer, astronaut, hopper, flaw):
    for rgb, wears in ((astronaut, False), (hopper, True)):
        assert_glasses(teach(analyzer, WEBCAM_FLAWS[flaw](rgb)), wears)


@pytest.mark.parametrize("flaw", list(WEBCAM_FLAWS))
def test_a_poor_camera_does_not_hide_the_eyes(analyzer, astronaut, hopper, flaw):
    for rgb in (astronaut, hopper):
        labels = teach(analyzer, WEBCAM_FLAWS[flaw](rgb))
        assert labels.hidden == ()
        assert labels.confidence["iris_color"] > 0.25


# -- sunglasses --------------------------------------------------------------------------------
def test_dark_lenses_hide_the_eyes_and_leave_their_fields_to_the_default(
    analyzer, astronaut, astronaut_face, hopper
):
    """Behind dark lenses the iris used to read the lens's near-black and FaceMesh's
    guessed eye outline moved eye_size by up to 0.26: those fields now keep the default,
    sure, and the rest is measured as before (the frame, here)."""
    labels = measure(astronaut, astronaut_face)
    assert labels.hidden == ()
    contrasts = [labels.measurements[f"eye_contrast_{side}"] for side in SIDES]
    assert min(contrasts) > 3 * EYE_HIDDEN_CONTRAST
    # a dark eye FaceMesh reads half shut is the lid's shade, unless no skin shows below
    # it; a dim photo's eye keeps its ratio of white to iris; NaN is too few pixels
    low, flat, skin, lens = EYE_HIDDEN_CONTRAST / 2, EYE_HIDDEN_RATIO / 2, 5.0, 40.0
    assert eye_hidden(low, flat, lens, 0.2) and not eye_hidden(low, flat, skin, 0.7)
    assert eye_hidden(math.nan, math.nan, lens, 0.7) and not eye_hidden(low, flat, math.nan, 0.7)
    # an open eye without white but skin below it squints (the group photo's darkest tints)
    assert not eye_hidden(low, flat, skin, 0.2) and eye_hidden(low, flat, math.nan, 0.2)
    assert eye_hidden(math.nan, math.nan, lens, 0.0)  # an open eye too narrow to read
    assert not eye_hidden(low, 2 * EYE_HIDDEN_RATIO, lens, 0.0)
    assert not eye_hidden(2 * EYE_HIDDEN_CONTRAST, flat, lens, 0.0)
    assert not eye_hidden(math.nan, math.nan, math.nan, 0.0)
    # at 30 % of its exposure Grace Hopper's eyes read a contrast of 4.7-6.3, as lenses do
    dim = teach(analyzer, brighten(hopper, 0.3))
    assert dim.hidden == () and dim.measurements["eye_contrast_left"] < EYE_HIDDEN_CONTRAST
    # the rule does not weigh the skin: lenses hide the eyes on every Monk swatch
    from avatar3d.synth import MONK_SKIN_TONES
    from avatar3d.tinted import tint_skin

    face = analyzer.analyze(astronaut)[0]
    for tone in MONK_SKIN_TONES[::3]:
        tinted = tint_skin(astronaut, face.landmarks, tone)
        assert teach(analyzer, paint_dark_lenses(tinted, face)).hidden == HIDDEN_WITH_THE_EYES
    defaults = AvatarParams()
    for rgb in (astronaut, hopper):
        face = analyzer.analyze(rgb)[0]
        plain = measure(rgb, face)
        shaded = teach(analyzer, paint_dark_lenses(rgb, face))
        assert shaded.hidden == HIDDEN_WITH_THE_EYES
        assert shaded.colors["iris_color"] == defaults.iris_color
        for dotted in HIDDEN_WITH_THE_EYES:
            group, _, name = dotted.rpartition(".")
            if group:
                assert getattr(shaded, group)[name] == getattr(defaults, group)[name], name
            assert shaded.confidence[name] == 1.0
        assert_glasses(shaded, True)
        assert hex_delta_e(shaded.colors["skin_color"], plain.colors["skin_color"]) < 3.0


def test_a_photo_in_sunglasses_gets_neutral_eyes_and_a_frame_through_the_cli(
    tmp_path, capsys, analyzer, astronaut, astronaut_face
):
    """`chibi params --sources`, as a user runs it: the eyes' fields are the default and
    named 'hidden', the glasses come from the frame across the nose."""
    from server.cli import main

    photo = tmp_path / "sunglasses.png"
    Image.fromarray(paint_dark_lenses(astronaut, astronaut_face)).save(photo)
    assert main(["params", "--sources", str(photo)]) == 0
    record = json.loads(capsys.readouterr().out)
    params, sources = AvatarParams.from_dict(record["params"]), record["sources"]
    defaults = AvatarParams()
    assert params.iris_color == defaults.iris_color
    assert params.shape["eye_size"] == defaults.shape["eye_size"]
    assert {sources[name] for name in HIDDEN_WITH_THE_EYES} == {"hidden"}
    assert params.glasses != "none" and sources["glasses"] == "teacher"
    assert sources["skin_color"] == "teacher"


def test_mirrored_lenses_that_facemesh_reads_shut_hide_the_eyes(tmp_path, capsys, analyzer, hopper):
    """Behind mirrors FaceMesh read Grace Hopper's eyes shut (blink 0.66-0.69), where no
    white can be sought; the skin below them reads 40 dE2000 from her face's, and the
    eyes' fields keep their default (the CNN alone gave Obama's avatar the sky's blue),
    through `chibi params --sources` as a user runs it."""
    from server.cli import main

    face = analyzer.analyze(hopper)[0]
    mirrored = paint_mirrored_lenses(hopper, face)
    labels = teach(analyzer, mirrored)
    assert labels.hidden == HIDDEN_WITH_THE_EYES
    assert min(labels.measurements[f"under_eye_{side}"] for side in ("left", "right")) > (
        EYE_LENS_DISTANCE
    )
    plain = measure(hopper, face)  # her clear glasses show the skin below the eyes
    assert max(plain.measurements[f"under_eye_{side}"] for side in ("left", "right")) < (
        EYE_LENS_DISTANCE / 2
    )
    photo = tmp_path / "mirrors.png"
    Image.fromarray(mirrored).save(photo)
    assert main(["params", "--sources", str(photo)]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["params"]["iris_color"] == AvatarParams().iris_color
    assert {record["sources"][name] for name in HIDDEN_WITH_THE_EYES} == {"hidden"}


# -- face masks --------------------------------------------------------------------------------
def paint_face_mask(rgb: np.ndarray, face, colour: tuple[int, int, int]) -> np.ndarray:
    """A face mask: the face below the middle of the nose in one fabric `colour`,
    darkening downward as a fold's shade would, with the weave's grain; without the
    pleats of `avatar3d.painted.paint_face_mask`, whose figures `scripts/covered_faces.py`
    prints (some of its masks keep the mouth: blue 26 of 32)."""
    from avatar3d.teacher_colors import FACE_OVAL

    covered = np.zeros(rgb.shape[:2], np.uint8)
    cv2.fillPoly(covered, [np.round(face.landmarks[list(FACE_OVAL), :2]).astype(np.int32)], 1)
    covered[: round(face.landmarks[195, 1])] = 0
    covered = cv2.dilate(covered, np.ones((5, 5), np.uint8))
    shade = np.linspace(1.0, 0.8, rgb.shape[0])[:, None, None]
    grain = np.random.default_rng(0).normal(0.0, 5.0, rgb.shape)
    fabric = np.clip(np.array(colour, np.float64) * shade + grain, 0, 255)
    return np.where(covered[..., None] > 0, fabric, rgb).round().astype(np.uint8)


def test_looks_like_skin_takes_every_monk_swatch_and_no_blue_or_green():
    from avatar3d.synth import MONK_SKIN_TONES

    assert all(looks_like_skin(hex_to_lab(tone)) for tone in MONK_SKIN_TONES)
    for fabric in ("#96bed7", "#78aa8c", "#5b6fd6"):  # surgical blue, green, indigo
        assert not looks_like_skin(hex_to_lab(fabric)), fabric
    assert looks_like_skin(hex_to_lab("#202022"))  # too grey to tell


def test_cheek_cover_tells_a_fabric_from_skin_by_the_forehead():
    def cover(cheeks, forehead, lips):  # the mean stands in for the regions' median
        return cheek_cover((cheeks + forehead) / 2, cheeks, forehead, lips)

    forehead, lips = np.array([70.0, 14.0, 18.0]), np.array([55.0, 25.0, 14.0])
    assert cover(np.array([66.0, 13.0, 17.0]), forehead, lips) is None
    blue = np.array([75.0, -12.0, -40.0])  # no skin's hue even beside the forehead
    assert not looks_like_skin((blue + forehead) / 2)
    assert cover(blue, forehead, lips) is blue  # the cheeks' colour, the lips' yardstick
    assert cheek_cover(blue, None, None, None) is blue
    blue_grey = np.array([75.0, -3.0, -7.0])  # beside the forehead, too grey to judge
    assert looks_like_skin((blue_grey + forehead) / 2)
    assert cover(blue_grey, forehead, lips) is blue_grey
    black, white = np.array([12.0, 0.5, -1.5]), np.array([88.0, 0.0, 2.0])
    for fabric in (black, white):
        covered_lips = fabric + [1.0, 0.3, 0.3]
        assert cover(fabric, forehead, covered_lips) is fabric
        assert cover(fabric, forehead, lips) is None  # lips show: no mask
        dark_skin = np.array([22.0, 2.0, 3.0])  # too grey itself to set a grey apart
        assert cover(fabric, dark_skin, covered_lips) is None
    cream = np.array([86.0, 0.5, 6.7])  # a skin's hue, but paler and greyer than the skin
    assert cover(cream, forehead, cream + [1.0, 0.3, 0.3]) is cream
    # a render of the darkest swatch: grey cheeks, tiny lips of their colour, a redder
    # forehead as light as they are; no fabric is that close to the skin's lightness
    darkest, redder = np.array([12.7, 1.7, 1.4]), np.array([13.6, 8.0, 6.3])
    assert cover(darkest, redder, darkest + [1.0, 0.5, 0.3]) is None
    # a red fabric has a skin's hue, but more colour than skin; a dim photo's saturated
    # skin has as much at the forehead
    red = np.array([45.0, 60.0, 35.0])
    assert looks_like_skin(red) and cover(red, forehead, red + [1.0, 0.3, 0.3]) is red
    assert cover(red, red - [0.0, 5.0, 3.0], red + [1.0, 0.3, 0.3]) is None
    assert cover(red, forehead, lips) is None
    assert cheek_cover(forehead, None, forehead, lips) is None


FABRICS = {
    "blue": (150, 190, 215), "green": (120, 170, 140), "black": (30, 30, 34),
    "white": (236, 236, 238), "grey": (140, 141, 144), "cream": (240, 233, 220),
    "red": (200, 40, 50), "yellow": (235, 205, 60),
}  # fmt: skip


@pytest.mark.parametrize("fabric", FABRICS.values(), ids=FABRICS.keys())
def test_a_face_mask_leaves_the_skin_to_the_forehead_and_hides_the_mouth(
    analyzer, astronaut, hopper, fabric
):
    """Under a mask the cheeks read its fabric (the astronaut's skin was light blue
    under a blue one, near-black under a black one): the skin now comes from the
    forehead, and the mouth's fields keep their default."""
    defaults = AvatarParams()
    for rgb in (astronaut, hopper):
        face = analyzer.analyze(rgb)[0]
        plain = measure(rgb, face)
        masked = teach(analyzer, paint_face_mask(rgb, face, fabric))
        assert set(HIDDEN_WITH_THE_MOUTH) <= set(masked.hidden)
        assert not masked.white_balanced  # a cover, not a coloured light
        assert masked.colors["lip_color"] == defaults.lip_color
        assert masked.expression["smile"] == defaults.expression["smile"]
        # the skin above the mask (the forehead and below the eyes): the astronaut's
        # within 1.2 dE2000 of cheeks and forehead, Grace Hopper's 7.3-8.3 lighter (her
        # lit forehead alone: 9.5-10.1); the fabrics had read 12-63 away
        assert hex_delta_e(masked.colors["skin_color"], plain.colors["skin_color"]) < 9.0
        assert plain.hidden == ()


@pytest.mark.parametrize("fabric", ["blue", "black"])
def test_a_photo_behind_a_face_mask_keeps_a_skin_colour_through_the_cli(
    tmp_path, capsys, analyzer, astronaut, astronaut_face, fabric
):
    """`chibi params --sources` on the astronaut behind a light-blue or a black mask:
    her avatar's skin was the mask's blue or near-black; now a skin colour within 3
    dE2000 of her unmasked one, and the mouth's fields `hidden`."""
    from server.cli import main

    photo = tmp_path / "mask.png"
    Image.fromarray(paint_face_mask(astronaut, astronaut_face, FABRICS[fabric])).save(photo)
    assert main(["params", "--sources", str(photo)]) == 0
    record = json.loads(capsys.readouterr().out)
    params, sources = AvatarParams.from_dict(record["params"]), record["sources"]
    assert looks_like_skin(hex_to_lab(params.skin_color)) and sources["skin_color"] == "teacher"
    unmasked = measure(astronaut, astronaut_face).colors["skin_color"]
    assert hex_delta_e(params.skin_color, unmasked) < 3.0
    assert params.lip_color == AvatarParams().lip_color
    assert {sources[name] for name in HIDDEN_WITH_THE_MOUTH} == {"hidden"}


def test_a_forehead_far_darker_than_the_cheeks_is_covered():
    cheeks, lips = np.array([62.0, 14.0, 18.0]), np.array([50.0, 30.0, 15.0])
    darker = cheeks - [FOREHEAD_COVER_DARKER, 0.0, 0.0]
    assert forehead_covered(darker, cheeks, lips) and forehead_covered(darker, cheeks, None)
    assert forehead_covered(np.array([25.0, 4, 6]), cheeks, lips)
    # unhidden foreheads read up to 4.4 darker than their cheeks, and often lighter
    assert not forehead_covered(cheeks - [4.4, 0.0, 0.0], cheeks, lips)
    assert not forehead_covered(cheeks + [21.5, 0.0, 0.0], cheeks, lips)
    assert not forehead_covered(None, cheeks, lips) and not forehead_covered(darker, None, lips)
    # lips reading as the cheeks do: a pale mask over both, not bangs
    assert not forehead_covered(darker, cheeks, cheeks + [1.0, 0.5, 0.0])


@pytest.mark.parametrize("hair", ["black", "auburn"])
def test_bangs_leave_the_skin_to_the_cheeks(tmp_path, capsys, analyzer, astronaut, hopper, hair):
    """Bangs over the brows: read with the forehead, the skin took in the hair (the
    astronaut's 6.9 and 8.5 dE2000 from her uncovered skin, Grace Hopper's 6.0 and 7.0);
    from the cheeks alone 0.5 and 0.0, 2.6 and 2.8. The astronaut's through the CLI."""
    from server.cli import main

    face = analyzer.analyze(hopper)[0]
    covered = teach(analyzer, paint_bangs(hopper, face, HAIRS[hair], reach=0.15))
    uncovered = measure(hopper, face).colors["skin_color"]
    assert hex_delta_e(covered.colors["skin_color"], uncovered) < 4.0
    face = analyzer.analyze(astronaut)[0]
    photo = tmp_path / "bangs.png"
    Image.fromarray(paint_bangs(astronaut, face, HAIRS[hair], reach=0.15)).save(photo)
    assert main(["params", "--sources", str(photo)]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["sources"]["skin_color"] == "teacher"
    uncovered = measure(astronaut, face).colors["skin_color"]
    assert hex_delta_e(record["params"]["skin_color"], uncovered) < 2.5


def test_a_nose_bridge_beyond_the_photo_is_not_read_as_bare_skin(astronaut, astronaut_face):
    """Cut the photo just left of the nose root: the strip reaches past the edge, where
    the warp paints flat grey. That is no reading (NaN, confidence 0), not "no frame"."""
    landmarks, eyes = astronaut_face.landmarks[:, :2], astronaut_face.eye_centres
    assert math.isfinite(bridge_contrast(astronaut, landmarks, eyes))
    cut = int(landmarks[168, 0]) - 2
    shift = np.array([cut, 0.0])
    contrast = bridge_contrast(astronaut[:, cut:].copy(), landmarks - shift, eyes - shift)
    assert math.isnan(contrast) and glasses_reading(contrast) == (False, 0.0)
