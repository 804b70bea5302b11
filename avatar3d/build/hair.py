"""Hair: a cap over the skull plus locks (bangs, side locks, back hair, tails, spikes).

Every style is generated for a hair length L in [0, 1] with a topology that
does not depend on L, so the builder caches the style at L = 0 and L = 1 and
interpolates vertices and spring joints linearly. Locks are closed tapered
ribbons (`lock_part`) along smooth paths; each lock may hang from a spring
chain whose joints sit on a representative lock of its group.
"""

from __future__ import annotations

import numpy as np

from .. import atlas
from .hair_styles import ChainSpec, Lock, style_spec
from .head import HEAD_CENTER, head_point
from .rig import chain_weights, set_skin
from .shapes import (
    Part,
    frame_from_tangent,
    grid_faces,
    path_tangents,
    smooth_path,
    sweep,
)

__all__ = ["COLLIDERS", "ChainSpec", "cap_part", "hair_parts", "lock_part"]

# Sphere colliders shared by every style (ChainSpec.colliders index them):
# (joint, offset from the joint (m), radius (m)).
COLLIDERS: tuple[tuple[str, tuple[float, float, float], float], ...] = (
    ("head", (0.0, 0.18, -0.005), 0.165),
    ("head", (0.0, 0.13, 0.02), 0.150),
    ("neck", (0.0, 0.03, 0.0), 0.050),
    ("upperChest", (0.0, 0.0, -0.01), 0.085),
    ("leftUpperArm", (0.0, 0.0, 0.0), 0.045),
    ("rightUpperArm", (0.0, 0.0, 0.0), 0.045),
)


# hairline colatitude against |longitude|: high on the forehead, low at the nape
_HAIRLINE = np.array(
    [[0.0, 0.95], [0.6, 1.05], [1.15, 1.42], [1.57, 1.60], [2.2, 1.98], [np.pi, 2.18]]
)


def cap_part(rows: int, cols: int) -> Part:
    """The hair cap: a shell over the skull down to the hairline, tucked into the head there."""
    phi = np.linspace(-np.pi, np.pi, cols + 1)
    theta_max = np.interp(np.abs(phi), _HAIRLINE[:, 0], _HAIRLINE[:, 1])
    t = np.linspace(0.0, 1.0, rows + 1)[1:]
    theta = t[:, None] * theta_max[None, :]
    lift = (0.010 + 0.013 * (1.0 - t) ** 0.8)[:, None] * np.ones_like(theta)
    # last row: tucked just under the skin so the edge of the cap meets the head
    theta = np.concatenate([theta, theta[-1:] + 0.02], axis=0)
    lift = np.concatenate([lift, np.full((1, cols + 1), -0.004)], axis=0)
    st = np.sin(theta)
    dirs = np.stack([st * np.sin(phi), np.cos(theta), st * np.cos(phi)], -1).reshape(-1, 3)
    grid = head_point(dirs, lift.ravel())
    n_rows = rows + 1
    faces = grid_faces(n_rows, cols + 1)[:, ::-1]  # rows go down, columns towards +X at the front
    pole = len(grid)
    j = np.arange(cols)
    cap = np.stack([np.full(cols, pole), j, j + 1], -1)
    positions = np.concatenate([grid, head_point(np.array([[0.0, 1.0, 0.0]]), 0.023)])
    u = np.linspace(0.0, 1.0, cols + 1)
    v = np.concatenate([t, [1.0]]) * 0.55
    local = np.concatenate([np.stack(np.meshgrid(u, v), -1).reshape(-1, 2), [[0.5, 0.0]]])
    part = Part(
        "hair",
        positions,
        atlas.to_region("hair", local),
        np.concatenate([faces, cap]),
        smooth="hair_cap",
        material="Hair",
    )
    return part.rigid("head")


def _hint(points: np.ndarray) -> np.ndarray:
    """Direction a lock's flat side should face: away from the head's vertical axis
    below the head centre, away from the centre above it."""
    anchor = np.zeros_like(points)
    anchor[:, 1] = np.minimum(points[:, 1], HEAD_CENTER[1])
    h = points - anchor
    return h / np.linalg.norm(h, axis=1, keepdims=True)


def lock_part(lock: Lock, sides: int, rings_scale: int, name: str) -> tuple[Part, np.ndarray]:
    """A closed, tapered ribbon (or round tail) along the lock's smooth path.

    Returns the part (rigid on the head until skinned) and its centre line (K, 3).
    """
    count = lock.rings * rings_scale
    path = smooth_path(lock.keys, count)
    t = np.linspace(0.0, 1.0, count)
    tangents = path_tangents(path)
    side, up = frame_from_tangent(tangents, _hint(path))
    if lock.round:
        # a tail: swells after the tie, then tapers to a point
        radius = (
            lock.width
            * (0.75 + 0.45 * np.sin(np.pi * np.clip(t * 1.6, 0, 1)))
            * (1.0 - 0.9 * t**lock.taper)
        )
        rs, ru = radius, radius
    else:
        rs = 0.5 * lock.width * (1.0 - 0.88 * t**lock.taper)
        ru = 0.5 * lock.thick * (1.0 - 0.6 * t**lock.taper)
    part = sweep(
        path,
        side,
        up,
        rs,
        ru,
        sides,
        "hair",
        "hair",
        name,
        phase=np.pi / 2,
        cap_start=path[0] - tangents[0] * 0.004,
        cap_end=path[-1] + tangents[-1] * 0.012,
        material="Hair",
    )
    return part.rigid("head"), path


# --- styles ------------------------------------------------------------------------------


def hair_parts(
    style: str, length: float, quality: str
) -> tuple[list[Part], list[ChainSpec], list[np.ndarray]]:
    """Geometry, chains and chain joint positions ((n, 3) each) of a style at a length."""
    q = 0 if quality == "default" else 1
    spec = style_spec(style, length, quality)
    sides = 6 if q == 0 else 8
    scale = 1 if q == 0 else 2
    parts = [cap_part(7 if q == 0 else 16, 24 if q == 0 else 48)]
    paths = []
    for i, lock in enumerate(spec.locks):
        part, path = lock_part(lock, sides if not lock.round else sides + 2, scale, f"lock{i}")
        parts.append(part)
        paths.append(path)
    joint_positions = []
    for chain in spec.chains:
        path = paths[chain.lock]
        s = np.linspace(0.0, 1.0, len(path))
        joint_positions.append(
            np.column_stack([np.interp(chain.ts, s, path[:, i]) for i in range(3)])
        )
    # skin each lock on its chain by its position along the lock
    for lock, part, path in zip(spec.locks, parts[1:], paths, strict=True):
        if lock.chain is None:
            continue
        chain = next(c for c in spec.chains if c.name == lock.chain)
        along = _along(part.positions, path)
        bones = [("head", -1.0)] + [
            (f"hair_{chain.name}_{i}", t) for i, t in enumerate(chain.ts[:-1])
        ]
        set_skin(part, *chain_weights(along, bones, 0.06))
    return parts + spec.extras, spec.chains, joint_positions


def _along(positions: np.ndarray, path: np.ndarray) -> np.ndarray:
    """Fraction (N,) along the centre line (K, 3) of the nearest centre-line point."""
    dist = np.linalg.norm(positions[:, None, :] - path[None, :, :], axis=2)
    nearest = np.argmin(dist, axis=1)
    return nearest / (len(path) - 1)
