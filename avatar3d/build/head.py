"""The head: an analytic chibi head surface, its mesh, ears and the tongue.

The head surface is star-shaped around HEAD_CENTER: a point in unit direction
d lies at HEAD_CENTER + head_radius(d) * d. Face patches (face.py) are placed
by projecting radially onto this surface, and the head mesh samples it on a
latitude/longitude grid, so any direction can be mapped back to the grid
(`head_grid_lookup`) to borrow the head's normals for the patches.
"""

from __future__ import annotations

import numpy as np

from .. import atlas
from .layout import EAR_ANCHOR, HEAD_CENTER, MOUTH_ANCHOR
from .shapes import Part, ellipsoid, grid_faces

# radii of the base ellipsoid (metres)
_RX = 0.207
_RY_TOP = 0.205
_RY_BOTTOM = 0.208
_RZ_FRONT = 0.185
_RZ_BACK = 0.200
# cheek bulges: direction centres (left, right), bulge height (m), angular width
_CHEEK_DIRS = np.array([[0.55, -0.42, 0.72], [-0.55, -0.42, 0.72]])
_CHEEK_DIRS /= np.linalg.norm(_CHEEK_DIRS, axis=1, keepdims=True)
_CHEEK_HEIGHT = 0.013
_CHEEK_WIDTH = 0.30


def head_radius(d: np.ndarray) -> np.ndarray:
    """Distance (N,) metres from HEAD_CENTER to the head surface along unit directions d (N, 3)."""
    x, y, z = d[:, 0], d[:, 1], d[:, 2]
    low = np.clip(-y, 0.0, 1.0)
    # the lower face narrows towards a soft, round chin
    rx = _RX * (1.0 - 0.20 * low**2)
    ry = np.where(y > 0.0, _RY_TOP, _RY_BOTTOM)
    rz = np.where(z > 0.0, _RZ_FRONT, _RZ_BACK) * (1.0 - 0.12 * low**2)
    r = 1.0 / np.sqrt((x / rx) ** 2 + (y / ry) ** 2 + (z / rz) ** 2)
    # (N, 2) dot products written out: a matrix product's rounding depends on N (BLAS
    # kernels), and one direction must give the same radius alone or among others
    cos_to_cheek = x[:, None] * _CHEEK_DIRS[:, 0] + y[:, None] * _CHEEK_DIRS[:, 1]
    cos_to_cheek += z[:, None] * _CHEEK_DIRS[:, 2]
    bulge = np.exp(-(((1.0 - cos_to_cheek) / (_CHEEK_WIDTH**2 * 0.5)) ** 2) * 0.5)
    return r + _CHEEK_HEIGHT * bulge.sum(axis=1)


def head_point(d: np.ndarray, lift: np.ndarray | float = 0.0) -> np.ndarray:
    """Points (N, 3) on the head surface (plus `lift` metres outward) along directions d (N, 3)."""
    return HEAD_CENTER + (head_radius(d) + lift)[:, None] * d


