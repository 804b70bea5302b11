"""Training ChibiNet: datasets in memory, losses, augmentation, the loop (`chibi train`
itself, the shipped recipe, is `avatar3d.train_recipe`).

Data the project makes itself:
- synthetic renders with exact labels (`avatar3d.synth`), cached as .npz;
- real photos labelled by the landmark/colour teacher (`chibi label DIR -o labels.jsonl`),
  only for the fields the teacher measures (a per-field mask keeps the rest out of the loss).

Everything is seeded; one command reproduces the shipped weights (`train_recipe.TrainOptions`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .inference import Forward
from .landmarks import CROP_BORDER_VALUE
from .param_arrays import COLOR_NAMES, SLIDER_FIELDS, SLIDER_MIRROR, ParamTargets
from .regressor import ChibiNet, create_model, crops_to_tensor
from .train_checkpoint import (
    generator_states,
    load_checkpoint,
    restore_generators,
    save_checkpoint,
)

# Loss weights. Sliders use cross-entropy on soft targets (minus the targets' own
# entropy, so a perfect fit scores 0): unlike L1 through a sigmoid it never saturates
# on the many zero-valued expression labels. The weights keep the global, easy colour
# signal from drowning the subtle geometry in the shared layers (measured: with equal
# weights the sliders stayed at the constant-prediction error).
SLIDER_WEIGHT = 10.0
COLOR_WEIGHT = 0.5
HAIR_STYLE_WEIGHT = 0.3
GLASSES_WEIGHT = 0.2
# Lab L1 (summed over L, a, b) is divided by this before weighting.
LAB_SCALE = 50.0
# Geometric jitter of the aligned crop: radians, relative scale, shift in half-crop units.
# Kept near real landmark-alignment noise: a face_width of 0..1 spans only +-9 % of width,
# so a larger scale jitter would drown the size sliders.
JITTER_ANGLE = 0.08
JITTER_SCALE = 0.04
JITTER_SHIFT = 0.04
# Tight framing (`LoopOptions.framing`): a photo that ends just below the chin, above the
# forehead or beside the face leaves the crop grey past its edge, as the pipeline fills
# it (`landmarks.CROP_BORDER_VALUE`). Where that edge may fall, as fractions of the crop,
# and how often on each side: in the sample photos' crops the chin lies near 0.80, the
# upper forehead near 0.21, the face's sides near 0.24 and 0.76 (`scripts/framing.py`
# shows what such a photo does to a network trained without it).
FRAMING_EDGES = ((0.77, 1.0), (0.0, 0.21), (0.0, 0.23), (0.77, 1.0))  # below, above, left, right
FRAMING_SIDE_SHARES = (0.5, 0.25, 0.125, 0.125)


# --------------------------------------------------------------------------- data
@dataclass
class TrainingSet:
    """Aligned crops with (partial) labels.

    crops (N, 128, 128, 3) uint8; targets: ParamTargets; slider_mask (N, 23) and
    color_mask (N, 5) float32 weights (0 = field not labelled); class_mask (N,) float32
    weight of the hair_style / glasses labels; source: 'synthetic' or 'teacher'.
    """

    crops: np.ndarray
    targets: ParamTargets
    slider_mask: np.ndarray
    color_mask: np.ndarray
    class_mask: np.ndarray
    source: str = "synthetic"

    def __len__(self) -> int:
        return len(self.crops)

    @classmethod
    def fully_labelled(cls, crops: np.ndarray, targets: ParamTargets, source: str) -> TrainingSet:
        n = len(crops)
        return cls(
            crops, targets,
            np.ones((n, len(SLIDER_FIELDS)), np.float32),
            np.ones((n, len(COLOR_NAMES)), np.float32),
            np.ones(n, np.float32), source,
        )  # fmt: skip

    def joined(self, other: TrainingSet) -> TrainingSet:
        """This set followed by `other` (the source stays this set's)."""
        a, b = self.targets, other.targets
        return TrainingSet(
            np.concatenate([self.crops, other.crops]),
            ParamTargets(*(np.concatenate([getattr(a, f), getattr(b, f)])
                           for f in ("sliders", "colors", "hair_style", "glasses"))),
            *(np.concatenate([getattr(self, f), getattr(other, f)])
              for f in ("slider_mask", "color_mask", "class_mask")),
            self.source,
        )  # fmt: skip

    def subset(self, index: np.ndarray) -> TrainingSet:
        t = self.targets
        return TrainingSet(
            self.crops[index],
            ParamTargets(t.sliders[index], t.colors[index], t.hair_style[index], t.glasses[index]),
            self.slider_mask[index], self.color_mask[index], self.class_mask[index], self.source,
        )  # fmt: skip


# --------------------------------------------------------------------------- colour
_SRGB_TO_XYZ = torch.tensor(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
     [0.0193339, 0.1191920, 0.9503041]]
)  # fmt: skip
_WHITE_D65 = torch.tensor([0.95047, 1.0, 1.08883])


def srgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """(..., 3) sRGB 0..1 -> (..., 3) CIE Lab (D65), differentiable."""
    rgb = rgb.clamp(0.0, 1.0)
    linear = torch.where(
        rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055).clamp_min(1e-8) ** 2.4
    )
    xyz = linear @ _SRGB_TO_XYZ.to(rgb).T / _WHITE_D65.to(rgb)
    delta = 6.0 / 29.0
    f = torch.where(
        xyz > delta**3, xyz.clamp_min(1e-8) ** (1.0 / 3.0), xyz / (3 * delta**2) + 4.0 / 29.0
    )
    return torch.stack(
        [
            116.0 * f[..., 1] - 16.0,
            500.0 * (f[..., 0] - f[..., 1]),
            200.0 * (f[..., 1] - f[..., 2]),
        ],
        dim=-1,
    )


# --------------------------------------------------------------------------- loss
def compute_loss(
    outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, dict[str, float]]:
    """Masked soft-target cross-entropy on sliders, Lab L1 on colours, CE on the classes.

    Returns the weighted total and, for the log, the plain errors: mean |slider error|
    and mean Lab L1 (dE76-like, summed over the channels)."""
    mask = batch["slider_mask"]
    count = mask.sum().clamp_min(1.0)
    target = batch["sliders"]
    bce = nn.functional.binary_cross_entropy_with_logits(
        outputs["slider_logits"], target, reduction="none"
    )
    entropy = -(target * torch.log(target.clamp_min(1e-6)))
    entropy = entropy - (1 - target) * torch.log((1 - target).clamp_min(1e-6))
    slider_loss = ((bce - entropy) * mask).sum() / count
    slider_l1 = ((outputs["sliders"] - target).abs() * mask).sum() / count
    lab_err = (srgb_to_lab(outputs["colors"]) - srgb_to_lab(batch["colors"])).abs().sum(-1)
    color_l1 = (lab_err * batch["color_mask"]).sum() / batch["color_mask"].sum().clamp_min(1.0)
    weight = batch["class_mask"]
    denom = weight.sum().clamp_min(1.0)
    ce = nn.functional.cross_entropy
    hair_loss = (ce(outputs["hair_style"], batch["hair_style"], reduction="none") * weight).sum()
    hair_loss = hair_loss / denom
    glasses_loss = (ce(outputs["glasses"], batch["glasses"], reduction="none") * weight).sum()
    glasses_loss = glasses_loss / denom
    total = (
        SLIDER_WEIGHT * slider_loss
        + COLOR_WEIGHT * color_l1 / LAB_SCALE
        + HAIR_STYLE_WEIGHT * hair_loss
        + GLASSES_WEIGHT * glasses_loss
    )
    parts = {
        "slider_l1": slider_l1.item(), "color_lab_l1": color_l1.item(),
        "hair_ce": hair_loss.item(), "glasses_ce": glasses_loss.item(),
    }  # fmt: skip
    return total, parts


