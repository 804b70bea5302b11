"""How far the teacher's sliders move when the photo's edge cuts through the face, when
the head is rolled, when the photo is blurred or noisy, or when the face is small.

Each face of the sample photos (`chibi eval`'s) and of the group photo is read in a
window reaching one face beyond its landmark box on every side, then in the same
window with one side moved into the box by a share of the face (`--levels`). For each
side and share it prints the mean change of the teacher's shape sliders from the uncut
window's reading (those `teacher.measure` leaves unread count at the default, 0.5, as
the photo path fills them) and, beside it, how far the default lies from the uncut
reading; and smile's mean change over every cut. `--by-field` adds each slider's own
mean change for each side, over the shares.

`--roll` turns each face instead: a square window 3.2 face widths wide around it, the
photo mirrored past its edges, turned by each of `--angles` degrees about the face's
centre, against the same window unturned.

`--blur` blurs each face instead: the uncut window, Gaussian-blurred with a standard
deviation of each of `--shares` of the face's width, against the same window sharp.
For each share it prints the mean change of the shape sliders and smile's, how many
sliders stay within 0.05 on every face (`--by-field`: each slider's mean and largest
change), and each colour's mean change in dE2000 over the faces whose colour the
teacher was sure of (confidence 0.3, what the photo path takes) unchanged, with how
many of them it is still sure of.

`--noise` adds sensor-like noise instead: the uncut window plus Gaussian noise of each
of `--sigmas` levels (0..255) a channel, the same draw for every face. The same figures
as `--blur`.

`--shrink` makes each face smaller instead: the uncut window scaled down (area
averaging) until the eyes' centres lie each of `--eye-distances` pixels apart, against
the window as the photo has it; faces already that small are left out at that size.
The same figures as `--blur`.

    .venv/bin/python scripts/cut_faces.py [--levels 0.05 0.1 0.2] [--by-field]
    .venv/bin/python scripts/cut_faces.py --roll [--angles 15 -15 30 -30 45 -45]
    .venv/bin/python scripts/cut_faces.py --blur [--shares 0.005 0.01 0.02 0.03] [--by-field]
    .venv/bin/python scripts/cut_faces.py --noise [--sigmas 4 8 16] [--by-field]
    .venv/bin/python scripts/cut_faces.py --shrink [--eye-distances 30 24 20 18] [--by-field]

About 3 minutes on two cores.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator

import cv2
import numpy as np
from covered_faces import group_faces

from avatar3d.errors import ChibiError
from avatar3d.evaluate_real import real_faces
from avatar3d.face import FaceAnalyzer
from avatar3d.face_observation import FaceObservation
from avatar3d.params import hex_delta_e
from avatar3d.teacher import SHAPE_MAPPING, measure

SIDES = ("left", "right", "top", "bottom")
SLIDERS = tuple(name for name in SHAPE_MAPPING if name not in ("head_size", "ear_size"))


def windows(box: tuple[float, ...], shape: tuple[int, ...], side: str, level: float):
    """(x0, y0, x1, y1) of the uncut window around `box`, and of it cut `level` into the
    box at `side` (a share of the box's width or height)."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    whole = [max(0, int(x0 - w)), max(0, int(y0 - h)),
             min(shape[1], int(x1 + w)), min(shape[0], int(y1 + h))]  # fmt: skip
    cut = list(whole)
    index = SIDES.index(side)
    edge = (x0 + level * w, x1 - level * w, y0 + level * h, y1 - level * h)[index]
    cut[(0, 2, 1, 3)[index]] = int(round(edge))
    return whole, cut


def reading(analyzer: FaceAnalyzer, rgb: np.ndarray, window: list[int]) -> dict | None:
    x0, y0, x1, y1 = window
    image = np.ascontiguousarray(rgb[y0:y1, x0:x1])
    try:
        face = analyzer.analyze(image)[0]
    except ChibiError:
        return None
    labels = measure(image, face)
    colours = {  # '#rrggbb', and whether the photo path takes it (confidence at least 0.3)
        name: (code, labels.confidence[name] >= 0.3) for name, code in labels.colors.items()
    }
    return {
        **{name: labels.shape[name] for name in SLIDERS},
        "smile": labels.expression["smile"],
        "colours": colours,
    }


def turned(rgb: np.ndarray, box: tuple[float, ...], degrees: float) -> np.ndarray:
    """The square window 3.2 box widths wide centred on `box`, turned `degrees`
    counter-clockwise about its centre (the photo mirrored past its edges)."""
    x0, y0, x1, y1 = box
    half = int(1.6 * (x1 - x0))
    turn = cv2.getRotationMatrix2D(((x0 + x1) / 2, (y0 + y1) / 2), degrees, 1.0)
    turn[:, 2] += (half - (x0 + x1) / 2, half - (y0 + y1) / 2)
    return cv2.warpAffine(rgb, turn, (2 * half, 2 * half), borderMode=cv2.BORDER_REFLECT_101)


