"""Mesh primitives with UVs: the building blocks of the procedural chibi.

Every primitive returns a `Part`: plain numpy arrays for one piece of surface
that maps into one atlas region. Positions are metres (float64 while building),
faces are wound counter-clockwise seen from outside (glTF front faces).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import atlas


@dataclass
class Part:
    """One piece of surface of the avatar.

    label: region label for morph confinement checks ("eye_L", "hair", "body"...).
    positions: (N, 3) float64 metres; uvs: (N, 2) float32 atlas UVs.
    faces: (F, 3) int64 local vertex indices, counter-clockwise from outside.
    smooth: vertices of parts with the same smooth group that share a position
      share one normal (so seams between clothes regions do not show).
    material: logical material ("Body", "Face", "Hair") used by the high preset.
    bones: skin palette (bone names); bone_index (N, 4) int into it; bone_weight (N, 4).
    kind: what the builder does with it when applying params ("head", "patch", ...).
    """

    label: str
    positions: np.ndarray
    uvs: np.ndarray
    faces: np.ndarray
    smooth: str
    material: str = "Body"
    bones: list[str] = field(default_factory=list)
    bone_index: np.ndarray | None = None
    bone_weight: np.ndarray | None = None
    vertex_labels: np.ndarray | None = None  # (N,) str, overrides `label` per vertex

    @property
    def n(self) -> int:
        return len(self.positions)

    def rigid(self, bone: str) -> Part:
        """Skin every vertex 100% to one bone."""
        self.bones = [bone]
        self.bone_index = np.zeros((self.n, 4), np.int64)
        self.bone_weight = np.zeros((self.n, 4), np.float64)
        self.bone_weight[:, 0] = 1.0
        return self


def grid_faces(rows: int, cols: int, wrap: bool = False) -> np.ndarray:
    """Faces of a rows x cols vertex grid (row-major), two triangles per quad.

    With grid point (r, c) at position P(r, c), triangles are wound so that the
    front side is the one where cross(dP/dc, dP/dr) points.
    """
    c_count = cols if wrap else cols - 1
    r = np.arange(rows - 1)[:, None]
    c = np.arange(c_count)[None, :]
    a = r * cols + c
    b = r * cols + (c + 1) % cols
    d = a + cols
    e = b + cols
    tri1 = np.stack([a, b, e], -1).reshape(-1, 3)
    tri2 = np.stack([a, e, d], -1).reshape(-1, 3)
    return np.concatenate([tri1, tri2]).astype(np.int64)


def sweep(
    path: np.ndarray,
    side: np.ndarray,
    up: np.ndarray,
    radius_side: np.ndarray,
    radius_up: np.ndarray,
    segments: int,
    region: str,
    label: str,
    smooth: str,
    v_range: tuple[float, float] = (0.0, 1.0),
    cap_start: bool | np.ndarray = True,
    cap_end: bool | np.ndarray = True,
    phase: float = 0.0,
    material: str = "Body",
) -> Part:
    """A generalised tube: elliptical rings around a path, optionally closed by poles.

    path: (K, 3) ring centres; side, up: (K, 3) unit ring axes, with the path
    running along cross(side, up); radius_side, radius_up: (K,) metres.
    The ring has `segments` + 1 vertices (a UV seam at angle `phase`). Local UV:
    u around the ring, v along the path in `v_range`. Caps are single pole
    vertices, placed at the first/last path point (True) or at a given point (3,).
    """
    path = np.asarray(path, np.float64)
    k_count = len(path)
    angles = phase + np.linspace(0.0, 2.0 * np.pi, segments + 1)
    cos, sin = np.cos(angles), np.sin(angles)
    rs = np.broadcast_to(np.asarray(radius_side, np.float64), (k_count,))
    ru = np.broadcast_to(np.asarray(radius_up, np.float64), (k_count,))
    ring = (
        path[:, None, :]
        + (rs[:, None] * cos[None, :])[..., None] * np.asarray(side)[:, None, :]
        + (ru[:, None] * sin[None, :])[..., None] * np.asarray(up)[:, None, :]
    )
    positions = ring.reshape(-1, 3)
    # along the ring (columns) the surface derivative is d/dangle; rows run along the path.
    # cross(d/dangle, d/dpath) points outwards, so grid_faces' winding (cross(dc, dr)) fits.
    faces = grid_faces(k_count, segments + 1)
    v = np.linspace(v_range[0], v_range[1], k_count)
    u = np.linspace(0.0, 1.0, segments + 1)
    local = np.stack(np.meshgrid(u, v), -1).reshape(-1, 2)
    extra_pos, extra_uv, extra_faces = [], [], []
    cols = segments + 1
    if cap_start is not False:
        pole = len(positions) + len(extra_pos)
        extra_pos.append(path[0] if cap_start is True else np.asarray(cap_start, np.float64))
        extra_uv.append((0.5, v_range[0]))
        j = np.arange(segments)
        extra_faces.append(np.stack([np.full(segments, pole), j + 1, j], -1))
    if cap_end is not False:
        pole = len(positions) + len(extra_pos)
        extra_pos.append(path[-1] if cap_end is True else np.asarray(cap_end, np.float64))
        extra_uv.append((0.5, v_range[1]))
        j = np.arange(segments) + (k_count - 1) * cols
        extra_faces.append(np.stack([np.full(segments, pole), j, j + 1], -1))
    if extra_pos:
        positions = np.concatenate([positions, np.array(extra_pos)])
        local = np.concatenate([local, np.array(extra_uv)])
        faces = np.concatenate([faces] + extra_faces)
    return Part(
        label=label,
        positions=positions,
        uvs=atlas.to_region(region, local),
        faces=faces.astype(np.int64),
        smooth=smooth,
        material=material,
    )


def frame_from_tangent(tangent: np.ndarray, hint: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit ring axes (side, up) for path tangents (K, 3), `up` as close to `hint` as possible.

    hint: (3,) or (K, 3). Returns side, up (K, 3) with cross(side, up) == tangent.
    """
    t = tangent / np.linalg.norm(tangent, axis=-1, keepdims=True)
    hint = np.broadcast_to(np.asarray(hint, np.float64), t.shape)
    up = hint - np.sum(t * hint, axis=-1, keepdims=True) * t
    up /= np.linalg.norm(up, axis=-1, keepdims=True)
    side = np.cross(up, t)
    return side, up


