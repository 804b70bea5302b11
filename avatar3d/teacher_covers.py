"""What covers the face, told from the teacher's colour readings: a face mask over the
cheeks (`cheek_cover`), bangs over the forehead (`forehead_covered`), a lens over an eye
(`eye_hidden`).

Each rule takes robust CIELab (3,) readings of regions (`teacher_colors.sample_colors`
reads them) or what `teacher_colors.eye_shade` reads of an eye, and decides; no pixels
are read here. The thresholds were set on the sample photos, their Monk tints and the
covers `painted` draws over them (`scripts/covered_faces.py`); each says what it was
measured on.
"""

from __future__ import annotations

import math

import numpy as np
from skimage.color import deltaE_ciede2000

# An eye behind a dark lens shows no white beside its iris (`eye_shade`, session 34).
# On the six sample photos, under every perturbation of `chibi eval` and with their skin
# tinted to each Monk swatch (102 faces), the contrast (L*: the opening's brighter
# quarter outside the iris against the iris ring's darker quarter) read 15.5-83 and the
# white's luminance 3.8-247 times the iris's; behind lenses passing 10 % of the light
# painted over them, on each photo and tint (66 faces), 0.2-8.3 and 1.07-3.52. A dim
# photo lowers the contrast as a lens does (3.3 and up at 30-45 % of the exposure or
# under a 2.2 gamma) but a gain leaves the ratio alone (3.2 and up), hence both. An
# open eye under both is hidden (`eye_hidden`): its iris is not sampled, and with both
# eyes hidden `teacher.measure` leaves the eyes' fields to the default. The ratio does
# not involve the skin: the white's share of the skin's light, tried first, missed the
# lenses on the four darkest swatches.
# Behind a mirrored or bright lens FaceMesh often reads the eye shut (blink over 0.5;
# painted sky-and-ground mirrors: 5 of the 6 photos) or too narrow to read a contrast.
# Such an eye is hidden when the skin below it (`RIGHT_UNDER_EYE`) reads more than
# EYE_LENS_DISTANCE dE2000 from the face's skin: 22-50 behind painted mirrors and 35-61
# behind dark lenses on the six photos, 0.5-17.7 on the 120 unmasked faces (shadows
# under the eyes, tints, dim photos), under 6.5 on the training renders FaceMesh reads
# shut (session 35).
EYE_HIDDEN_CONTRAST = 10.0
EYE_HIDDEN_RATIO = 3.5
EYE_LENS_DISTANCE = 20.0
# An open eye that shows no white is hidden only where the skin below it also reads more
# than this from the face's: a lens covers it, a squint does not. On the five faces of the
# group photo (`sample_photos.GROUP_PHOTOS`, 100-130 px, eyes narrowed by a smile or
# looking down), mostly tinted to the two darkest swatches, 7 of 100 unhidden faces read
# as behind lenses with 0.8-9.4 there; with this none, and behind the painted lenses of
# the six photos and these five faces all 55 dark ones and 155 of 214 mirrors (156
# before) still hide the eyes (`scripts/covered_faces.py --group`, session 38).
EYE_OPEN_LENS_DISTANCE = 6.0
# Skin, in CIELab, lies between red and yellow: the Monk swatches at hue angles 49-89
# degrees, the six sample photos' skins at 39-65, and all but 0.2 % of the training
# renders' skins (some drawn pinker) within -30..120. A face mask over the cheeks made the
# skin read as its fabric (a light-blue mask: the astronaut's skin #8eb4cc, at -114
# degrees). A reading at least SKIN_HUE_CHROMA from grey and outside SKIN_HUES is not
# skin (blue, green, violet); a greyer one cannot be judged by its hue (the darkest
# swatch is 3.8 from grey), nor can a red or yellow fabric.
SKIN_HUES = (-30.0, 120.0)
SKIN_HUE_CHROMA = 6.0
LIPS_LIKE_COVER = 5.0  # dE2000: lips this close to the cheeks' cover are the same cover
# A black, white or grey mask is too grey for the hue to judge. Against a forehead that
# is clearly skin (chroma SKIN_HUE_CHROMA or more, at a skin hue), with lips of the
# cheeks' colour, it shows as grey cheeks (chroma under GREY_COVER_CHROMA; the darkest
# swatch is 3.8) at least GREY_COVER_LIGHTNESS lighter or darker than the forehead, or,
# for a pale fabric (white, cream), as cheeks lighter than the forehead and under
# GREY_COVER_SHARE of its chroma. Fabrics painted over the six sample photos and their
# Monk tints, with shading, folds and grain, read 0-7 in chroma against foreheads of
# 6-35. Unmasked, no face's cheeks read that grey with such a forehead and lips, and
# lighter cheeks kept at least 0.65 of the forehead's chroma (120 real faces, 227
# training renders), but on a render of the darkest swatch the cheeks read 2.2 against
# a redder forehead of the same lightness: hence the lightness gap (session 35).
GREY_COVER_CHROMA = 3.0
GREY_COVER_LIGHTNESS = 15.0
GREY_COVER_SHARE = 0.4
# A red, orange or yellow fabric has a skin's hue but more colour than any skin: painted
# over the six photos and their Monk tints, such masks read a chroma of 63-68 at the
# cheeks, 1.8-6 times the forehead's. Unmasked, the cheeks read at most 47 (1.9 times
# the forehead, a tint whose lips differ) on the real faces, 59 on dim ones (as much as
# their forehead), 36.5 on 290 training renders (session 36).
VIVID_COVER_CHROMA = 50.0
VIVID_COVER_SHARE = 1.8
# Bangs over the lower forehead: there black, dark brown and auburn hair (`painted`)
# read 20-70 L* darker than the cheeks on the 11 sample and group faces, and moved the
# skin read with the forehead by a median 2.2-5.8 dE2000 over them and five Monk tints
# of each (27 at worst; `scripts/covered_faces.py`). Unhidden, no forehead read more
# than 4.4 darker than its cheeks (187 readings: the 11 faces, `chibi eval`'s
# perturbations and Monk tints); it often reads lighter (shine, up to 21.5). A forehead
# this much darker leaves the skin to the cheeks (session 42): medians 1.1-2.4. Blonde
# bangs read about as light as skin, and are not told apart.
FOREHEAD_COVER_DARKER = 12.0


