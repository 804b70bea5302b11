"""Where ChibiNet's slider errors come from: a third probe for issue #4.

`scripts/slider_visibility.py` asks what the crop shows of each slider; this one asks
what the trained network does with it. Per slider it prints:
- the error on crops the network trained on, on the refiners' extra renders and on
  `chibi eval`'s held-out renders. Equal errors mean the network is not learning the
  training set by heart: it reads the sliders no better on faces it has seen;
- the slope of the prediction on the true value over the held-out faces (1: read in
  full; 0: one guess for every face, the error is then the constant guess's);
- the held-out error on near-frontal faces (|yaw| < 10, |pitch| < 6 degrees) against the
  others, and its correlation with each random camera quantity of the render (|yaw|,
  |pitch|, |roll|, field of view, how much of the frame the face fills). A slider the
  pose confounds is read worse on turned faces and its error follows |yaw| or |pitch|;
- the pairs of sliders whose errors go together (one read for the other).

The camera of each held-out render is not cached: it is drawn again from the render's
seed (`synth._render_avatar` draws the params and then the `View`), and the script checks
that this is the render's camera by rendering the first face again and comparing crops.

    .venv/bin/python scripts/slider_errors.py [--model chibinet-mcer] [--faces 3000]

About 40 s with the renders cached (`chibi train` and `chibi eval` make them).
"""

from __future__ import annotations

import argparse

import numpy as np

FRONTAL_YAW, FRONTAL_PITCH = 10.0, 6.0  # degrees
CAMERA = ("|yaw|", "|pitch|", "|roll|", "yfov", "fill")


def _cameras(seed: int, avatars: int) -> np.ndarray:
    """(avatars, 5) the held-out renders' |yaw|, |pitch|, |roll| (degrees), yfov, fill."""
    from avatar3d.synth import sample_params
    from avatar3d.synth_render import View

    rows = []
    for index in range(avatars):
        rng = np.random.default_rng([seed, index])
        sample_params(rng)
        view = View.random(rng)
        angles = np.degrees(np.abs([view.yaw, view.pitch, view.roll]))
        rows.append([*angles, view.yfov, view.fill])
    return np.array(rows)


def _check_replay(spec, crop: np.ndarray) -> None:
    """Render the set's first face again: its crop must be the cached one."""
    from avatar3d.build import build_avatar
    from avatar3d.synth import photo_and_crop, sample_params

    rng = np.random.default_rng([spec.seed, 0])
    params = sample_params(rng)
    again = photo_and_crop(build_avatar(params), params, rng)[1]
    difference = np.abs(again.astype(int) - crop).max()
    if difference > 2:
        raise SystemExit(f"the replayed render differs from the cache by {difference} levels")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="default", help="weights name (default: the shipped)")
    parser.add_argument("--faces", type=int, default=3000, help="of the training set and refiners'")
    args = parser.parse_args()

    from avatar3d.evaluate import heldout_spec
    from avatar3d.param_arrays import SLIDER_FIELDS
    from avatar3d.pipeline import PhotoPipeline
    from avatar3d.synth import SetSpec, load_or_render
    from avatar3d.train_recipe import VALIDATION_EVERY, TrainOptions
    from avatar3d.training import predict_arrays

    pipeline = PhotoPipeline(args.model, device="cpu")
    recipe = TrainOptions()  # the shipped recipe's sets, as `train_recipe.run_training` draws them
    specs = {
        "trained on": SetSpec("train", recipe.avatars, recipe.views, recipe.seed),
        "refiners'": recipe.refine_spec(),
        "held out": heldout_spec(),
    }
    errors, heldout = {}, {}
    for label, spec in specs.items():
        arrays = load_or_render(spec, log=print)
        count = args.faces if label != "held out" else spec.count
        if label == "trained on":  # `chibi train` keeps these avatars out to validate
            rows = np.flatnonzero(arrays["avatar_index"] % VALIDATION_EVERY != 0)[:count]
        else:
            rows = np.arange(min(count, spec.count))
        pred = predict_arrays(pipeline.regressor.forward, arrays["crops"][rows])
        errors[label] = np.abs(pred.sliders - arrays["sliders"][rows]).mean(axis=0)
        if label == "held out":
            _check_replay(spec, arrays["crops"][0])
            heldout = {"pred": pred.sliders, "true": arrays["sliders"], "spec": spec}
        del arrays

    pred, true = heldout["pred"], heldout["true"]
    camera = _cameras(heldout["spec"].seed, heldout["spec"].avatars)
    frontal = (camera[:, 0] < FRONTAL_YAW) & (camera[:, 1] < FRONTAL_PITCH)
    error = np.abs(pred - true)
    signed = pred - true
    print(f"model {pipeline.model_name}; held out: {len(true)} faces, {frontal.sum()} near-frontal")
    head = "".join(f"{k:>12}" for k in errors) + f"{'slope':>7}{'frontal':>9}{'turned':>8}"
    print(f"{'slider':26}{head}   error's correlation with " + " ".join(CAMERA))
    for j, name in enumerate(SLIDER_FIELDS):
        slope = np.polyfit(true[:, j], pred[:, j], 1)[0]
        corr = [np.corrcoef(camera[:, k], error[:, j])[0, 1] for k in range(len(CAMERA))]
        print(
            f"{name:26}" + "".join(f"{e[j]:12.3f}" for e in errors.values())
            + f"{slope:7.2f}{error[frontal, j].mean():9.3f}{error[~frontal, j].mean():8.3f}   "
            + " ".join(f"{c:+.2f}" for c in corr)
        )  # fmt: skip
    print(
        "mean" + " " * 22 + "".join(f"{e.mean():12.3f}" for e in errors.values())
        + f"{'':7}{error[frontal].mean():9.3f}{error[~frontal].mean():8.3f}"
    )  # fmt: skip
    coupled = np.corrcoef(signed.T)
    pairs = sorted(
        ((abs(coupled[a, b]), a, b) for a in range(len(SLIDER_FIELDS)) for b in range(a)),
        reverse=True,
    )
    print("held-out errors that go together (correlation of the signed errors):")
    for _, a, b in pairs[:8]:
        print(f"  {SLIDER_FIELDS[a]:26} {SLIDER_FIELDS[b]:26} {coupled[a, b]:+.2f}")


if __name__ == "__main__":
    main()
