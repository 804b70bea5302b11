"""Skeleton and skin weights.

The skeleton has every VRM humanoid bone the avatar needs (VRM names, hips
as root, joints without rest rotation) followed by the hair spring joints.
Skin weights are built densely per part (N vertices x P palette bones) and
reduced to the 4 strongest influences, renormalised to sum to 1.
"""

from __future__ import annotations

import numpy as np

from ..avatar import Skeleton
from .layout import body_joint_positions
from .shapes import Part

# (name, parent) in parent-before-child order; eyes are placed per avatar.
HUMANOID: tuple[tuple[str, str | None], ...] = (
    ("hips", None),
    ("spine", "hips"),
    ("chest", "spine"),
    ("upperChest", "chest"),
    ("neck", "upperChest"),
    ("head", "neck"),
    ("leftEye", "head"),
    ("rightEye", "head"),
    ("leftShoulder", "upperChest"),
    ("leftUpperArm", "leftShoulder"),
    ("leftLowerArm", "leftUpperArm"),
    ("leftHand", "leftLowerArm"),
    ("rightShoulder", "upperChest"),
    ("rightUpperArm", "rightShoulder"),
    ("rightLowerArm", "rightUpperArm"),
    ("rightHand", "rightLowerArm"),
    ("leftUpperLeg", "hips"),
    ("leftLowerLeg", "leftUpperLeg"),
    ("leftFoot", "leftLowerLeg"),
    ("leftToes", "leftFoot"),
    ("rightUpperLeg", "hips"),
    ("rightLowerLeg", "rightUpperLeg"),
    ("rightFoot", "rightLowerLeg"),
    ("rightToes", "rightFoot"),
)


def build_skeleton(
    eyes: np.ndarray, hair_chains: list[tuple[str, np.ndarray]]
) -> tuple[Skeleton, list[list[int]]]:
    """The full skeleton.

    eyes: (2, 3) left and right eye joint positions (metres).
    hair_chains: (chain name, (n, 3) joint positions root first); each chain's
    root hangs from the head. Joints are named f"hair_{name}_{i}".
    Returns the skeleton and, per chain, its joint indices.
    """
    body = body_joint_positions()
    body["leftEye"], body["rightEye"] = eyes[0], eyes[1]
    names = [n for n, _ in HUMANOID]
    parents = [-1 if p is None else names.index(p) for _, p in HUMANOID]
    positions = [body[n] for n in names]
    chains = []
    head = names.index("head")
    for chain_name, joints in hair_chains:
        indices = []
        for i, pos in enumerate(joints):
            names.append(f"hair_{chain_name}_{i}")
            parents.append(head if i == 0 else len(names) - 2)
            positions.append(np.asarray(pos, np.float64))
            indices.append(len(names) - 1)
        chains.append(indices)
    skeleton = Skeleton(
        names=names,
        parents=np.array(parents, np.int64),
        positions=np.array(positions, np.float64),
    )
    return skeleton, chains


def chain_weights(
    coord: np.ndarray, chain: list[tuple[str, float]], blend: float
) -> tuple[list[str], np.ndarray]:
    """Dense weights (N, P) along a chain of bones laid out along one coordinate.

    coord: (N,) each vertex's coordinate along the chain; chain: (bone, start)
    with increasing starts (the first start is ignored: bone 0 owns everything
    before bone 1). Around each start the two bones blend over +-`blend` metres
    with a smoothstep, so elbows and knees bend smoothly.
    """
    names = [name for name, _ in chain]
    soft = np.zeros(len(coord))
    for _, start in chain[1:]:
        t = np.clip((coord - (start - blend)) / (2.0 * blend), 0.0, 1.0)
        soft += t * t * (3.0 - 2.0 * t)
    lower = np.clip(np.floor(soft).astype(np.int64), 0, len(chain) - 1)
    frac = soft - lower
    dense = np.zeros((len(coord), len(chain)))
    rows = np.arange(len(coord))
    dense[rows, lower] = 1.0 - frac
    upper = np.minimum(lower + 1, len(chain) - 1)
    dense[rows, upper] += frac
    return names, dense


def blend_in(
    names: list[str], dense: np.ndarray, bone: str, amount: np.ndarray
) -> tuple[list[str], np.ndarray]:
    """Mix `amount` (N,) in [0, 1] of `bone` into dense weights, scaling the others down."""
    if bone not in names:
        names = names + [bone]
        dense = np.concatenate([dense, np.zeros((len(dense), 1))], axis=1)
    dense = dense * (1.0 - amount)[:, None]
    dense[:, names.index(bone)] += amount
    return names, dense


def set_skin(part: Part, names: list[str], dense: np.ndarray) -> Part:
    """Store the 4 strongest influences of dense weights (N, P) on a part, renormalised."""
    count = min(4, dense.shape[1])
    order = np.argsort(-dense, axis=1, kind="stable")[:, :count]
    w = np.take_along_axis(dense, order, axis=1)
    idx = np.zeros((len(dense), 4), np.int64)
    weights = np.zeros((len(dense), 4))
    idx[:, :count] = order
    weights[:, :count] = w
    weights /= weights.sum(axis=1, keepdims=True)
    part.bones, part.bone_index, part.bone_weight = list(names), idx, weights
    return part


def global_skin(parts: list[Part], skeleton: Skeleton) -> tuple[np.ndarray, np.ndarray]:
    """(V, 4) uint16 joints and (V, 4) float32 weights (rows sum to 1) for all parts in order."""
    joints, weights = [], []
    for part in parts:
        palette = np.array([skeleton.index(b) for b in part.bones], np.int64)
        j = palette[part.bone_index]
        w = part.bone_weight.copy()
        j[w == 0.0] = 0  # unused slots point at the root with weight 0
        joints.append(j)
        weights.append(w)
    w = np.concatenate(weights).astype(np.float32)
    # renormalise in float32 so every row sums to 1 within float32 precision
    w /= w.sum(axis=1, keepdims=True)
    return np.concatenate(joints).astype(np.uint16), w
