"""Paint the avatar's toon texture atlas (layout in `avatar3d.atlas`).

Every region is drawn with vectorised signed-distance fields (anti-aliased
edges) in the region's local coordinates: u to the right, v downwards, both in
[0, 1] over the *inset* rectangle the builder maps UVs into. Pixels in the inset
border get the colour of the nearest edge pixel, so filtering never bleeds.

Speed: the shapes do not depend on colours, so each cell is cached (lru_cache)
as a stack of per-pixel weights, one per named palette colour; compositing
"A over B" with fixed masks is linear in the colours. A call then only builds
the palette from the params and does one small matrix product per cell.

Conventions the builder relies on:
- eye_left: outer corner at u = 1 (the character's left is +X, and u grows with
  +X); eye_right is its mirror (outer corner at u = 0). The iris is a separate
  cell ("iris"), so the eye cells hold eye white, lashes and lids only.
- brow: inner end at u = 0, the builder mirrors UVs for the other brow.
- mouth: a dark slit centred at v = 0.5 whose middle rows are the mouth
  interior colour, so moving vertices apart around v = 0.5 shows an open mouth.
- hair: v runs root (0) -> tip (1); the shading is periodic in u.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .atlas import CELLS, GRID, INSET, pixel_rect
from .params import AvatarParams, hex_to_rgb

# Fixed colours (sRGB hex). Clothes are pleasant pastel defaults, not params.
FIXED_COLORS: dict[str, str] = {
    "white": "#ffffff",
    "eye_white": "#fdfbfa",
    "eye_shadow": "#c3bdd8",
    "shirt": "#a9cbe9",
    "pants": "#4d5a7c",
    "shoes": "#8a5a46",
    "glasses": "#2d2a33",
    "mouth_inner": "#5e1f2c",
    "tongue": "#e27d8a",
    "blush_pink": "#ff6f88",
    "lash_base": "#221717",
}

# grid cells no region uses (painted skin)
UNUSED_CELLS = sorted(
    {(col, row) for col in range(GRID) for row in range(GRID)} - set(CELLS.values())
)

# (K, h*w) weights per cell; cells are small so this stays a few MB in total.
_CellWeights = tuple[tuple[str, ...], np.ndarray | None]
# Per pixel, the weights are >= 0 and sum to 1 ("over" keeps the sum, shading only darkens),
# up to float rounding: then 255 * colour + 0.5 stays below 256 and converts to uint8 as
# clipping to [0, 255] first would.
MAX_WEIGHT_SUM = 1.0 + 0.49 / 255.0


class _Canvas:
    """Accumulates per-colour weight maps for one cell; "over" keeps it linear in colours."""

    def __init__(self, cell: int, base: str):
        self.cell = cell
        # local coordinates of pixel centres, clamped so the inset border copies the edge
        f = (np.arange(cell, dtype=np.float32) + 0.5) / cell
        local = np.clip((f - INSET) / (1.0 - 2.0 * INSET), 0.0, 1.0)
        self.u, self.v = np.meshgrid(local, local)  # (cell, cell), u along x, v along y
        self.px = 1.0 / (cell * (1.0 - 2.0 * INSET))  # one pixel in local units
        self.weights: dict[str, np.ndarray] = {base: np.ones((cell, cell), np.float32)}

    def over(self, colour: str, alpha: np.ndarray | float) -> None:
        """Composite `colour` with coverage `alpha` (cell, cell) over everything so far."""
        alpha = np.clip(np.asarray(alpha, np.float32), 0.0, 1.0)
        for name in self.weights:
            self.weights[name] = self.weights[name] * (1.0 - alpha)
        self.weights[colour] = self.weights.get(colour, 0.0) + alpha

    def multiply(self, factor: np.ndarray) -> None:
        """Scale the current colour by a per-pixel factor in [0, 1] (shading)."""
        for name in self.weights:
            self.weights[name] = self.weights[name] * factor

    def coverage(self, sdf: np.ndarray, soften: float = 1.0) -> np.ndarray:
        """Anti-aliased inside-coverage of a signed distance field (local units, < 0 inside)."""
        return np.clip(0.5 - sdf / (self.px * soften), 0.0, 1.0)

    def reach(self, soften: float = 1.0) -> float:
        """A distance beyond which `coverage(sdf, soften)` is 0 (it is from half of it on)."""
        return self.px * soften

    def mirrored(self) -> _Canvas:
        """A copy flipped left-right (u -> 1 - u)."""
        copy = _Canvas.__new__(_Canvas)
        copy.__dict__.update(self.__dict__)
        copy.weights = {k: np.ascontiguousarray(w[:, ::-1]) for k, w in self.weights.items()}
        return copy

    def freeze(self) -> _CellWeights:
        """(colour names, weights (cell*cell, K) float32); weights is None for a flat cell."""
        names = tuple(self.weights)
        if len(names) == 1 and np.all(self.weights[names[0]] == 1.0):
            return names, None
        maps = [np.broadcast_to(self.weights[n], self.u.shape) for n in names]
        # paint_atlas relies on this to skip clipping each pixel (palette colours are in [0, 1]);
        # summed map by map: numpy's sum along the short last axis of the stack took 0.8 ms
        if min(m.min() for m in maps) < 0.0 or sum(maps[1:], maps[0]).max() > MAX_WEIGHT_SUM:
            raise ValueError("cell weights must be >= 0 and sum to at most 1 per pixel")
        stack = np.stack(maps, -1).reshape(-1, len(names)).astype(np.float32, copy=False)
        stack.setflags(write=False)
        return names, stack


# -- distance fields ------------------------------------------------------------


def _ellipse_sdf(u: np.ndarray, v: np.ndarray, cu: float, cv: float, a: float, b: float):
    """Approximate signed distance to an axis-aligned ellipse (first-order, exact near the edge)."""
    du, dv = (u - cu) / a, (v - cv) / b
    r = np.sqrt(du * du + dv * dv) + 1e-9
    grad = np.sqrt((du / a) ** 2 + (dv / b) ** 2) / r + 1e-9
    return (r - 1.0) / grad


def _stroke_sdf(
    u: np.ndarray, v: np.ndarray, points: np.ndarray, radii: np.ndarray, reach: float
) -> np.ndarray:
    """Signed distance to a tapered stroke along a polyline points (N, 2), radii (N,).

    u, v: a canvas's (cell, cell) grids (u constant down a column, v along a row). Exact
    wherever the distance is below `reach`, +inf where no segment comes that close: each
    segment is evaluated only on the pixels of its box grown by its radius and `reach`
    (one of a brow's 27 segments covers ~2% of the cell: a brow cell 9.6 -> 1.1 ms).
    """
    best = np.full(u.shape, np.inf, np.float32)
    columns, rows = u[0], v[:, 0]  # non-decreasing (the inset border is clamped)
    a, b = points[:-1], points[1:]
    grow = reach + np.maximum(radii[:-1], radii[1:])
    low, high = np.minimum(a, b) - grow[:, None], np.maximum(a, b) + grow[:, None]
    boxes = zip(
        np.searchsorted(columns, low[:, 0], "left"), np.searchsorted(columns, high[:, 0], "right"),
        np.searchsorted(rows, low[:, 1], "left"), np.searchsorted(rows, high[:, 1], "right"),
        strict=True,
    )  # fmt: skip
    for (au, av), (bu, bv), ra, rb, (c0, c1, r0, r1) in zip(
        a, b, radii[:-1], radii[1:], boxes, strict=True
    ):
        if c0 >= c1 or r0 >= r1:
            continue
        box = (slice(r0, r1), slice(c0, c1))
        uu, vv = u[box], v[box]
        su, sv = bu - au, bv - av
        t = np.clip(((uu - au) * su + (vv - av) * sv) / max(su * su + sv * sv, 1e-12), 0.0, 1.0)
        d = np.hypot(uu - (au + t * su), vv - (av + t * sv)) - (ra + t * (rb - ra))
        np.minimum(best[box], d, out=best[box])
    return best


def _bezier(p0, p1, p2, n: int = 32) -> np.ndarray:
    """Quadratic Bezier through control points -> (n, 2) polyline."""
    t = np.linspace(0.0, 1.0, n)[:, None]
    p0, p1, p2 = (np.asarray(p, np.float64) for p in (p0, p1, p2))
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


def _arc(cu, cv, a, b, deg_from: float, deg_to: float, n: int = 40) -> np.ndarray:
    """Points (n, 2) on an ellipse; angles in degrees, 0 = +u, 90 = up (towards v = 0)."""
    phi = np.radians(np.linspace(deg_from, deg_to, n))
    return np.stack([cu + a * np.cos(phi), cv - b * np.sin(phi)], axis=1)


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


# -- region painters (colour-independent, cached) ------------------------------


def _flat(cell: int, colour: str) -> _CellWeights:
    return _Canvas(cell, colour).freeze()


def _face(cell: int) -> _CellWeights:
    c = _Canvas(cell, "skin")
    # a faint shadow under the fringe; sides and bottom stay exactly skin so seams vanish
    c.over("skin_shadow", 0.35 * (1.0 - _smoothstep(0.0, 0.22, c.v)) ** 2)
    return c.freeze()


def _eye_canvas(cell: int) -> _Canvas:
    """The left eye: outer corner at u = 1.

    The builder's blink collapses the rows above v = EYE_LID_V (0.78) onto a thin
    band just above it, so the eye white ends at about that row: a closed eye
    leaves only the lash lines on skin.
    """
    c = _Canvas(cell, "skin")
    u, v = c.u, c.v
    cu, cv, a, b = 0.5, 0.5, 0.36, 0.285
    white = c.coverage(_ellipse_sdf(u, v, cu, cv, a, b))
    c.over("eye_white", white)
    # the lash casts a soft shadow over the top of the eye white
    top = cv - b
    c.over("eye_shadow", white * 0.8 * (1.0 - _smoothstep(top, top + 0.3, v)))
    # lid crease: a thin faint line above the eye
    crease = _arc(cu + 0.03, cv + 0.02, a * 1.02, b * 1.45, 145, 40)
    c.over(
        "lid_line",
        0.5
        * c.coverage(_stroke_sdf(u, v, crease, np.linspace(0.005, 0.009, len(crease)), c.reach())),
    )
    # thick upper lash line, thin at the inner corner, heavy towards the outer corner
    upper = _arc(cu, cv - 0.005, a * 1.03, b * 1.06, 196, 6, 48)
    t = np.linspace(0.0, 1.0, len(upper))
    radii = 0.012 + 0.038 * _smoothstep(0.0, 0.7, t)
    # the outer flick, swept outwards and slightly up
    end = upper[-1]
    flick = _bezier(end, (end[0] + 0.05, end[1] - 0.01), (end[0] + 0.085, end[1] - 0.09), 12)
    flick_radii = np.linspace(radii[-1] * 0.8, 0.003, len(flick))
    lash = np.minimum(
        _stroke_sdf(u, v, upper, radii, c.reach()),
        _stroke_sdf(u, v, flick, flick_radii, c.reach()),
    )
    # lower lash: a short thin line along the outer half of the bottom
    lower = _arc(cu, cv, a * 1.01, b * 1.03, -12, -80, 20)
    lower_lash = _stroke_sdf(u, v, lower, np.linspace(0.012, 0.004, len(lower)), c.reach())
    c.over("lash", 0.8 * c.coverage(lower_lash))
    c.over("lash", c.coverage(lash))
    return c


def _eye_left(cell: int) -> _CellWeights:
    return _eye_canvas(cell).freeze()


def _eye_right(cell: int) -> _CellWeights:
    return _eye_canvas(cell).mirrored().freeze()


def _iris(cell: int) -> _CellWeights:
    # outside the disc (corners never drawn) continue the dark rim, so filtering at the rim is right
    c = _Canvas(cell, "iris_deep")
    u, v = c.u, c.v
    # the builder maps its iris disc onto the inscribed circle: radius 0.5 is its rim
    disc = c.coverage(np.hypot(u - 0.5, v - 0.5) - 0.5)
    # vertical gradient: dark under the lash, bright at the bottom
    c.over("iris_dark", disc)
    c.over("iris", disc * _smoothstep(0.12, 0.62, v))
    c.over("iris_light", disc * 0.9 * _smoothstep(0.55, 0.92, v))
    # fine radial streaks give the iris some depth
    angle = np.arctan2(v - 0.5, u - 0.5)
    r = np.hypot(u - 0.5, v - 0.5)
    streaks = 0.5 + 0.5 * np.sin(angle * 22.0)
    c.over("iris_dark", disc * 0.18 * streaks * _smoothstep(0.18, 0.3, r))
    # dark limbal ring
    c.over("iris_deep", disc * _smoothstep(0.4, 0.49, r))
    # pupil
    c.over("pupil", c.coverage(_ellipse_sdf(u, v, 0.5, 0.52, 0.16, 0.19), soften=2.0))
    # a soft glow at the bottom and two sharp highlights
    glow = np.exp(-(((u - 0.5) / 0.2) ** 2 + ((v - 0.8) / 0.08) ** 2))
    c.over("iris_glow", disc * 0.7 * glow)
    c.over("white", c.coverage(_ellipse_sdf(u, v, 0.33, 0.3, 0.12, 0.14)))
    c.over("white", 0.9 * c.coverage(np.hypot(u - 0.66, v - 0.68) - 0.05))
    return c.freeze()


@lru_cache(maxsize=16)
def _mouth(cell: int, lip_fullness: float) -> _CellWeights:
    c = _Canvas(cell, "skin")
    u, v = c.u, c.v
    half_width = 0.34
    upper_h = 0.04 + 0.05 * lip_fullness
    lower_h = 0.05 + 0.07 * lip_fullness
    upper = c.coverage(_ellipse_sdf(u, v, 0.5, 0.5, half_width, upper_h), soften=3.0)
    lower = c.coverage(_ellipse_sdf(u, v, 0.5, 0.5, half_width * 0.9, lower_h), soften=3.0)
    c.over("lip", 0.5 * lower * (v >= 0.5))
    c.over("lip_dark", 0.55 * upper * (v < 0.5))
    # a small soft shine on the lower lip
    shine = np.exp(-(((u - 0.5) / 0.08) ** 2 + ((v - 0.5 - lower_h * 0.55) / 0.02) ** 2))
    c.over("white", 0.22 * shine)
    edge, inner = _mouth_slit(cell)
    c.over("slit_edge", edge)
    c.over("mouth_inner", inner)
    return c.freeze()


@lru_cache(maxsize=4)
def _mouth_slit(cell: int) -> tuple[np.ndarray, np.ndarray]:
    """Coverage (cell, cell) of the slit's edge and of the mouth interior: a thin lens whose
    middle rows are exactly the interior colour. Cached apart: the lips do not change it."""
    c = _Canvas(cell, "skin")
    u, v = c.u, c.v
    slit_half = 0.032 * np.clip(1.0 - ((u - 0.5) / 0.34) ** 2, 0.0, 1.0) ** 0.7
    slit = c.coverage(np.abs(v - 0.5) - slit_half, soften=1.2)
    edge = np.clip(slit * 1.6, 0.0, 1.0) * (np.abs(u - 0.5) < 0.36)
    inner = c.coverage(np.abs(v - 0.5) - slit_half * 0.6)
    for coverage in (edge, inner):
        coverage.setflags(write=False)
    return edge, inner


@lru_cache(maxsize=16)
def _brow(cell: int, thickness: float) -> _CellWeights:
    c = _Canvas(cell, "skin")
    path = _bezier((0.16, 0.66), (0.48, 0.44), (0.88, 0.56), 28)
    t = np.linspace(0.0, 1.0, len(path))
    inner = 0.06 + 0.12 * thickness
    radii = inner * (1.0 - 0.7 * t**1.5)
    brow = _stroke_sdf(c.u, c.v, path, radii, c.reach(1.5))
    c.over("brow", c.coverage(brow, soften=1.5))
    return c.freeze()


def _nose(cell: int) -> _CellWeights:
    c = _Canvas(cell, "skin")
    dash = _stroke_sdf(
        c.u, c.v, np.array([(0.45, 0.64), (0.55, 0.6)]), np.array([0.025, 0.015]), c.reach(6.0)
    )
    c.over("skin_deep", 0.6 * c.coverage(dash, soften=6.0))
    shine = np.exp(-(((c.u - 0.48) / 0.05) ** 2 + ((c.v - 0.42) / 0.08) ** 2))
    c.over("skin_light", 0.35 * shine)
    return c.freeze()


def _blush(cell: int) -> _CellWeights:
    c = _Canvas(cell, "skin")
    r = np.hypot((c.u - 0.5) / 0.42, (c.v - 0.5) / 0.3)
    c.over("blush", 0.8 * (1.0 - _smoothstep(0.0, 1.0, r)))
    for x in (0.36, 0.5, 0.64):  # the anime "///" hatching
        hatch = _stroke_sdf(
            c.u, c.v, np.array([(x - 0.035, 0.58), (x + 0.035, 0.42)]), np.array([0.01, 0.01]),
            c.reach(2.0),
        )  # fmt: skip
        c.over("blush_line", 0.4 * c.coverage(hatch, soften=2.0))
    return c.freeze()


def _hair(cell: int) -> _CellWeights:
    c = _Canvas(cell, "hair")
    u, v = c.u, c.v
    tau = 2.0 * np.pi
    # strands: integer frequencies so the pattern wraps seamlessly at u = 0 / 1
    strands = 0.5 + 0.5 * (
        0.5 * np.sin(tau * 7 * u)
        + 0.3 * np.sin(tau * 13 * u + 1.3)
        + 0.2 * np.sin(tau * 29 * u + 0.7)
    )
    strength = 0.12 + 0.1 * v  # strands read more clearly towards the tips
    shade = 1.0 - strength * (1.0 - strands)
    shade *= 0.8 + 0.2 * _smoothstep(0.0, 0.14, v)  # darker at the roots
    c.multiply(shade.astype(np.float32))
    # the "angel ring" highlight band, wavy and broken into segments
    centre = 0.27 + 0.012 * np.sin(tau * 3 * u)
    band = 1.0 - _smoothstep(0.0, 0.05, np.abs(v - centre))
    segments = np.clip(0.5 + 0.7 * np.sin(tau * 4 * u + 0.4), 0.0, 1.0)
    c.over("hair_light", 0.6 * band * segments * (0.6 + 0.4 * strands))
    return c.freeze()


def _mouth_inner(cell: int) -> _CellWeights:
    c = _Canvas(cell, "mouth_inner")
    c.over("tongue", c.coverage(_ellipse_sdf(c.u, c.v, 0.5, 0.78, 0.3, 0.15), soften=3.0))
    return c.freeze()


@lru_cache(maxsize=4)
def _fixed_cells(cell: int) -> dict[str, _CellWeights]:
    """Every cell whose shapes depend on nothing but the atlas size."""
    return {
        "skin": _flat(cell, "skin"),
        "hair": _hair(cell),
        "shirt": _flat(cell, "shirt"),
        "pants": _flat(cell, "pants"),
        "eye_left": _eye_left(cell),
        "eye_right": _eye_right(cell),
        "iris": _iris(cell),
        "nose": _nose(cell),
        "blush": _blush(cell),
        "shoes": _flat(cell, "shoes"),
        "glasses": _flat(cell, "glasses"),
        "mouth_inner": _mouth_inner(cell),
        "face": _face(cell),
    }


# -- colours ----------------------------------------------------------------------


def _mix(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    return a + (b - a) * t


def palette(params: AvatarParams) -> dict[str, np.ndarray]:
    """Every named colour the atlas uses, as sRGB float32 (3,) in [0, 1]."""
    col = {name: np.array(hex_to_rgb(h), np.float32) for name, h in FIXED_COLORS.items()}
    for name in ("skin_color", "hair_color", "iris_color", "lip_color", "brow_color"):
        col[name.removesuffix("_color")] = np.array(params.color_rgb(name), np.float32)
    skin, hair, iris, lip = col["skin"], col["hair"], col["iris"], col["lip"]
    white = col["white"]
    col["skin_shadow"] = skin * np.array([0.88, 0.78, 0.8], np.float32)
    col["skin_deep"] = skin * np.array([0.72, 0.55, 0.55], np.float32)
    col["skin_light"] = _mix(skin, white, 0.5)
    col["lid_line"] = skin * np.array([0.62, 0.48, 0.48], np.float32)
    col["lash"] = _mix(col["lash_base"], col["brow"], 0.2)
    col["hair_light"] = _mix(hair, white, 0.42)
    col["iris_dark"] = iris * 0.5
    col["iris_deep"] = iris * 0.3
    col["iris_light"] = _mix(iris, white, 0.35)
    col["iris_glow"] = _mix(iris, white, 0.6)
    col["pupil"] = _mix(iris * 0.15, col["lash_base"], 0.5)
    col["lip_dark"] = _mix(lip * 0.88, skin, 0.15)
    col["slit_edge"] = _mix(lip * 0.55, col["mouth_inner"], 0.5)
    col["blush"] = _mix(skin, col["blush_pink"], 0.55)
    col["blush_line"] = _mix(skin, col["blush_pink"] * 0.85, 0.8)
    return col


# -- public -------------------------------------------------------------------------


def _quantise(x: float) -> float:
    """Round a slider so the mask cache stays small (1/100 is far below what one can see)."""
    return round(float(x) * 100.0) / 100.0


def _fill(block: np.ndarray, colour: np.ndarray) -> None:
    """Fill an (h, w, 4) uint8 view with the opaque RGBA of an sRGB float colour (3,) in
    [0, 1], as whole 32-bit pixels (0.02 ms a cell; numpy's broadcast of 4 bytes: 0.25)."""
    rgba = np.append(np.round(colour * 255.0), 255.0).astype(np.uint8)
    block.view(np.uint32)[...] = rgba.view(np.uint32)[0]


def paint_atlas(params: AvatarParams, size: int = 1024) -> np.ndarray:
    """Paint the texture atlas for `params`.

    size: atlas edge in pixels, a multiple of 4 (the grid) and at least 32.
    Returns (size, size, 4) uint8 sRGB RGBA, fully opaque. Deterministic.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 32 or size % GRID:
        raise ValueError(f"atlas size must be an integer multiple of {GRID}, >= 32; got {size!r}")
    cell = size // GRID
    cells = dict(_fixed_cells(cell))
    cells["mouth"] = _mouth(cell, _quantise(params.shape["lip_fullness"]))
    cells["brow"] = _brow(cell, _quantise(params.shape["brow_thickness"]))
    colours = palette(params)
    atlas = np.empty((size, size, 4), np.uint8)
    # cells no region uses stay skin, so even the smallest mipmaps look right
    for col, row in UNUSED_CELLS:
        _fill(atlas[row * cell : (row + 1) * cell, col * cell : (col + 1) * cell], colours["skin"])
    for region in CELLS:
        names, weights = cells[region]
        x0, y0, x1, y1 = pixel_rect(region, size)
        block = atlas[y0:y1, x0:x1]
        if weights is None:  # flat colour
            _fill(block, colours[names[0]])
            continue
        matrix = np.zeros((len(names), 4), np.float32)  # (K, RGBA): alpha is set below
        matrix[:, :3] = np.stack([colours[n] for n in names]) * 255.0
        rgba = weights @ matrix  # (cell*cell, 4); convex weights: + 0.5 stays in [0.5, 256)
        rgba += 0.5
        rgba[:, 3] = 255.0
        # rows of whole RGBA pixels: a cheap copy, unlike writing 3 of every 4 bytes
        np.copyto(block, rgba.reshape(cell, cell, 4), casting="unsafe")
    return atlas
