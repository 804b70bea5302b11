"""Fitting ChibiNet's refiners: the second step of `chibi train` for a model whose
config has `color_refine` or `slider_refine`.

The trained network errs partly systematically: small MLPs on its own outputs (for
the colours also the face's mean exposure and the pixels each colour pooled), fitted
afterwards, take a part of the error away (README, sessions 16-17). The rest of the
network stays as it was: its outputs on every crop and its mirror image (the pipeline
averages both) are computed once, then only the refiners train, each on its own loss:
the colours on `chibi train`'s colour loss (Lab L1), the sliders on the mean absolute
slider error. `chibi train` fits them on its training crops and on as many again
renders the network never saw (`TrainOptions.refine_avatars`), where its errors are
those a new face meets.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .param_arrays import SLIDER_MIRROR
from .regressor import COLOR_COLUMNS, ChibiNet, crops_to_tensor
from .training import TrainingSet, srgb_to_lab

REFINE_EPOCHS = 300
REFINE_BATCH = 256
REFINE_LR = 1e-3
REFINE_WEIGHT_DECAY = 1e-4


@dataclass
class RefinerData:
    """The network's view of every crop and then of its mirror image (2N rows):
    raw (2N, 48) outputs before any refiner; color_inputs (2N, 33) what the colour
    refiner reads (None without one); colors (2N, 5, 3) sRGB 0..1 and color_mask
    (2N, 5); sliders (2N, 23) and slider_mask (2N, 23), mirrored fields swapped on the
    mirror images' rows."""

    raw: torch.Tensor
    color_inputs: torch.Tensor | None
    colors: torch.Tensor
    color_mask: torch.Tensor
    sliders: torch.Tensor
    slider_mask: torch.Tensor

    def __len__(self) -> int:
        return len(self.raw)


def refiner_data(model: ChibiNet, data: TrainingSet, batch_size: int = 256) -> RefinerData:
    """`RefinerData` of `model` (trained) on `data`."""
    model.eval()
    raws, inputs = [], []
    with torch.inference_mode():
        for mirrored in (False, True):
            for start in range(0, len(data), batch_size):
                images = crops_to_tensor(data.crops[start : start + batch_size])
                if mirrored:
                    images = images.flip(-1).contiguous(memory_format=torch.channels_last)
                raw, pixels = model.unrefined_logits(images)
                raws.append(raw)
                if model.config.color_refine:
                    inputs.append(model.refiner_inputs(images, raw, pixels))

    def both(array: np.ndarray, mirrored: np.ndarray | None = None) -> torch.Tensor:
        array = np.asarray(array, np.float32)
        return torch.from_numpy(np.concatenate([array, array if mirrored is None else mirrored]))

    sliders, slider_mask = data.targets.sliders, data.slider_mask
    # concatenated outside inference_mode: plain tensors, which autograd may save
    return RefinerData(
        torch.cat(raws), torch.cat(inputs) if inputs else None,
        both(data.targets.colors), both(data.color_mask),
        both(sliders, sliders[:, SLIDER_MIRROR]), both(slider_mask, slider_mask[:, SLIDER_MIRROR]),
    )  # fmt: skip


def fit_refiners(
    model: ChibiNet,
    data: TrainingSet,
    seed: int = 0,
    epochs: int = REFINE_EPOCHS,
    log: Callable[[str], None] | None = None,
) -> dict[str, list[float]]:
    """Fit `model`'s refiners in place on `data` (the rest of `model` unchanged).

    Returns per refiner ('color', 'slider') its loss per epoch, summed over the
    ensemble's members (colours: Lab L1, summed over L, a, b; sliders: mean absolute
    error); the first entry is before any step, the network's own error. One
    optimiser and the same batches for both; their parameters and losses are apart,
    so each fits as it would alone."""
    view = refiner_data(model, data)
    a, colors = model.n_sliders, COLOR_COLUMNS
    target_lab = srgb_to_lab(view.colors)

    def color_loss(index: torch.Tensor) -> torch.Tensor:
        refined = view.raw[index, colors] + model.color_refiner.members(view.color_inputs[index])
        lab = srgb_to_lab(torch.sigmoid(refined).view(len(refined), -1, model.n_colors, 3))
        error = (lab - target_lab[index]).abs().sum(-1)  # (refiners, B, 5)
        mask = view.color_mask[index]
        return (error * mask).sum() / mask.sum().clamp_min(1.0)

    def slider_loss(index: torch.Tensor) -> torch.Tensor:
        refined = view.raw[index, :a] + model.slider_refiner.members(view.raw[index])
        error = (torch.sigmoid(refined) - view.sliders[index]).abs()  # (refiners, B, 23)
        mask = view.slider_mask[index]
        return (error * mask).sum() / mask.sum().clamp_min(1.0)

    parts: dict[str, tuple[torch.nn.Module, Callable[[torch.Tensor], torch.Tensor]]] = {}
    if model.config.color_refine:
        parts["color"] = (model.color_refiner, color_loss)
    if model.config.slider_refine:
        parts["slider"] = (model.slider_refiner, slider_loss)
    parameters = [p for refiner, _ in parts.values() for p in refiner.parameters()]
    for refiner, _ in parts.values():
        refiner.requires_grad_(True)
        refiner.train()
    optimizer = torch.optim.AdamW(parameters, REFINE_LR, weight_decay=REFINE_WEIGHT_DECAY)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        everything = torch.arange(len(view))
        losses = {name: [loss(everything).item()] for name, (_, loss) in parts.items()}
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(view), generator=generator)
        totals = dict.fromkeys(parts, 0.0)
        for first in range(0, len(order), REFINE_BATCH):
            index = order[first : first + REFINE_BATCH]
            each = {name: loss(index) for name, (_, loss) in parts.items()}
            optimizer.zero_grad(set_to_none=True)
            sum(each.values()).backward()
            optimizer.step()
            for name, value in each.items():
                totals[name] += value.item() * len(index)
        for name in parts:
            losses[name].append(totals[name] / len(order))
    for refiner, _ in parts.values():
        refiner.requires_grad_(False)
    model.eval()
    if log:
        seconds = time.perf_counter() - start
        for name, (refiner, _) in parts.items():
            count, curve = len(refiner.weights[0]), losses[name]
            label = "colour refiners: Lab L1" if name == "color" else "slider refiners: L1"
            log(f"{label} {curve[0] / count:.4f} -> {curve[-1] / count:.4f} "
                f"(each of {count}) on {len(view)} crops")  # fmt: skip
        log(f"refiners fitted in {seconds:.0f}s")
    return losses
