"""Morph target recipes: each name in MORPH_TARGET_NAMES as a weighted sum of the
primitives in morphs.py, and the vertex regions each target may move."""

from __future__ import annotations

from ..avatar import MORPH_TARGET_NAMES


def _both(name: str, weight: float = 1.0) -> list[tuple[str, float]]:
    return [(f"{name}_L", weight), (f"{name}_R", weight)]


# morph name -> [(primitive, weight)]
RECIPES: dict[str, list[tuple[str, float]]] = {
    "happy": _both("corner_up")
    + _both("squint", 0.8)
    + _both("close", 0.2)
    + _both("cheek_squint", 0.6)
    + [("open", 0.15)],
    "angry": _both("brow_angry")
    + _both("squint", 0.4)
    + _both("corner_down", 0.7)
    + [("narrow", 0.2)],
    "sad": _both("brow_inner_up") + _both("close", 0.25) + _both("corner_down"),
    "relaxed": _both("close", 0.45) + _both("corner_up", 0.5) + _both("brow_up", 0.2),
    "surprised": _both("wide") + _both("brow_up") + [("open", 0.55), ("narrow", 0.4)],
    "aa": [("open", 1.0)],
    "ih": [("open", 0.3), ("wide", 0.6)],
    "ou": [("narrow", 1.0), ("forward", 0.8), ("open", 0.3)],
    "ee": [("wide", 1.0), ("open", 0.4)] + _both("corner_out", 0.3),
    "oh": [("open", 0.7), ("narrow", 0.6), ("forward", 0.3)],
    "blink": _both("close"),
    "blinkLeft": [("close_L", 1.0)],
    "blinkRight": [("close_R", 1.0)],
    # VRM look directions are the character's: lookLeft turns the eyes to +X
    "lookUp": _both("iris_y"),
    "lookDown": _both("iris_y", -1.0),
    "lookLeft": _both("iris_x"),
    "lookRight": _both("iris_x", -1.0),
    "jawForward": [("jaw_forward", 1.0)],
    "jawLeft": [("jaw_left", 1.0)],
    "jawRight": [("jaw_left", -1.0)],
    "jawOpen": [("open", 1.0)],
    "mouthClose": [("close", 1.0)],
    "mouthFunnel": [("narrow", 0.7), ("open", 0.4), ("forward", 0.5)],
    "mouthPucker": [("narrow", 1.0), ("forward", 1.0)],
    "mouthLeft": [("shift_left", 1.0)],
    "mouthRight": [("shift_left", -1.0)],
    "mouthRollLower": [("roll_lower", 1.0)],
    "mouthRollUpper": [("roll_upper", 1.0)],
    "mouthShrugLower": [("shrug_lower", 1.0)],
    "mouthShrugUpper": [("shrug_upper", 1.0)],
    "browInnerUp": _both("brow_inner_up"),
    "cheekPuff": _both("cheek_puff"),
    "tongueOut": [("tongue", 1.0), ("open", 0.35)],
    "viseme_sil": [("close", 0.15)] + _both("press", 0.15),
    "viseme_PP": [("close", 0.8)] + _both("press", 0.6),
    "viseme_FF": [("roll_lower", 0.9), ("open", 0.15)] + _both("upper_up", 0.4),
    "viseme_TH": [("open", 0.25), ("tongue", 0.4)],
    "viseme_DD": [("open", 0.3), ("wide", 0.3)],
    "viseme_kk": [("open", 0.35), ("wide", 0.2)],
    "viseme_CH": [("narrow", 0.5), ("forward", 0.6), ("open", 0.3)],
    "viseme_SS": [("wide", 0.6), ("open", 0.15)],
    "viseme_nn": [("open", 0.2), ("wide", 0.2)],
    "viseme_RR": [("narrow", 0.5), ("open", 0.25), ("forward", 0.3)],
    "viseme_aa": [("open", 1.0)],
    "viseme_E": [("open", 0.5), ("wide", 0.5)],
    "viseme_I": [("open", 0.3), ("wide", 0.8)],
    "viseme_O": [("open", 0.7), ("narrow", 0.6), ("forward", 0.3)],
    "viseme_U": [("narrow", 1.0), ("forward", 0.8), ("open", 0.2)],
}
for _side, _name in (("L", "Left"), ("R", "Right")):
    _in = 1.0 if _side == "R" else -1.0  # looking in = towards the nose
    RECIPES.update(
        {
            f"eyeBlink{_name}": [(f"close_{_side}", 1.0)],
            f"eyeLookDown{_name}": [(f"iris_y_{_side}", -1.0)],
            f"eyeLookIn{_name}": [(f"iris_x_{_side}", _in)],
            f"eyeLookOut{_name}": [(f"iris_x_{_side}", -_in)],
            f"eyeLookUp{_name}": [(f"iris_y_{_side}", 1.0)],
            f"eyeSquint{_name}": [(f"squint_{_side}", 1.0)],
            f"eyeWide{_name}": [(f"wide_{_side}", 1.0)],
            f"mouthSmile{_name}": [(f"corner_up_{_side}", 1.0)],
            f"mouthFrown{_name}": [(f"corner_down_{_side}", 1.0)],
            f"mouthDimple{_name}": [(f"dimple_{_side}", 1.0)],
            f"mouthStretch{_name}": [(f"corner_out_{_side}", 1.0)],
            f"mouthPress{_name}": [(f"press_{_side}", 1.0)],
            f"mouthLowerDown{_name}": [(f"lower_down_{_side}", 1.0)],
            f"mouthUpperUp{_name}": [(f"upper_up_{_side}", 1.0)],
            f"browDown{_name}": [(f"brow_down_{_side}", 1.0)],
            f"browOuterUp{_name}": [(f"brow_outer_up_{_side}", 1.0)],
            f"cheekSquint{_name}": [(f"cheek_squint_{_side}", 1.0)],
            f"noseSneer{_name}": [(f"sneer_{_side}", 1.0)],
        }
    )

_EYES = {"eye_L", "iris_L", "eye_R", "iris_R"}
_BROWS = {"brow_L", "brow_R"}
_MOUTH = {"mouth", "tongue", "face_L", "face_R"}
_CHEEKS = {"face_L", "face_R", "blush_L", "blush_R"}


def _region(name: str) -> frozenset[str]:
    """Vertex region labels a morph target may move (derived from its name)."""
    if name in ("happy", "angry", "sad", "relaxed", "surprised"):
        return frozenset(_EYES | _BROWS | _MOUTH | _CHEEKS)
    for side, full in (("L", "Left"), ("R", "Right")):
        if name in (f"blink{full}", f"eyeBlink{full}") or (
            name.startswith("eye") and name.endswith(full)
        ):
            return frozenset({f"eye_{side}", f"iris_{side}"})
        if name.startswith("brow") and name.endswith(full):
            return frozenset({f"brow_{side}"})
        if name == f"cheekSquint{full}":
            return frozenset({f"face_{side}", f"blush_{side}"})
        if name == f"noseSneer{full}":
            return frozenset({"nose"})
    if name == "blink":
        return frozenset(_EYES)
    if name.startswith("look"):
        return frozenset({"iris_L", "iris_R"})
    if name.startswith("brow"):
        return frozenset(_BROWS)
    if name == "cheekPuff":
        return frozenset(_CHEEKS)
    return frozenset(_MOUTH)  # visemes, vowels, jaw, mouth, tongue


MORPH_REGIONS: dict[str, frozenset[str]] = {name: _region(name) for name in MORPH_TARGET_NAMES}
