"""How the teacher reads faces whose colours something hides or changes (#4).

On each sample photo FaceMesh reads (`evaluate_real.real_faces`: the astronaut, Grace
Hopper, the four White House photos), painted with `avatar3d.painted`:

- *unhidden faces*: the photo, `chibi eval`'s perturbations, its skin tinted to each Monk
  swatch, and three dim exposures (45 %, 30 %, a 2.2 gamma): how many the teacher reads
  as masked, behind lenses, under a coloured light or in black and white (none, ideally);
- *face masks* of each fabric over the photo and its tints to swatches 2, 4, 6, 8 and 10:
  how many hide the mouth, and the skin's median dE2000 from the unmasked face's;
- *sunglasses*, dark and mirrored, over the photo and its tints to swatches 1, 4, 7 and
  10: how many hide the eyes;
- *bangs* of each hair colour down to the brows' top and over the brows, on the photo and
  its tints to swatches 2, 4, 6, 8 and 10: the skin's median and largest dE2000 from the
  uncovered face's;
- *black and white*: the skin and lips against the colour photo's, and what a grey of
  the same lightness would be;
- *coloured lights*: where the teacher takes the light out, and each colour's median
  dE2000 from the daylight reading there;
- *hair length*: the teacher's reading (`teacher_hair`) over the unhidden faces and over
  every cover above.

    .venv/bin/python scripts/covered_faces.py [--photos astronaut ...] [--group] [--sheet OUT.png]

About 2.5 minutes for the six photos. `--group` adds the faces of the group photo
(`sample_photos.GROUP_PHOTOS`), each cut out as a photo of its own, left to right
`group_1` ... (about 2 minutes more). `--sheet` also draws the first photo under each cover,
with the avatar the photo path makes of it and the CNN's alone (`eval_sheet`). `docs/photos.md`'s
"Face masks", "Sunglasses", "Mirrored lenses", "Bangs", "Black-and-white photos" and "Hair
length" quote it.
"""

from __future__ import annotations

import argparse
import io
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from skimage.color import deltaE_ciede2000

from avatar3d.errors import ChibiError
from avatar3d.evaluate_real import PERTURBATIONS, perturb, real_faces
from avatar3d.face import FaceAnalyzer, thread_analyzer
from avatar3d.imageio import decode_image
from avatar3d.painted import (
    FABRICS,
    HAIRS,
    LIGHTS,
    MIRRORS,
    black_and_white,
    coloured_light,
    paint_bangs,
    paint_dark_lenses,
    paint_face_mask,
    paint_mirrored_lenses,
)
from avatar3d.params import COLOR_FIELDS, hex_delta_e, hex_to_lab
from avatar3d.sample_photos import GROUP_PHOTOS, installed
from avatar3d.skin_tones import MONK_SKIN_TONES
from avatar3d.teacher import HIDDEN_WITH_THE_EYES, HIDDEN_WITH_THE_MOUTH, TeacherLabels, measure
from avatar3d.teacher_colors import MONOCHROME_SATURATION
from avatar3d.teacher_hair import hair_length_from_reach
from avatar3d.tinted import tint_skin

GROUP_CONTEXT = 2.6  # a group photo's face is cut out this many times its box wide
LENSES: dict[str, Callable] = {"dark": paint_dark_lenses} | {
    f"{kind} mirror": (lambda rgb, face, kind=kind: paint_mirrored_lenses(rgb, face, kind))
    for kind in MIRRORS
}
BANGS_REACH = (0.0, 0.15)  # eye distances below the brows' top: to them, over them


def read(rgb: np.ndarray) -> TeacherLabels | None:
    """The teacher's labels of the largest face, or None where FaceMesh finds none."""
    rgb = np.ascontiguousarray(rgb)
    try:
        return measure(rgb, thread_analyzer().analyze(rgb)[0])
    except ChibiError:
        return None


def hair_length(labels: TeacherLabels | None) -> float:
    """The short style's hair length the teacher's reach maps to (1 where the hair reaches
    the chin, which gives the long style: `teacher_hair.hair_from_reach`), NaN where it
    read none."""
    if labels is None or labels.confidence["hair_length"] == 0:
        return float("nan")
    return hair_length_from_reach(labels.measurements["hair_reach"])


def flags(labels: TeacherLabels) -> dict[str, bool]:
    return {
        "masked": set(HIDDEN_WITH_THE_MOUTH) <= set(labels.hidden),
        "behind lenses": set(HIDDEN_WITH_THE_EYES) <= set(labels.hidden),
        "lit": labels.white_balanced,
        "black and white": labels.measurements["saturation"] < MONOCHROME_SATURATION,
    }


