"""Hair styles: which locks, spring chains and extra pieces (bun, ties) each style has.

Every style is a function of the hair length L in [0, 1] whose topology does not
depend on L (see hair.py). Key points are placed on the head surface with
`surf(colatitude, longitude, lift)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .head import head_point
from .shapes import Part, ellipsoid


@dataclass
class Lock:
    """One lock: key points (M, 3) of its centre line, ring count, root width and
    thickness (m), the spring chain it hangs from (or None), `round` for tails."""

    keys: np.ndarray
    rings: int
    width: float
    thick: float
    chain: str | None = None
    round: bool = False
    taper: float = 1.4


@dataclass
class ChainSpec:
    """A spring chain: joints at fractions `ts` (root first, tip last) along lock `lock`."""

    name: str
    lock: int
    ts: tuple[float, ...]
    stiffness: float = 1.0
    drag: float = 0.4
    gravity: float = 0.1
    hit_radius: float = 0.015
    colliders: tuple[int, ...] = (0, 1, 2, 3, 4, 5)


@dataclass
class HairSpec:
    locks: list[Lock] = field(default_factory=list)
    chains: list[ChainSpec] = field(default_factory=list)
    extras: list[Part] = field(default_factory=list)  # rigid on the head (bun, ties)


def _dir(theta: float, phi: float) -> np.ndarray:
    """Unit direction from colatitude theta and longitude phi (0 = +Z, pi/2 = +X)."""
    return np.array([np.sin(theta) * np.sin(phi), np.cos(theta), np.sin(theta) * np.cos(phi)])


def surf(theta: float, phi: float, lift: float) -> np.ndarray:
    """The point `lift` metres above the head surface at (theta, phi)."""
    return head_point(_dir(theta, phi)[None, :], lift)[0]


def _bangs(spec: HairSpec, count: int, length: float, spiky: bool) -> None:
    phis = np.linspace(-1.12, 1.12, count)
    first = len(spec.locks)
    for phi in phis:
        edge = abs(phi) / 1.12
        tip = 1.36 + 0.2 * edge**2 + 0.05 * length
        sweep_phi = phi + 0.10 * (1.0 - edge)  # a gentle sweep to the character's left
        keys = np.array(
            [
                surf(0.30, phi * 0.5, 0.020),
                surf(0.80, phi * 0.85, 0.017),
                surf(1.10, phi * 0.95 + 0.03, 0.012),
                surf(tip - 0.13, sweep_phi, 0.007),
                surf(tip, sweep_phi + 0.02, 0.004),
            ]
        )
        width = 0.050 if spiky else 0.072
        spec.locks.append(Lock(keys, 6, width, 0.012, taper=0.9 if spiky else 1.6))
    groups = [
        ("bangs_R", range(0, count // 3)),
        ("bangs_C", range(count // 3, count - count // 3)),
        ("bangs_L", range(count - count // 3, count)),
    ]
    for name, members in groups:
        members = list(members)
        for m in members:
            spec.locks[first + m].chain = name
        rep = first + members[len(members) // 2]
        spec.chains.append(
            ChainSpec(name, rep, (0.45, 0.75, 1.0), stiffness=2.0, drag=0.6, gravity=0.05)
        )


def _side_locks(spec: HairSpec, y_end: float, width: float = 0.05) -> None:
    for side, s in ((1, "L"), (-1, "R")):
        phi = side * 1.28
        widest = surf(1.72, phi, 0.012)
        end = np.array([widest[0] * 1.02, y_end, widest[2] + 0.012])
        keys = np.array(
            [
                surf(0.7, side * 1.1, 0.021),
                surf(1.25, phi, 0.016),
                widest,
                0.5 * (widest + end) + np.array([side * 0.006, 0.0, 0.0]),
                end,
            ]
        )
        spec.locks.append(Lock(keys, 8, width, 0.014, chain=f"side_{s}"))
        spec.chains.append(
            ChainSpec(
                f"side_{s}",
                len(spec.locks) - 1,
                (0.35, 0.6, 0.8, 1.0),
                stiffness=1.2,
                drag=0.5,
                gravity=0.15,
            )
        )


def _skirt(
    spec: HairSpec,
    phis: np.ndarray,
    y_end: float,
    groups: int,
    curl: float,
    rings: int,
    behind_shoulders: bool,
) -> None:
    """Locks from the crown over the widest part of the head, hanging to y_end."""
    first = len(spec.locks)
    for phi in phis:
        widest = surf(1.66, phi, 0.022)
        horiz = np.array([widest[0], 0.0, widest[2]])
        out = horiz / np.linalg.norm(horiz)
        mid = widest + np.array([0.0, 0.5 * (y_end - widest[1]), 0.0]) + out * 0.006
        end = np.array([widest[0], y_end, widest[2]]) - out * curl
        keys = [surf(0.45, phi, 0.021), surf(1.15, phi, 0.022), widest, mid, end]
        keys = np.array(keys)
        if behind_shoulders:  # long hair falls behind the shoulders and arms
            low = np.clip((0.70 - keys[:, 1]) / 0.08, 0.0, 1.0)
            keys[:, 2] = np.minimum(keys[:, 2], (1 - low) * keys[:, 2] + low * -0.10)
            keys[:, 0] *= 1.0 - 0.25 * low
        spec.locks.append(Lock(keys, rings, 0.105, 0.022, taper=2.2))
    count = len(phis)
    bounds = np.linspace(0, count, groups + 1).round().astype(int)
    for g in range(groups):
        members = list(range(bounds[g], bounds[g + 1]))
        name = f"back_{g}"
        for m in members:
            spec.locks[first + m].chain = name
        ts = (0.3, 0.5, 0.75, 1.0) if rings <= 9 else (0.25, 0.45, 0.65, 0.85, 1.0)
        spec.chains.append(
            ChainSpec(
                name,
                first + members[len(members) // 2],
                ts,
                stiffness=1.0,
                drag=0.4,
                gravity=0.2,
                hit_radius=0.02,
            )
        )


def _nape(spec: HairSpec, length: float, count: int, chain: bool) -> None:
    phis = np.linspace(2.0, 2 * np.pi - 2.0, count)
    first = len(spec.locks)
    for phi in phis:
        end_theta = 2.05 + 0.35 * length
        keys = np.array(
            [
                surf(1.1, phi, 0.022),
                surf(1.7, phi, 0.016),
                surf(end_theta - 0.15, phi, 0.012),
                surf(end_theta, phi, 0.022),
            ]
        )
        spec.locks.append(Lock(keys, 5, 0.09, 0.016, taper=1.8))
    if chain:
        mid = first + count // 2
        spec.locks[mid].chain = "nape"
        spec.chains.append(
            ChainSpec("nape", mid, (0.45, 0.75, 1.0), stiffness=1.5, drag=0.5, gravity=0.1)
        )


def _tail(spec: HairSpec, name: str, keys: np.ndarray, radius: float) -> None:
    spec.locks.append(Lock(keys, 10, radius, radius, chain=name, round=True, taper=2.5))
    spec.chains.append(
        ChainSpec(
            name,
            len(spec.locks) - 1,
            (0.08, 0.3, 0.5, 0.7, 0.88, 1.0),
            stiffness=0.8,
            drag=0.35,
            gravity=0.25,
            hit_radius=0.03,
        )
    )


def _tie(center: np.ndarray, axis: np.ndarray, radius: float, q: int) -> Part:
    axis = axis / np.linalg.norm(axis)
    ref = np.array([0.0, 1.0, 0.0]) if abs(axis[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    side = np.cross(ref, axis)
    side /= np.linalg.norm(side)
    up = np.cross(axis, side)
    return ellipsoid(
        center,
        side,
        up,
        (radius, radius, radius * 0.55),
        5 + 3 * q,
        10 + 8 * q,
        "hair",
        "hair",
        f"tie{center[0]:+.3f}",
        material="Hair",
    ).rigid("head")


def style_spec(style: str, length: float, quality: str) -> HairSpec:
    """Locks, chains and extra parts of one hair style at hair length `length` (0..1)."""
    q = 0 if quality == "default" else 1
    spec = HairSpec()
    L = length
    spiky = style == "spiky"
    _bangs(spec, 5 if spiky else 7, L, spiky)
    if style == "short":
        _side_locks(spec, 0.79 - 0.06 * L)
        _nape(spec, L, 6, chain=True)
    elif style == "bob":
        _side_locks(spec, 0.70 - 0.05 * L, 0.055)
        _skirt(spec, np.linspace(1.5, 2 * np.pi - 1.5, 10), 0.70 - 0.05 * L, 4, 0.02, 8, False)
    elif style == "long":
        _side_locks(spec, 0.66 - 0.06 * L, 0.055)
        _skirt(spec, np.linspace(1.6, 2 * np.pi - 1.6, 10), 0.52 - 0.22 * L, 4, 0.0, 11, True)
    elif style == "ponytail":
        _side_locks(spec, 0.78 - 0.06 * L)
        _nape(spec, 0.0, 5, chain=False)
        root = surf(0.95, np.pi, 0.02)
        spec.extras.append(
            _tie(root + np.array([0.0, 0.0, -0.02]), np.array([0.0, 0.2, -1.0]), 0.032, q)
        )
        y_end = 0.66 - 0.24 * L
        keys = np.array(
            [
                root + [0.0, 0.0, -0.015],
                [0.0, 0.975, -0.245],
                [0.0, 0.92, -0.285],
                [0.0, 0.82, -0.30],
                [0.0, 0.5 * (0.82 + y_end), -0.29],
                [0.0, y_end, -0.27],
            ]
        )
        _tail(spec, "tail", keys, 0.048)
    elif style == "twintails":
        _side_locks(spec, 0.77 - 0.06 * L)
        _nape(spec, 0.0, 5, chain=False)
        for side, s in ((1, "L"), (-1, "R")):
            root = surf(0.85, side * 2.0, 0.02)
            out = np.array([side * 1.0, 0.15, -0.2])
            spec.extras.append(_tie(root + out * 0.012, out, 0.03, q))
            y_end = 0.60 - 0.24 * L
            keys = np.array(
                [
                    root + out * 0.01,
                    root + np.array([side * 0.07, 0.0, -0.02]),
                    [side * 0.27, 0.90, -0.10],
                    [side * 0.275, 0.76, -0.10],
                    [side * 0.27, 0.5 * (0.76 + y_end), -0.10],
                    [side * 0.25, y_end, -0.095],
                ]
            )
            _tail(spec, f"twin_{s}", keys, 0.046)
    elif style == "spiky":
        _side_locks(spec, 0.79 - 0.05 * L, 0.045)
        spike_dirs = [
            (0.25, 0.0),
            (0.6, 0.9),
            (0.6, -0.9),
            (0.65, np.pi),
            (1.0, 1.9),
            (1.0, -1.9),
            (1.05, 2.6),
            (1.05, -2.6),
            (1.45, 2.3),
            (1.45, -2.3),
            (1.55, np.pi),
            (0.3, np.pi),
        ]
        for theta, phi in spike_dirs:
            d = _dir(theta, phi)
            axis = d + np.array([0.0, 0.1, -0.45])  # spikes sweep backwards
            axis /= np.linalg.norm(axis)
            base = surf(theta, phi, 0.010)
            spike = 0.035 + 0.04 * L
            keys = np.array([base, base + axis * spike * 0.5 + d * 0.01, base + axis * spike])
            spec.locks.append(Lock(keys, 4, 0.07, 0.05, taper=1.0))
        spec.locks[-1].chain = "spike"
        spec.chains.append(
            ChainSpec(
                "spike", len(spec.locks) - 1, (0.3, 1.0), stiffness=3.0, drag=0.7, gravity=0.0
            )
        )
    elif style == "bun":
        _side_locks(spec, 0.70 - 0.09 * L, 0.04)
        _nape(spec, 0.0, 5, chain=False)
        root = surf(0.8, np.pi, 0.02)
        d = _dir(0.8, np.pi)
        radius = 0.056 + 0.016 * L
        bun = ellipsoid(
            root + d * (radius * 0.75),
            np.array([1.0, 0.0, 0.0]),
            np.cross(d, [1.0, 0.0, 0.0]),
            (radius, radius * 0.92, radius * 0.9),
            7 + 6 * q,
            14 + 10 * q,
            "hair",
            "hair",
            "bun",
            material="Hair",
        )
        spec.extras.append(bun.rigid("head"))
        spec.extras.append(_tie(root + d * 0.006, d, 0.034, q))
    else:
        raise ValueError(f"unknown hair style {style!r}")
    return spec