# --------------------------------------------------------------------------- augmentation
MIRROR_PERMUTATION = torch.tensor(SLIDER_MIRROR, dtype=torch.int64)


def augment(
    images: torch.Tensor,
    batch: dict[str, torch.Tensor],
    generator: torch.Generator,
    framing: float = 0.0,
) -> torch.Tensor:
    """Photometric and small geometric jitter on (N, 3, H, W) 0..1 images, in place on batch.

    Horizontal flips also swap the mirrored sliders in `batch`. Geometric jitter stays
    within what landmark alignment leaves (a few pixels, a few degrees, +-4 % scale).
    `framing`: the share of the images cut by a tight photo edge (`frame_tightly`); 0
    draws nothing more, so the augmentation is exactly as without the option.
    `generator` is a CPU one whatever the images' device: every random draw is made on
    the CPU, so a CUDA run sees the same augmentation as a CPU run with the same seed.
    """
    n, device = images.shape[0], images.device

    def draw(sample: torch.Tensor) -> torch.Tensor:
        return sample.to(device)

    def uniform(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return draw(lo + (hi - lo) * torch.rand(n, *shape, generator=generator))

    flip = draw(torch.rand(n, generator=generator) < 0.5)
    if flip.any():
        images[flip] = images[flip].flip(-1)
        for key in ("sliders", "slider_mask"):
            batch[key][flip] = batch[key][flip][:, MIRROR_PERMUTATION.to(device)]
    # small similarity jitter (alignment noise)
    angle = uniform(-JITTER_ANGLE, JITTER_ANGLE)
    scale = uniform(1.0 - JITTER_SCALE, 1.0 + JITTER_SCALE)
    shift = uniform(-JITTER_SHIFT, JITTER_SHIFT, 2)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )
    grid = nn.functional.affine_grid(theta, list(images.shape), align_corners=False)
    images = nn.functional.grid_sample(images, grid, padding_mode="border", align_corners=False)
    # exposure, contrast, gamma, slight white-balance shift
    gain = uniform(0.75, 1.25, 1, 1, 1)
    white = uniform(0.95, 1.05, 3, 1, 1)
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    contrast = uniform(0.8, 1.2, 1, 1, 1)
    images = ((images - mean) * contrast + mean) * gain * white
    images = images.clamp(0.0, 1.0) ** uniform(0.85, 1.15, 1, 1, 1)
    # resolution loss for a third of the batch, sensor noise for all
    low = draw(torch.rand(n, generator=generator) < 0.33)
    if low.any():
        size = images.shape[-1]
        small = nn.functional.interpolate(images[low], scale_factor=0.5, mode="area")
        images[low] = nn.functional.interpolate(small, size=(size, size), mode="bilinear",
                                                align_corners=False)  # fmt: skip
    noise = draw(torch.randn(images.shape, generator=generator)) * uniform(0.0, 0.03, 1, 1, 1)
    images = (images + noise).clamp(0.0, 1.0)
    if framing > 0:
        images = frame_tightly(images, framing, generator)
    return images.contiguous(memory_format=torch.channels_last)


def frame_tightly(images: torch.Tensor, share: float, generator: torch.Generator) -> torch.Tensor:
    """(N, 3, H, W) 0..1 images, `share` of them flat grey past a random straight photo
    edge: below the chin, above the forehead or beside the face (`FRAMING_EDGES`)."""
    n, _, height, width = images.shape
    cut = torch.rand(n, generator=generator) < share
    side = torch.multinomial(
        torch.tensor(FRAMING_SIDE_SHARES), n, replacement=True, generator=generator
    )
    low, high = torch.tensor(FRAMING_EDGES)[side].unbind(1)
    edge = (low + (high - low) * torch.rand(n, generator=generator)).view(n, 1, 1)
    side = side.view(n, 1, 1)
    ys = ((torch.arange(height) + 0.5) / height).view(1, height, 1)
    xs = ((torch.arange(width) + 0.5) / width).view(1, 1, width)
    outside = (
        ((side == 0) & (ys > edge)) | ((side == 1) & (ys < edge))
        | ((side == 2) & (xs < edge)) | ((side == 3) & (xs > edge))
    ) & cut.view(n, 1, 1)  # fmt: skip
    grey = torch.tensor(CROP_BORDER_VALUE, dtype=images.dtype).view(1, 3, 1, 1) / 255.0
    return torch.where(outside.unsqueeze(1).to(images.device), grey.to(images.device), images)


