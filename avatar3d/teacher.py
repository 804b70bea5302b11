"""The landmark/colour "teacher": measures `AvatarParams` fields on a real photo.

Geometry comes from the 478 FaceMesh landmarks, which are free of lighting and
skin tone. The landmarks are first *frontalised*: rotated by the head pose into
the face's own frame (x toward the person's left, y down) and read as 2D, so a
slightly turned head measures like a frontal one. Lengths are divided by one
face scale U, the geometric mean of four expression-stable lengths (inter-ocular
distance, face width, face length, eye-to-nose-base height). U rather than the
inter-ocular distance (IOD) alone: with IOD as the unit, "eye spacing" could
only be IOD / face width, the exact inverse of "face width" / IOD, and "eye
size" (fissure / IOD) would be the only eye measurement left. Relative to U,
every feature is compared with the face as a whole. Where the face length is left
unread (below), the length a face of the other three has stands in (`LENGTH_RATIO`).

Mapping to sliders. Each measurement m has a reference m0 and a spread sd:
    log measurements (lengths):      slider = 0.5 + ln(m / m0) / (5 sd)
    linear measurements (angles, positions): slider = 0.5 + (m - m0) / (5 sd)
so the reference lands on 0.5 and +-2 sd (95% of adults) spans 0.1..0.9.
m0 is the median, per measurement, of three anchor faces measured by this very
code: MediaPipe's canonical face model
(mediapipe/modules/face_geometry/data/canonical_face_model.obj, the mean face
FaceMesh is built around; not in the wheel, so the numbers are written below)
and FaceMesh's fits of the two real portraits available offline
(scikit-image's astronaut, matplotlib's Grace Hopper). The canonical model alone
was the first choice, but next to real fits (which agree with anthropometric
norms) its face contour is ~10% wider and longer relative to the eyes, its eye
fissures ~10% shorter and its eyes ~25% narrower, so every real face landed near
the slider ends (eye_size 0.9-1.0). The median of three keeps any one atypical
anchor (the stylised canonical mesh, the astronaut's broad smile) from setting
the 0.5 point. sd is the relative spread of the matching anthropometric
distance among adults (Farkas' norms: 4-7% for face and eye widths, ~10% for
chin height, ~15% for lip and brow heights, ~3.5 deg canthal tilt), a little
wider where the landmark fit adds noise. Three anchors are not a population:
these are documented estimates, not a fit; `TeacherLabels.measurements` keeps the raw
values so the constants can be refit on a labelled folder.

Directions: larger = wider / longer / bigger / further apart / fuller; eye_tilt
larger = outer corners higher; eye_height and mouth_height larger = higher on
the face (eyes further from the chin, mouth closer to the eyes); brow_height
larger = brows further above the eyes. head_size and ear_size are not
measurable from the mesh (0.5, confidence 0); brow_thickness comes from the
mesh's two brow rows, which follow a template more than the hairs (low
confidence).

Expressions (0 neutral .. 1 full) are thresholds on the same frontal geometry:
eye aspect ratio for blinks, lip gap for mouth_open, the mouth corners' lift
above the upper lip and toward the nose for smile, brows beyond +1 sd for
brow_raise (a high-browed face and raised brows look alike in one photo, hence
the lower confidence). Shape fields an expression distorts lose confidence with
it (`EXPRESSION_CONFOUNDS`), and a smile's widening is taken out of the mouth's
width (`mouth_width_at_rest`); a mouth opened as in speech leaves the fields read from
the chin unread (`OPEN_MOUTH_LIMIT`), a head pitched far up or down those read from the
top of the forehead (`PITCH_LIMIT`), and a chin cut off by the photo's edge those read
from the chin (`CHIN`).

Colours: `avatar3d.teacher_colors` (robust Lab medians over landmark regions).
Glasses: `avatar3d.teacher_glasses` (a frame's bar across the nose bridge); only
whether a frame is there, not its shape. Hair length: `avatar3d.teacher_hair` (where the
hair beside the face ends, on the short style's scale); not the hair style.

"left"/"right" are the person's own (MediaPipe's convention), i.e. the image's
right/left side in a non-mirrored photo. Nothing about gender, age or
ethnicity is measured or stored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .face_observation import FaceObservation
from .landmarks import (
    LEFT_BROW_LOWER,
    LEFT_BROW_UPPER,
    RIGHT_BROW_LOWER,
    RIGHT_BROW_UPPER,
    head_pose,
)
from .params import EXPRESSION_SLIDERS, SHAPE_SLIDERS, UNKNOWN_FRAME, AvatarParams
from .teacher_colors import SIDES, sample_colors
from .teacher_glasses import bridge_contrast, glasses_reading
from .teacher_hair import hair_from_reach

# -- landmark groups (MediaPipe FaceMesh indices) -------------------------------------
# Vertically matched outer/inner lip points (midline first).
UPPER_LIP_OUTER, UPPER_LIP_INNER = (0, 37, 267, 39, 269), (13, 82, 312, 81, 311)
LOWER_LIP_OUTER, LOWER_LIP_INNER = (17, 84, 314, 181, 405), (14, 87, 317, 178, 402)

# -- mapping: reference (median of the three anchors), spread, kind -----------------------
# name -> (reference m0, spread sd, "log" | "lin")
SHAPE_MAPPING: dict[str, tuple[float, float, str]] = {
    "face_width": (1.5864, 0.05, "log"),  # contour width 234-454 / U
    "face_length": (1.7844, 0.05, "log"),  # upper forehead 10 to chin 152 (mouth gap removed) / U
    "jaw_width": (1.2978, 0.07, "log"),  # jaw angle 172-397 / U
    "chin_length": (0.4136, 0.11, "log"),  # lower lip 17 to chin 152 / U
    "cheek_fullness": (0.9293, 0.035, "log"),  # lower-cheek width (58-288, 132-361) / face width
    "eye_size": (0.3152, 0.07, "log"),  # eye fissure length / U
    "eye_spacing": (0.7098, 0.05, "log"),  # IOD / U
    "eye_tilt": (2.255, 3.5, "lin"),  # degrees, outer corner above inner corner
    "eye_height": (0.6707, 0.025, "lin"),  # (chin - eye line) / (chin - upper forehead)
    "brow_height": (0.2064, 0.15, "log"),  # eye line to brow / U
    "brow_thickness": (0.0521, 0.2, "log"),  # upper to lower brow contour / U
    "nose_size": (0.5264, 0.08, "log"),  # sqrt(alar width x bridge-to-base length) / U
    "mouth_width": (0.5898, 0.07, "log"),  # mouth corners 61-291 / U
    "mouth_height": (0.4234, 0.03, "lin"),  # (chin - upper inner lip) / (chin - eye line)
    "lip_fullness": (0.1396, 0.15, "log"),  # upper + lower vermilion height (5-pair means) / U
}
EYE_ASPECT_REF = 0.2342  # eye aspect ratio of the canonical open eye (the narrowest anchor)
SMILE_LIFT_REF = -0.0370  # (upper inner lip y - mouth corner y) / U on the canonical face
SMILE_LIFT_RANGE = 0.09  # a broad smile lifts the corners ~9% of U (~8 mm) above neutral
# (mouth corner y - nose base y) / U - JAW_CARRY x lip gap on the canonical face; a
# broad smile raises the corners toward the nose by SMILE_LIFT_RANGE
SMILE_DROP_REF = 0.2220
JAW_CARRY = 0.3  # share of the lip gap by which a dropping jaw carries the corners down
MOUTH_OPEN_RANGE = 0.45  # lip gap / U at a wide-open mouth (~4 cm)

# Base confidence of each landmark measurement on a frontal face.
SHAPE_CONFIDENCE: dict[str, float] = {
    "head_size": 0.0,  # not measurable from a face crop
    "ear_size": 0.0,  # ears are outside the mesh and often hidden
    "brow_thickness": 0.3,  # the mesh's brow rows follow a template more than the hairs
    "brow_height": 0.6,  # confounded with raised brows
    "mouth_width": 0.6,  # widened by a smile
    "lip_fullness": 0.6,
    "cheek_fullness": 0.5,
}
# Shape fields an expression moves: their confidence is multiplied by (1 - expression)
# for each one listed, so a grin or an open mouth leaves them to the fallback (one
# person in three photos, `chibi eval`: his open mouth read lip_fullness 0.85, his grin
# 0.3, his closed smile 0.7).
EXPRESSION_CONFOUNDS: dict[str, tuple[str, ...]] = {
    "lip_fullness": ("smile", "mouth_open"),  # lips stretched thin; rolled out
    "mouth_height": ("mouth_open",),  # the upper lip lifted
    # a broad smile flares the nostrils: of the sample and group photos' faces, the five
    # smiling 0.27 or more read 0.54-0.65, the six others 0.38-0.55 (session 39)
    "nose_size": ("smile",),
}
# Lips parted this far or more (mouth_open) leave the chin unread. Four fields read it:
# chin_length from the lower lip, the other three from where the chin would be with the
# mouth closed (the chin moved up by the lip gap). That holds while the lips part in a
# grin, not in speech, where the lower lip drops over the teeth further than FaceMesh
# moves the chin. Obama's three photos (`chibi eval`'s same-person spread): grinning, lips
# parted 0.34, his chin_length and mouth_height read 0.411 and 0.419 against 0.412 and
# 0.405 with his mouth closed; speaking, 0.56, 0.281 and 0.356, sliders 0.00 and 0.05
# against 0.49 and 0.38-0.47. Both held under every perturbation of `chibi eval`.
OPEN_MOUTH_LIMIT = 0.45
CHIN_FIELDS = ("chin_length", "face_length", "eye_height", "mouth_height")
# A head pitched this far (degrees, up or down) leaves the two fields read from the top
# of the forehead (landmark 10, the point furthest behind the eyes) unread: frontalising
# with FaceMesh's depth leaves them biased the way the head turns. The three faces
# pitched 20-24 degrees read eye_height 0.98 (Obama, head up; 0.48 level in another
# photo), 0.34 and 0.20 (two of the group photo's men, heads down; face_length 0.82 and
# 0.67); the seven others pitched 16 degrees or less 0.41-0.71 and 0.47-0.59.
PITCH_LIMIT = 18.0
FOREHEAD_FIELDS = ("face_length", "eye_height")
# A chin cut off by the photo's edge leaves CHIN_FIELDS unread too: FaceMesh guesses
# where it is. `scripts/cut_faces.py --by-field` without this rule: a twentieth to a fifth
# of the face cut off below, chin_length, mouth_height and face_length read 0.22, 0.18
# and 0.06 from the uncut readings (means), where the default lies 0.12, 0.11 and 0.03
# from them (eye_height 0.06 against 0.08). Cut at the top or a side, every field read
# closer than the default, or as close (face_width, face_length, cheek_fullness).
CHIN = 152
# Nor does a face length left unread set the face scale U: the length a face of the other
# three lengths has stands in, LENGTH_RATIO x the cube root of their product (the median
# over the sample and group photos' seven faces that read it, spread 1.2 %). Read with
# the rest, FaceMesh's guess at a chin cut off by the photo's edge moved the other
# fields too (`scripts/cut_faces.py --by-field`, a twentieth to a fifth cut off below:
# eye_spacing 0.070, face_width 0.050; with the stand-in 0.048 and 0.027), as did a mouth
# open in speech, whose chin the lip gap takes back (Obama speaking: 2.09, 3.6 % short of
# the median; his eye_spacing read 0.42 against 0.36 grinning, now 0.39).
LENGTH_RATIO = 2.168
# A smile draws the mouth corners out as well as up, so `mouth_width` is read as the
# mouth at rest: the width over 1 + SMILE_WIDENING x the smile beyond SMILE_AT_REST.
# Obama grinning (smile 0.72) reads his mouth 1.24x as wide as at rest (0.15 standing,
# 0 speaking: 0.643 and 0.656 of U). The faces at rest read 0.00-0.22 (a slight
# smile), which widens nothing: Obama speaking has the wider mouth of the two.
SMILE_AT_REST = 0.2
SMILE_WIDENING = 0.46
DEFAULT_SHAPE_CONFIDENCE = 0.8
EXPRESSION_CONFIDENCE = {"brow_raise": 0.5}
DEFAULT_EXPRESSION_CONFIDENCE = 0.8
# Where dark lenses hide both eyes (`teacher_covers.eye_hidden`), FaceMesh
# still places the eyes' landmarks, by the face's prior: over painted lenses on the six
# sample photos eye_size moved by up to 0.26, eye_height 0.18, eye_tilt 0.16, and the
# iris read the lens's near-black. These fields are then the default, sure: a face
# whose eyes do not show gets neutral eyes, whatever the CNN makes of the lenses.
HIDDEN_WITH_THE_EYES = (
    "shape.eye_size", "shape.eye_spacing", "shape.eye_tilt", "shape.eye_height",
    "expression.blink_left", "expression.blink_right", "iris_color",
)  # fmt: skip
# Where a face mask covers the mouth (`teacher_colors.sample_colors`: the cheeks read no
# skin colour and the lips read the same cover), FaceMesh guesses the mouth, nose and
# chin: a painted surgical mask moved the astronaut's smile from 0.87 to 0.47.
HIDDEN_WITH_THE_MOUTH = (
    "shape.nose_size", "shape.mouth_width", "shape.mouth_height", "shape.lip_fullness",
    "shape.chin_length", "expression.smile", "expression.mouth_open", "lip_color",
)  # fmt: skip
HIDDEN_WITH = {"eyes": HIDDEN_WITH_THE_EYES, "mouth": HIDDEN_WITH_THE_MOUTH}  # by part
# The hair beside the face is read as the hair colour is (`teacher_colors`), and only
# where the photo shows both sides of the face.
HAIR_LENGTH_CONFIDENCE = 0.8


@dataclass
class TeacherLabels:
    """Measured fields of one face.

    shape: every `SHAPE_SLIDERS` name -> 0..1 (0.5 where not measurable).
    expression: every `EXPRESSION_SLIDERS` name -> 0..1.
    colors: every `COLOR_FIELDS` name -> "#rrggbb" sRGB (the default where no
        pixels could be sampled, with confidence 0).
    confidence: every field name above, and "glasses" -> 0..1; 0 = not measured.
    measurements: raw frontal measurements behind the sliders (unitless ratios,
        degrees for eye_tilt), "bridge_contrast" and the eyes' `eye_shade`
        ("eye_contrast_right" / "_left", L*; "eye_ratio_right" / "_left", the white's
        luminance over the iris's; "under_eye_right" / "_left", dE2000 of the skin
        below the eye from the face's), the window's "saturation"
        (`teacher_colors.window_saturation`) and "hair_reach" (`teacher_hair.hair_reach`),
        for refitting the constants.
    glasses: whether a glasses frame crosses the nose bridge.
    hidden: the fields the photo hides (`HIDDEN_WITH_THE_EYES` behind dark lenses,
        `HIDDEN_WITH_THE_MOUTH` behind a face mask): each holds its default, with
        confidence 1.
    skin_scale: the colour fields taken from the skin scale at the lightness read: the
        skin and lips of a photo without colour (`teacher_colors.MONOCHROME_SATURATION`),
        the skin under a coloured light.
    white_balanced: a coloured light was taken out of the colours (`sample_colors`).
    hair_length: the short style's length whose side locks end where the hair beside
        the face does, or the long style's where it reaches the chin (`teacher_hair`);
        0.5 with confidence 0 where that is not read.
    hair_style: "long" where the hair beside the face reaches the chin (its confidence
        is hair_length's); None where the teacher leaves the style alone.
    """

    shape: dict[str, float]
    expression: dict[str, float]
    colors: dict[str, str]
    confidence: dict[str, float]
    measurements: dict[str, float] = field(default_factory=dict)
    glasses: bool = False
    hidden: tuple[str, ...] = ()
    skin_scale: tuple[str, ...] = ()
    white_balanced: bool = False
    hair_length: float = 0.5
    hair_style: str | None = None


def measure(
    rgb: np.ndarray, face: FaceObservation, person_mask: np.ndarray | None = None
) -> TeacherLabels:
    """Measure shape, expression and colours of `face` in the (H, W, 3) uint8 RGB image.

    person_mask: optional (H, W) float/bool person probability for hair sampling;
        if None, MediaPipe selfie segmentation (one model per thread) runs on the
        region around the head, a selfie-like framing that suits it.
    """
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3:
        raise ValueError("rgb must be an (H, W, 3) uint8 array")
    landmarks = np.asarray(face.landmarks, dtype=np.float64)
    if landmarks.shape != (478, 3) or not np.isfinite(landmarks).all():
        raise ValueError("face.landmarks must be a finite (478, 3) array")
    frontal = frontalize(landmarks)
    raw = frontal_measurements(frontal)
    # A small face costs no confidence: shrunk to 18-30 px between the eyes (down to
    # where `face_too_small` answers), the sample and group faces read their sliders
    # 0.017-0.031 from their full-size readings, where the default lies 0.09 away and a
    # confidence scaled down by the size handed fields to it (`scripts/cut_faces.py
    # --shrink`, session 42).
    pose_factor = _pose_factor(face.yaw, face.pitch)

    expression = expression_from_measurements(raw)
    unread = CHIN_FIELDS if expression["mouth_open"] >= OPEN_MOUTH_LIMIT else ()
    if abs(face.pitch) >= PITCH_LIMIT:
        unread += FOREHEAD_FIELDS
    if not _in_photo(landmarks[CHIN], rgb.shape):
        unread += CHIN_FIELDS
    if "face_length" in unread:  # nor does the length set the scale
        frontal = frontal / face_scale(frontal, length_read=False)
        raw = frontal_measurements(frontal)
        expression = expression_from_measurements(raw)
    shape, confidence = {}, {}
    at_rest = raw | {"mouth_width": mouth_width_at_rest(raw["mouth_width"], expression["smile"])}
    for name in SHAPE_SLIDERS:
        if name in SHAPE_MAPPING and math.isfinite(raw[name]) and name not in unread:
            shape[name] = slider_from_measurement(name, at_rest[name])
            base = SHAPE_CONFIDENCE.get(name, DEFAULT_SHAPE_CONFIDENCE)
            for cause in EXPRESSION_CONFOUNDS.get(name, ()):
                base *= 1.0 - expression[cause]
            confidence[name] = base * pose_factor
        else:
            shape[name] = 0.5
            confidence[name] = 0.0
    geometry_ok = all(math.isfinite(v) for v in raw.values())
    for name in EXPRESSION_SLIDERS:
        base = EXPRESSION_CONFIDENCE.get(name, DEFAULT_EXPRESSION_CONFIDENCE)
        confidence[name] = base * pose_factor if geometry_ok else 0.0

    reading = sample_colors(rgb, landmarks, person_mask, expression)
    colors = reading.colors
    confidence.update({name: c * pose_factor for name, c in reading.confidence.items()})
    contrast = bridge_contrast(rgb, landmarks, face.eye_centres)
    glasses, glasses_confidence = glasses_reading(contrast)
    confidence["glasses"] = glasses_confidence * pose_factor
    hair_style, hair_length = hair_from_reach(reading.hair_reach)
    read = math.isfinite(hair_length)
    confidence["hair_length"] = HAIR_LENGTH_CONFIDENCE * pose_factor if read else 0.0
    measurements = raw | {
        "bridge_contrast": contrast,
        "saturation": reading.saturation,
        "hair_reach": reading.hair_reach,
    }
    for side, (eye_contrast, eye_ratio, under_eye) in zip(SIDES, reading.eyes, strict=True):
        measurements |= {f"eye_contrast_{side}": eye_contrast, f"eye_ratio_{side}": eye_ratio,
                         f"under_eye_{side}": under_eye}  # fmt: skip
    hidden = tuple(name for part in reading.hidden for name in HIDDEN_WITH[part])
    defaults = AvatarParams()
    for dotted in hidden:
        group, _, name = dotted.rpartition(".")
        if group:
            {"shape": shape, "expression": expression}[group][name] = getattr(defaults, group)[name]
        else:
            colors[name] = getattr(defaults, name)
        confidence[name] = 1.0
    return TeacherLabels(
        shape=shape,
        expression=expression,
        colors=colors,
        confidence={k: round(float(v), 4) for k, v in confidence.items()},
        measurements=measurements,
        glasses=glasses,
        hidden=hidden,
        skin_scale=reading.skin_scale,
        white_balanced=reading.white_balanced,
        hair_length=hair_length if read else AvatarParams().hair_length,
        hair_style=hair_style,
    )


def labels_to_params(
    labels: TeacherLabels, base: AvatarParams | None = None, min_confidence: float = 0.25
) -> AvatarParams:
    """`base` (default: a default AvatarParams) with every field measured at
    confidence >= `min_confidence` replaced by the measurement. Fields the
    teacher does not measure (name; the hair style, unless it read one) keep
    `base`'s; a frame seen gives `base`'s glasses, or `UNKNOWN_FRAME` where `base`
    has none."""
    params = AvatarParams.from_dict(base.to_dict()) if base is not None else AvatarParams()
    for name, value in labels.shape.items():
        if labels.confidence.get(name, 0.0) >= min_confidence:
            params.shape[name] = float(value)
    for name, value in labels.expression.items():
        if labels.confidence.get(name, 0.0) >= min_confidence:
            params.expression[name] = float(value)
    for name, value in labels.colors.items():
        if labels.confidence.get(name, 0.0) >= min_confidence:
            setattr(params, name, value)
    if labels.confidence.get("hair_length", 0.0) >= min_confidence:
        params.hair_length = labels.hair_length
        params.hair_style = labels.hair_style or params.hair_style
    if labels.confidence.get("glasses", 0.0) >= min_confidence:
        if not labels.glasses:
            params.glasses = "none"
        elif params.glasses == "none":
            params.glasses = UNKNOWN_FRAME
    params.validate()
    return params


# -- geometry -----------------------------------------------------------------------
def frontalize(landmarks: np.ndarray) -> np.ndarray:
    """(N >= 468, 3) landmarks -> (N, 2) in the face's frame: origin between the eye
    centres, x toward the person's left, y down, in units of the face scale U."""
    _, _, _, rotation = head_pose(landmarks)
    centre = (landmarks[[33, 133, 263, 362]]).mean(0)
    frontal = ((landmarks - centre) @ rotation)[:, :2]
    return frontal / face_scale(frontal)


def face_scale(frontal: np.ndarray, length_read: bool = True) -> float:
    """U: geometric mean of IOD, face width, face length and eye-to-nose-base height
    (NaN for degenerate landmarks, which then measure as NaN, never as a crash).
    Where the face length is not read (`length_read` False), the length a face of the
    other three lengths has stands in for it (`LENGTH_RATIO`)."""
    iod = _dist(frontal, (33, 133), (263, 362))
    width = abs(frontal[454, 0] - frontal[234, 0])
    eye_y = frontal[[33, 133, 263, 362], 1].mean()
    midface = frontal[2, 1] - eye_y
    rest = iod * width * midface
    if not length_read:
        return float(rest ** (1 / 3) * LENGTH_RATIO**0.25) if rest > 0 else math.nan
    product = rest * _face_length(frontal)
    return float(product**0.25) if product > 0 else math.nan


def frontal_measurements(f: np.ndarray) -> dict[str, float]:
    """Raw measurements (see SHAPE_MAPPING) plus expression cues from frontal landmarks."""
    eye_y = f[[33, 133, 263, 362], 1].mean()
    gap = _lip_gap(f)
    chin_y = f[152, 1] - gap  # where the chin would be with the mouth closed
    top_y = f[10, 1]
    face_width = abs(f[454, 0] - f[234, 0])
    cheek_width = 0.5 * (abs(f[288, 0] - f[58, 0]) + abs(f[361, 0] - f[132, 0]))
    fissure = 0.5 * (np.linalg.norm(f[33] - f[133]) + np.linalg.norm(f[263] - f[362]))
    tilt_right = math.degrees(math.atan2(f[133, 1] - f[33, 1], abs(f[133, 0] - f[33, 0])))
    tilt_left = math.degrees(math.atan2(f[362, 1] - f[263, 1], abs(f[263, 0] - f[362, 0])))
    brow_y = f[list(RIGHT_BROW_UPPER + RIGHT_BROW_LOWER + LEFT_BROW_UPPER + LEFT_BROW_LOWER), 1]
    brow_rows = np.concatenate(
        [f[list(RIGHT_BROW_LOWER), 1] - f[list(RIGHT_BROW_UPPER), 1],
         f[list(LEFT_BROW_LOWER), 1] - f[list(LEFT_BROW_UPPER), 1]]
    )  # fmt: skip
    corner_y = 0.5 * (f[61, 1] + f[291, 1])
    nose_width = abs(f[358, 0] - f[129, 0])
    nose_length = f[2, 1] - f[168, 1]
    # Vermilion heights, averaged over five outer/inner lip pairs per lip.
    upper = f[list(UPPER_LIP_INNER), 1] - f[list(UPPER_LIP_OUTER), 1]
    lower = f[list(LOWER_LIP_OUTER), 1] - f[list(LOWER_LIP_INNER), 1]
    vermilion = upper.mean() + lower.mean()
    return {
        "face_width": float(face_width),
        "face_length": float(chin_y - top_y),
        "jaw_width": float(abs(f[397, 0] - f[172, 0])),
        "chin_length": float(f[152, 1] - f[17, 1]),
        "cheek_fullness": float(cheek_width / face_width),
        "eye_size": float(fissure),
        "eye_spacing": float(_dist(f, (33, 133), (263, 362))),
        "eye_tilt": float(0.5 * (tilt_right + tilt_left)),
        "eye_height": float((chin_y - eye_y) / (chin_y - top_y)),
        "brow_height": float(eye_y - brow_y.mean()),
        "brow_thickness": float(max(brow_rows.mean(), 1e-6)),
        "nose_size": float(math.sqrt(max(nose_width * nose_length, 1e-12))),
        "mouth_width": float(abs(f[291, 0] - f[61, 0])),
        "mouth_height": float((chin_y - f[13, 1]) / (chin_y - eye_y)),
        "lip_fullness": float(max(vermilion, 1e-6)),
        # expression cues
        "eye_aspect_right": _eye_aspect(f, (33, 133), ((160, 144), (158, 153))),
        "eye_aspect_left": _eye_aspect(f, (263, 362), ((387, 373), (385, 380))),
        "lip_gap": float(gap),
        "smile_lift": float(f[13, 1] - corner_y),
        "corner_drop": float(corner_y - f[2, 1] - JAW_CARRY * gap),
    }


def mouth_width_at_rest(width: float, smile: float) -> float:
    """The mouth's width (of U, as measured) without the widening of a `smile` (0..1)."""
    return width / (1.0 + SMILE_WIDENING * max(0.0, smile - SMILE_AT_REST))


def slider_from_measurement(name: str, value: float) -> float:
    """Map a raw measurement to its 0..1 slider (see the module docstring); NaN -> 0.5."""
    reference, spread, kind = SHAPE_MAPPING[name]
    if not math.isfinite(value):
        return 0.5
    if kind == "log":
        z = math.log(max(value, 1e-9) / reference) / spread
    else:
        z = (value - reference) / spread
    return float(np.clip(0.5 + z / 5.0, 0.0, 1.0))


def expression_from_measurements(raw: dict[str, float]) -> dict[str, float]:
    """Expression sliders 0..1 from raw frontal measurements."""

    def blink(aspect: float) -> float:
        # open at >= 70% of the canonical eye's aspect ratio, shut at <= 30%
        return _ramp(aspect, 0.70 * EYE_ASPECT_REF, 0.30 * EYE_ASPECT_REF)

    brow_ref, brow_sd, _ = SHAPE_MAPPING["brow_height"]
    brow_z = math.log(max(raw["brow_height"], 1e-9) / brow_ref) / brow_sd
    return {
        # two cues, averaged: corners above the upper lip (misses a grin that bares the
        # teeth, whose upper lip rises with the corners) and corners raised toward the
        # nose (reads a long upper lip as less of a smile)
        "smile": 0.5 * _ramp(raw["smile_lift"], SMILE_LIFT_REF, SMILE_LIFT_REF + SMILE_LIFT_RANGE)
        + 0.5 * _ramp(raw["corner_drop"], SMILE_DROP_REF, SMILE_DROP_REF - SMILE_LIFT_RANGE),
        "mouth_open": _ramp(raw["lip_gap"], 0.02, MOUTH_OPEN_RANGE),
        "blink_left": blink(raw["eye_aspect_left"]),
        "blink_right": blink(raw["eye_aspect_right"]),
        "brow_raise": _ramp(brow_z, 1.0, 3.0),
    }


def _in_photo(point: np.ndarray, shape: tuple[int, ...]) -> bool:
    """Whether pixel point (x, y, ...) lies in an image of `shape` (H, W, ...) (pixel i
    spans [i, i + 1))."""
    return bool(0.0 <= point[0] <= shape[1] and 0.0 <= point[1] <= shape[0])


def _face_length(f: np.ndarray) -> float:
    return float(f[152, 1] - _lip_gap(f) - f[10, 1])


def _lip_gap(f: np.ndarray) -> float:
    return float(max(0.0, f[14, 1] - f[13, 1]))


def _eye_aspect(
    f: np.ndarray, corners: tuple[int, int], lids: tuple[tuple[int, int], ...]
) -> float:
    """Lid opening (vertical, in the face frame) over eye width."""
    width = np.linalg.norm(f[corners[0]] - f[corners[1]])
    height = np.mean([f[b, 1] - f[a, 1] for a, b in lids])
    return float(max(height, 0.0) / max(width, 1e-9))


def _dist(f: np.ndarray, right: tuple[int, ...], left: tuple[int, ...]) -> float:
    return float(np.linalg.norm(f[list(left)].mean(0) - f[list(right)].mean(0)))


def _ramp(value: float, start: float, end: float) -> float:
    """0 at `start`, 1 at `end` (either direction), linear and clipped in between; NaN -> 0."""
    if not math.isfinite(value):
        return 0.0
    return float(np.clip((value - start) / (end - start), 0.0, 1.0))


def _pose_factor(yaw: float, pitch: float) -> float:
    return float(max(0.0, 1.0 - (yaw / 60.0) ** 2) * max(0.0, 1.0 - (pitch / 50.0) ** 2))