def cheek_cover(
    skin: np.ndarray | None,
    cheeks: np.ndarray | None,
    forehead: np.ndarray | None,
    lips: np.ndarray | None,
) -> np.ndarray | None:
    """The CIELab (3,) colour of what covers the cheeks (a face mask), or None where
    they show skin. Each argument is a region's robust CIELab reading, None if unread:
    `skin` the cheeks and forehead together.

    Covered are cheeks whose reading with the forehead does not `looks_like_skin`; or,
    against a forehead that clearly is skin, cheeks that do not, or cheeks and lips of
    one grey or pale fabric (`GREY_COVER_CHROMA`) or of one more vivid than skin
    (`VIVID_COVER_CHROMA`). The cover's colour is the cheeks' alone, what the lips are
    compared with."""
    if skin is not None and not looks_like_skin(skin):
        return skin if cheeks is None else cheeks
    if cheeks is None or forehead is None or lips is None:
        return None
    if not looks_like_skin(forehead) or _chroma(forehead) < SKIN_HUE_CHROMA:
        return None
    if not looks_like_skin(cheeks):  # a pale blue or green fabric the forehead diluted
        return cheeks
    chroma, lighter = _chroma(cheeks), cheeks[0] - forehead[0]
    grey = chroma < GREY_COVER_CHROMA and abs(lighter) >= GREY_COVER_LIGHTNESS
    pale = lighter > 0 and chroma < GREY_COVER_SHARE * _chroma(forehead)
    vivid = chroma >= max(VIVID_COVER_CHROMA, VIVID_COVER_SHARE * _chroma(forehead))
    return cheeks if (grey or pale or vivid) and lips_alike(lips, cheeks) else None


def forehead_covered(
    forehead: np.ndarray | None, cheeks: np.ndarray | None, lips: np.ndarray | None
) -> bool:
    """Whether bangs cover the lower forehead: its CIELab (3,) reading is
    `FOREHEAD_COVER_DARKER` or more darker than the cheeks', and the lips do not read as
    the cheeks do (`LIPS_LIKE_COVER`): a pale face mask's cheeks are not to be taken for
    the skin. False if the forehead or the cheeks are unread."""
    if forehead is None or cheeks is None or forehead[0] > cheeks[0] - FOREHEAD_COVER_DARKER:
        return False
    return lips is None or not lips_alike(lips, cheeks)


def lips_alike(lips: np.ndarray, cover: np.ndarray) -> bool:
    """Whether the lips' CIELab (3,) reading is the same colour as `cover`'s, within
    `LIPS_LIKE_COVER`: one cover over both."""
    return bool(deltaE_ciede2000(lips, cover) < LIPS_LIKE_COVER)


def _chroma(lab: np.ndarray) -> float:
    return math.hypot(lab[1], lab[2])


def looks_like_skin(lab: np.ndarray) -> bool:
    """Whether a CIELab (3,) colour may be skin: within `SKIN_HUES`, or too grey to tell."""
    hue = math.degrees(math.atan2(lab[2], lab[1]))
    return _chroma(lab) < SKIN_HUE_CHROMA or SKIN_HUES[0] <= hue <= SKIN_HUES[1]


def eye_hidden(contrast: float, ratio: float, under_eye: float, blink: float) -> bool:
    """Whether an eye is behind a lens. One FaceMesh reads open (`blink` <= 0.5) is
    when no white shows beside its iris, in L* (`contrast` under `EYE_HIDDEN_CONTRAST`)
    nor in luminance (`ratio` under `EYE_HIDDEN_RATIO`), as `eye_shade` reads them, and
    the skin below it is not quite skin (`under_eye`, from `under_eye_distance`, over
    `EYE_OPEN_LENS_DISTANCE`, or unread): a half-shut eye's lid shades what shows of it.
    One it reads shut, or too narrow to read (NaN contrast), is when the skin below it
    is not skin (over `EYE_LENS_DISTANCE`; NaN is never hidden)."""
    if blink > 0.5 or math.isnan(contrast):
        return under_eye > EYE_LENS_DISTANCE
    lens_below = math.isnan(under_eye) or under_eye > EYE_OPEN_LENS_DISTANCE
    return contrast < EYE_HIDDEN_CONTRAST and ratio < EYE_HIDDEN_RATIO and lens_below


def under_eye_distance(below: np.ndarray | None, skin: np.ndarray | None) -> float:
    """dE2000 between the CIELab (3,) readings of the skin `below` an eye and of the
    face's `skin`; NaN where either is unread."""
    if below is None or skin is None:
        return math.nan
    return float(deltaE_ciede2000(below, skin))
