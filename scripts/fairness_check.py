"""Skin fairness on a fresh, larger Monk set, for one model or several side by side.

`chibi eval` judges the fairness goal (worst Monk swatch / mean skin error <= 1.2) on 96
faces a swatch, where the ratio moves by a few hundredths with the faces drawn. This
renders its own Monk set (by default 384 faces a swatch, seed 7: faces `chibi eval` never
saw; cached in .cache/synth like the others: about 5 minutes the first time on 2 cores,
longer with `--teacher`) and prints, for every model, the per-swatch error, the ratio, the
ratio a model equally good on every swatch would show by chance, and the 95 % interval of
the ratio over redraws of the faces (`evaluate.bootstrap_ratios`). With several models,
every model after the first is compared with it on the same redraws: the interval of the
difference and how often it is higher. Then, per model and swatch, the signed L* error's
mean and spread: whether a swatch is worst for being read too light or dark throughout, or
for a wide spread. The CNN's skin always; with `--teacher` also what the photo path returns
(the model's fusion table: the teacher's skin where it is sure), on the faces FaceMesh
finds. Last, for the CNN, every model's mean error in a* and b* too, beside the pull of
the training skins at each swatch (`synth.skin_pull`, for the recipe's `--skin-margin`):
the network's mean error follows it.

    .venv/bin/python scripts/fairness_check.py [--per-tone 384] [--seed 7] [--teacher]
        [--model NAME[:DIR]] [--model NAME[:DIR] ...] [--skin-margin M] [--cache DIR]
"""

from __future__ import annotations

import argparse

import numpy as np

from avatar3d.evaluate import (
    bootstrap_ratios,
    chance_ratio,
    delta_e,
    lab_errors,
    lightness_errors,
    photo_path_skin,
    ratio_interval,
    swatch_means,
)
from avatar3d.param_arrays import COLOR_NAMES
from avatar3d.pipeline import PhotoPipeline
from avatar3d.synth import MONK_SKIN_TONES, SetSpec, load_or_render, skin_pull
from avatar3d.training import predict_arrays


