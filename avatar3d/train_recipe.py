"""`chibi train`: the shipped recipe, from rendering the synthetic set to the saved weights.

`TrainOptions` holds every choice with the shipped defaults; `run_training` renders (or
loads) the set, trains with `avatar3d.training`, checks the held-out part and writes
`<name>.pt` + `.json` (with how they were made) where `load_pretrained` finds them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .labelling import load_labelled
from .model_files import DEFAULT_MODEL
from .param_arrays import COLOR_NAMES, SLIDER_FIELDS
from .refiners import fit_refiners
from .training import (
    LoopOptions,
    new_model,
    options_dict,
    predict_arrays,
    train_model,
)

if TYPE_CHECKING:
    from .synth import SetSpec

# The refiners' extra renders are drawn from seed + 3: seeds 1 and 2 draw
# `chibi eval`'s held-out and Monk sets.
REFINE_SEED_OFFSET = 3
# Session 19: 40 epochs over three times the avatars (18,000) read the sliders better than
# 80 over 6,000, which the network had partly learned by heart. Session 20: 20 epochs over
# 36,000, the same steps (42 min on two threads), better again. Session 21: 40 epochs over
# the same 36,000 (98 min), better on 22 of 23 sliders and 4 of 5 colours (README)
TRAIN_EPOCHS = 40
# Session 17: past 6,000 fresh renders the refiners gained little; 12,000 is the most rendered
REFINE_AVATARS_MAX = 12000
# every VALIDATION_EVERY-th avatar (all its views) is held out to watch generalisation
VALIDATION_EVERY = 20


@dataclass
class TrainOptions:
    """Everything `chibi train` does; the defaults are the shipped recipe.

    avatars x views synthetic renders (seed `seed`); `real`: a `chibi label` file mixed
    in at `LoopOptions.real_fraction`; `init`: start from shipped weights (a name) or a
    .pt file, with fine-tuning defaults (fewer epochs, lower rate). `init_seed` draws
    the initial weights alone (default: `seed`), to tell a recipe from its luck.
    `refine_avatars`: for a model with refiners, renders the network never trains on,
    added to its training crops to fit them (default: twice `avatars`, at most
    `REFINE_AVATARS_MAX`). `skin_margin`: both sets' skins reach this many Monk swatch
    steps past the scale's ends (`synth.sample_skin`). `checkpoint`: a file the
    network's training saves itself to after every epoch and resumes from
    (`training.train_model`).
    """

    model: str = DEFAULT_MODEL
    name: str | None = None
    avatars: int = 36000
    views: int = 1
    epochs: int | None = None
    batch_size: int = 64
    lr: float | None = None
    seed: int = 0
    init_seed: int | None = None
    refine_avatars: int | None = None
    real: str | None = None
    init: str | None = None
    framing: float = 0.0
    skin_margin: float = 0.0
    checkpoint: str | None = None
    out: str | None = None
    cache: str | None = None
    workers: int = 2
    threads: int = 2
    device: str = "cpu"

    def check(self) -> None:
        """ValueError naming the option, before any rendering: a 0 that would read as
        "the default", or a value that fails hours later."""
        counts = {
            "avatars": self.avatars, "views": self.views, "batch-size": self.batch_size,
            "workers": self.workers, "threads": self.threads, "epochs": self.epochs,
        }  # fmt: skip
        for option, value in counts.items():
            if value is not None and value < 1:
                raise ValueError(f"--{option} must be at least 1, got {value}")
        if self.refine_avatars is not None and self.refine_avatars < 0:
            raise ValueError(f"--refine-avatars must be 0 or more, got {self.refine_avatars}")
        if self.lr is not None and not 0 < self.lr < math.inf:
            raise ValueError(f"--lr must be above 0, got {self.lr}")
        if not 0 <= self.framing <= 1:
            raise ValueError(f"--framing is a share of each batch, 0 to 1, got {self.framing}")
        if not 0 <= self.skin_margin < math.inf:
            raise ValueError(f"--skin-margin must be 0 or more, got {self.skin_margin}")
        if self.name is not None and (
            Path(self.name).name != self.name or self.name in ("", ".", "..")
        ):
            raise ValueError(f"--name must be a file name without a folder, got {self.name!r}")
        if self.out is not None:
            try:
                Path(self.out).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ValueError(
                    f"--out: cannot use {self.out} as a folder: {exc.strerror}"
                ) from None

    def refine_spec(self) -> SetSpec | None:
        """The refiners' extra renders (None: the training crops only)."""
        from .synth import SetSpec

        count = self.refine_avatars
        if count is None:
            count = min(2 * self.avatars, REFINE_AVATARS_MAX)
        if not count:
            return None
        return SetSpec("refine", count, self.views, self.seed + REFINE_SEED_OFFSET,
                       skin_margin=self.skin_margin)  # fmt: skip