def path_tangents(path: np.ndarray) -> np.ndarray:
    """(K, 3) central-difference tangents of a polyline."""
    t = np.gradient(np.asarray(path, np.float64), axis=0)
    return t / np.linalg.norm(t, axis=-1, keepdims=True)


def disc(
    center: np.ndarray,
    side: np.ndarray,
    up: np.ndarray,
    radius_side: float,
    radius_up: float,
    rings: int,
    segments: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A flat elliptical disc facing cross(side, up): centre vertex plus `rings` rings.

    Returns positions (N, 3), local UVs (N, 2) in [0, 1] (u along side, v down
    along -up), faces (F, 3). Used for the irises.
    """
    angles = np.linspace(0.0, 2.0 * np.pi, segments, endpoint=False)
    radii = np.arange(1, rings + 1) / rings
    ca = np.cos(angles)[None, :] * radii[:, None]
    sa = np.sin(angles)[None, :] * radii[:, None]
    local = np.concatenate([[[0.0, 0.0]], np.stack([ca.ravel(), sa.ravel()], -1)])
    positions = (
        np.asarray(center)[None, :]
        + (local[:, :1] * radius_side) * np.asarray(side)[None, :]
        + (local[:, 1:] * radius_up) * np.asarray(up)[None, :]
    )
    j = np.arange(segments)
    faces = [np.stack([np.zeros(segments, np.int64), 1 + j, 1 + (j + 1) % segments], -1)]
    for r in range(1, rings):
        a = 1 + (r - 1) * segments + j
        b = 1 + (r - 1) * segments + (j + 1) % segments
        faces.append(np.stack([a, a + segments, b + segments], -1))
        faces.append(np.stack([a, b + segments, b], -1))
    uv = np.stack([0.5 + 0.5 * local[:, 0], 0.5 - 0.5 * local[:, 1]], -1)
    return positions, uv, np.concatenate(faces)


def vertex_normals(positions: np.ndarray, faces: np.ndarray, weld: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (V, 3); vertices with the same weld id share one.

    positions (V, 3), faces (F, 3), weld (V,) int ids in [0, W).
    """
    p = positions[faces]
    fn = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    ids = weld[faces].ravel()
    count = int(weld.max()) + 1
    acc = np.empty((count, 3))
    rep = np.repeat(fn, 3, axis=0)
    for axis in range(3):
        acc[:, axis] = np.bincount(ids, weights=rep[:, axis], minlength=count)
    n = acc[weld]
    length = np.linalg.norm(n, axis=1, keepdims=True)
    # an isolated vertex (none here by construction) would keep a fallback +Y normal
    return np.where(length > 1e-20, n / np.maximum(length, 1e-20), np.array([0.0, 1.0, 0.0]))


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    """Hermite step from 0 at edge0 to 1 at edge1 (either order), clipped."""
    t = np.clip((np.asarray(x) - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def ellipsoid(
    center: np.ndarray,
    side: np.ndarray,
    up: np.ndarray,
    radii: tuple[float, float, float],
    rings: int,
    segments: int,
    region: str,
    label: str,
    smooth: str,
    material: str = "Body",
) -> Part:
    """A closed ellipsoid with radii (along side, along up, along cross(side, up)) metres.

    Built as a sweep along cross(side, up) with a pole vertex at each tip.
    """
    center = np.asarray(center, np.float64)
    side = np.asarray(side, np.float64)
    up = np.asarray(up, np.float64)
    axis = np.cross(side, up)
    theta = np.linspace(0.0, np.pi, rings + 1)[1:-1]
    path = center + (-np.cos(theta) * radii[2])[:, None] * axis
    count = len(theta)
    return sweep(
        path,
        np.tile(side, (count, 1)),
        np.tile(up, (count, 1)),
        radii[0] * np.sin(theta),
        radii[1] * np.sin(theta),
        segments,
        region,
        label,
        smooth,
        cap_start=center - radii[2] * axis,
        cap_end=center + radii[2] * axis,
        material=material,
    )


def smooth_path(keys: np.ndarray, count: int) -> np.ndarray:
    """A Catmull-Rom curve through key points (M, 3), resampled to `count` evenly spaced points."""
    keys = np.asarray(keys, np.float64)
    padded = np.concatenate([2 * keys[:1] - keys[1:2], keys, 2 * keys[-1:] - keys[-2:-1]])
    t = np.linspace(0.0, 1.0, 24)[:-1, None]
    p0, p1, p2, p3 = padded[:-3], padded[1:-2], padded[2:-1], padded[3:]
    dense = 0.5 * (
        2 * p1[:, None]
        + (p2 - p0)[:, None] * t
        + (2 * p0 - 5 * p1 + 4 * p2 - p3)[:, None] * t**2
        + (3 * p1 - p0 - 3 * p2 + p3)[:, None] * t**3
    ).reshape(-1, 3)
    dense = np.concatenate([dense, keys[-1:]])
    seg = np.linalg.norm(np.diff(dense, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    target = np.linspace(0.0, s[-1], count)
    return np.column_stack([np.interp(target, s, dense[:, i]) for i in range(3)])
