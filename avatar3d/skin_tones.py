"""The skin tone scale: the Monk swatches, the lips drawn beside a skin, and white
balance against the scale.

The synthetic renders draw their skins along this scale (`synth.sample_skin`) and
`chibi eval` measures fairness on its swatches. A photo without colour gets its skin
from the scale at the lightness it shows, and a face under a coloured light has that
light taken out of its colours by the gains that bring its skin onto the scale
(`teacher_colors.sample_colors`).
"""

from __future__ import annotations

from functools import cache

import numpy as np
from skimage.color import lab2rgb, rgb2lab

from .params import hex_to_lab, linear_to_srgb, srgb_to_linear

# Monk Skin Tone scale, the ten swatches (skintone.google; Wikipedia "Monk Skin Tone Scale").
MONK_SKIN_TONES: tuple[str, ...] = (
    "#f6ede4", "#f3e7db", "#f7ead0", "#eadaba", "#d7bd96",
    "#a07e56", "#825c43", "#604134", "#3a312a", "#292420",
)  # fmt: skip
# CIELab of the renders' lips less their skin's (before a random spread): darker and
# redder. On the six sample photos in black and white, lips of this hue beside the skin
# scale's colour, at the lightness read, are 5.2-12.9 dE2000 from the lips read in
# colour (median 7.9).
SKIN_TO_LIPS = (-12.0, 22.0, 6.0)


@cache
def _swatches_by_lightness() -> np.ndarray:
    labs = np.array([hex_to_lab(tone) for tone in MONK_SKIN_TONES])
    return labs[np.argsort(labs[:, 0])]


def skin_scale_lab(lightness: float) -> np.ndarray:
    """CIELab (3,) of the skin scale at CIE L* `lightness` (0..100): its a* and b*
    interpolated between the swatches in order of L*, the end swatch's beyond them."""
    swatches = _swatches_by_lightness()
    return np.array(
        [
            lightness,
            np.interp(lightness, swatches[:, 0], swatches[:, 1]),
            np.interp(lightness, swatches[:, 0], swatches[:, 2]),
        ]
    )


def skin_scale_gain(skin: np.ndarray) -> np.ndarray:
    """(3,) gains on linear sRGB that take the CIELab (3,) `skin` to the skin scale at
    its lightness (a von Kries white balance with the scale as the reference)."""
    read, scale = (_linear_rgb(lab) for lab in (skin, skin_scale_lab(skin[0])))
    return scale / np.maximum(read, 1e-4)


def white_balanced(lab: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """The CIELab (3,) colour `lab` with (3,) linear sRGB `gain` applied (clipped to sRGB)."""
    rgb = np.clip(_linear_rgb(lab) * gain, 0.0, 1.0)
    return rgb2lab(linear_to_srgb(rgb)[None, None])[0, 0]


def _linear_rgb(lab: np.ndarray) -> np.ndarray:
    srgb = np.clip(lab2rgb(np.asarray(lab, np.float64)[None, None])[0, 0], 0.0, 1.0)
    return np.asarray(srgb_to_linear(srgb), np.float64)
