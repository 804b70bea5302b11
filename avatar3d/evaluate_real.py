"""`chibi eval` on real photos: what each source reads on the sample photos and
their perturbed copies, and what that says.

The photos are those installed packages ship and those `sample_photos` fetched. Each is
read as it is and under `PERTURBATIONS` (horizontal flip, mirrored fields swapped back;
+-20 % brightness; 0.8x / 1.2x scale; JPEG quality 50). From the readings: the CNN's
agreement with the teacher (the yardstick on real photos) and the teacher's own noise
(`real_field_errors`, the evidence for the fusion table), the stability of the final
params (`stability`), how far one person's params move between photos of them
(`same_person_spread`) and how often the class heads name the annotated photos right
(`class_accuracy_real`). Units: sliders 0..1, colours dE2000, or the largest sRGB
channel change (0..1) where the docstring says so.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .evaluate import delta_e
from .fusion import (
    DEFAULT_COLORS,
    DEFAULT_SLIDERS,
    FUSION_FIELDS,
    HAIR_LENGTH,
    FusionTable,
    fuse_arrays,
    fuse_glasses,
    likelier_frame,
    teacher_hair_style,
)
from .param_arrays import SLIDER_MIRROR

# What is known for certain about the sample photos (used to check the class heads):
# per field, every answer that is right. Grace Hopper wears browline frames, angular
# above: the nearest of GLASSES is "square"; her cap hides all but short hair at the
# sides (a bun could be under it). The astronaut's hair is cut above the ears.
REAL_ANNOTATIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "astronaut": {"glasses": ("none",), "hair_style": ("short",)},
    "grace_hopper": {"glasses": ("square",), "hair_style": ("short", "bun")},
    "cameraman": {"glasses": ("none",)},
    **{
        name: {"glasses": ("none",), "hair_style": ("short",)}
        for name in ("obama", "obama_speaking", "obama_standing", "biden")
    },
}


def real_photos() -> list[tuple[str, bytes]]:
    """(name, encoded bytes) of the face photos installed packages ship, and of those
    `sample_photos` fetched (`make photos`)."""
    from PIL import Image
    from skimage import data

    from .sample_photos import installed as installed_sample_photos

    photos = []
    for name, loader in (("astronaut", data.astronaut), ("cameraman", data.camera)):
        buffer = io.BytesIO()
        Image.fromarray(np.asarray(loader())).save(buffer, "PNG")
        photos.append((name, buffer.getvalue()))
    try:
        import matplotlib.cbook

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:
            photos.append(("grace_hopper", handle.read()))
    except (ImportError, OSError, ValueError):
        pass
    return photos + installed_sample_photos()


def real_faces(
    names: Collection[str] | None = None, log: Callable[[str], None] = print
) -> Iterator[tuple[str, np.ndarray, Any]]:
    """(name, (H, W, 3) uint8 RGB, its largest `face.FaceObservation`) for each sample
    photo (of `names`, if given) FaceMesh reads; the others are logged as skipped."""
    from .errors import ChibiError
    from .face import thread_analyzer
    from .imageio import decode_image

    for name, data in real_photos():
        if names and name not in names:
            continue
        rgb = decode_image(data)
        try:
            face = thread_analyzer().analyze(rgb)[0]
        except ChibiError as exc:
            log(f"{name}: skipped ({exc.code})")
            continue
        yield name, rgb, face


PERTURBATIONS = ("flip", "brighter_20", "darker_20", "scale_0.8", "scale_1.2", "jpeg_50")
# The two that change the photo's exposure, which the colours follow (docs/quality.md,
# "Stability"); `stability` also reports every field without them.
EXPOSURE_PERTURBATIONS = ("brighter_20", "darker_20")


def perturb(rgb: np.ndarray, kind: str) -> bytes:
    """Encode a perturbed copy of (H, W, 3) uint8 `rgb` (PNG, or JPEG for jpeg_50)."""
    from PIL import Image

    image = Image.fromarray(rgb)
    quality = None
    if kind == "flip":
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    elif kind.startswith(("brighter", "darker")):
        gain = 1.2 if kind.startswith("brighter") else 0.8
        image = Image.fromarray(np.clip(rgb.astype(np.float32) * gain, 0, 255).astype(np.uint8))
    elif kind.startswith("scale"):
        factor = float(kind.split("_")[1])
        size = (round(image.width * factor), round(image.height * factor))
        image = image.resize(size, Image.Resampling.LANCZOS)
    elif kind == "jpeg_50":
        quality = 50
    buffer = io.BytesIO()
    image.save(buffer, "JPEG" if quality else "PNG", **({"quality": quality} if quality else {}))
    return buffer.getvalue()


@dataclass
class FaceReading:
    """What each source said about one face, as arrays (sliders (23,), colours (5, 3))."""

    cnn_sliders: np.ndarray
    cnn_colors: np.ndarray
    teacher_sliders: np.ndarray
    teacher_slider_conf: np.ndarray
    teacher_colors: np.ndarray
    teacher_color_conf: np.ndarray
    hair_style: int
    glasses: int
    glasses_probs: np.ndarray
    teacher_glasses: np.ndarray  # (1,) 1 = a frame seen
    teacher_glasses_conf: np.ndarray  # (1,)
    extra: dict[str, Any] = field(default_factory=dict)
    teacher_hair_style: str | None = None  # `TeacherLabels.hair_style`


def read_face(pipeline: Any, data: bytes, flipped: bool = False) -> FaceReading:
    """Run the pipeline's CNN and teacher on the largest face (flip-corrected when flipped)."""
    from .fusion import teacher_glasses, teacher_record
    from .param_arrays import teacher_targets

    result = pipeline.analyze(data)[0]
    record = teacher_record(result.teacher)
    targets, slider_conf, color_conf = teacher_targets([record])
    reading = FaceReading(
        result.prediction.sliders.copy(),
        result.prediction.colors.copy(),
        targets.sliders[0],
        slider_conf[0],
        targets.colors[0],
        color_conf[0],
        int(result.prediction.hair_style_probs.argmax()),
        int(result.prediction.glasses_probs.argmax()),
        result.prediction.glasses_probs.copy(),
        *teacher_glasses([record]),
        teacher_hair_style=record.get("hair_style"),
    )
    if flipped:
        reading.cnn_sliders = reading.cnn_sliders[SLIDER_MIRROR]
        reading.teacher_sliders = reading.teacher_sliders[SLIDER_MIRROR]
        reading.teacher_slider_conf = reading.teacher_slider_conf[SLIDER_MIRROR]
    return reading


