"""Colours a photo does not show as they are: in black and white the skin and lips come
from the skin scale, not grey; under a coloured light the light is taken out."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from avatar3d.painted import LIGHTS, black_and_white, coloured_light
from avatar3d.params import COLOR_FIELDS, AvatarParams, hex_delta_e, hex_to_lab
from avatar3d.skin_tones import MONK_SKIN_TONES, skin_scale_gain, skin_scale_lab, white_balanced
from avatar3d.teacher import measure
from avatar3d.teacher_colors import MONOCHROME_SATURATION, window_saturation
from avatar3d.teacher_covers import looks_like_skin

SKIN_SCALE_FIELDS = ("skin_color", "lip_color")  # a black-and-white photo's
GREY_FIELDS = ("hair_color", "iris_color", "brow_color")


def test_the_skin_scale_passes_through_every_swatch_and_holds_its_ends():
    swatches = [hex_to_lab(tone) for tone in MONK_SKIN_TONES]
    for swatch in swatches:
        np.testing.assert_allclose(skin_scale_lab(swatch[0]), swatch, atol=1e-9)
    darkest, lightest = min(swatches, key=lambda s: s[0]), max(swatches, key=lambda s: s[0])
    np.testing.assert_allclose(skin_scale_lab(3.0)[1:], darkest[1:])
    np.testing.assert_allclose(skin_scale_lab(99.0)[1:], lightest[1:])
    between = skin_scale_lab(60.0)
    assert between[0] == 60.0 and looks_like_skin(between)


@pytest.mark.parametrize(
    ("tint", "monochrome"),
    [((1.0, 1.0, 1.0), True), ((1.0, 0.98, 0.95), True), ((1.0, 0.9, 0.75), False)],
    ids=["grey", "faint-tint", "sepia"],
)
def test_a_photo_without_colour_is_told_by_its_saturation(astronaut, tint, monochrome):
    """Black and white and a scan's faint tint read under the threshold; a sepia print
    (a skin-like tone of its own) and the colour photo, even at a tenth of its exposure,
    over it."""
    assert (window_saturation(black_and_white(astronaut, tint)) < MONOCHROME_SATURATION) is (
        monochrome
    )
    dim = np.rint(astronaut * 0.1).astype(np.uint8)
    assert min(window_saturation(astronaut), window_saturation(dim)) > MONOCHROME_SATURATION


def test_the_teacher_reads_a_black_and_white_face_on_the_skin_scale(
    analyzer, astronaut, astronaut_face, hopper
):
    """In black and white the astronaut's skin read #bfbfbf and her lips grey. The skin
    and lips now take the skin scale's hue at the lightness read; hair, brows and irises
    keep their grey, a colour each can have."""
    for rgb, face in ((astronaut, astronaut_face), (hopper, analyzer.analyze(hopper)[0])):
        colour = measure(rgb, face)
        grey_rgb = black_and_white(rgb)
        grey = measure(grey_rgb, analyzer.analyze(grey_rgb)[0])
        assert grey.skin_scale == SKIN_SCALE_FIELDS and colour.skin_scale == ()
        assert grey.measurements["saturation"] < MONOCHROME_SATURATION
        skin, lips = hex_to_lab(grey.colors["skin_color"]), hex_to_lab(grey.colors["lip_color"])
        assert looks_like_skin(skin) and np.hypot(*skin[1:]) > 15
        assert abs(skin[0] - hex_to_lab(colour.colors["skin_color"])[0]) < 3  # the lightness read
        assert lips[1] > skin[1] + 10  # redder than the skin
        # 6.2 and 11.8 dE2000 from the colour photo's skin (grey: 14.6 and 22.2)
        for name, within in (("skin_color", 13.0), ("lip_color", 13.0)):
            assert hex_delta_e(grey.colors[name], colour.colors[name]) < within, name
        for name in GREY_FIELDS:
            assert np.hypot(*hex_to_lab(grey.colors[name])[1:]) < 1.5, name


def test_a_black_and_white_photo_through_the_cli_names_the_skin_scale(
    tmp_path, capsys, astronaut, astronaut_face
):
    """`chibi params --sources` on the astronaut saved as a greyscale PNG (mode L):
    a skin and lips of the skin scale, named `skin_scale`; in colour, the teacher's."""
    from server.cli import main

    photo = tmp_path / "bw.png"
    Image.fromarray(black_and_white(astronaut)[:, :, 0]).save(photo)  # mode L
    assert main(["params", "--sources", str(photo)]) == 0
    record = json.loads(capsys.readouterr().out)
    params, sources = AvatarParams.from_dict(record["params"]), record["sources"]
    assert {sources[name] for name in SKIN_SCALE_FIELDS} == {"skin_scale"}
    assert {sources[name] for name in GREY_FIELDS} == {"teacher"}
    in_colour = measure(astronaut, astronaut_face).colors
    for name in SKIN_SCALE_FIELDS:
        assert hex_delta_e(getattr(params, name), in_colour[name]) < 13.0, name

    photo = tmp_path / "colour.png"
    Image.fromarray(astronaut).save(photo)
    assert main(["params", "--sources", str(photo)]) == 0
    sources = json.loads(capsys.readouterr().out)["sources"]
    assert {sources[name] for name in SKIN_SCALE_FIELDS} == {"teacher"}


