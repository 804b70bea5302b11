"""Why ChibiNet's sliders stay near chance on synthetic renders: a probe for issue #4.

The shipped model fits its own training renders no better than held-out ones
(slider MAE 0.166 against 0.175), so it underfits. This probe asks whether the
regressor's input is the limit. It renders `--avatars` photo-like avatars the way
the training set is made, cuts two crops of every render, and trains chibinet-s
for the same number of steps on each:
- `aligned`: the regressor's crop (`landmarks.alignment_transform`'s layout);
- `zoom2x`: the same crop magnified 2x about the face centre, so the mouth, nose
  and brows get four times the pixels;
- `aligned/4`: the aligned crop on a quarter of the avatars, for four times the
  epochs (same steps), which tells whether more data would help.
It prints the held-out slider MAE per field for each. No crop or render is kept.

    .venv/bin/python scripts/cnn_probe.py [--avatars 1800] [--epochs 40]

About 2 minutes of rendering per 1000 avatars on 2 cores, and ~40 s per epoch
group of 1500 avatars on one thread.
"""

from __future__ import annotations

import argparse

import numpy as np

ZOOM = 2.0
ZOOM_CENTRE = (64.0, 68.0)  # crop pixels: between the eyes and the mouth
HELD_OUT = 300


def _render(job: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, str]:
    from avatar3d.build import build_avatar
    from avatar3d.landmarks import ALIGN_WEIGHTS, CROP_SIZE, crop_transform, warp_image
    from avatar3d.synth import photo_and_points, sample_params

    seed, index = job
    rng = np.random.default_rng([seed, index])
    params = sample_params(rng)
    photo, points = photo_and_points(build_avatar(params), params, rng)
    transforms = [crop_transform(points, ALIGN_WEIGHTS, zoom, ZOOM_CENTRE) for zoom in (1.0, ZOOM)]
    crops = [warp_image(photo, t, CROP_SIZE) for t in transforms]
    return crops[0], crops[1], params.to_json(indent=None)


def _train_and_score(crops, targets, train_index, epochs: int) -> np.ndarray:
    import torch

    from avatar3d import training
    from avatar3d.regressor import create_model

    data = training.TrainingSet.fully_labelled(crops, targets, "synthetic")
    held = data.subset(np.arange(len(crops) - HELD_OUT, len(crops)))
    torch.manual_seed(0)
    model = create_model("chibinet-s")
    options = training.LoopOptions(epochs=epochs)
    training.train_model(model, data.subset(train_index), None, options)
    predicted = training.predict_arrays(model, held.crops)
    return np.abs(predicted.sliders - held.targets.sliders).mean(axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--avatars", type=int, default=1800, help="rendered, 300 held out")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    if args.avatars < HELD_OUT + 40:
        parser.error(f"--avatars must be at least {HELD_OUT + 40}")

    import torch

    from avatar3d.params import AvatarParams
    from avatar3d.process_map import process_map
    from server.process_setup import chibi_process_setup

    chibi_process_setup()  # as `chibi train` runs: its render workers inherit one BLAS thread
    from avatar3d.param_arrays import SLIDER_FIELDS, encode_params

    torch.set_num_threads(1)
    jobs = [(args.seed, i) for i in range(args.avatars)]
    rendered = list(process_map(_render, jobs, 2))
    targets = encode_params([AvatarParams.from_json(r[2]) for r in rendered])
    n_train = args.avatars - HELD_OUT
    runs = {
        "aligned": (0, np.arange(n_train), args.epochs),
        "zoom2x": (1, np.arange(n_train), args.epochs),
        "aligned/4": (0, np.arange(n_train // 4), 4 * args.epochs),
    }
    errors = {}
    for name, (which, train_index, epochs) in runs.items():
        crops = np.stack([r[which] for r in rendered])
        errors[name] = _train_and_score(crops, targets, train_index, epochs)
        print(f"{name}: held-out slider MAE {errors[name].mean():.4f}", flush=True)
    print(f"{'field':26}" + "".join(f"{name:>11}" for name in errors))
    for j, field in enumerate(SLIDER_FIELDS):
        print(f"{field:26}" + "".join(f"{e[j]:11.3f}" for e in errors.values()))


if __name__ == "__main__":
    main()