def evaluate_real(pipeline: Any, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Agreement with the teacher, the teacher's own noise, and the fusion evidence."""
    from .imageio import decode_image
    from .sample_photos import PHOTOS

    photos = real_photos()
    if log and not any(name in PHOTOS for name, _ in photos):
        log("  the White House photos are not fetched (`make photos`): fewer real faces")
    readings: dict[str, dict[str, FaceReading]] = {}
    for name, data in photos:
        try:
            base = read_face(pipeline, data)
        except Exception as exc:  # noqa: BLE001 - a photo without a usable face is reported
            if log:
                log(f"  {name}: skipped ({getattr(exc, 'code', exc)})")
            continue
        rgb = decode_image(data)
        readings[name] = {"original": base}
        for kind in PERTURBATIONS:
            try:
                readings[name][kind] = read_face(pipeline, perturb(rgb, kind), kind == "flip")
            except Exception as exc:  # noqa: BLE001
                if log:
                    log(f"  {name} {kind}: no face ({getattr(exc, 'code', exc)})")
    return {"photos": list(readings), "readings": readings}


def real_field_errors(readings: dict[str, dict[str, FaceReading]]) -> dict[str, dict[str, float]]:
    """Per field: CNN vs teacher on the originals ('agreement'), CNN vs the original's
    teacher over all variants ('cnn'), the neutral default vs the same ('default'),
    teacher variants vs the original ('teacher')."""
    agree, cnn, default, teacher = [], [], [], []
    for variants in readings.values():
        ref = variants["original"]
        ref_ok = np.concatenate([ref.teacher_slider_conf, ref.teacher_color_conf]) > 0
        agree.append(_diff(ref.cnn_sliders, ref.cnn_colors, ref, ref_ok))
        # as often as the CNN's rows, so both weigh the photos alike
        default += [_diff(DEFAULT_SLIDERS, DEFAULT_COLORS, ref, ref_ok)] * len(variants)
        for kind, reading in variants.items():
            cnn.append(_diff(reading.cnn_sliders, reading.cnn_colors, ref, ref_ok))
            if kind != "original":
                teacher.append(_diff(reading.teacher_sliders, reading.teacher_colors, ref, ref_ok))

    def mean(rows: list[np.ndarray]) -> dict[str, float]:
        if not rows:
            return {name: float("nan") for name in FUSION_FIELDS}
        stacked = np.stack(rows)
        with warnings.catch_warnings():  # fields no photo measured stay NaN, quietly
            warnings.simplefilter("ignore", RuntimeWarning)
            values = np.nanmean(stacked, axis=0)
        return dict(zip(FUSION_FIELDS, map(float, values), strict=True))

    return {
        "agreement": mean(agree),
        "cnn": mean(cnn),
        "default": mean(default),
        "teacher": mean(teacher),
    }


def _diff(sliders: np.ndarray, colors: np.ndarray, ref: FaceReading, ok: np.ndarray) -> np.ndarray:
    """(28,) per-field differences to the reference teacher labels, NaN where unmeasured."""
    d = np.concatenate([np.abs(sliders - ref.teacher_sliders), delta_e(colors, ref.teacher_colors)])
    return np.where(ok, d, np.nan)


def stability(
    readings: dict[str, dict[str, FaceReading]], table: FusionTable
) -> dict[str, dict[str, float]]:
    """Max change of each fused field under the perturbations, over all photos.

    Sliders in slider units, colours as the largest sRGB channel change (0..1);
    'fused_without_exposure': the same without `EXPOSURE_PERTURBATIONS`; also
    'class_changes': how many variants changed the final hair style or glasses."""
    worst = {
        key: np.zeros(len(FUSION_FIELDS)) for key in ("fused", "cnn", "fused_without_exposure")
    }
    worst_kind = np.array([""] * len(FUSION_FIELDS), dtype=object)
    class_changes = 0
    for variants in readings.values():
        base = _fused(variants["original"], table)
        base_cnn = (variants["original"].cnn_sliders, variants["original"].cnn_colors)
        for kind, reading in variants.items():
            if kind == "original":
                continue
            for key, (s0, c0), (s1, c1) in (
                ("fused", base, _fused(reading, table)),
                ("cnn", base_cnn, (reading.cnn_sliders, reading.cnn_colors)),
            ):
                change = np.concatenate([np.abs(s1 - s0), np.abs(c1 - c0).max(axis=1)])
                if key == "fused":
                    worst_kind[change > worst[key]] = kind
                    if kind not in EXPOSURE_PERTURBATIONS:
                        worst["fused_without_exposure"] = np.maximum(
                            worst["fused_without_exposure"], change
                        )
                worst[key] = np.maximum(worst[key], change)
            ref = variants["original"]
            class_changes += int(_classes(reading, table) != _classes(ref, table))
    out = {k: dict(zip(FUSION_FIELDS, map(float, v), strict=True)) for k, v in worst.items()}
    out["class_changes"] = {"count": float(class_changes)}
    out["worst_under"] = dict(zip(FUSION_FIELDS, worst_kind.tolist(), strict=True))
    return out


def same_person_spread(
    readings: dict[str, dict[str, FaceReading]], table: FusionTable
) -> dict[str, Any]:
    """How far one person's final params move between different photos of them
    (`sample_photos.PERSON`: Obama grinning, speaking, standing), per field: the largest
    change between any two of the photos, in `stability`'s units. Expressions are left
    out (they are meant to follow the photo); so are people with fewer than two photos."""
    from .sample_photos import PERSON

    photos: dict[str, list[str]] = {}
    for photo in readings:
        if photo in PERSON:
            photos.setdefault(PERSON[photo], []).append(photo)
    photos = {person: names for person, names in photos.items() if len(names) >= 2}
    worst = {"fused": np.zeros(len(FUSION_FIELDS)), "cnn": np.zeros(len(FUSION_FIELDS))}
    for names in photos.values():
        faces = [readings[name]["original"] for name in names]
        fused = [_fused(face, table) for face in faces]
        cnn = [(face.cnn_sliders, face.cnn_colors) for face in faces]
        for key, values in (("fused", fused), ("cnn", cnn)):
            sliders = np.stack([v[0] for v in values])
            colors = np.stack([v[1] for v in values])
            spread = np.concatenate([np.ptp(sliders, axis=0), np.ptp(colors, axis=0).max(axis=1)])
            worst[key] = np.maximum(worst[key], spread)
    out: dict[str, Any] = {
        key: {
            name: float(value)
            for name, value in zip(FUSION_FIELDS, values, strict=True)
            if not name.startswith("expression.")
        }
        for key, values in worst.items()
    }
    out["photos"] = photos
    return out


def _fused(reading: FaceReading, table: FusionTable) -> tuple[np.ndarray, np.ndarray]:
    s, c = fuse_arrays(
        reading.cnn_sliders[None],
        reading.cnn_colors[None],
        reading.teacher_sliders[None],
        reading.teacher_slider_conf[None],
        reading.teacher_colors[None],
        reading.teacher_color_conf[None],
        table,
    )
    return s[0], c[0]


def _classes(reading: FaceReading, table: FusionTable) -> tuple[int | str, int]:
    """The final (hair style, glasses) of a reading: the teacher's style where the photo
    path takes it, else the CNN's or 'default'; the glasses index the table's source gives."""
    hair = reading.hair_style if table.source("hair_style") == "cnn" else "default"
    conf = reading.teacher_slider_conf[HAIR_LENGTH]
    hair = teacher_hair_style(reading.teacher_hair_style, conf, table) or hair
    return hair, _reading_glasses(reading, table)


def _reading_glasses(reading: Any, table: FusionTable) -> int:
    probs = reading.glasses_probs[None]
    return int(fuse_glasses(probs, reading.teacher_glasses, reading.teacher_glasses_conf, table)[0])


def class_accuracy_real(readings: dict[str, dict[str, FaceReading]]) -> dict[str, float]:
    """Accuracy on the annotated sample photos (all variants) of the CNN's class heads
    ('hair_style', 'glasses'), of its likelier frame on the photos annotated with one
    ('glasses_frame'), and ('glasses_teacher') of the teacher's frame-or-none reading:
    a frame where the photo has one, none where it has none (NaN: no photo to judge)."""
    from .params import GLASSES, HAIR_STYLES

    teacher_only = FusionTable({"glasses": "teacher"})

    def frame_shape(reading: FaceReading, right: tuple[str, ...]) -> bool | None:
        if "none" in right:  # nothing to judge a frame's shape on
            return None
        return GLASSES[int(likelier_frame(reading.glasses_probs[None])[0])] in right

    def frame_or_none(reading: FaceReading, right: tuple[str, ...]) -> bool:
        return (_reading_glasses(reading, teacher_only) > 0) == ("none" not in right)

    judges = {  # key -> (annotated field, judge of one reading against the annotation)
        "hair_style": ("hair_style", lambda r, right: HAIR_STYLES[r.hair_style] in right),
        "glasses": ("glasses", lambda r, right: GLASSES[r.glasses] in right),
        "glasses_frame": ("glasses", frame_shape),
        "glasses_teacher": ("glasses", frame_or_none),
    }
    out = {}
    for key, (name, judge) in judges.items():
        hits = [
            judge(reading, REAL_ANNOTATIONS[photo][name])
            for photo, variants in readings.items()
            if name in REAL_ANNOTATIONS.get(photo, {})
            for reading in variants.values()
        ]
        hits = [hit for hit in hits if hit is not None]
        out[key] = float(np.mean(hits)) if hits else float("nan")
    return out
