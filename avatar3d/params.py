"""`AvatarParams`: the versioned contract between the photo half and the 3D half.

Every field is named, typed and has a documented range. Sliders are unitless in
[0, 1] with 0.5 meaning "the default chibi"; colours are sRGB hex strings
("#rrggbb"). A user may write a params file by hand, so validation errors name
the offending field. Nothing here describes gender, age or ethnicity.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

PARAMS_VERSION = 1

HAIR_STYLES: tuple[str, ...] = ("short", "bob", "long", "ponytail", "twintails", "spiky", "bun")
GLASSES: tuple[str, ...] = ("none", "round", "square")
# The frame an avatar wears where a frame is seen but nothing tells its shape.
UNKNOWN_FRAME = "round"

# name -> one-line meaning; every slider lies in [0, 1], 0.5 is the neutral chibi.
SHAPE_SLIDERS: dict[str, str] = {
    "head_size": "overall head scale relative to the body",
    "face_width": "cheek-to-cheek width of the face",
    "face_length": "forehead-to-chin length of the face",
    "jaw_width": "width of the lower face at the jaw line",
    "chin_length": "how far the chin extends below the mouth",
    "cheek_fullness": "roundness of the cheeks",
    "eye_size": "size of the eyes",
    "eye_spacing": "horizontal distance between the eyes",
    "eye_tilt": "outer eye corners down (0) or up (1)",
    "eye_height": "vertical position of the eyes on the face",
    "brow_height": "distance of the brows above the eyes",
    "brow_thickness": "thickness of the brows",
    "nose_size": "size of the nose",
    "mouth_width": "width of the mouth",
    "mouth_height": "vertical position of the mouth",
    "lip_fullness": "thickness of the lips",
    "ear_size": "size of the ears",
}

# The photo's expression, 0 = neutral, 1 = fully expressed.
EXPRESSION_SLIDERS: dict[str, str] = {
    "smile": "smile strength",
    "mouth_open": "how open the mouth is",
    "blink_left": "closure of the left eye",
    "blink_right": "closure of the right eye",
    "brow_raise": "brows raised (surprise)",
}

COLOR_FIELDS: dict[str, str] = {
    "skin_color": "skin, sRGB",
    "hair_color": "hair, sRGB",
    "iris_color": "iris, sRGB",
    "lip_color": "lips, sRGB",
    "brow_color": "eyebrows, sRGB",
}

_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")


class ParamsError(ValueError):
    """A params record is invalid; `field` names the offending field ('' for the whole record)."""

    def __init__(self, field_name: str, message: str):
        self.field = field_name
        super().__init__(f"{field_name}: {message}" if field_name else message)


def _copy_field(value: Any) -> Any:
    return dict(value) if isinstance(value, dict) else value


def _sliders(names: dict[str, str], default: float) -> dict[str, float]:
    return {name: default for name in names}


@dataclass
class AvatarParams:
    """Parameters of one chibi avatar.

    `shape` holds the `SHAPE_SLIDERS` (0..1, 0.5 neutral), `expression` the
    `EXPRESSION_SLIDERS` (0..1, 0 neutral), colours are "#rrggbb" sRGB,
    `hair_style` one of `HAIR_STYLES`, `hair_length` 0..1 (0 = shortest the
    style allows), `glasses` one of `GLASSES`, `name` the avatar's display name.
    """

    shape: dict[str, float] = field(default_factory=lambda: _sliders(SHAPE_SLIDERS, 0.5))
    expression: dict[str, float] = field(default_factory=lambda: _sliders(EXPRESSION_SLIDERS, 0.0))
    skin_color: str = "#f5d0b5"
    hair_color: str = "#4a3226"
    iris_color: str = "#5a3d2b"
    lip_color: str = "#d9827a"
    brow_color: str = "#3b281e"
    hair_style: str = "short"
    hair_length: float = 0.5
    glasses: str = "none"
    name: str = "Chibi"
    version: int = PARAMS_VERSION

    def __post_init__(self) -> None:
        self.validate()

    # -- validation -------------------------------------------------------
    def validate(self) -> None:
        if not isinstance(self.version, int) or isinstance(self.version, bool):
            raise ParamsError("version", f"must be an integer, got {self.version!r}")
        if self.version != PARAMS_VERSION:
            raise ParamsError(
                "version", f"unsupported version {self.version}, expected {PARAMS_VERSION}"
            )
        self.shape = _check_sliders("shape", self.shape, SHAPE_SLIDERS, 0.5)
        self.expression = _check_sliders("expression", self.expression, EXPRESSION_SLIDERS, 0.0)
        for name in COLOR_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, str) or not _HEX.match(value):
                raise ParamsError(name, f"must be an sRGB hex colour like '#a1b2c3', got {value!r}")
            setattr(self, name, value.lower())
        if self.hair_style not in HAIR_STYLES:
            raise ParamsError(
                "hair_style", f"unknown style {self.hair_style!r}; one of {', '.join(HAIR_STYLES)}"
            )
        self.hair_length = _check_unit("hair_length", self.hair_length)
        if self.glasses not in GLASSES:
            raise ParamsError("glasses", f"unknown value {self.glasses!r}; one of {GLASSES}")
        if not isinstance(self.name, str) or not 0 < len(self.name) <= 64:
            raise ParamsError("name", "must be a string of 1 to 64 characters")
        try:  # a lone surrogate ("\ud800" in JSON) has no UTF-8 form for the file's JSON
            self.name.encode("utf-8")
        except UnicodeEncodeError:
            raise ParamsError("name", "must be valid Unicode text (a lone surrogate)") from None

    # -- conversion ---------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        # what dataclasses.asdict gives, at a fifth of its cost (it deep-copies every float),
        # which the server pays on its event loop for each params request
        return {f.name: _copy_field(getattr(self, f.name)) for f in fields(self)}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    @classmethod
    def from_dict(cls, data: Any) -> AvatarParams:
        """Build from a JSON-like dict; missing fields take their defaults."""
        if not isinstance(data, dict):
            raise ParamsError("", f"params must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ParamsError(
                unknown[0], f"unknown field; known fields: {', '.join(sorted(known))}"
            )
        return cls(**data)

    @classmethod
    def from_json(cls, text: str | bytes) -> AvatarParams:
        try:
            data = json.loads(text)
        # ValueError: JSONDecodeError, UnicodeDecodeError, an integer over Python's 4300
        # digits; RecursionError: arrays nested thousands deep
        except (ValueError, RecursionError) as exc:
            raise ParamsError("", f"malformed JSON: {str(exc)[:200]}") from None
        return cls.from_dict(data)

    def color_rgb(self, name: str) -> tuple[float, float, float]:
        """A colour field as sRGB floats in [0, 1]."""
        return hex_to_rgb(getattr(self, name))


def hex_to_rgb(value: str) -> tuple[float, float, float]:
    """'#rrggbb' -> sRGB floats in [0, 1]."""
    return tuple(int(value[i : i + 2], 16) / 255.0 for i in (1, 3, 5))  # type: ignore[return-value]


def hex_to_lab(value: str) -> np.ndarray:
    """'#rrggbb' -> CIELab (3,) (D65)."""
    from skimage.color import rgb2lab

    return rgb2lab(np.array(hex_to_rgb(value))[None, None])[0, 0]


def hex_delta_e(a: str, b: str) -> float:
    """CIEDE2000 between two '#rrggbb' colours."""
    from skimage.color import deltaE_ciede2000

    return float(deltaE_ciede2000(hex_to_lab(a), hex_to_lab(b)))


def rgb_to_hex(rgb: Any) -> str:
    """sRGB floats in [0, 1] (3,) -> '#rrggbb' (values are clipped)."""
    r, g, b = (min(255, max(0, round(float(c) * 255))) for c in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


def srgb_to_linear(srgb: Any) -> np.ndarray:
    """sRGB values in [0, 1] (any shape) -> linear light (the sRGB transfer curve)."""
    c = np.asarray(srgb, np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(linear: Any) -> np.ndarray:
    """Linear light (any shape, clipped to [0, 1]) -> sRGB values in [0, 1]."""
    c = np.clip(np.asarray(linear, np.float64), 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)


def _check_unit(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParamsError(name, f"must be a number in [0, 1], got {value!r}")
    try:
        value = float(value)
    except OverflowError:  # an integer of hundreds of digits
        raise ParamsError(name, "must be in [0, 1], got a number too large") from None
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ParamsError(name, f"must be in [0, 1], got {value}")
    return value


def _check_sliders(
    group: str, values: Any, names: dict[str, str], default: float
) -> dict[str, float]:
    if not isinstance(values, dict):
        raise ParamsError(group, f"must be an object of sliders, got {type(values).__name__}")
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ParamsError(f"{group}.{unknown[0]}", f"unknown slider; known: {', '.join(names)}")
    return {name: _check_unit(f"{group}.{name}", values.get(name, default)) for name in names}