def test_the_skin_scale_gain_brings_a_skin_onto_the_scale():
    bluish = np.array([60.0, -4.0, -12.0])
    gain = skin_scale_gain(bluish)
    np.testing.assert_allclose(white_balanced(bluish, gain), skin_scale_lab(60.0), atol=0.05)
    scale = skin_scale_lab(45.0)
    np.testing.assert_allclose(skin_scale_gain(scale), 1.0, atol=1e-6)


def test_a_coloured_light_is_taken_out_of_the_colours(analyzer, astronaut, astronaut_face):
    """Under a blue light the astronaut's cheeks and forehead read no skin's hue: her
    skin was left to the CNN, and her lips read violet-blue (25 dE2000 from her lips
    in daylight), her brows 23 and her hair 16. The light's gains onto the skin scale
    are taken out: every colour lands within 10 of the daylight reading."""
    daylight = measure(astronaut, astronaut_face)
    blue_rgb = coloured_light(astronaut, LIGHTS["blue"])
    blue = measure(blue_rgb, analyzer.analyze(blue_rgb)[0])
    assert blue.white_balanced and blue.skin_scale == ("skin_color",)
    assert not daylight.white_balanced
    for name in COLOR_FIELDS:
        assert hex_delta_e(blue.colors[name], daylight.colors[name]) < 10.0, name
    # a light of a skin's hue (magenta) is not told from skin
    magenta_rgb = coloured_light(astronaut, LIGHTS["magenta"])
    assert not measure(magenta_rgb, analyzer.analyze(magenta_rgb)[0]).white_balanced


def test_a_photo_under_a_blue_light_through_the_cli(tmp_path, capsys, astronaut, astronaut_face):
    """`chibi params --sources`: the skin from the skin scale, lips of a lip's hue."""
    from server.cli import main

    photo = tmp_path / "blue.png"
    Image.fromarray(coloured_light(astronaut, LIGHTS["blue"])).save(photo)
    assert main(["params", "--sources", str(photo)]) == 0
    record = json.loads(capsys.readouterr().out)
    params, sources = AvatarParams.from_dict(record["params"]), record["sources"]
    assert sources["skin_color"] == "skin_scale" and sources["lip_color"] == "teacher"
    for name in ("skin_color", "lip_color"):
        assert looks_like_skin(hex_to_lab(getattr(params, name))), name
    daylight = measure(astronaut, astronaut_face).colors["lip_color"]
    assert hex_delta_e(params.lip_color, daylight) < 10.0
