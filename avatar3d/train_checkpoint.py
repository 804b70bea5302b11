"""Resumable training: the loop's whole state after every epoch, in one file.

A CPU run of the shipped recipe takes hours; a run killed part way (a closed laptop, a
session that ends) starts again from its last finished epoch and ends with the same
weights, tensor for tensor, as a run that was never stopped (`chibi train --checkpoint`).
The file holds the network, the optimiser and learning-rate schedule, every random
generator the loop draws from, the losses so far, and a fingerprint of the run (loop
options, architecture, data sizes): a checkpoint is only taken up by the same run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT = 1


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write `state` (tensors, numbers, strings, lists and dicts of them) so that a reader
    sees the previous checkpoint or the whole new one, never a torn file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({"format": FORMAT, **state}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
    """The state saved at `path` (tensors on the CPU), or None when there is no file.

    Raises ValueError when the file is not a checkpoint of this format or was written by
    a run with another fingerprint (other options, architecture or data)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same error to the user
        raise ValueError(f"{path} is not a training checkpoint: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not a training checkpoint of format {FORMAT}")
    if state["fingerprint"] != fingerprint:
        changed = sorted(
            key for key in fingerprint.keys() | state["fingerprint"].keys()
            if fingerprint.get(key) != state["fingerprint"].get(key)
        )  # fmt: skip
        raise ValueError(
            f"{path} was written by another run (differs in: {', '.join(changed)}); "
            "delete it or name another checkpoint file"
        )
    return state


def generator_states(rng: np.random.Generator, generator: torch.Generator) -> dict[str, Any]:
    """Every random source the loop draws from: batch order, augmentation, torch's own."""
    return {
        "numpy": rng.bit_generator.state,
        "augment": generator.get_state(),
        "torch": torch.get_rng_state(),
    }


def restore_generators(
    states: dict[str, Any], rng: np.random.Generator, generator: torch.Generator
) -> None:
    rng.bit_generator.state = states["numpy"]
    generator.set_state(states["augment"])
    torch.set_rng_state(states["torch"])
