"""Fusing the CNN's prediction with the landmark/colour teacher, field by field.

For every slider and colour the teacher can measure, a `FusionTable` names the
source that is more reliable, with the evidence (each source's error) that chose it.
`chibi eval` measures that evidence on real photos, where the teacher is the
yardstick (landmark geometry is exact; its own error is its instability under
flips, exposure, scale and JPEG), and on synthetic renders with known truth; the
table shipped next to the weights is the result. Fields the teacher does not
measure (hair style, glasses, hair length...) always come from the CNN, and so
does any field whose teacher confidence is below `min_confidence`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .params import AvatarParams
from .regressor import COLOR_NAMES, SLIDER_FIELDS, WEIGHTS_DIR, Prediction, decode_params

FUSION_FIELDS: tuple[str, ...] = SLIDER_FIELDS + COLOR_NAMES


@dataclass
class FusionTable:
    """field -> 'cnn' or 'teacher', and why.

    evidence: field -> {"cnn": error, "teacher": error, "unit": "slider"|"dE2000",
    "basis": where it was measured}; errors are mean absolute errors in that unit.
    """

    choices: dict[str, str] = field(default_factory=dict)
    evidence: dict[str, dict[str, Any]] = field(default_factory=dict)
    min_confidence: float = 0.3

    @classmethod
    def teacher_first(cls) -> FusionTable:
        """The prior before any measurement: landmark geometry and colour samples win."""
        return cls({name: "teacher" for name in FUSION_FIELDS})

    @classmethod
    def from_errors(
        cls,
        cnn: dict[str, float],
        teacher: dict[str, float],
        basis: dict[str, str],
        cnn_qualified: set[str] | None = None,
    ) -> FusionTable:
        """Pick, per field, the source with the smaller measured error (teacher on ties).

        cnn_qualified: when given, the CNN can only win the fields in it (e.g. those whose
        synthetic error meets its goal), so a CNN that happens to sit near the teacher
        on a handful of photos without actually measuring the field never wins.
        """
        choices, evidence = {}, {}
        for name in FUSION_FIELDS:
            c, t = cnn.get(name), teacher.get(name)
            if t is None or not np.isfinite(t):
                choices[name] = "cnn"
            elif c is None or not np.isfinite(c):
                choices[name] = "teacher"
            elif cnn_qualified is not None and name not in cnn_qualified:
                choices[name] = "teacher"
            else:
                choices[name] = "cnn" if c < t else "teacher"
            evidence[name] = {
                "cnn": None if c is None or not np.isfinite(c) else round(float(c), 4),
                "teacher": None if t is None or not np.isfinite(t) else round(float(t), 4),
                "unit": "dE2000" if name in COLOR_NAMES else "slider",
                "basis": basis.get(name, ""),
                "cnn_qualified": cnn_qualified is None or name in cnn_qualified,
            }
        return cls(choices, evidence)

    def source(self, name: str) -> str:
        return self.choices.get(name, "teacher")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FusionTable:
        return cls(
            dict(data.get("choices", {})),
            dict(data.get("evidence", {})),
            float(data.get("min_confidence", 0.3)),
        )

    def save(self, path: str | Path) -> None:
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> FusionTable:
        return cls.from_dict(json.loads(Path(path).read_text()))


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
    }


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
    Returns fused (sliders (N, 23), colors (N, 5, 3)).
    """
    want = np.array([table.source(n) == "teacher" for n in SLIDER_FIELDS])
    use = want[None, :] & (teacher_slider_conf >= table.min_confidence)
    sliders = np.where(use, teacher_sliders, cnn_sliders)
    want_c = np.array([table.source(n) == "teacher" for n in COLOR_NAMES])
    use_c = want_c[None, :] & (teacher_color_conf >= table.min_confidence)
    colors = np.where(use_c[..., None], teacher_colors, cnn_colors)
    return sliders.astype(np.float32), colors.astype(np.float32)


def fuse(
    prediction: Prediction, labels: Any, table: FusionTable, name: str = "Chibi"
) -> AvatarParams:
    """One face: the CNN's prediction and the teacher's labels (or None) -> AvatarParams."""
    from .training import teacher_targets

    record = teacher_record(labels)
    targets, slider_conf, color_conf = teacher_targets([record])
    sliders, colors = fuse_arrays(
        prediction.sliders[None], prediction.colors[None],
        targets.sliders, slider_conf, targets.colors, color_conf, table,
    )  # fmt: skip
    return decode_params(
        sliders[0], colors[0],
        int(prediction.hair_style_probs.argmax()), int(prediction.glasses_probs.argmax()), name,
    )  # fmt: skip
