"""`chibi eval`: how good the photo -> params half is, measured, with the goals beside.

Sections (all numbers are mean absolute errors unless said otherwise; sliders in
slider units 0..1, colours in CIEDE2000):
1. synthetic held-out renders (exact labels): CNN, teacher and fused error per field;
2. real photos the machine has (scikit-image's astronaut, matplotlib's Grace Hopper,
   scikit-image's cameraman, the White House photos of `sample_photos`): CNN agreement
   with the teacher, the yardstick on real photos, and the teacher's own noise (its
   change under the perturbations below);
   the fusion table is chosen from these;
3. stability of the final params under horizontal flip (mirrored fields swapped),
   +-20 % brightness, 0.8x / 1.2x scale and JPEG quality 50, and how far one person's
   params move between different photos of them;
4. fairness: skin colour error on synthetic faces tinted to each Monk Skin Tone, and
   the sample photos with their skin tinted to each (`tinted`).
Sections 2 and 3 are measured in `evaluate_real`; the fusion table is chosen here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from skimage.color import deltaE_ciede2000, lab2rgb, rgb2lab

from .fusion import (
    CLASS_FIELDS,
    DEFAULT_COLORS,
    DEFAULT_SLIDERS,
    FUSION_FIELDS,
    FusionTable,
    fuse_arrays,
    fuse_glasses,
    likelier_frame,
)
from .inference import Forward
from .param_arrays import COLOR_NAMES, SLIDER_FIELDS
from .params import hex_to_rgb

if TYPE_CHECKING:
    from .synth import SetSpec

SLIDER_GOAL = 0.05
COLOR_GOAL = 5.0  # dE2000
STABILITY_GOAL = 0.05  # slider units; colours: sRGB channel units 0..1
FAIRNESS_GOAL = 1.2  # worst swatch error / mean error
CLASS_GOAL = 0.9  # synthetic accuracy a class source needs before the pipeline uses it
INFORMATIVE = 0.8  # CNN error / always-the-default error below which the CNN may fill in
HELDOUT_AVATARS = 300
MST_FACES_PER_TONE = 384  # at 96 the ratio's 95 % interval over redraws spanned 1.12-1.28
CHANCE_SHUFFLES = 1000  # shuffles behind `chance_ratio`'s median
RATIO_RESAMPLES = 1000  # redraws of the faces behind `bootstrap_ratios`' interval


def heldout_spec() -> SetSpec:
    """The `synth.SetSpec` of the held-out renders section 1 scores (seed 1; the
    training draws seed 0, the Monk set seed 2, the refiners' renders seed 3)."""
    from .synth import SetSpec

    return SetSpec("heldout", HELDOUT_AVATARS, seed=1, teacher=True)


def delta_e(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """CIEDE2000 between sRGB colours (..., 3) 0..1 -> (...)."""
    return deltaE_ciede2000(rgb2lab(np.clip(a, 0, 1)), rgb2lab(np.clip(b, 0, 1)))


def lab_errors(read: np.ndarray, true: np.ndarray) -> np.ndarray:
    """CIE Lab of sRGB colours `read` minus that of `true` (..., 3) 0..1 -> (..., 3)."""
    return rgb2lab(np.clip(read, 0, 1)) - rgb2lab(np.clip(true, 0, 1))


def lightness_errors(read: np.ndarray, true: np.ndarray) -> np.ndarray:
    """`lab_errors`' L* alone (...): positive where a colour is read lighter than it is."""
    return lab_errors(read, true)[..., 0]


def field_errors(
    sliders: np.ndarray,
    colors: np.ndarray,
    true_sliders: np.ndarray,
    true_colors: np.ndarray,
    slider_mask: np.ndarray | None = None,
    color_mask: np.ndarray | None = None,
) -> dict[str, float]:
    """Per field mean error: |slider difference| and dE2000 for colours, over the rows
    where the mask is positive (NaN where none)."""
    out: dict[str, float] = {}
    slider_err = np.abs(sliders - true_sliders)
    color_err = delta_e(colors, true_colors)
    for j, name in enumerate(SLIDER_FIELDS):
        keep = slice(None) if slider_mask is None else slider_mask[:, j] > 0
        out[name] = float(np.mean(slider_err[keep, j])) if np.any(keep) else float("nan")
    for j, name in enumerate(COLOR_NAMES):
        keep = slice(None) if color_mask is None else color_mask[:, j] > 0
        out[name] = float(np.mean(color_err[keep, j])) if np.any(keep) else float("nan")
    return out


def field_goal(name: str) -> float:
    """The error goal of a field: slider units for sliders, dE2000 for colours."""
    return COLOR_GOAL if name in COLOR_NAMES else SLIDER_GOAL


# --------------------------------------------------------------------------- synthetic
def evaluate_synthetic(
    model: Forward, table: FusionTable, arrays: dict[str, np.ndarray]
) -> dict[str, Any]:
    """CNN / teacher / fused errors on a synthetic set rendered with `teacher=True`."""
    from .training import predict_arrays

    pred = predict_arrays(model, arrays["crops"])
    truth_s, truth_c = arrays["sliders"], arrays["colors"]
    cnn = field_errors(pred.sliders, pred.colors, truth_s, truth_c)
    n = len(truth_s)
    default = field_errors(
        np.broadcast_to(DEFAULT_SLIDERS, (n, len(SLIDER_FIELDS))),
        np.broadcast_to(DEFAULT_COLORS, (n, len(COLOR_NAMES), 3)),
        truth_s,
        truth_c,
    )
    result: dict[str, Any] = {
        "count": len(truth_s),
        "cnn": cnn,
        "default": default,
        "hair_style_accuracy": float(np.mean(pred.hair_style == arrays["hair_style"])),
        "glasses_accuracy": float(np.mean(pred.glasses == arrays["glasses"])),
        "glasses_frame_accuracy": frame_accuracy(pred.extra["glasses_probs"], arrays["glasses"]),
        "iris_by_eye_opening": iris_by_eye_opening(pred.colors, truth_s, truth_c),
        "lips_from_skin": lips_from_skin(pred.colors, truth_c),
    }
    if "teacher_sliders" in arrays:
        conf_s, conf_c = arrays["teacher_slider_conf"], arrays["teacher_color_conf"]
        min_conf = table.min_confidence
        result["teacher"] = field_errors(
            arrays["teacher_sliders"],
            arrays["teacher_colors"],
            truth_s,
            truth_c,
            conf_s >= min_conf,
            conf_c >= min_conf,
        )
        fused_s, fused_c = fuse_arrays(
            pred.sliders,
            pred.colors,
            arrays["teacher_sliders"],
            conf_s,
            arrays["teacher_colors"],
            conf_c,
            table,
        )
        result["fused"] = field_errors(fused_s, fused_c, truth_s, truth_c)
        result["teacher_found"] = float(np.mean(arrays["teacher_found"]))
        result.update(synthetic_glasses(pred.extra["glasses_probs"], arrays, table))
    return result


def frame_accuracy(glasses_probs: np.ndarray, glasses: np.ndarray) -> float:
    """How often the CNN's likelier frame (N, 3 probabilities) is the true one (N,
    `GLASSES` indices), over the faces that wear a frame (NaN if none does)."""
    framed = glasses > 0
    if not framed.any():
        return float("nan")
    return float(np.mean(likelier_frame(glasses_probs[framed]) == glasses[framed]))


def synthetic_glasses(
    glasses_probs: np.ndarray, arrays: dict[str, np.ndarray], table: FusionTable
) -> dict[str, float]:
    """The teacher's frame-or-none reading on renders: its accuracy where it is sure
    (confidence >= the table's minimum), on what share of the faces it is sure, and
    the accuracy of the glasses the table's source gives (N,) over every face."""
    sure = arrays["teacher_glasses_conf"] >= table.min_confidence
    has_frame = arrays["glasses"] > 0
    right = arrays["teacher_glasses"] == has_frame
    fused = fuse_glasses(
        glasses_probs, arrays["teacher_glasses"], arrays["teacher_glasses_conf"], table
    )
    return {
        "teacher_glasses_accuracy": float(np.mean(right[sure])) if sure.any() else float("nan"),
        "teacher_glasses_sure": float(np.mean(sure)),
        "fused_glasses_accuracy": float(np.mean(fused == arrays["glasses"])),
    }


# How far the more open eye is shut (its blink slider), in bands: (name, low, high).
EYE_OPENING_BANDS = (
    ("open", 0.0, 0.01),
    ("partly shut", 0.01, 0.5),
    ("half shut or more", 0.5, 1.01),
)


def iris_by_eye_opening(
    colors: np.ndarray, true_sliders: np.ndarray, true_colors: np.ndarray
) -> dict[str, dict[str, float]]:
    """The CNN's iris error (mean dE2000) and face count per `EYE_OPENING_BANDS` band of
    the more open eye: where both eyes are shut the render shows no iris to read."""
    k = COLOR_NAMES.index("iris_color")
    blinks = [SLIDER_FIELDS.index(f"expression.blink_{side}") for side in ("left", "right")]
    shut = true_sliders[:, blinks].min(axis=1)
    errors = delta_e(colors[:, k], true_colors[:, k])
    out = {}
    for name, low, high in EYE_OPENING_BANDS:
        keep = (shut >= low) & (shut < high)
        mean = float(errors[keep].mean()) if keep.any() else float("nan")
        out[name] = {"error": mean, "count": float(keep.sum())}
    return out


@functools.cache
def render_lip_offset(draws: int = 1000) -> np.ndarray:
    """(3,) the mean Lab offset from skin to lips of the renders' avatars
    (`synth.sample_params`, `draws` draws of a fixed seed)."""
    from .synth import sample_params

    params = [sample_params(np.random.default_rng([20, i])) for i in range(draws)]
    skin = np.array([hex_to_rgb(p.skin_color) for p in params])
    lips = np.array([hex_to_rgb(p.lip_color) for p in params])
    return (rgb2lab(lips) - rgb2lab(skin)).mean(axis=0)


def lips_from_skin(colors: np.ndarray, true_colors: np.ndarray) -> dict[str, float]:
    """How much of the CNN's lip colour comes from the lip pixels. Mean dE2000 on the
    true lips of: the CNN's lips ('cnn'); its skin plus the renders' mean skin-to-lip
    offset ('from_cnn_skin', what a model reading no lip pixel at all gives); the true
    skin plus that offset ('from_true_skin', the best such a model can do).
    colors, true_colors: (N, 5, 3) sRGB 0..1."""
    skin, lips = COLOR_NAMES.index("skin_color"), COLOR_NAMES.index("lip_color")
    offset = render_lip_offset()

    def lips_of(skin_rgb: np.ndarray) -> np.ndarray:
        return lab2rgb(rgb2lab(np.clip(skin_rgb, 0, 1)) + offset)

    truth = true_colors[:, lips]
    return {
        "cnn": float(delta_e(colors[:, lips], truth).mean()),
        "from_cnn_skin": float(delta_e(lips_of(colors[:, skin]), truth).mean()),
        "from_true_skin": float(delta_e(lips_of(true_colors[:, skin]), truth).mean()),
    }


def evaluate_fairness(
    model: Forward, arrays: dict[str, np.ndarray], table: FusionTable | None = None
) -> dict[str, Any]:
    """Skin colour dE2000 per Monk swatch (CNN; teacher where it measured the skin), and
    per swatch the share of faces FaceMesh found at all ('found': the photo path
    answers `no_face` for the others). With `table`, also 'photo_path': what a user
    gets, the skin colour fused by `table` on the faces the photo path accepts.
    '<source>_lightness': per swatch, the mean signed L* error (+: read lighter)."""
    from .synth import MONK_SKIN_TONES
    from .training import predict_arrays

    pred = predict_arrays(model, arrays["crops"])
    skin = COLOR_NAMES.index("skin_color")
    tone = arrays["avatar_index"] % len(MONK_SKIN_TONES)
    true = arrays["colors"][:, skin]
    cnn_err = delta_e(pred.colors[:, skin], true)
    result: dict[str, Any] = {
        "tones": list(MONK_SKIN_TONES), "cnn": swatch_means(cnn_err, tone),
        "cnn_lightness": swatch_means(lightness_errors(pred.colors[:, skin], true), tone),
        "cnn_chance": chance_ratio(cnn_err, tone),
        "cnn_interval": ratio_interval(bootstrap_ratios(cnn_err, tone)[:, 0]),
    }  # fmt: skip
    if "teacher_found" in arrays:
        found = np.asarray(arrays["teacher_found"], bool)
        result["found"] = swatch_means(found.astype(np.float64), tone)
    if "teacher_colors" in arrays:
        ok = arrays["teacher_color_conf"][:, skin] > 0
        t_err = delta_e(arrays["teacher_colors"][:, skin], true)
        result["teacher"] = swatch_means(t_err[ok], tone[ok])
        result["teacher_chance"] = chance_ratio(t_err[ok], tone[ok])
    if table is not None and "teacher_colors" in arrays:
        found = np.asarray(arrays["teacher_found"], bool)
        p_skin, p_tone = photo_path_skin(pred, arrays, table), tone[found]
        p_err = delta_e(p_skin, true[found])
        result["photo_path"] = swatch_means(p_err, p_tone)
        result["photo_path_lightness"] = swatch_means(lightness_errors(p_skin, true[found]), p_tone)
        result["photo_path_chance"] = chance_ratio(p_err, p_tone)
        result["photo_path_interval"] = ratio_interval(bootstrap_ratios(p_err, p_tone)[:, 0])
    return result


def swatch_means(values: np.ndarray, tone: np.ndarray) -> list[float]:
    """Mean of (N,) `values` over the faces of each Monk swatch, by the faces' (N,) swatch
    indices; NaN for a swatch with no face."""
    from .synth import MONK_SKIN_TONES

    return [
        float(values[tone == k].mean()) if np.any(tone == k) else float("nan")
        for k in range(len(MONK_SKIN_TONES))
    ]


def photo_path_skin(pred: Any, arrays: dict[str, np.ndarray], table: FusionTable) -> np.ndarray:
    """(K, 3) sRGB 0..1 skin colour the photo path returns (the CNN's `pred` fused with the
    teacher by `table`) on the K faces of a teacher-labelled set that FaceMesh found."""
    found = np.asarray(arrays["teacher_found"], bool)
    _, fused = fuse_arrays(
        pred.sliders[found],
        pred.colors[found],
        arrays["teacher_sliders"][found],
        arrays["teacher_slider_conf"][found],
        arrays["teacher_colors"][found],
        arrays["teacher_color_conf"][found],
        table,
    )
    return fused[:, COLOR_NAMES.index("skin_color")]


def chance_ratio(errors: np.ndarray, groups: np.ndarray, draws: int = CHANCE_SHUFFLES) -> float:
    """Median worst/mean of the per-group mean error when the same errors are shuffled
    across the groups (sizes kept): what a model equally good on every swatch would show
    with this many faces. The worst of ten noisy means sits above their mean by chance."""
    errors, groups = np.asarray(errors, np.float64), np.asarray(groups)
    labels, index = np.unique(groups, return_inverse=True)
    if len(labels) < 2:
        return float("nan")
    counts = np.bincount(index)
    rng = np.random.default_rng(0)
    ratios = np.empty(draws)
    for i in range(draws):
        means = np.bincount(index, weights=rng.permutation(errors)) / counts
        ratios[i] = means.max() / means.mean()
    return float(np.median(ratios))


def bootstrap_ratios(
    errors: np.ndarray, groups: np.ndarray, draws: int = RATIO_RESAMPLES, seed: int = 0
) -> np.ndarray:
    """Worst/mean of the per-group mean error over redraws of the faces: each group's
    faces resampled with replacement (sizes kept). How far the fairness ratio could
    move with another draw of as many faces (a training run's seed moves it as well).

    errors: (N,) for one model, or (M, N) for M models on the same faces, which then
    share every redraw, so their differences are paired. groups: (N,) labels.
    Returns (draws, M) ratios.
    """
    errors = np.atleast_2d(np.asarray(errors, np.float64))
    groups = np.asarray(groups)
    rng = np.random.default_rng(seed)
    means = []
    for label in np.unique(groups):
        members = np.flatnonzero(groups == label)
        picks = members[rng.integers(0, len(members), (draws, len(members)))]
        means.append(errors[:, picks].mean(axis=2).T)  # (draws, M)
    means = np.stack(means, axis=-1)  # (draws, M, groups)
    return means.max(axis=-1) / means.mean(axis=-1)


def ratio_interval(ratios: np.ndarray, level: float = 0.95) -> list[float]:
    """The central `level` interval [low, high] of bootstrapped ratios (draws,)."""
    tail = 50 * (1 - level)
    return [float(v) for v in np.percentile(ratios, [tail, 100 - tail])]


# --------------------------------------------------------------------------- real photos
def fusion_from_real(
    errors: dict[str, dict[str, float]],
    synthetic: dict[str, Any],
    real_class_accuracy: dict[str, float],
) -> FusionTable:
    """Per field, the source with the smaller error against the real-photo yardstick.

    The CNN may beat the teacher on a slider or colour only where its synthetic error
    meets the goal, and fills in for a missing teacher only where its synthetic error
    meets the goal or is at most INFORMATIVE x that of always answering the default, and
    on the real photos it is no further from the teacher than the default is (trained on
    chibi renders, it read 15 of the 20 sliders the teacher measures on the sample photos
    further off than the default does: session 39); its class heads
    are used only where their synthetic accuracy reaches CLASS_GOAL and they are right
    on every annotated sample photo, of which there must be one at least (renders alone
    do not show that a head reads real photos). So is the CNN's likelier frame
    ("glasses_frame"), on the renders and photos that show a frame. The teacher's
    frame-or-none reading passes the same test, and comes first when both do (a
    measurement on the photo, like the other teacher fields). Other fields take the
    default."""
    basis = {name: "real photos" for name in FUSION_FIELDS}
    cnn, default = synthetic["cnn"], synthetic["default"]
    qualified = {n for n in FUSION_FIELDS if cnn.get(n, np.inf) <= field_goal(n)}
    real_cnn, real_default = errors["cnn"], errors.get("default", {})
    informative = {
        n
        for n in FUSION_FIELDS
        if (n in qualified or cnn.get(n, np.inf) <= INFORMATIVE * default[n])
        and not real_cnn.get(n, np.nan) > real_default.get(n, np.nan)  # NaN: the renders decide
    }
    table = FusionTable.from_errors(
        errors["cnn"], errors["teacher"], basis, qualified, informative, real_default
    )

    def passes(synthetic_acc: float, real_acc: float) -> bool:
        return synthetic_acc >= CLASS_GOAL and real_acc == 1.0  # NaN (no photo) is not

    for name in CLASS_FIELDS:
        synthetic_acc = synthetic[f"{name}_accuracy"]
        real_acc = real_class_accuracy.get(name, float("nan"))
        table.choices[name] = "cnn" if passes(synthetic_acc, real_acc) else "default"
        table.evidence[name] = {
            "cnn_synthetic_accuracy": _rounded(synthetic_acc),
            "cnn_real_accuracy": _rounded(real_acc),
            "unit": "accuracy",
            "basis": "synthetic + annotated sample photos",
        }
    teacher_synthetic = synthetic.get("teacher_glasses_accuracy", float("nan"))
    teacher_real = real_class_accuracy.get("glasses_teacher", float("nan"))
    if passes(teacher_synthetic, teacher_real):
        table.choices["glasses"] = "teacher"
    table.evidence["glasses"] |= {
        "teacher_synthetic_accuracy": _rounded(teacher_synthetic),
        "teacher_real_accuracy": _rounded(teacher_real),
    }
    return table


def _rounded(value: float) -> float | None:
    return round(float(value), 4) if np.isfinite(value) else None


# --------------------------------------------------------------------------- the report
def run_evaluation(
    model_name: str = "default",
    weights_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    workers: int = 2,
    write_fusion: bool = False,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Every section above; returns the numbers (`chibi eval` prints them, see
    server/commands/eval.py)."""
    from .evaluate_real import (
        class_accuracy_real,
        evaluate_real,
        real_field_errors,
        real_photos,
        same_person_spread,
        stability,
    )
    from .fusion import fusion_path
    from .pipeline import PhotoPipeline
    from .synth import MONK_SKIN_TONES, SetSpec, load_or_render
    from .tinted import evaluate_tinted

    pipeline = PhotoPipeline(model_name, weights_dir, device="cpu")
    model = pipeline.regressor.forward  # what the photo path runs (ONNX Runtime on the CPU)
    if log:
        log(f"model {pipeline.model_name}: real photos ...")
    real = evaluate_real(pipeline, log)
    errors = real_field_errors(real["readings"])
    heldout = load_or_render(heldout_spec(), cache_dir, workers, log)
    synthetic_cnn = evaluate_synthetic(model, FusionTable.teacher_first(), heldout)
    class_real = class_accuracy_real(real["readings"])
    if real["readings"]:
        table = fusion_from_real(errors, synthetic_cnn, class_real)
    else:
        table = FusionTable.teacher_first()
    if write_fusion:
        table.save(fusion_path(pipeline.model_name, weights_dir))
    mst = load_or_render(
        SetSpec(
            "mst",
            MST_FACES_PER_TONE * len(MONK_SKIN_TONES),
            seed=2,
            skin_tones=MONK_SKIN_TONES,
            teacher=True,
        ),
        cache_dir,
        workers,
        log,
    )
    fairness = evaluate_fairness(model, mst, table)
    fairness["tinted"] = evaluate_tinted(pipeline, real_photos(), MONK_SKIN_TONES)
    return {
        "model": pipeline.model_name,
        "synthetic": evaluate_synthetic(model, table, heldout),
        "real": {"photos": real["photos"], **errors, "class_accuracy": class_real},
        "stability": stability(real["readings"], table),
        "same_person": same_person_spread(real["readings"], table),
        "fairness": fairness,
        "fusion": table.to_dict(),
    }
