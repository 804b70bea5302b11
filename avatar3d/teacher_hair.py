"""The teacher's hair length: how far down beside the face the hair reaches.

The CNN read hair length from its crop, and on real photos it gave short-haired men
side locks to the jaw (Obama 0.80, 0.36 and 0.69 in three photos, Biden 0.79) and moved
0.117 under +20 % brightness. Hair beside the face is what the length changes on the
avatar, and the photo shows it: `hair_reach` scans two bands just outside the face
oval, from above the temples down to the chin, for hair pixels (person, by MediaPipe's
selfie segmentation; not skin; near the hair colour the teacher read; joined to the hair
over the crown, so a dark background or a collar is not counted), and returns where the
hair stops covering `HAIR_SHARE` of the bands. Below the chin is not read: there hair and
a dark collar or jacket are one colour.

`hair_from_reach` turns that point into the avatar's hair. Hair still beside the face at
the chin gets the long style at its shortest (to the shoulders: the photo shows no
further). Hair that stops above the chin keeps the photo path's style (the short one:
no class head names a real photo's style), at the length whose side locks end there:
they end `SHORT_STYLE_REACH` of the way from the eye line to the chin at hair_length 0
and 1. On the six sample photos and `chibi eval`'s perturbations of them the hair stops
0.6-0.15 above the eye line (four short-haired men, Grace Hopper under her cap) and 0.15
above to 0.05 below it (the astronaut's bob): all length 0. In the group photo of
`sample_photos.GROUP_PHOTOS` the two women whose hair falls to the shoulders and past
them read the chin (long), the one with her hair tied up and the men 0.6-0.15 above the
eye line (`tests/test_teacher_hair.py`). Hair that ends at the chin reads the chin too,
so a chin-length bob gets the long style. The reading needs both bands in the photo; a
photo cut beside the face, or hair down to the chin joined to a beard (`BEARD_SHARE`),
leaves the hair to the fallback (confidence 0).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

REACH_FACE_PX = 64.0  # the window is read with the face this tall: bins of ~1.5 px
BAND_WIDTH = 0.25  # of the face width, outside the (slightly grown) face oval
BAND_LATERAL = 0.3  # of the face width from the face's centre line: beside the face only
SCAN = (-0.6, 1.0)  # rows scanned, in eye-line-to-chin units (0 = eye line, 1 = chin)
BIN = 0.05
BINS = round((SCAN[1] - SCAN[0]) / BIN)
HAIR_SHARE = 0.25  # of a row's band pixels that are hair, while the hair lasts
NOT_SKIN = 12.0  # CIELab distance from the skin reading (the hair colour's rule too)
# CIELab distance from the hair reading. At 25, where the teacher missed a face mask (its
# skin reading then is the fabric's), Obama's ears passed for his grey hair: length 1.
NEAR_HAIR = 18.0
MIN_BAND_PX = 20  # per row bin; fewer: the photo ends above the face, or it is tiny
# Of the chin below the lower lip, between the mouth corners: where this share is hair
# joined to the crown's, hair down to the chin may be a beard, and the reach is not read.
BEARD_SHARE = 0.5
# Where the base model's short-style side locks end, eye line to chin = 1, at hair_length
# 0 and 1 (tested against the built avatar).
SHORT_STYLE_REACH = (0.18, 0.61)
# Hair that still covers the bands at the chin, the last row read, falls at least that far,
# past where the short style's side locks end at any length. The long style at its
# shortest (hair_length 0) ends at the shoulders: the least such hair can be.
LONG_STYLE, LONG_STYLE_LENGTH = "long", 0.0


def hair_reach(
    patch: np.ndarray,
    pts: np.ndarray,
    person: np.ndarray,
    oval: np.ndarray,
    skin_lab: np.ndarray | None,
    hair_lab: np.ndarray | None,
) -> float:
    """How far below the eye line the hair beside the face reaches, in eye-line-to-chin
    units (`SCAN[0]`: none beside the temples; `SCAN[1]`: down to the chin or past it);
    NaN where it cannot be read (no hair or skin reading, a band outside the photo, hair
    down to the chin joined to a beard).

    patch: (H, W, 3) uint8 window around the head; pts: (478, 2) landmarks in its
    pixels; person: (H, W) float 0..1; oval: (H, W) bool, the grown face oval;
    skin_lab, hair_lab: the teacher's CIELab (3,) readings.
    """
    if skin_lab is None or hair_lab is None:
        return math.nan
    eye_y = float(pts[[33, 133, 263, 362], 1].mean())
    chin_y = float(pts[152, 1])
    face_w = float(np.ptp(pts[:, 0]))
    if chin_y - eye_y < 2 or face_w < 2:
        return math.nan
    reach_x = (BAND_WIDTH + 0.1) * face_w  # the band, past the grown oval
    if pts[:, 0].min() - reach_x < 0 or pts[:, 0].max() + reach_x > patch.shape[1]:
        return math.nan  # the photo ends beside the face
    scale = REACH_FACE_PX / float(np.ptp(pts[:, 1]))
    if scale < 0.9:  # fewer pixels, the same rows' shares: 0.8 ms instead of 1.4
        size = (max(1, round(patch.shape[1] * scale)), max(1, round(patch.shape[0] * scale)))
        factors = np.array(size) / [patch.shape[1], patch.shape[0]]
        patch = cv2.resize(patch, size, interpolation=cv2.INTER_AREA)
        person = cv2.resize((person > 0.5).astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
        oval = cv2.resize(oval.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
        pts = pts * factors
        eye_y, chin_y, face_w = eye_y * factors[1], chin_y * factors[1], face_w * factors[0]
    shape = patch.shape[:2]
    lab = cv2.cvtColor(patch, cv2.COLOR_RGB2LAB).astype(np.float32)
    lab[..., 0] *= 100.0 / 255.0  # OpenCV's 8-bit CIELab: L* scaled to 0..255, a* b* + 128
    lab[..., 1:] -= 128.0
    to_skin, to_hair = lab - skin_lab.astype(np.float32), lab - hair_lab.astype(np.float32)
    hairy = (
        (person > 0.5)
        & (np.einsum("ijk,ijk->ij", to_skin, to_skin) > NOT_SKIN**2)
        & (np.einsum("ijk,ijk->ij", to_hair, to_hair) < NEAR_HAIR**2)
    )
    # only hair joined to the hair over the crown (above the forehead, within the face's width)
    count, parts = cv2.connectedComponents(hairy.astype(np.uint8), connectivity=8)
    x0, x1 = int(max(0.0, pts[:, 0].min())), int(math.ceil(pts[:, 0].max()))
    crown = parts[: int(max(0.0, pts[10, 1])), x0:x1]
    joined = np.zeros(count, bool)
    joined[crown[crown > 0]] = True
    hair = joined[parts]  # (H, W) hair pixels joined to the crown's
    outside = cv2.distanceTransform((~oval).astype(np.uint8), cv2.DIST_L2, 3)
    beside = np.abs(np.arange(shape[1]) - pts[[234, 454], 0].mean()) > BAND_LATERAL * face_w
    band = (outside > 0) & (outside <= BAND_WIDTH * face_w) & beside[None, :]
    rows = (np.arange(shape[0]) - eye_y) / (chin_y - eye_y)
    bins = np.floor((rows - SCAN[0]) / BIN).astype(np.int64)
    scanned = (bins >= 0) & (bins < BINS)
    band_px = np.bincount(bins[scanned], band[scanned].sum(axis=1), minlength=BINS)
    hair_px = np.bincount(bins[scanned], (band & hair)[scanned].sum(axis=1), minlength=BINS)
    short = np.flatnonzero((band_px < MIN_BAND_PX) | (hair_px < HAIR_SHARE * band_px))
    if len(short) == 0:
        # a beard joined to the hair by sideburns fills the bands down to the chin too
        lower_lip = (pts[17, 1] - eye_y) / (chin_y - eye_y)  # in `rows`' units
        chin = oval & ((rows > lower_lip) & (rows < 1.0))[:, None]
        chin[:, : int(pts[61, 0])] = chin[:, int(math.ceil(pts[291, 0])) :] = False
        if np.count_nonzero(chin & hair) >= BEARD_SHARE * max(1, np.count_nonzero(chin)):
            return math.nan
        return float(SCAN[1])
    if band_px[short[0]] < MIN_BAND_PX:  # the photo ends above the face, or the face is tiny
        return math.nan
    return float(SCAN[0] + BIN * short[0])


def hair_from_reach(reach: float) -> tuple[str | None, float]:
    """The hair style and hair_length whose hair ends where `reach` (`hair_reach`'s units)
    says: (LONG_STYLE, LONG_STYLE_LENGTH) where the hair reaches the chin; else no style
    (None: the photo path keeps its own) and the short style's length
    (`hair_length_from_reach`, NaN where nothing was read)."""
    if math.isfinite(reach) and reach >= SCAN[1]:
        return LONG_STYLE, LONG_STYLE_LENGTH
    return None, hair_length_from_reach(reach)


def hair_length_from_reach(reach: float) -> float:
    """The short style's hair_length (0..1) whose side locks end at `reach`
    (`hair_reach`'s units); NaN stays NaN."""
    if not math.isfinite(reach):
        return math.nan
    low, high = SHORT_STYLE_REACH
    return float(np.clip((reach - low) / (high - low), 0.0, 1.0))