def draw_sheet(path: str, rgb: np.ndarray, face) -> None:
    """The photo under each kind of cover, with its avatars (`eval_sheet.photo_rows`)."""
    from PIL import Image

    from avatar3d.eval_sheet import photo_rows, sheet_image
    from avatar3d.pipeline import PhotoPipeline

    covers = {
        "daylight": rgb,
        "black and white": black_and_white(rgb),
        "a blue light": coloured_light(rgb, LIGHTS["blue"]),
        "a red mask": paint_face_mask(rgb, face, FABRICS["red"]),
        "a black mask": paint_face_mask(rgb, face, FABRICS["black"]),
        "sky mirrors": paint_mirrored_lenses(rgb, face, "sky"),
    }
    photos = []
    for name, image in covers.items():
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "PNG")
        photos.append((name, buffer.getvalue()))
    rows = photo_rows(PhotoPipeline(device="cpu"), photos)
    titles = ["the photo: the CNN's input", "fused (what a user gets)", "the CNN alone"]
    Image.fromarray(sheet_image([(titles, rows)])).save(path)


def group_faces(names: list[str] | None) -> Iterator[tuple[str, np.ndarray, Any]]:
    """(name, (H, W, 3) uint8 RGB, its face) for each face of the group photo FaceMesh reads,
    left to right ("group_1" ...), cut out square, `GROUP_CONTEXT` times its box, as a
    photo of its own (the cut's largest face must be the one at its middle)."""
    photo = decode_image(dict(installed(GROUP_PHOTOS))["friends"])
    with FaceAnalyzer(max_faces=8) as analyzer:
        faces = sorted(analyzer.analyze(photo, all_faces=True), key=lambda face: face.bbox[0])
    for i, face in enumerate(faces, 1):
        name = f"group_{i}"
        if names and name not in names:
            continue
        x0, y0, x1, y1 = face.bbox
        half = GROUP_CONTEXT * max(x1 - x0, y1 - y0) / 2
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        left, top = int(max(0, cx - half)), int(max(0, cy - half))
        cut = np.ascontiguousarray(photo[top : int(cy + half), left : int(cx + half)])
        try:
            own = thread_analyzer().analyze(cut)[0]
        except ChibiError as exc:
            print(f"{name}: skipped ({exc.code})")
            continue
        if np.hypot(*(np.array(own.bbox[:2]) + (left, top) - face.bbox[:2])) > 0.2 * half:
            print(f"{name}: skipped (a neighbour's face is the cut's largest)")
            continue
        yield name, cut, own


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", nargs="*", help="sample photo names (default: all)")
    parser.add_argument("--group", action="store_true", help="add the group photo's faces")
    parser.add_argument("--sheet", help="also draw the first photo's covers and avatars here")
    args = parser.parse_args()

    unhidden: dict[str, list[int]] = {}
    masks: dict[str, list[tuple[bool, float]]] = {name: [] for name in FABRICS}
    lenses: dict[str, list[bool]] = {name: [] for name in LENSES}
    bangs: dict[tuple[str, float], list[float]] = {}
    lights: dict[str, list[dict[str, float]]] = {name: [] for name in LIGHTS}
    hair: dict[str, dict[str, list[float]]] = {}
    grey_rows = []
    sheet = args.sheet
    faces = real_faces(args.photos)
    if args.group:
        faces = itertools.chain(faces, group_faces(args.photos))
    for name, rgb, face in faces:
        if sheet:
            draw_sheet(sheet, rgb, face)
            sheet = None
        tints = [tint_skin(rgb, face.landmarks, tone) for tone in MONK_SKIN_TONES]
        daylight = measure(rgb, face)
        plain = [rgb, *(decode_image(perturb(rgb, kind)) for kind in PERTURBATIONS), *tints]
        dim = [np.clip(rgb * gain, 0, 255).astype(np.uint8) for gain in (0.45, 0.3)]
        dim.append((255 * (rgb / 255.0) ** 2.2).astype(np.uint8))
        lengths = hair[name] = {"unhidden": [], "covered": []}
        for image in plain + dim:
            labels = read(image)
            lengths["unhidden"].append(hair_length(labels))
            counts = unhidden.setdefault(name, [0, 0, 0, 0, 0])
            counts[0] += 1
            if labels is not None:
                for k, flagged in enumerate(flags(labels).values(), start=1):
                    counts[k] += flagged
        bases = [rgb, *tints[1::2]]
        unmasked = [daylight, *(read(base) for base in bases[1:])]
        for fabric, colour in FABRICS.items():
            for seed, (base, reference) in enumerate(zip(bases, unmasked, strict=True)):
                labels = read(paint_face_mask(base, face, colour, seed))
                lengths["covered"].append(hair_length(labels))
                if labels is not None and reference is not None:
                    skin = hex_delta_e(labels.colors["skin_color"], reference.colors["skin_color"])
                    masks[fabric].append((flags(labels)["masked"], skin))
        for (shade, colour), reach in itertools.product(HAIRS.items(), BANGS_REACH):
            for seed, (base, reference) in enumerate(zip(bases, unmasked, strict=True)):
                labels = read(paint_bangs(base, face, colour, reach, seed))
                lengths["covered"].append(hair_length(labels))
                if labels is not None and reference is not None:
                    skin = hex_delta_e(labels.colors["skin_color"], reference.colors["skin_color"])
                    bangs.setdefault((shade, reach), []).append(skin)
        for lens, paint in LENSES.items():
            for base in [rgb, *tints[::3]]:
                labels = read(paint(base, face))
                lengths["covered"].append(hair_length(labels))
                if labels is not None:
                    lenses[lens].append(flags(labels)["behind lenses"])
        grey = read(black_and_white(rgb))
        lengths["covered"].append(hair_length(grey))
        if grey is not None:
            row = [name]
            for field in ("skin_color", "lip_color"):
                in_colour, in_grey = hex_to_lab(daylight.colors[field]), grey.colors[field]
                as_grey = np.array([hex_to_lab(in_grey)[0], 0.0, 0.0])
                row += [
                    hex_delta_e(in_grey, daylight.colors[field]),
                    float(deltaE_ciede2000(in_colour, as_grey)),
                ]
            grey_rows.append(row)
        for light, gains in LIGHTS.items():
            labels = read(coloured_light(rgb, gains))
            lengths["covered"].append(hair_length(labels))
            if labels is not None:
                colours = labels.colors
                errors = {f: hex_delta_e(colours[f], daylight.colors[f]) for f in COLOR_FIELDS}
                lights[light].append(errors | {"lit": labels.white_balanced})
        print(f"{name}: read", flush=True)

    print("\n== unhidden faces: how many the teacher reads as ... ==")
    print(f"{'photo':16} faces  masked  behind lenses  lit  black and white")
    for name, (n, *counts) in unhidden.items():
        print(
            f"{name:16} {n:5}  "
            + "  ".join(f"{c:>{w}}" for c, w in zip(counts, (6, 13, 3, 15), strict=True))
        )
    print("\n== face masks (the photo and its tints to swatches 2, 4, 6, 8, 10) ==")
    print(f"{'fabric':12} mouth hidden   the skin's median dE2000 from the unmasked face's")
    for fabric, rows in masks.items():
        hidden = sum(h for h, _ in rows)
        skin = np.median([s for _, s in rows]) if rows else float("nan")
        print(f"{fabric:12} {hidden:3} of {len(rows):3}     {skin:6.1f}")
    print("\n== sunglasses (the photo and its tints to swatches 1, 4, 7, 10) ==")
    for lens, rows in lenses.items():
        print(f"{lens:14} eyes hidden on {sum(rows):3} of {len(rows):3}")
    print("\n== bangs (the photo and its tints to swatches 2, 4, 6, 8, 10) ==")
    print("hair        reach (eye distances below the brows' top)   skin dE2000: median, largest")
    for (shade, reach), rows in bangs.items():
        print(f"{shade:12} {reach:+.2f} {'':36} {np.median(rows):6.1f} {max(rows):6.1f}")
    print("\n== black and white: dE2000 from the colour photo's reading (a grey of its L*) ==")
    for name, skin, skin_grey, lips, lips_grey in grey_rows:
        print(
            f"{name:16} skin {skin:5.1f} ({skin_grey:5.1f})   lips {lips:5.1f} ({lips_grey:5.1f})"
        )
    print("\n== coloured lights: where the light is taken out, median dE2000 from daylight ==")
    print(f"{'light':12} taken out   " + "  ".join(f"{f[:-6]:>6}" for f in COLOR_FIELDS))
    for light, rows in lights.items():
        lit = [row for row in rows if row["lit"]]
        medians = [
            np.median([row[f] for row in lit]) if lit else float("nan") for f in COLOR_FIELDS
        ]
        print(
            f"{light:12} {len(lit):2} of {len(rows):2}   " + "  ".join(f"{m:6.1f}" for m in medians)
        )
    print(
        "\n== hair length: the teacher's reading on the short style, lowest-highest (faces"
        " read / faces; 1 = down to the chin: the long style) =="
    )
    for name, lengths in hair.items():
        cells = []
        for kind, values in lengths.items():
            measured = np.array([v for v in values if np.isfinite(v)])
            span = f"{measured.min():.2f}-{measured.max():.2f}" if len(measured) else "-"
            cells.append(f"{kind} {span} ({len(measured)}/{len(values)})")
        print(f"{name:16} " + "   ".join(cells))


if __name__ == "__main__":
    main()
