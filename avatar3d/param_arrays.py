"""`AvatarParams` as arrays: the order of the sliders and colours the regressor predicts,
the training targets, and the way back to `AvatarParams`.

sliders (N, 23) float32 0..1 in `SLIDER_FIELDS` order (17 shape, 5 expression, then
hair_length); colors (N, 5, 3) float32 sRGB 0..1 in `COLOR_NAMES` order; the class
fields as indices into `CATEGORICAL_FIELDS`. Plain numpy: nothing here needs the
network (`regressor`) or torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .params import (
    COLOR_FIELDS,
    EXPRESSION_SLIDERS,
    GLASSES,
    HAIR_STYLES,
    SHAPE_SLIDERS,
    AvatarParams,
    hex_to_rgb,
    rgb_to_hex,
)

# The order of the slider head's outputs: dotted names as used in reports.
SLIDER_FIELDS: tuple[str, ...] = (
    tuple(f"shape.{n}" for n in SHAPE_SLIDERS)
    + tuple(f"expression.{n}" for n in EXPRESSION_SLIDERS)
    + ("hair_length",)
)
COLOR_NAMES: tuple[str, ...] = tuple(COLOR_FIELDS)
# The colour logits' columns among the raw outputs (after the sliders', before the classes').
COLOR_COLUMNS = slice(len(SLIDER_FIELDS), len(SLIDER_FIELDS) + 3 * len(COLOR_NAMES))
CATEGORICAL_FIELDS: dict[str, tuple[str, ...]] = {"hair_style": HAIR_STYLES, "glasses": GLASSES}
# Slider pairs that swap when the image is mirrored (the subject's left becomes right).
MIRRORED_SLIDERS: tuple[tuple[str, str], ...] = (
    ("expression.blink_left", "expression.blink_right"),
)
# Slider index permutation that mirrors a prediction or a label (left/right fields swapped).
SLIDER_MIRROR = list(range(len(SLIDER_FIELDS)))
for _a, _b in MIRRORED_SLIDERS:
    _i, _j = SLIDER_FIELDS.index(_a), SLIDER_FIELDS.index(_b)
    SLIDER_MIRROR[_i], SLIDER_MIRROR[_j] = _j, _i


@dataclass
class Prediction:
    """Raw CNN output for one face: sliders (23,), colors (5, 3) sRGB, class probabilities."""

    sliders: np.ndarray
    colors: np.ndarray
    hair_style_probs: np.ndarray
    glasses_probs: np.ndarray

    def to_params(self, name: str = "Chibi") -> AvatarParams:
        return decode_params(
            self.sliders, self.colors,
            int(self.hair_style_probs.argmax()), int(self.glasses_probs.argmax()), name,
        )  # fmt: skip


@dataclass
class ParamTargets:
    """A batch of AvatarParams as arrays (the training targets / decoded predictions).

    sliders (N, 23) float32 0..1 in `SLIDER_FIELDS` order; colors (N, 5, 3) float32 sRGB
    0..1 in `COLOR_NAMES` order; hair_style (N,) int64; glasses (N,) int64.
    """

    sliders: np.ndarray
    colors: np.ndarray
    hair_style: np.ndarray
    glasses: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.sliders)


def encode_params(params_list: list[AvatarParams]) -> ParamTargets:
    """AvatarParams (N of them) -> ParamTargets arrays."""
    sliders = np.array([slider_vector(p) for p in params_list], np.float32).reshape(
        -1, len(SLIDER_FIELDS)
    )
    colors = np.array(
        [[p.color_rgb(name) for name in COLOR_NAMES] for p in params_list], np.float32
    ).reshape(-1, len(COLOR_NAMES), 3)
    hair = np.array([HAIR_STYLES.index(p.hair_style) for p in params_list], np.int64)
    glasses = np.array([GLASSES.index(p.glasses) for p in params_list], np.int64)
    return ParamTargets(sliders, colors, hair, glasses)


def slider_vector(params: AvatarParams) -> list[float]:
    """The 23 slider values of one AvatarParams in `SLIDER_FIELDS` order."""
    return (
        [params.shape[n] for n in SHAPE_SLIDERS]
        + [params.expression[n] for n in EXPRESSION_SLIDERS]
        + [params.hair_length]
    )


def decode_params(
    sliders: np.ndarray, colors: np.ndarray, hair_style: int, glasses: int, name: str = "Chibi"
) -> AvatarParams:
    """One prediction (sliders (23,), colors (5, 3) sRGB, class indices) -> AvatarParams."""
    values = np.clip(np.asarray(sliders, np.float64), 0.0, 1.0)
    n_shape = len(SHAPE_SLIDERS)
    n_expr = len(EXPRESSION_SLIDERS)
    return AvatarParams(
        shape={k: round(float(v), 4) for k, v in zip(SHAPE_SLIDERS, values[:n_shape], strict=True)},
        expression={
            k: round(float(v), 4)
            for k, v in zip(EXPRESSION_SLIDERS, values[n_shape : n_shape + n_expr], strict=True)
        },
        hair_length=round(float(values[n_shape + n_expr]), 4),
        **{c: rgb_to_hex(rgb) for c, rgb in zip(COLOR_NAMES, np.asarray(colors), strict=True)},
        hair_style=HAIR_STYLES[int(hair_style)],
        glasses=GLASSES[int(glasses)],
        name=name,
    )


def teacher_targets(
    records: list[dict[str, Any]], measured_only: bool = False
) -> tuple[ParamTargets, np.ndarray, np.ndarray]:
    """Teacher label records -> targets plus slider/colour masks.

    A record is {"shape": {name: value}, "expression": {...}, "colors": {field: "#hex"},
    "confidence": float or {field: float}, "hidden": [field], "skin_scale": [field]};
    fields it lacks get mask 0. The masks are the photo path's confidences (`fusion.fuse`),
    where a field a cover hid holds its default, sure. With `measured_only` (training
    labels) the fields the teacher did not measure get mask 0 too: those a cover hid and
    the colours guessed from the skin scale (`TeacherLabels.hidden`, `.skin_scale`); a
    network trained on them would learn the guesses, not the faces. The hair length gets
    mask 0 too where the teacher read a hair style (`TeacherLabels.hair_style`): that
    length is the style's, and the labels carry no style.
    """
    n = len(records)
    sliders = np.full((n, len(SLIDER_FIELDS)), 0.5, np.float32)
    slider_mask = np.zeros_like(sliders)
    colors = np.full((n, len(COLOR_NAMES), 3), 0.5, np.float32)
    color_mask = np.zeros((n, len(COLOR_NAMES)), np.float32)
    for i, record in enumerate(records):
        confidence = record.get("confidence", 1.0)
        unmeasured = set()
        if measured_only:
            unmeasured = set(record.get("hidden", ())) | set(record.get("skin_scale", ()))
            if record.get("hair_style"):
                unmeasured.add("hair_length")
        for j, dotted in enumerate(SLIDER_FIELDS):
            group, _, name = dotted.rpartition(".")
            value = record.get(group, {}).get(name) if group else record.get(name)
            if value is not None and dotted not in unmeasured:
                sliders[i, j] = float(value)
                slider_mask[i, j] = _field_confidence(confidence, dotted)
        for j, name in enumerate(COLOR_NAMES):
            value = record.get("colors", {}).get(name)
            if value is not None and name not in unmeasured:
                colors[i, j] = hex_to_rgb(value) if isinstance(value, str) else value
                color_mask[i, j] = _field_confidence(confidence, name)
    zeros = np.zeros(n, np.int64)
    return ParamTargets(sliders, colors, zeros, zeros.copy()), slider_mask, color_mask


def _field_confidence(confidence: Any, name: str) -> float:
    if isinstance(confidence, dict):
        return float(confidence.get(name, confidence.get(name.rpartition(".")[2], 1.0)))
    return float(confidence)
