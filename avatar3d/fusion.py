"""Fusing the CNN's prediction with the landmark/colour teacher, field by field.

A `FusionTable` names, for every field, the source the final params take it from:
- "teacher": the landmark/colour measurement (when its confidence for this face is at
  least `min_confidence`; otherwise the CNN's value, or the default where the CNN does
  no better than the default on synthetic renders or is further from the teacher than
  the default on the real photos: evidence 'cnn_informative');
- "cnn": ChibiNet's prediction;
- "default": the neutral `AvatarParams` default, for fields no source measures
  reliably (better a neutral chibi than a confident wrong guess).
Each choice comes with its evidence. `chibi eval` measures it: on real photos the
teacher is the yardstick (landmark geometry is exact; its own error is its change
under flips, exposure, scale and JPEG); the CNN may only beat the teacher on a field
where its synthetic error meets the goal, and fills in for a missing teacher only
where it beats the default, on the renders and on the real photos; the class heads
(hair style, glasses) are used only where they are accurate on synthetic renders and
right on the annotated sample photos.
Glasses may also come from the teacher, which sees whether a frame crosses the nose
(`teacher_glasses`): then a face without one gets "none", an unsure reading the
default, and a face with one a frame whose shape is a decision of its own
("glasses_frame"): the CNN's likelier frame where that passes the class heads' rule
on the renders and photos with a frame, else `UNKNOWN_FRAME`. Two decisions rather
than one, so a frame shape misread on one photo costs the shape, not the glasses.
The same rule lets the teacher's frame-or-none reading in.
The table shipped next to the weights is the result.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .model_files import WEIGHTS_DIR
from .param_arrays import COLOR_NAMES, SLIDER_FIELDS, Prediction, decode_params, encode_params
from .params import GLASSES, HAIR_STYLES, UNKNOWN_FRAME, AvatarParams

FUSION_FIELDS: tuple[str, ...] = SLIDER_FIELDS + COLOR_NAMES
HAIR_LENGTH = SLIDER_FIELDS.index("hair_length")
# Class decisions: the two class fields, and the frame's shape where the teacher's
# reading decides whether there is one.
CLASS_FIELDS: tuple[str, ...] = ("hair_style", "glasses", "glasses_frame")
SOURCES = ("teacher", "cnn", "default")

_DEFAULTS = encode_params([AvatarParams()])
DEFAULT_SLIDERS: np.ndarray = _DEFAULTS.sliders[0]  # (23,)
DEFAULT_COLORS: np.ndarray = _DEFAULTS.colors[0]  # (5, 3)


@dataclass
class FusionTable:
    """field -> 'teacher' | 'cnn' | 'default', and why.

    evidence: field -> {"cnn": error, "teacher": error, "unit": "slider"|"dE2000"|
    "accuracy", "basis": where it was measured, ...}.
    """

    choices: dict[str, str] = field(default_factory=dict)
    evidence: dict[str, dict[str, Any]] = field(default_factory=dict)
    min_confidence: float = 0.3

    @classmethod
    def teacher_first(cls) -> FusionTable:
        """The prior before any measurement: landmark geometry and colour samples win,
        the CNN supplies what the teacher does not measure; the class heads stay unused
        (the default hair style and glasses) until `chibi eval` finds them right."""
        return cls({name: "teacher" for name in FUSION_FIELDS})

    @classmethod
    def from_errors(
        cls,
        cnn: dict[str, float],
        teacher: dict[str, float],
        basis: dict[str, str],
        cnn_qualified: set[str] | None = None,
        cnn_informative: set[str] | None = None,
        default: dict[str, float] | None = None,
    ) -> FusionTable:
        """Per slider/colour field, the source with the smaller measured error (teacher
        on ties).

        cnn_qualified: when given, the CNN may only beat the teacher on these fields
        (e.g. where its synthetic error meets the goal), so a CNN that happens to sit
        near the teacher on a handful of photos never wins by luck.
        cnn_informative: when given, the CNN fills in for a missing or unsure teacher
        only on these fields (e.g. where it beats always answering the default);
        elsewhere the default does.
        default: the default's error on the same basis, kept as evidence.
        """
        choices, evidence = {}, {}
        for name in FUSION_FIELDS:
            c, t = _finite(cnn.get(name)), _finite(teacher.get(name))
            qualified = cnn_qualified is None or name in cnn_qualified
            informative = cnn_informative is None or name in cnn_informative
            if t is None:  # nothing to compare on real photos: the renders decide
                choices[name] = "cnn" if informative else "default"
            elif c is None or not qualified:
                choices[name] = "teacher"
            else:
                choices[name] = "cnn" if c < t else "teacher"
            d = _finite((default or {}).get(name))
            evidence[name] = {
                "cnn": None if c is None else round(c, 4),
                "teacher": None if t is None else round(t, 4),
                "default": None if d is None else round(d, 4),
                "unit": "dE2000" if name in COLOR_NAMES else "slider",
                "basis": basis.get(name, ""),
                "cnn_qualified": qualified,
                "cnn_informative": informative,
            }
        return cls(choices, evidence)

    def source(self, name: str) -> str:
        """The field's source; a class field the table leaves out takes the default,
        since only a measurement (`evaluate.fusion_from_real`) lets a class head in."""
        return self.choices.get(name, "default" if name in CLASS_FIELDS else "teacher")

    def stand_in(self, name: str) -> str:
        """Who stands in for the teacher on a field where it is missing or unsure: 'cnn',
        or 'default' where the evidence says the CNN does no better (`cnn_informative`)."""
        return "cnn" if self.evidence.get(name, {}).get("cnn_informative", True) else "default"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FusionTable:
        choices = dict(data.get("choices", {}))
        bad = {k: v for k, v in choices.items() if v not in SOURCES}
        if bad:
            raise ValueError(f"unknown fusion sources {bad}; known: {SOURCES}")
        return cls(choices, dict(data.get("evidence", {})), float(data.get("min_confidence", 0.3)))

    def save(self, path: str | Path) -> None:
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> FusionTable:
        return cls.from_dict(json.loads(Path(path).read_text()))


def _finite(value: Any) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def fusion_path(model_name: str, weights_dir: str | Path | None = None) -> Path:
    return Path(weights_dir or WEIGHTS_DIR) / f"{model_name}.fusion.json"


def load_fusion_table(model_name: str, weights_dir: str | Path | None = None) -> FusionTable:
    """The measured table shipped for a model, or the teacher-first prior when none exists."""
    path = fusion_path(model_name, weights_dir)
    return FusionTable.load(path) if path.exists() else FusionTable.teacher_first()


def teacher_record(labels: Any) -> dict[str, Any]:
    """TeacherLabels (dataclass or dict) -> plain dict with shape/expression/colors/confidence."""
    if labels is None:
        return {}
    if isinstance(labels, dict):
        return labels
    return {
        "shape": dict(getattr(labels, "shape", {}) or {}),
        "expression": dict(getattr(labels, "expression", {}) or {}),
        "colors": dict(getattr(labels, "colors", {}) or {}),
        "confidence": getattr(labels, "confidence", 1.0),
        "glasses": bool(getattr(labels, "glasses", False)),
        "hidden": list(getattr(labels, "hidden", ())),
        "skin_scale": list(getattr(labels, "skin_scale", ())),
        "white_balanced": bool(getattr(labels, "white_balanced", False)),
        "hair_length": float(getattr(labels, "hair_length", 0.5)),
        "hair_style": getattr(labels, "hair_style", None),
    }


def teacher_hair_style(
    style: str | None, hair_length_confidence: float, table: FusionTable
) -> str | None:
    """The hair style the teacher read (`TeacherLabels.hair_style`, or None) where the
    photo path takes it: with the hair length it goes with, so only where the table
    takes hair_length from the teacher and that reading is sure enough."""
    if table.source("hair_length") != "teacher" or hair_length_confidence < table.min_confidence:
        return None
    return style


def teacher_glasses(records: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Teacher label records -> (N,) int64 1 where a frame was seen, and (N,) float32
    confidences (0 where a record has no glasses reading)."""
    seen, confidence = np.zeros(len(records), np.int64), np.zeros(len(records), np.float32)
    for i, record in enumerate(records):
        field_confidence = record.get("confidence")
        if "glasses" in record and isinstance(field_confidence, dict):
            seen[i] = bool(record["glasses"])
            confidence[i] = field_confidence.get("glasses", 0.0)
    return seen, confidence


