"""The skin tone scale: the Monk swatches, and the lips drawn beside a skin.

The synthetic renders draw their skins along this scale (`synth.sample_skin`) and
`chibi eval` measures fairness on its swatches; a photo without colour gets its skin
from the scale at the lightness it shows (`teacher_colors`).
"""

from __future__ import annotations

from functools import cache

import numpy as np
from skimage.color import rgb2lab

from .params import hex_to_rgb

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
    labs = rgb2lab(np.array([[hex_to_rgb(tone) for tone in MONK_SKIN_TONES]]))[0]
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
