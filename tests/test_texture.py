import numpy as np
import pytest

from avatar3d.atlas import CELLS, pixel_rect
from avatar3d.params import AvatarParams, hex_to_rgb
from avatar3d.texture import paint_atlas


def _cell(atlas: np.ndarray, region: str) -> np.ndarray:
    x0, y0, x1, y1 = pixel_rect(region, atlas.shape[0])
    return atlas[y0:y1, x0:x1, :3].astype(np.int32)


def _rgb255(hex_colour: str) -> np.ndarray:
    return np.round(np.array(hex_to_rgb(hex_colour)) * 255).astype(np.int32)


def _share_near(cell: np.ndarray, rgb: np.ndarray, tolerance: int = 3) -> float:
    """Fraction of the cell's pixels within `tolerance` of `rgb` in every channel."""
    return float(np.mean(np.all(np.abs(cell - rgb) <= tolerance, axis=-1)))


def test_shape_dtype_opaque():
    atlas = paint_atlas(AvatarParams(), 256)
    assert atlas.shape == (256, 256, 4)
    assert atlas.dtype == np.uint8
    assert np.all(atlas[..., 3] == 255)


def test_deterministic_and_independent_of_call_order():
    a = paint_atlas(AvatarParams(), 512)
    paint_atlas(AvatarParams(hair_color="#ff0000", shape={"brow_thickness": 1.0}), 512)
    b = paint_atlas(AvatarParams(), 512)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("size", [0, 30, 1023, 64.0, True])
def test_bad_size_is_rejected(size):
    with pytest.raises(ValueError):
        paint_atlas(AvatarParams(), size)


def test_colours_land_in_their_regions():
    params = AvatarParams(
        skin_color="#e0b090",
        hair_color="#20c040",
        iris_color="#3050e0",
        lip_color="#c02050",
        brow_color="#802010",
    )
    atlas = paint_atlas(params, 512)
    hair, skin = _rgb255(params.hair_color), _rgb255(params.skin_color)
    # the pure hair colour covers much of the hair cell (strands shade the rest)
    assert _share_near(_cell(atlas, "hair"), hair, tolerance=12) > 0.2
    assert _share_near(_cell(atlas, "skin"), skin) == 1.0
    # the hair colour appears nowhere on the skin-backed face regions
    for region in ("skin", "face", "eye_left", "mouth", "nose", "blush"):
        assert _share_near(_cell(atlas, region), hair, tolerance=20) == 0.0, region
    # the face parts sit on skin: their borders are exactly skin so seams vanish
    # (the face itself only darkens under the fringe, at the top)
    face = _cell(atlas, "face")
    assert _share_near(face[face.shape[0] // 3 :, [0, -1]].reshape(-1, 3), skin, 1) == 1.0
    for region in ("eye_left", "eye_right", "mouth", "brow", "nose", "blush"):
        cell = _cell(atlas, region)
        border = np.concatenate([cell[:, 0], cell[:, -1], cell[-1, :]])
        assert _share_near(border, skin, tolerance=1) == 1.0, region
    # iris, lips and brow colours are present in their own cells
    assert _share_near(_cell(atlas, "iris"), _rgb255(params.iris_color), tolerance=10) > 0.02
    assert _share_near(_cell(atlas, "brow"), _rgb255(params.brow_color), tolerance=3) > 0.02
    mouth = _cell(atlas, "mouth")
    lip_ish = np.abs(mouth - skin).sum(-1) > 30
    assert lip_ish.mean() > 0.01
    # lips are redder than the skin around them
    assert (mouth[lip_ish][:, 0] - mouth[lip_ish][:, 1]).mean() > (skin[0] - skin[1])


def test_every_region_is_painted_and_distinct_from_its_neighbours():
    atlas = paint_atlas(AvatarParams(), 256)
    means = {region: _cell(atlas, region).reshape(-1, 3).mean(0) for region in CELLS}
    for region in ("hair", "shirt", "pants", "shoes", "glasses", "mouth_inner", "iris"):
        assert np.abs(means[region] - means["skin"]).sum() > 40, region


def test_right_eye_mirrors_left_eye():
    atlas = paint_atlas(AvatarParams(), 512)
    left, right = _cell(atlas, "eye_left"), _cell(atlas, "eye_right")
    assert not np.array_equal(left, right)
    assert np.array_equal(left[:, ::-1], right)


def test_mouth_slit_is_dark_at_v_half_and_skin_far_from_it():
    atlas = paint_atlas(AvatarParams(), 1024)
    mouth = _cell(atlas, "mouth")
    mid = mouth.shape[0] // 2
    centre_rows = mouth[mid - 1 : mid + 1, mouth.shape[1] // 2]
    assert centre_rows.sum(-1).max() < 250  # dark interior: stretching these rows opens the mouth
    skin = _rgb255(AvatarParams().skin_color)
    assert _share_near(mouth[: mid // 2], skin, tolerance=1) == 1.0


def test_brow_thickness_changes_the_stroke():
    thin = paint_atlas(AvatarParams(shape={"brow_thickness": 0.0}), 256)
    thick = paint_atlas(AvatarParams(shape={"brow_thickness": 1.0}), 256)
    brow = _rgb255(AvatarParams().brow_color)
    assert _share_near(_cell(thick, "brow"), brow, 8) > 1.5 * _share_near(
        _cell(thin, "brow"), brow, 8
    )


def test_cell_weights_that_could_leave_the_colour_range_are_refused():
    """paint_atlas converts to uint8 without clipping because every cell's weights are
    convex; a painter that brightens (shading factor > 1) must fail when its cell is built."""
    from avatar3d.texture import _Canvas

    canvas = _Canvas(8, "skin")
    canvas.over("white", np.full((8, 8), 0.5, np.float32))
    canvas.freeze()  # convex: accepted
    canvas.multiply(np.full((8, 8), 1.2, np.float32))
    with pytest.raises(ValueError, match="sum to at most 1"):
        canvas.freeze()


@pytest.mark.parametrize("colour", ["#ffffff", "#000000", "#ff0000"])
def test_extreme_colours_paint_exactly_as_clipped_values_would(colour: str):
    """Every weighted cell at the colour extremes equals clip(weights @ colours + 0.5) as
    uint8: the unclipped conversion never wraps around (256 -> 0)."""
    from avatar3d.texture import GRID, _brow, _fixed_cells, _mouth, palette

    names = ("skin_color", "hair_color", "iris_color", "lip_color", "brow_color")
    params = AvatarParams.from_dict({name: colour for name in names})
    size = 256
    cell = size // GRID
    atlas = paint_atlas(params, size)
    colours = palette(params)
    cells = dict(_fixed_cells(cell))
    cells["mouth"] = _mouth(cell, params.shape["lip_fullness"])
    cells["brow"] = _brow(cell, params.shape["brow_thickness"])
    for region, (cell_names, weights) in cells.items():
        if weights is None:
            continue
        rgb = weights @ (np.stack([colours[n] for n in cell_names]) * 255.0)
        expected = np.clip(rgb + 0.5, 0.0, 255.0).astype(np.uint8).reshape(cell, cell, 3)
        x0, y0, x1, y1 = pixel_rect(region, size)
        np.testing.assert_array_equal(atlas[y0:y1, x0:x1, :3], expected, err_msg=region)