def run_training(options: TrainOptions, log: Callable[[str], None] = print) -> Path:
    """Render (or load) the data, train, save `<name>.pt` + `.json`; returns the .pt path."""
    from .evaluate import field_errors
    from .model_files import WEIGHTS_DIR
    from .regressor import save_weights
    from .synth import SetSpec, as_training_set, load_or_render

    options.check()
    real = load_labelled(options.real, log) if options.real else None  # its errors come first
    torch.set_num_threads(options.threads)
    fine_tune = options.init is not None
    loop = LoopOptions(
        epochs=options.epochs or (6 if fine_tune else TRAIN_EPOCHS), batch_size=options.batch_size,
        lr=options.lr or (1e-3 if fine_tune else 3e-3), seed=options.seed,
        framing=options.framing, device=options.device,
    )  # fmt: skip
    spec = SetSpec("train", options.avatars, options.views, options.seed,
                   skin_margin=options.skin_margin)  # fmt: skip
    arrays = load_or_render(spec, options.cache, options.workers, log)
    data = as_training_set(arrays)
    held = arrays["avatar_index"] % VALIDATION_EVERY == 0
    train, val = data.subset(np.flatnonzero(~held)), data.subset(np.flatnonzero(held))
    torch.manual_seed(options.seed if options.init_seed is None else options.init_seed)
    model = new_model(options.model, options.init)
    extra = f" + {len(real)} teacher-labelled" if real else ""
    log(f"training {model.config.name}: {len(train)} synthetic{extra} crops, {loop.epochs} epochs")
    history = train_model(model, train, real, loop, log, options.checkpoint)
    refiner_losses, refine_spec = None, None
    if model.config.color_refine or model.config.slider_refine:
        refiner_data = train
        refine_spec = options.refine_spec()
        if refine_spec:
            fresh = load_or_render(refine_spec, options.cache, options.workers, log)
            refiner_data = train.joined(as_training_set(fresh))
        refiner_losses = fit_refiners(model, refiner_data, options.seed, log=log)
    pred = predict_arrays(model, val.crops)
    errors = field_errors(pred.sliders, pred.colors, val.targets.sliders, val.targets.colors)
    metrics = {
        "val_slider_mae": float(np.mean([errors[n] for n in SLIDER_FIELDS])),
        "val_color_de2000": float(np.mean([errors[n] for n in COLOR_NAMES])),
        "val_hair_style_acc": float(np.mean(pred.hair_style == val.targets.hair_style)),
        "val_glasses_acc": float(np.mean(pred.glasses == val.targets.glasses)),
    }
    log(" ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
    name = options.name or (f"{model.config.name}-finetuned" if fine_tune else model.config.name)
    info = {"training": {
        "command": "chibi train", "synthetic_set": spec.cache_name(),
        "options": options_dict(options), "loop": options_dict(loop),
        "synthetic_samples": len(train), "validation_samples": len(val),
        "teacher_samples": len(real) if real else 0, "epoch_losses": history.losses,
        "seconds": round(history.seconds, 1), "torch": torch.__version__, **metrics,
    }}  # fmt: skip
    if fine_tune:  # which weights it started from, whatever their name means later
        info["training"]["init_sha256"] = _init_sha256(options.init)
    if refiner_losses is not None:
        info["training"]["refine_set"] = refine_spec.cache_name() if refine_spec else None
        for kind, losses in refiner_losses.items():  # every 50th epoch, summed over members
            info["training"][f"{kind}_refiner_loss"] = [round(v, 4) for v in losses[::50]]
    path = save_weights(model, options.out or WEIGHTS_DIR, name, info)
    log(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB) in {history.seconds:.0f}s of training")
    return path


def _init_sha256(init: str) -> str:
    """sha256 of the weights file `--init` names (a .pt path, or shipped weights by name)."""
    from .model_files import sha256_file, weights_info

    return sha256_file(init) if init.endswith(".pt") else weights_info(init)["sha256"]