def fuse_glasses(
    glasses_probs: np.ndarray, seen: np.ndarray, confidence: np.ndarray, table: FusionTable
) -> np.ndarray:
    """(N,) `GLASSES` indices: the CNN's (N, 3) probabilities, the teacher's frame
    readings (N,) and their confidences (N,), as the table's glasses source says (and,
    under the teacher's, its glasses_frame source)."""
    source = table.source("glasses")
    default = np.full(len(glasses_probs), _DEFAULTS.glasses[0], np.int64)
    if source == "cnn":
        return glasses_probs.argmax(axis=1).astype(np.int64)
    if source != "teacher":
        return default
    if table.source("glasses_frame") == "cnn":
        frame = likelier_frame(glasses_probs)
    else:
        frame = np.full(len(glasses_probs), GLASSES.index(UNKNOWN_FRAME), np.int64)
    sure = confidence >= table.min_confidence
    return np.where(sure, np.where(seen == 1, frame, 0), default).astype(np.int64)


def likelier_frame(glasses_probs: np.ndarray) -> np.ndarray:
    """(N, 3) glasses probabilities -> (N,) index of the likelier frame, never "none"."""
    return (1 + glasses_probs[:, 1:].argmax(axis=1)).astype(np.int64)


def fuse_arrays(
    cnn_sliders: np.ndarray,
    cnn_colors: np.ndarray,
    teacher_sliders: np.ndarray,
    teacher_slider_conf: np.ndarray,
    teacher_colors: np.ndarray,
    teacher_color_conf: np.ndarray,
    table: FusionTable,
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised fusion of N faces.

    cnn_sliders, teacher_sliders (N, 23); *_conf are the teacher's per-field
    confidences (N, 23) / (N, 5), 0 where it measured nothing; colours (N, 5, 3) sRGB.
    A 'teacher' field whose confidence is too low takes the CNN's value, unless the
    CNN is no better than the default there (evidence 'cnn_informative'): then the default.
    Returns fused (sliders (N, 23), colors (N, 5, 3)).
    """
    sliders = _fuse(
        cnn_sliders, teacher_sliders, teacher_slider_conf, DEFAULT_SLIDERS, SLIDER_FIELDS, table
    )
    colors = _fuse(
        cnn_colors,
        teacher_colors,
        teacher_color_conf[..., None],
        DEFAULT_COLORS,
        COLOR_NAMES,
        table,
    )
    return sliders.astype(np.float32), colors.astype(np.float32)


def _fuse(cnn, teacher, conf, default, names, table: FusionTable) -> np.ndarray:
    source = np.array([table.source(n) for n in names])
    cnn_ok = np.array([table.stand_in(n) == "cnn" for n in names])
    shape = (1, -1) + (1,) * (cnn.ndim - 2)
    fallback = np.where(cnn_ok.reshape(shape), cnn, default[None])
    use_teacher = (source == "teacher").reshape(shape) & (conf >= table.min_confidence)
    out = np.where((source == "teacher").reshape(shape), fallback, default[None])
    out = np.where(use_teacher, teacher, out)
    return np.where((source == "cnn").reshape(shape), cnn, out)


def fuse(
    prediction: Prediction, labels: Any, table: FusionTable, name: str = "Chibi"
) -> AvatarParams:
    """One face: the CNN's prediction and the teacher's labels (or None) -> AvatarParams."""
    from .param_arrays import teacher_targets

    record = teacher_record(labels)
    targets, slider_conf, color_conf = teacher_targets([record])
    sliders, colors = fuse_arrays(
        prediction.sliders[None],
        prediction.colors[None],
        targets.sliders,
        slider_conf,
        targets.colors,
        color_conf,
        table,
    )
    hair = int(prediction.hair_style_probs.argmax())
    if table.source("hair_style") != "cnn":
        hair = int(_DEFAULTS.hair_style[0])
    style = teacher_hair_style(record.get("hair_style"), slider_conf[0, HAIR_LENGTH], table)
    if style is not None:
        hair = HAIR_STYLES.index(style)
    seen, confidence = teacher_glasses([record])
    glasses = int(fuse_glasses(prediction.glasses_probs[None], seen, confidence, table)[0])
    return decode_params(sliders[0], colors[0], hair, glasses, name)