def front_direction(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Unit directions (N, 3) of the front head surface points whose world x, y are given."""
    x = np.atleast_1d(np.asarray(x, np.float64))
    y = np.atleast_1d(np.asarray(y, np.float64))
    rel = np.stack([x, y - HEAD_CENTER[1], np.full_like(x, _RZ_FRONT)], -1)
    for _ in range(6):  # fixed point: the radius varies slowly with direction
        d = rel / np.linalg.norm(rel, axis=1, keepdims=True)
        r = head_radius(d)
        z = np.sqrt(np.maximum(r**2 - rel[:, 0] ** 2 - rel[:, 1] ** 2, 1e-6))
        rel[:, 2] = z
    return rel / np.linalg.norm(rel, axis=1, keepdims=True)


def tangent_frame(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tangent axes (N, 3) x2 at directions d (N, 3): `right` (~+X) and `up` (~+Y)."""
    right = np.cross(np.array([0.0, 1.0, 0.0]), d)
    right /= np.linalg.norm(right, axis=1, keepdims=True)
    up = np.cross(d, right)
    return right, up


def head_grid(rings: int, segments: int) -> tuple[np.ndarray, np.ndarray]:
    """Colatitudes (rings-1,) and longitudes (segments+1,) of the head mesh grid.

    Longitude 0 faces +Z, +pi/2 is +X; the grid's seam is at the back (+-pi).
    """
    theta = np.pi * np.arange(1, rings) / rings
    phi = np.linspace(-np.pi, np.pi, segments + 1)
    return theta, phi


def sphere_dirs(theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """(len(theta), len(phi), 3) unit directions for colatitude theta and longitude phi."""
    st, ct = np.sin(theta)[:, None], np.cos(theta)[:, None]
    return np.stack(
        np.broadcast_arrays(st * np.sin(phi)[None, :], ct, st * np.cos(phi)[None, :]), -1
    )


def head_parts(rings: int, segments: int) -> list[Part]:
    """The closed head surface as two parts: front half (atlas "face") and back half ("skin").

    Both halves share their border positions and the smooth group "head", so the
    surface is closed and smooth. The face region maps longitude -90..90 deg to
    u 0..1 and colatitude 0..180 deg to v 0..1.
    """
    assert segments % 4 == 0
    theta, phi = head_grid(rings, segments)
    quarter = segments // 4
    halves = {
        "front": (phi[quarter : 3 * quarter + 1], "face"),
        "back": (np.concatenate([phi[3 * quarter :], phi[1 : quarter + 1] + 2 * np.pi]), "skin"),
    }
    parts = []
    for lon, region in halves.values():
        dirs = sphere_dirs(theta, lon)
        grid = head_point(dirs.reshape(-1, 3))
        cols = len(lon)
        # rows run down (theta grows), columns run towards +X on the front: cross(dc, dr)
        # points inwards there, so flip the winding to face outwards.
        faces = grid_faces(len(theta), cols)[:, ::-1]
        top = len(grid)
        bottom = top + 1
        j = np.arange(cols - 1)
        last = (len(theta) - 1) * cols
        cap_top = np.stack([np.full(cols - 1, top), j, j + 1], -1)
        cap_bottom = np.stack([np.full(cols - 1, bottom), last + j + 1, last + j], -1)
        positions = np.concatenate(
            [grid, head_point(np.array([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0]]))]
        )
        u = (lon - lon[0]) / (lon[-1] - lon[0])
        v = theta / np.pi
        local = np.stack(np.meshgrid(u, v), -1).reshape(-1, 2)
        local = np.concatenate([local, [[0.5, 0.0], [0.5, 1.0]]])
        part = Part(
            label="head",
            positions=positions,
            uvs=atlas.to_region(region, local),
            faces=np.concatenate([faces, cap_top, cap_bottom]),
            smooth="head",
            material="Body",
        ).rigid("head")
        part.vertex_labels = head_zone_labels(positions)
        parts.append(part)
    return parts


def head_zone_labels(positions: np.ndarray) -> np.ndarray:
    """Region labels of head vertices: the lower front face halves are "face_L"/"face_R".

    Morph fields that move the head surface (jaw, cheeks) stay inside these zones.
    """
    lower_front = (positions[:, 2] > -0.06) & (positions[:, 1] < HEAD_CENTER[1] - 0.02)
    labels = np.full(len(positions), "head", dtype=object)
    labels[lower_front & (positions[:, 0] >= 0.0)] = "face_L"
    labels[lower_front & (positions[:, 0] < 0.0)] = "face_R"
    return labels


def head_grid_lookup(d: np.ndarray, rings: int, segments: int) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear lookup of front-half head vertices for directions d (N, 3).

    Returns (N, 4) local vertex indices into the front head part and (N, 4)
    weights, so patch normals can copy the head's normals underneath them.
    """
    quarter = segments // 4
    cols = 2 * quarter + 1
    theta = np.arccos(np.clip(d[:, 1], -1.0, 1.0))
    phi = np.arctan2(d[:, 0], d[:, 2])
    row = np.clip(theta / (np.pi / rings) - 1.0, 0.0, rings - 2 - 1e-9)
    col = np.clip((phi + np.pi / 2) / (2 * np.pi / segments), 0.0, cols - 1 - 1e-9)
    r0, c0 = np.floor(row).astype(np.int64), np.floor(col).astype(np.int64)
    fr, fc = row - r0, col - c0
    idx = np.stack(
        [r0 * cols + c0, r0 * cols + c0 + 1, (r0 + 1) * cols + c0, (r0 + 1) * cols + c0 + 1], -1
    )
    w = np.stack([(1 - fr) * (1 - fc), (1 - fr) * fc, fr * (1 - fc), fr * fc], -1)
    return idx, w


def ear_part(side: int, rings: int, segments: int) -> Part:
    """One ear (side +1 = character's left, +X): a flattened ellipsoid on the side of the head."""
    y, z = EAR_ANCHOR[1], EAR_ANCHOR[2]
    rel = np.array([[side * 1.0, (y - HEAD_CENTER[1]) / 0.2, z / 0.2]])
    d = rel / np.linalg.norm(rel)
    surface = head_point(d)[0]
    out = np.array([side * 1.0, 0.0, 0.0])
    center = surface + out * 0.006 + np.array([0.0, 0.0, -0.004])
    tilt = np.radians(12.0)  # the top leans back
    up = np.array([0.0, np.cos(tilt), -np.sin(tilt)])
    # flat across `normal` (mostly X), tall along `up`, deep along the third axis
    normal = out - (out @ up) * up
    normal /= np.linalg.norm(normal)
    axis = np.cross(normal, up)
    part = ellipsoid(
        center,
        side=axis,
        up=up,
        radii=(0.022, 0.031, 0.010),
        rings=rings,
        segments=segments,
        region="skin",
        label="ear_L" if side > 0 else "ear_R",
        smooth=f"ear{side}",
    )
    # the part of the ear that sits against the head is pushed into it
    return part.rigid("head")


def tongue_part(rings: int, segments: int) -> Part:
    """A small tongue hidden behind the mouth; `tongueOut` pushes it forward."""
    d = front_direction(np.array([MOUTH_ANCHOR[0]]), np.array([MOUTH_ANCHOR[1] - 0.004]))
    center = head_point(d, -0.013)[0]
    return ellipsoid(
        center,
        side=np.array([1.0, 0.0, 0.0]),
        up=np.array([0.0, 0.0, -1.0]),
        radii=(0.013, 0.011, 0.0045),
        rings=rings,
        segments=segments,
        region="mouth_inner",
        label="tongue",
        smooth="tongue",
        material="Face",
    ).rigid("head")
