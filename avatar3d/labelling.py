"""Real photos as training data: `chibi label DIR` measures every face with the landmark
teacher, and `chibi train --real FILE` reads those labels back beside their crops.

Only derived labels are written (no pixels); the crops are made again from the photos
when training and stay in memory.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .param_arrays import teacher_targets
from .photo_formats import PHOTO_SUFFIXES
from .training import TrainingSet


def label_folder(
    folder: str | Path, all_faces: bool = False, log: Callable[[str], None] | None = None
) -> list[dict[str, Any]]:
    """Teacher labels for every photo in `folder` (sorted, recursive).

    Returns records {"path", "face", "labels": `fusion.teacher_record`'s dict (shape,
    expression, colors, confidence, glasses, hidden, skin_scale, white_balanced)};
    photos without a usable face are skipped with their error code in the log.
    Only derived labels are returned: no pixels.
    """
    from .errors import ChibiError
    from .face import analyze_image
    from .fusion import teacher_record
    from .imageio import read_photo_file
    from .teacher import measure

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no such folder: {folder}")
    records = []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES):
        try:
            rgb, faces = analyze_image(read_photo_file(path), all_faces=all_faces)
        except ChibiError as exc:
            if log:
                log(f"skip {path.name}: {exc.code}")
            continue
        for index, face in enumerate(faces):
            labels = measure(rgb, face)
            records.append(
                {"path": str(path.resolve()), "face": index, "labels": teacher_record(labels)}
            )
    return records


def load_labelled(path: str | Path, log: Callable[[str], None] | None = None) -> TrainingSet:
    """A `chibi label` file -> TrainingSet: each photo is analysed again for its crop
    (kept in memory only), labels come from the file, unmeasured fields are masked."""
    from .errors import ChibiError
    from .face import analyze_image
    from .imageio import read_photo_file

    records, crops = [], []
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read the labels file {path}: {exc}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            photo, face_index, labels = record["path"], record["face"], record["labels"]
            if not (isinstance(photo, str) and isinstance(labels, dict)):
                raise TypeError
            if not (isinstance(face_index, int) and face_index >= 0):
                raise ValueError
        except (KeyError, TypeError, ValueError, RecursionError):  # JSONDecodeError too
            raise ValueError(f"{path}:{number}: not a `chibi label` record") from None
        try:
            _, faces = analyze_image(read_photo_file(photo), all_faces=face_index > 0)
        except ChibiError as exc:
            if log:
                log(f"skip {Path(photo).name}: {exc.code}")
            continue
        if face_index < len(faces):
            crops.append(faces[face_index].crop)
            records.append(labels)
    if not records:
        raise ValueError(f"{path}: no usable labelled faces")
    targets, slider_mask, color_mask = teacher_targets(records, measured_only=True)
    return TrainingSet(
        np.stack(crops), targets, slider_mask, color_mask, np.zeros(len(crops), np.float32),
        "teacher",
    )  # fmt: skip