def changes(
    analyzer: FaceAnalyzer,
    keys: list[float],
    image_of: Callable[[np.ndarray, FaceObservation, float | None], np.ndarray | None],
) -> tuple[int, dict[float, np.ndarray], dict[float, list[float]], dict]:
    """For each face, `image_of(rgb, face, key)` read for each of `keys` against
    `image_of(rgb, face, None)`: the number of faces, and per key the (faces, sliders)
    changes of the shape sliders, smile's changes, and per colour the teacher sure of
    before the (dE2000 change, still sure) pairs (a key whose image is None is left out
    for that face)."""
    change: dict[float, list[np.ndarray]] = {}
    smile: dict[float, list[float]] = {}
    colour: dict[float, dict[str, list[tuple[float, bool]]]] = {}
    count = 0
    for name, rgb, face in faces():
        count += 1
        base = image_of(rgb, face, None)
        window = [0, 0, base.shape[1], base.shape[0]]
        before = reading(analyzer, base, window)
        for key in keys:
            image = image_of(rgb, face, key)
            if image is None:
                continue
            after = reading(analyzer, image, window)
            if before is None or after is None:
                print(f"{name} {key:+g}: no face read")
                continue
            change.setdefault(key, []).append(
                np.array([abs(after[s] - before[s]) for s in SLIDERS])
            )
            smile.setdefault(key, []).append(abs(after["smile"] - before["smile"]))
            for field, (code, sure) in before["colours"].items():
                if sure and field in after["colours"]:
                    moved = hex_delta_e(code, after["colours"][field][0])
                    pair = (moved, after["colours"][field][1])
                    colour.setdefault(key, {}).setdefault(field, []).append(pair)
    return count, {key: np.array(rows) for key, rows in change.items()}, smile, colour


def roll_report(analyzer: FaceAnalyzer, angles: list[float]) -> None:
    count, change, smile, _ = changes(
        analyzer, angles, lambda rgb, face, angle: turned(rgb, face.bbox, angle or 0.0)
    )
    print(f"{count} faces turned; mean change of {len(SLIDERS)} shape sliders, and smile's")
    for angle in angles:
        if angle in change:
            slider, smiles = change[angle].mean(), np.mean(smile[angle])
            print(f"  {angle:+4g} degrees: {slider:.3f}, smile {smiles:.3f}")


def uncut(rgb: np.ndarray, face: FaceObservation) -> np.ndarray:
    """The window reaching one face beyond `face`'s box on every side."""
    x0, y0, x1, y1 = windows(face.bbox, rgb.shape, "left", 0.0)[0]
    return np.ascontiguousarray(rgb[y0:y1, x0:x1])


def blurred(rgb: np.ndarray, face: FaceObservation, share: float | None) -> np.ndarray:
    """The uncut window around `face`, blurred with a standard deviation of `share` of the
    face's width (None: sharp)."""
    window = uncut(rgb, face)
    if share is None:
        return window
    return cv2.GaussianBlur(window, (0, 0), share * (face.bbox[2] - face.bbox[0]))


def noisy(rgb: np.ndarray, face: FaceObservation, sigma: float | None) -> np.ndarray:
    """The uncut window around `face` plus Gaussian noise of standard deviation `sigma`
    levels a channel (None: none), drawn with a fixed seed."""
    window = uncut(rgb, face)
    if sigma is None:
        return window
    noise = np.random.default_rng(0).normal(0.0, sigma, window.shape)
    return np.clip(window + noise, 0, 255).astype(np.uint8)


def shrunk(rgb: np.ndarray, face: FaceObservation, eye_distance: float | None) -> np.ndarray | None:
    """The uncut window around `face`, scaled down so that its eyes' centres lie
    `eye_distance` pixels apart (None: as the photo has it; also None where they
    already lie no further apart)."""
    window = uncut(rgb, face)
    if eye_distance is None:
        return window
    scale = eye_distance / face.eye_distance
    if scale >= 1.0:
        return None
    size = (round(window.shape[1] * scale), round(window.shape[0] * scale))
    return cv2.resize(window, size, interpolation=cv2.INTER_AREA)


