import json

import pytest

from avatar3d.params import HAIR_STYLES, AvatarParams, ParamsError


def test_defaults_round_trip_through_json():
    params = AvatarParams()
    again = AvatarParams.from_json(params.to_json())
    assert again == params


@pytest.mark.parametrize(
    "data, field",
    [
        ({"shape": {"eye_size": 1.5}}, "shape.eye_size"),
        ({"shape": {"eye_size": "big"}}, "shape.eye_size"),
        ({"shape": {"third_eye": 0.5}}, "shape.third_eye"),
        ({"expression": {"smile": -0.1}}, "expression.smile"),
        ({"hair_style": "mohawk"}, "hair_style"),
        ({"hair_color": "red"}, "hair_color"),
        ({"hair_length": float("nan")}, "hair_length"),
        ({"glasses": "monocle"}, "glasses"),
        ({"wings": True}, "wings"),
        ({"version": 99}, "version"),
        ({"name": ""}, "name"),
        ({"name": "\ud800"}, "name"),  # a lone surrogate: no UTF-8 for the file's JSON
        ({"hair_length": 10**400}, "hair_length"),  # too large for a float
    ],
)
def test_bad_fields_are_named(data, field):
    with pytest.raises(ParamsError) as info:
        AvatarParams.from_dict(data)
    assert info.value.field == field
    assert field in str(info.value)


def test_malformed_json_is_a_params_error():
    with pytest.raises(ParamsError, match="malformed JSON"):
        AvatarParams.from_json("{not json")
    with pytest.raises(ParamsError):
        AvatarParams.from_json(json.dumps([1, 2]))


def test_every_hair_style_is_accepted():
    for style in HAIR_STYLES:
        assert AvatarParams(hair_style=style).hair_style == style
