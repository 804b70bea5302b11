"""Fitting ChibiNet's colour refiner: the second step of `chibi train` for a model
whose config has `color_refine`.

The trained network's colours err partly systematically: a small MLP on its five
colour logits, the face's mean exposure and the pixels each colour pooled, fitted on
its own outputs over the training crops, takes a good part of the error away (README,
session 16). The rest of the network stays as it was: its outputs on every training
crop and its mirror image (the pipeline averages both) are computed once, then only
`color_refiner` trains, on the colour loss `chibi train` uses (Lab L1).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from .regressor import ChibiNet, crops_to_tensor
from .training import TrainingSet, srgb_to_lab

REFINE_EPOCHS = 300
REFINE_BATCH = 256
REFINE_LR = 1e-3
REFINE_WEIGHT_DECAY = 1e-4


def refiner_data(
    model: ChibiNet, data: TrainingSet, batch_size: int = 256
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The network's view of every crop and its mirror image: (inputs (2N, 33), colour
    logits (2N, 15), target colours (2N, 5, 3) sRGB 0..1, colour mask (2N, 5))."""
    model.eval()
    a = model.n_sliders
    b = a + 3 * model.n_colors
    inputs, logits = [], []
    with torch.inference_mode():
        for mirrored in (False, True):
            for start in range(0, len(data), batch_size):
                images = crops_to_tensor(data.crops[start : start + batch_size])
                if mirrored:
                    images = images.flip(-1).contiguous(memory_format=torch.channels_last)
                raw, pixels = model.unrefined_logits(images)
                inputs.append(model.refiner_inputs(images, raw, pixels))
                logits.append(raw[:, a:b])
    colors = torch.from_numpy(np.asarray(data.targets.colors, np.float32))
    mask = torch.from_numpy(np.asarray(data.color_mask, np.float32))
    # concatenated outside inference_mode: plain tensors, which autograd may save
    return (
        torch.cat(inputs), torch.cat(logits),
        torch.cat([colors, colors]), torch.cat([mask, mask]),
    )  # fmt: skip


def fit_color_refiner(
    model: ChibiNet,
    data: TrainingSet,
    seed: int = 0,
    epochs: int = REFINE_EPOCHS,
    log: Callable[[str], None] | None = None,
) -> list[float]:
    """Fit `model.color_refiner` in place on `data` (the rest of `model` unchanged).

    Returns the colour loss (Lab L1, summed over L, a, b; summed over the refiners) per
    epoch; the first entry is before any step, the network's own error."""
    refiner = model.color_refiner
    inputs, logits, colors, mask = refiner_data(model, data)
    generator = torch.Generator().manual_seed(seed)
    refiner.requires_grad_(True)
    refiner.train()
    optimizer = torch.optim.AdamW(refiner.parameters(), REFINE_LR, weight_decay=REFINE_WEIGHT_DECAY)
    target_lab = srgb_to_lab(colors)

    def loss_of(index: torch.Tensor) -> torch.Tensor:
        """Each refiner's own loss, summed: they train side by side, independently."""
        refined = logits[index] + refiner.members(inputs[index])  # (refiners, B, 15)
        lab = srgb_to_lab(torch.sigmoid(refined).view(len(refined), -1, model.n_colors, 3))
        error = (lab - target_lab[index]).abs().sum(-1)
        return (error * mask[index]).sum() / mask[index].sum().clamp_min(1.0)

    with torch.no_grad():
        losses = [loss_of(torch.arange(len(inputs))).item()]
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(inputs), generator=generator)
        total = 0.0
        for first in range(0, len(order), REFINE_BATCH):
            loss = loss_of(order[first : first + REFINE_BATCH])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * min(REFINE_BATCH, len(order) - first)
        losses.append(total / len(order))
    refiner.requires_grad_(False)
    model.eval()
    if log:
        count, seconds = len(refiner.weights[0]), time.perf_counter() - start
        log(f"colour refiner: Lab L1 {losses[0] / count:.3f} -> {losses[-1] / count:.3f} "
            f"(each of {count}) on {len(inputs)} crops ({seconds:.0f}s)")  # fmt: skip
    return losses