def skin_readings(model: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """'CNN': (N, 3) sRGB skin colour the model (`model`: NAME[:DIR]) reads on every face;
    'photo path', on a teacher-labelled set: (K, 3) on the faces FaceMesh found."""
    name, _, directory = model.partition(":")
    pipeline = PhotoPipeline(name, directory or None, device="cpu", use_teacher=False)
    pred = predict_arrays(pipeline.regressor.forward, arrays["crops"])
    readings = {"CNN": pred.colors[:, COLOR_NAMES.index("skin_color")]}
    if "teacher_found" in arrays:
        readings["photo path"] = photo_path_skin(pred, arrays, pipeline.fusion)
    return readings


def report(
    kind: str, models: list[str], readings: np.ndarray, true: np.ndarray, tone: np.ndarray
) -> None:
    """Print one table: `readings` (models, faces, 3) sRGB skin colours read, `true` (faces,
    3) the faces' own, `tone` (faces,) swatch indices. Under it, each model's signed L*
    error per swatch, mean and spread: a swatch read too light or dark throughout (bias)
    wants another fix than one read right on average but widely (the exposure)."""
    errors = np.stack([delta_e(read, true) for read in readings])
    ratios = bootstrap_ratios(errors, tone)  # (draws, models), paired
    width = max(len(kind), *map(len, models)) + 2
    print(f"{kind:{width}}{'ratio':>7}{'95 % interval':>15}{'worst':>7}{'mean':>6}"
          f"{'chance':>8}  per swatch ({len(tone)} faces)")  # fmt: skip
    for model, model_errors, column in zip(models, errors, ratios.T, strict=True):
        means = np.array(swatch_means(model_errors, tone))
        worst, mean = np.nanmax(means), np.nanmean(means)  # swatches with no face left out
        low, high = ratio_interval(column)
        print(f"{model:{width}}{worst / mean:7.3f}{low:9.3f}-{high:.3f}"
              f"{worst:7.2f}{mean:6.2f}{chance_ratio(model_errors, tone):8.3f}  "
              + " ".join(f"{m:.2f}" for m in means))  # fmt: skip
    for model, column in zip(models[1:], ratios.T[1:], strict=True):
        difference = column - ratios[:, 0]
        low, high = ratio_interval(difference)
        share = 100 * np.mean(difference > 0)
        print(f"{model} - {models[0]}: {np.median(difference):+.3f} (95 % interval {low:+.3f} "
              f"to {high:+.3f}); higher in {share:.0f} % of the redraws")  # fmt: skip
    for model, read in zip(models, readings, strict=True):
        error = lightness_errors(read, true)
        means = swatch_means(error, tone)
        spreads = np.sqrt(swatch_means((error - np.take(means, tone)) ** 2, tone))
        print(
            f"{model}: L* read minus true per swatch, mean (sd): "
            + " ".join(f"{m:+.1f} ({s:.1f})" for m, s in zip(means, spreads, strict=True))
        )


def pull_report(
    models: list[str], readings: np.ndarray, true: np.ndarray, tone: np.ndarray, margin: float
) -> None:
    """Each model's mean Lab error per swatch (`readings` (models, faces, 3) sRGB) beside
    the training skins' pull there, and how closely the two agree."""

    def print_channels(per_swatch: np.ndarray) -> None:  # (10, 3) Lab
        for channel, name in enumerate(("L*", "a*", "b*")):
            print(f"  {name} " + " ".join(f"{v:+.1f}" for v in per_swatch[:, channel]))

    pull = skin_pull(margin)
    print(f"training skins' pull (mean of those within dE76 8 of each swatch, minus it; "
          f"skin margin {margin:g}):")  # fmt: skip
    print_channels(pull)
    for model, read in zip(models, readings, strict=True):
        error = lab_errors(read, true)
        means = np.array([swatch_means(error[:, channel], tone) for channel in range(3)]).T
        agree = np.corrcoef(means.ravel(), pull.ravel())[0, 1]
        print(f"{model}: Lab read minus true per swatch (correlation with the pull {agree:.2f}):")
        print_channels(means)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-tone", type=int, default=384, help="faces a swatch (384)")
    parser.add_argument("--seed", type=int, default=7, help="the set's seed (7)")
    parser.add_argument(
        "--teacher", action="store_true", help="also the photo path's skin (runs FaceMesh)"
    )
    parser.add_argument("--model", action="append", help="weights NAME[:DIR] (default: shipped)")
    parser.add_argument(
        "--skin-margin", type=float, default=0.0,
        help="the training skins' margin past the Monk ends, for their pull (`chibi train`'s; 0)",
    )  # fmt: skip
    parser.add_argument("--cache", help="synthetic data cache (.cache/synth)")
    parser.add_argument("--workers", type=int, default=2, help="render processes")
    args = parser.parse_args()
    models = args.model or ["default"]
    count = args.per_tone * len(MONK_SKIN_TONES)
    spec = SetSpec("mst", count, seed=args.seed, skin_tones=MONK_SKIN_TONES, teacher=args.teacher)
    arrays = load_or_render(spec, args.cache, args.workers, print)
    tone = arrays["avatar_index"] % len(MONK_SKIN_TONES)
    readings = [skin_readings(model, arrays) for model in models]
    skin = arrays["colors"][:, COLOR_NAMES.index("skin_color")]
    print(f"Monk set: {args.per_tone} faces a swatch (seed {args.seed}); skin dE2000, "
          "swatches light to dark")  # fmt: skip
    cnn = np.stack([r["CNN"] for r in readings])
    report("CNN", models, cnn, skin, tone)
    if args.teacher:
        found = np.asarray(arrays["teacher_found"], bool)
        shares = swatch_means(found.astype(np.float64), tone)
        print(f"FaceMesh found {100 * found.mean():.0f} % of the faces; per swatch "
              + " ".join(f"{100 * share:.0f}%" for share in shares))  # fmt: skip
        photo = np.stack([r["photo path"] for r in readings])
        report("photo path", models, photo, skin[found], tone[found])
    pull_report(models, cnn, skin, tone, args.skin_margin)


if __name__ == "__main__":
    main()
