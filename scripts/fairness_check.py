"""The CNN's skin fairness on a fresh, larger Monk set, for one model or several side by side.

`chibi eval` judges the fairness goal (worst Monk swatch / mean skin error <= 1.2) on 96
faces a swatch, where the ratio moves by a few hundredths with the faces drawn. This
renders its own Monk set (by default 384 faces a swatch, seed 7: faces `chibi eval` never
saw; cached in .cache/synth like the others, about 5 minutes the first time on 2 cores),
and prints for every model the per-swatch error, the ratio, the ratio a model equally good
on every swatch would show by chance, and the 95 % interval of the ratio over redraws of
the faces (`evaluate.bootstrap_ratios`). With several models, every model after the first
is compared with it on the same redraws: the interval of the difference and how often it
is worse.

    .venv/bin/python scripts/fairness_check.py [--per-tone 384] [--seed 7]
        [--model NAME[:DIR]] [--model NAME[:DIR] ...] [--cache DIR]
"""

from __future__ import annotations

import argparse

import numpy as np

from avatar3d.evaluate import bootstrap_ratios, chance_ratio, delta_e, ratio_interval
from avatar3d.param_arrays import COLOR_NAMES
from avatar3d.pipeline import PhotoPipeline
from avatar3d.synth import MONK_SKIN_TONES, SetSpec, load_or_render
from avatar3d.training import predict_arrays


def skin_errors(model: str, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """(N,) dE2000 of the model's skin colour on the set (`model`: NAME[:DIR])."""
    name, _, directory = model.partition(":")
    pipeline = PhotoPipeline(name, directory or None, device="cpu", use_teacher=False)
    pred = predict_arrays(pipeline.regressor.forward, arrays["crops"])
    skin = COLOR_NAMES.index("skin_color")
    return delta_e(pred.colors[:, skin], arrays["colors"][:, skin]).astype(np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-tone", type=int, default=384, help="faces a swatch (384)")
    parser.add_argument("--seed", type=int, default=7, help="the set's seed (7)")
    parser.add_argument("--model", action="append", help="weights NAME[:DIR] (default: shipped)")
    parser.add_argument("--cache", help="synthetic data cache (.cache/synth)")
    parser.add_argument("--workers", type=int, default=2, help="render processes")
    args = parser.parse_args()
    models = args.model or ["default"]
    count = args.per_tone * len(MONK_SKIN_TONES)
    spec = SetSpec("mst", count, seed=args.seed, skin_tones=MONK_SKIN_TONES)
    arrays = load_or_render(spec, args.cache, args.workers, print)
    tone = arrays["avatar_index"] % len(MONK_SKIN_TONES)
    errors = np.stack([skin_errors(model, arrays) for model in models])
    ratios = bootstrap_ratios(errors, tone)  # (draws, models), paired
    print(f"Monk set: {args.per_tone} faces a swatch (seed {args.seed}); skin dE2000, "
          "swatches light to dark")  # fmt: skip
    width = max(len("model"), *map(len, models)) + 2
    print(f"{'model':{width}}{'ratio':>7}{'95 % interval':>15}{'worst':>7}{'mean':>6}"
          f"{'chance':>8}  per swatch")  # fmt: skip
    for model, model_errors, column in zip(models, errors, ratios.T, strict=True):
        means = np.array([model_errors[tone == k].mean() for k in range(len(MONK_SKIN_TONES))])
        low, high = ratio_interval(column)
        print(f"{model:{width}}{means.max() / means.mean():7.3f}{low:9.3f}-{high:.3f}"
              f"{means.max():7.2f}{means.mean():6.2f}{chance_ratio(model_errors, tone):8.3f}  "
              + " ".join(f"{m:.2f}" for m in means))  # fmt: skip
    for model, column in zip(models[1:], ratios.T[1:], strict=True):
        difference = column - ratios[:, 0]
        low, high = ratio_interval(difference)
        share = 100 * np.mean(difference > 0)
        print(f"{model} - {models[0]}: {np.median(difference):+.3f} (95 % interval {low:+.3f} "
              f"to {high:+.3f}); higher in {share:.0f} % of the redraws")  # fmt: skip


if __name__ == "__main__":
    main()
