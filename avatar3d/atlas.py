"""Layout of the avatar's single texture atlas.

The atlas is a 4 x 4 grid of square cells. The builder maps each part's UVs into
its region; the painter (`avatar3d.texture`) draws each region. UVs follow
glTF: u to the right, v downwards, origin at the image's top-left corner.
"""

from __future__ import annotations

import numpy as np

GRID = 4

# region -> (column, row) of its cell in the grid
CELLS: dict[str, tuple[int, int]] = {
    "skin": (0, 0),  # flat skin: body, neck, hands, ears, back of the head
    "hair": (1, 0),  # hair colour with strand shading (v runs root -> tip)
    "shirt": (2, 0),
    "pants": (3, 0),
    "eye_left": (0, 1),  # eye white, lashes and lids on skin; mirrored for the right eye
    "eye_right": (1, 1),
    "iris": (2, 1),  # iris disc with pupil and highlight, shared by both eyes
    "mouth": (3, 1),  # lips around a dark slit centred at v = 0.5; opening stretches the slit
    "brow": (0, 2),  # one brow stroke, inner end at u = 0; mirrored for the right brow
    "nose": (1, 2),
    "blush": (2, 2),  # soft cheek blush on skin
    "shoes": (3, 2),
    "glasses": (0, 3),  # frame colour
    "mouth_inner": (1, 3),  # tongue and mouth interior
    "face": (2, 3),  # front of the head: skin with a faint shading
}

# How far (in cell fractions) UVs stay away from a cell's border, so bilinear
# filtering and mipmaps never sample the neighbouring region.
INSET = 0.04


def region_rect(name: str) -> tuple[float, float, float, float]:
    """(u0, v0, u1, v1) of a region in UV space, already inset from the cell's border."""
    col, row = CELLS[name]
    size = 1.0 / GRID
    pad = INSET * size
    return (col * size + pad, row * size + pad, (col + 1) * size - pad, (row + 1) * size - pad)


def to_region(name: str, local_uv: np.ndarray) -> np.ndarray:
    """Map local coordinates (N, 2) in [0, 1]^2 into a region's UVs (N, 2) float32."""
    u0, v0, u1, v1 = region_rect(name)
    local_uv = np.clip(np.asarray(local_uv, dtype=np.float64), 0.0, 1.0)
    uv = np.empty_like(local_uv)
    uv[:, 0] = u0 + local_uv[:, 0] * (u1 - u0)
    uv[:, 1] = v0 + local_uv[:, 1] * (v1 - v0)
    return uv.astype(np.float32)


def pixel_rect(name: str, size: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) pixel box of a region's whole cell in a size x size atlas."""
    col, row = CELLS[name]
    cell = size // GRID
    return (col * cell, row * cell, (col + 1) * cell, (row + 1) * cell)