def spread_report(
    analyzer: FaceAnalyzer,
    keys: list[float],
    image_of: Callable[[np.ndarray, FaceObservation, float | None], np.ndarray | None],
    done: str,
    label: Callable[[float], str],
    by_field: bool,
) -> None:
    count, change, smile, colour = changes(analyzer, keys, image_of)
    print(f"{count} faces {done}; mean change of {len(SLIDERS)} shape sliders, and smile's")
    for key in keys:
        if key not in change:
            continue
        rows = change[key]
        stable = int((rows.max(axis=0) <= 0.05).sum())
        print(
            f"  {label(key)} ({len(rows)} faces): {rows.mean():.3f}, smile "
            f"{np.mean(smile[key]):.3f}; {stable} of {len(SLIDERS)} within 0.05 on every face"
        )
        cells = [
            f"{name.removesuffix('_color')} {np.mean([m for m, _ in pairs]):.1f}"
            f" ({sum(sure for _, sure in pairs)}/{len(pairs)})"
            for name, pairs in colour.get(key, {}).items()
        ]
        print("    colours' mean dE2000 change (still sure of): " + ", ".join(cells))
        if by_field:
            means, largest = rows.mean(axis=0), rows.max(axis=0)
            pairs = zip(SLIDERS, means, largest, strict=True)
            cells = [f"{s} {m:.3f} ({w:.3f})" for s, m, w in pairs]
            print("    mean (largest) change: " + ", ".join(cells))


def faces() -> Iterator[tuple[str, np.ndarray, FaceObservation]]:
    yield from real_faces(log=lambda line: None)
    yield from group_faces(None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    parser.add_argument("--by-field", action="store_true", help="each slider's change too")
    parser.add_argument("--roll", action="store_true", help="turn the faces instead")
    parser.add_argument("--angles", type=float, nargs="+", default=[15, -15, 30, -30, 45, -45])
    parser.add_argument("--blur", action="store_true", help="blur the faces instead")
    parser.add_argument("--shares", type=float, nargs="+", default=[0.005, 0.01, 0.02, 0.03])
    parser.add_argument("--noise", action="store_true", help="add noise to the faces instead")
    parser.add_argument("--sigmas", type=float, nargs="+", default=[4, 8, 16])
    parser.add_argument("--shrink", action="store_true", help="make the faces smaller instead")
    parser.add_argument("--eye-distances", type=float, nargs="+", default=[30, 24, 20, 18])
    args = parser.parse_args()
    analyzer = FaceAnalyzer()
    if args.roll:
        roll_report(analyzer, args.angles)
        return
    if args.blur:
        label = "sigma {:.3f} of the face's width".format
        spread_report(analyzer, args.shares, blurred, "blurred", label, args.by_field)
        return
    if args.noise:
        label = "noise of {:g} levels".format
        spread_report(analyzer, args.sigmas, noisy, "made noisy", label, args.by_field)
        return
    if args.shrink:
        label = "eyes {:g} px apart".format
        spread_report(analyzer, args.eye_distances, shrunk, "made smaller", label, args.by_field)
        return
    change: dict[tuple[str, float], list[float]] = {}
    default: dict[tuple[str, float], list[float]] = {}
    by_field: dict[tuple[str, str], list[tuple[float, float]]] = {}
    smile: list[float] = []
    count = 0
    for name, rgb, face in faces():
        count += 1
        for side in SIDES:
            for level in args.levels:
                whole, cut = windows(face.bbox, rgb.shape, side, level)
                before, after = reading(analyzer, rgb, whole), reading(analyzer, rgb, cut)
                if before is None or after is None:
                    print(f"{name} {side} {level}: no face read")
                    continue
                change.setdefault((side, level), []).append(
                    np.mean([abs(after[s] - before[s]) for s in SLIDERS])
                )
                default.setdefault((side, level), []).append(
                    np.mean([abs(0.5 - before[s]) for s in SLIDERS])
                )
                smile.append(abs(after["smile"] - before["smile"]))
                for s in SLIDERS:
                    by_field.setdefault((side, s), []).append(
                        (abs(after[s] - before[s]), abs(0.5 - before[s]))
                    )
    print(f"{count} faces; mean change of {len(SLIDERS)} shape sliders (the default's distance)")
    for side in SIDES:
        cells = [
            f"{level:.2f}: {np.mean(change[side, level]):.3f} ({np.mean(default[side, level]):.3f})"
            for level in args.levels
            if (side, level) in change
        ]
        print(f"  cut at the {side:6}  " + "   ".join(cells))
    print(f"smile's mean change over every cut: {np.mean(smile):.3f}")
    if args.by_field:
        for side in SIDES:
            cells = [
                f"{s} {np.mean(np.array(by_field[side, s]), axis=0)[0]:.3f}"
                f" ({np.mean(np.array(by_field[side, s]), axis=0)[1]:.3f})"
                for s in SLIDERS
                if (side, s) in by_field
            ]
            print(f"  cut at the {side}: " + ", ".join(cells))


if __name__ == "__main__":
    main()