def _batch_tensors(data: TrainingSet, index: np.ndarray) -> dict[str, torch.Tensor]:
    t = data.targets
    return {
        "sliders": torch.from_numpy(t.sliders[index]).float(),
        "colors": torch.from_numpy(t.colors[index]).float(),
        "hair_style": torch.from_numpy(t.hair_style[index]).long(),
        "glasses": torch.from_numpy(t.glasses[index]).long(),
        "slider_mask": torch.from_numpy(data.slider_mask[index]).float(),
        "color_mask": torch.from_numpy(data.color_mask[index]).float(),
        "class_mask": torch.from_numpy(data.class_mask[index]).float(),
    }


# --------------------------------------------------------------------------- loop
@dataclass
class LoopOptions:
    epochs: int = 20
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    real_fraction: float = 0.3  # share of each batch drawn from the teacher-labelled set
    augment: bool = True
    framing: float = 0.0  # share of each batch cut by a tight photo edge (`frame_tightly`)
    device: str = "cpu"  # where the network trains ('cuda': a GPU); the data stays on the CPU


@dataclass
class History:
    losses: list[float] = field(default_factory=list)  # mean training loss per epoch
    parts: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def train_model(
    model: ChibiNet,
    synthetic: TrainingSet | None,
    real: TrainingSet | None = None,
    options: LoopOptions | None = None,
    log: Callable[[str], None] | None = None,
    checkpoint: str | os.PathLike | None = None,
) -> History:
    """Train `model` in place with AdamW and a one-cycle schedule; returns per-epoch losses.

    With both sets, each batch takes `real_fraction` of its samples from `real`; an
    epoch is one pass over the larger share. On `options.device` 'cuda' the network and
    each batch move to the GPU (cuDNN's deterministic kernels, no TF32) and the model is
    moved back to the CPU at the end; the batches and the augmentation's random draws
    are the CPU run's.

    checkpoint: a file the loop's state is saved to after every epoch; when it exists at
    the start (a run of the same options and data that was stopped), training resumes
    after its last epoch and ends with the weights the whole run would have given
    (`avatar3d.train_checkpoint`). The file is left in place at the end.
    """
    options = options or LoopOptions()
    device = torch.device(options.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("training on 'cuda' needs a GPU that torch can see")
    torch.manual_seed(options.seed)
    rng = np.random.default_rng(options.seed)
    generator = torch.Generator().manual_seed(options.seed)
    sources = [s for s in (synthetic, real) if s is not None and len(s)]
    if not sources:
        raise ValueError("no training data")
    if len(sources) == 2:
        n_real = max(1, round(options.batch_size * options.real_fraction))
        shares = [options.batch_size - n_real, n_real]
    else:
        shares = [options.batch_size]
    steps = max(1, max(len(s) // k for s, k in zip(sources, shares, strict=True)))
    model.train()
    model.to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), options.lr, weight_decay=options.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, options.lr, total_steps=steps * options.epochs, pct_start=0.15
    )
    history = History()
    fingerprint = {"loop": options_dict(options), "model": model.config.to_dict(),
                   "sizes": [len(s) for s in sources], "shares": shares}  # fmt: skip
    first_epoch, seconds_before = 0, 0.0
    state = load_checkpoint(checkpoint, fingerprint) if checkpoint is not None else None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        restore_generators(state["generators"], rng, generator)
        history = History(**state["history"])
        first_epoch, seconds_before = state["epoch"], history.seconds
        if log:
            log(f"resuming from {checkpoint} after epoch {first_epoch}/{options.epochs}")
    start = time.perf_counter()
    deterministic = torch.backends.cudnn.flags(
        enabled=True, benchmark=False, deterministic=True, allow_tf32=False
    )
    with deterministic:
        for epoch in range(first_epoch, options.epochs):
            orders = [rng.permutation(len(s)) for s in sources]
            totals: dict[str, float] = {}
            epoch_loss = 0.0
            for step in range(steps):
                parts_batches = []
                for source, order, share in zip(sources, orders, shares, strict=True):
                    idx = order[(np.arange(share) + step * share) % len(source)]
                    parts_batches.append(
                        (crops_to_tensor(source.crops[idx]), _batch_tensors(source, idx))
                    )
                images = torch.cat([p[0] for p in parts_batches]).to(device)
                batch = {
                    k: torch.cat([p[1][k] for p in parts_batches]).to(device)
                    for k in parts_batches[0][1]
                }
                if options.augment:
                    images = augment(images, batch, generator, options.framing)
                loss, parts = compute_loss(model(images), batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                epoch_loss += loss.item()
                for k, v in parts.items():
                    totals[k] = totals.get(k, 0.0) + v
            history.losses.append(epoch_loss / steps)
            history.parts.append({k: v / steps for k, v in totals.items()})
            history.seconds = seconds_before + time.perf_counter() - start
            if checkpoint is not None:
                save_checkpoint(checkpoint, {
                    "fingerprint": fingerprint, "epoch": epoch + 1,
                    "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict(),
                    "generators": generator_states(rng, generator), "history": asdict(history),
                })  # fmt: skip
            if log:
                detail = " ".join(f"{k}={v:.4f}" for k, v in history.parts[-1].items())
                log(f"epoch {epoch + 1}/{options.epochs} loss={history.losses[-1]:.4f} "
                    f"{detail} ({history.seconds:.0f}s)")  # fmt: skip
    history.seconds = seconds_before + time.perf_counter() - start
    model.eval()
    model.to("cpu")
    return history


def predict_arrays(
    model: Forward, crops: np.ndarray, batch_size: int = 128, flip_average: bool = True
) -> ParamTargets:
    """Run `model` (a ChibiNet, or a `Regressor.forward`) over crops (N, 128, 128, 3)
    uint8 -> predicted ParamTargets (argmax classes), the same way the pipeline does
    (`inference.predict_tensor`).

    `extra` holds the class probabilities ('hair_style_probs', 'glasses_probs').
    """
    from .inference import predict_tensor

    if isinstance(model, torch.nn.Module):
        model.eval()
    parts = [
        predict_tensor(model, crops_to_tensor(crops[i : i + batch_size]), flip_average)
        for i in range(0, len(crops), batch_size)
    ]
    joined = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return ParamTargets(
        joined["sliders"], joined["colors"],
        joined["hair_style"].argmax(1), joined["glasses"].argmax(1),
        extra={"hair_style_probs": joined["hair_style"], "glasses_probs": joined["glasses"]},
    )  # fmt: skip


def new_model(name: str, init: str | None) -> ChibiNet:
    """A fresh model from the factory, or one initialised from shipped weights / a .pt file.

    An initialised model's refiners restart from the factory's initial weights (their
    output zero): `chibi train` refits them after the network, which therefore
    fine-tunes exactly as it would without them, like a fresh network does."""
    from .regressor import load_pretrained, load_weights_file

    if init is None:
        return create_model(name)
    if init.endswith(".pt"):
        model = load_weights_file(init, "cpu")
    else:
        model = load_pretrained(init, device="cpu")
    fresh = create_model(model.config)
    for part in ("color_refiner", "slider_refiner"):
        if hasattr(model, part):
            getattr(model, part).load_state_dict(getattr(fresh, part).state_dict())
    return model


def options_dict(options: Any) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(options), default=str))
