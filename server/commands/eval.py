"""`chibi eval`: print the evaluation report of the photo -> params half."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

HELP = "Evaluate the regressor and the fusion: synthetic error, real photos, stability, fairness."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="default", help="weights name (default: shipped)")
    parser.add_argument("--weights-dir", metavar="DIR", help="weights folder")
    parser.add_argument("--cache", metavar="DIR", help="synthetic data cache (.cache/synth)")
    parser.add_argument("--workers", type=int, default=2, help="render processes")
    parser.add_argument("--write-fusion", action="store_true",
                        help="store the measured fusion table next to the weights")  # fmt: skip
    parser.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    parser.add_argument("--sheet", metavar="PNG",
                        help="also draw held-out faces (true avatar beside the CNN's, best to "
                        "worst) and the sample photos' avatars into this picture")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from avatar3d.evaluate import run_evaluation
    from server.commands.avatar import check_output

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    for path in (args.json, args.sheet):  # before minutes of work, not after
        if path:
            check_output(path)

    report = run_evaluation(args.model, args.weights_dir, args.cache, args.workers,
                            write_fusion=args.write_fusion, log=log)  # fmt: skip
    print(format_report(report))
    if args.json:
        from server.commands.avatar import write_atomic

        write_atomic(args.json, json.dumps(report_json(report), indent=1).encode())
    if args.sheet:
        write_sheet(args, log)
    return 0


def write_sheet(args: argparse.Namespace, log: Callable[[str], None]) -> None:
    """`--sheet`: `avatar3d.eval_sheet`'s picture, written atomically as PNG."""
    from avatar3d.eval_sheet import evaluation_sheet
    from exporters.gltf_writer import encode_png
    from server.commands.avatar import write_atomic

    image = evaluation_sheet(args.model, args.weights_dir, args.cache, args.workers, log=log)
    write_atomic(args.sheet, encode_png(image))
    log(f"wrote {args.sheet} ({image.shape[1]}x{image.shape[0]})")


def _fmt(value: float | None, width: int = 8, digits: int = 3, sign: str = "") -> str:
    if value is None or value != value or value in (float("inf"), float("-inf")):
        return "-".rjust(width)
    return f"{value:{sign}{width}.{digits}f}"


def format_report(report: dict[str, Any]) -> str:
    """The human-readable report of `avatar3d.evaluate.run_evaluation`, goals and verdicts
    included."""
    import numpy as np

    from avatar3d.evaluate import (
        CHANCE_SHUFFLES,
        CLASS_GOAL,
        COLOR_GOAL,
        FAIRNESS_GOAL,
        INFORMATIVE,
        RATIO_RESAMPLES,
        SLIDER_GOAL,
        STABILITY_GOAL,
    )
    from avatar3d.evaluate import field_goal as _goal
    from avatar3d.evaluate_real import EXPOSURE_PERTURBATIONS, PERTURBATIONS
    from avatar3d.fusion import CLASS_FIELDS, FUSION_FIELDS, FusionTable
    from avatar3d.param_arrays import COLOR_NAMES, SLIDER_FIELDS

    lines: list[str] = [f"ChibiNet evaluation - model {report['model']}", ""]
    syn, real, fusion = report["synthetic"], report["real"], report["fusion"]
    table = FusionTable.from_dict(fusion)
    # 1. synthetic
    lines.append(
        f"1. Synthetic held-out renders: {syn['count']} faces, exact labels "
        f"(teacher found {100 * syn.get('teacher_found', 0):.0f}% of them). "
        f"Sliders: mean abs error; colours: dE2000."
    )
    lines.append(
        f"   {'field':28}{'CNN':>8}{'teacher':>9}{'fused':>8}{'default':>9}{'goal':>7}  CNN ok"
    )
    met = {"slider": 0, "color": 0}
    for name in FUSION_FIELDS:
        cnn = syn["cnn"][name]
        ok = cnn <= _goal(name)
        met["color" if name in COLOR_NAMES else "slider"] += int(ok)
        lines.append(
            f"   {name:28}{_fmt(cnn)}{_fmt(syn.get('teacher', {}).get(name), 9)}"
            f"{_fmt(syn.get('fused', {}).get(name))}{_fmt(syn['default'][name], 9)}"
            f"{_goal(name):7.2f}  "
            f"{'yes' if ok else 'NO'}"
        )
    lines.append(
        f"   hair_style accuracy {syn['hair_style_accuracy']:.3f}, "
        f"glasses accuracy {syn['glasses_accuracy']:.3f}, the likelier frame on the faces "
        f"with one {_fmt(syn.get('glasses_frame_accuracy'), 5)}"
    )
    if "teacher_glasses_accuracy" in syn:
        lines.append(
            "   glasses, the teacher's frame-or-none reading: accuracy "
            f"{_fmt(syn['teacher_glasses_accuracy'], 5)} on the "
            f"{100 * syn['teacher_glasses_sure']:.0f}% of faces it is sure of; the fused glasses "
            f"{_fmt(syn['fused_glasses_accuracy'], 5)}"
        )
    bands = syn.get("iris_by_eye_opening", {})
    lines.append(
        "   iris_color by how far the more open eye is shut (the blink sliders): "
        + ", ".join(f"{b} {v['error']:.2f} ({v['count']:.0f} faces)" for b, v in bands.items())
    )
    lips = syn.get("lips_from_skin")
    if lips:
        lines.append(
            f"   lip_color from the skin alone (plus the renders' mean skin-to-lip offset, no lip "
            f"pixel read): from the CNN's skin {lips['from_cnn_skin']:.2f}, from the true skin "
            f"{lips['from_true_skin']:.2f}; the CNN's lips {lips['cnn']:.2f}"
        )
    lines.append(
        f"   => {met['slider']}/{len(SLIDER_FIELDS)} sliders meet <= {SLIDER_GOAL}, "
        f"{met['color']}/{len(COLOR_NAMES)} colours meet dE2000 <= {COLOR_GOAL:g}"
    )
    # 2. real photos and the fusion table
    lines += [
        "",
        f"2. Real photos ({', '.join(real['photos']) or 'none found'}): the teacher is the "
        "yardstick; 'teacher noise' is its own change under the perturbations of section 3.",
        "   Per field, the source with the smaller error wins (the fusion table):",
        f"   {'field':28}{'CNN-vs-teacher':>15}{'CNN (all)':>10}{'teacher':>9}"
        f"{'winner':>9}{'margin':>8}{'synthetic CNN':>15}{'default':>9}{'fills in':>10}",
    ]
    for name in FUSION_FIELDS:
        ev = fusion["evidence"].get(name, {})
        c, t = ev.get("cnn"), ev.get("teacher")
        margin = (c - t) if c is not None and t is not None else None
        lines.append(
            f"   {name:28}{_fmt(real['agreement'][name], 15)}{_fmt(c, 10)}{_fmt(t, 9)}"
            f"{fusion['choices'].get(name, '-'):>9}{_fmt(margin)}"
            f"{_fmt(syn['cnn'][name], 15)}{_fmt(ev.get('default'), 9)}{table.stand_in(name):>10}"
        )
    counts = {
        src: sum(fusion["choices"].get(n) == src for n in FUSION_FIELDS)
        for src in ("teacher", "cnn", "default")
    }
    lines.append(
        f"   => teacher {counts['teacher']}, CNN {counts['cnn']}, default {counts['default']} of "
        f"{len(FUSION_FIELDS)} fields. The CNN may win a field only where its synthetic"
    )
    lines.append(
        "      error meets the goal. Where the teacher is missing or unsure, the CNN fills in if"
        f" its synthetic error meets the goal or is at most {INFORMATIVE}x the default's, and"
    )
    lines.append(
        "      on these photos it is no further from the teacher than the neutral default"
        " ('default' column); otherwise the default does."
    )
    class_acc = real.get("class_accuracy", {})
    for name in CLASS_FIELDS:
        ev = fusion["evidence"].get(name, {})
        line = (
            f"   {name}: CNN accuracy synthetic {_fmt(ev.get('cnn_synthetic_accuracy'), 5)}, "
            f"annotated sample photos {_fmt(class_acc.get(name), 5)}"
        )
        if "teacher_synthetic_accuracy" in ev:
            line += (
                f"; teacher (frame or none) synthetic "
                f"{_fmt(ev['teacher_synthetic_accuracy'], 5)}, annotated sample photos "
                f"{_fmt(class_acc.get(f'{name}_teacher'), 5)}"
            )
        if name == "glasses_frame":  # the shape of a frame the teacher sees
            line += " (its likelier frame, on faces with one)"
        lines += [
            line,
            f"      (goal {CLASS_GOAL} and right on every annotated photo, one at least) -> "
            f"{fusion['choices'].get(name, 'default')}",
        ]
    # 3. stability
    stab = report["stability"]
    lines += [
        "",
        "3. Stability on the real photos: largest change of the final params under "
        f"{', '.join(PERTURBATIONS)}",
        f"   (sliders: slider units; colours: largest sRGB channel change 0..1; goal <= "
        f"{STABILITY_GOAL})",
        f"   {'field':28}{'fused':>8}{'CNN only':>10}  meets  {'worst under':12}"
        f"{'w/o brightness':>16}",
    ]
    # reports written before the column (`chibi eval --json` of older commits) lack it
    steady = stab.get("fused_without_exposure", {})
    bad = 0
    for name in FUSION_FIELDS:
        value = stab["fused"][name]
        bad += int(value > STABILITY_GOAL)
        lines.append(
            f"   {name:28}{_fmt(value)}{_fmt(stab['cnn'][name], 10)}  "
            f"{'yes' if value <= STABILITY_GOAL else 'NO ':5}  {stab['worst_under'][name]:12}"
            f"{_fmt(steady.get(name), 16)}".rstrip()
        )
    lines.append(
        f"   => {len(FUSION_FIELDS) - bad}/{len(FUSION_FIELDS)} fields stable within "
        f"{STABILITY_GOAL}; hair style or glasses changed in "
        f"{int(stab['class_changes']['count'])} perturbed variants"
    )
    if steady:
        held = sum(value <= STABILITY_GOAL for value in steady.values())
        others = [kind for kind in PERTURBATIONS if kind not in EXPOSURE_PERTURBATIONS]
        lines.append(
            f"   => {held}/{len(steady)} within {STABILITY_GOAL} under {', '.join(others)} "
            f"alone ({' and '.join(EXPOSURE_PERTURBATIONS)} left out: the colours follow "
            "the photo's exposure)"
        )
    same = report["same_person"]
    if same["photos"]:
        people = "; ".join(f"{p}: {', '.join(photos)}" for p, photos in same["photos"].items())
        lines += [
            "",
            f"   One person, several photos ({people}): largest change of the final params",
            "   between two photos of one person (expressions left out: they follow the photo)",
            f"   {'field':28}{'fused':>8}{'CNN only':>10}  within {STABILITY_GOAL}",
        ]
        close = 0
        for name, value in same["fused"].items():
            close += int(value <= STABILITY_GOAL)
            lines.append(
                f"   {name:28}{_fmt(value)}{_fmt(same['cnn'][name], 10)}  "
                f"{'yes' if value <= STABILITY_GOAL else 'no'}"
            )
        lines.append(f"   => {close}/{len(same['fused'])} fields within {STABILITY_GOAL}")
    # 4. fairness
    fair = report["fairness"]
    lines += [
        "",
        "4. Fairness: skin colour dE2000 on synthetic faces tinted to each Monk Skin Tone,",
        "   the share of those faces FaceMesh found (the others answer no_face), and on the found",
        "   faces the photo path's skin colour (the fusion table's choice: what a user gets);",
        "   beside the CNN's and the photo path's, their mean signed L* error (+: read lighter)",
        f"   {'swatch':10}{'CNN':>8}{'L*':>6}{'teacher':>9}{'found':>8}{'photo path':>12}{'L*':>6}",
    ]
    missing = [None] * len(fair["tones"])
    for i, tone in enumerate(fair["tones"]):
        found = fair.get("found", missing)[i]
        cnn_lightness = fair.get("cnn_lightness", missing)[i]
        lines.append(
            f"   {tone:10}{_fmt(fair['cnn'][i])}{_fmt(cnn_lightness, 6, 1, '+')}"
            f"{_fmt(fair.get('teacher', missing)[i], 9)}"
            + (f"{100 * found:7.0f}%" if found is not None else f"{'-':>8}")
            + _fmt(fair.get("photo_path", missing)[i], 12)
            + _fmt(fair.get("photo_path_lightness", missing)[i], 6, 1, "+")
        )
    for source in ("cnn", "teacher", "photo_path"):
        values = np.array([v for v in fair.get(source, []) if v is not None and np.isfinite(v)])
        if len(values):
            ratio, name = values.max() / values.mean(), source.replace("_", " ")
            lines.append(
                f"   {name}: mean {values.mean():.2f}, worst {values.max():.2f}, "
                f"worst/mean {ratio:.2f} (goal <= {FAIRNESS_GOAL}) "
                f"{'meets' if ratio <= FAIRNESS_GOAL else 'does NOT meet'} the goal; "
                f"by chance alone {fair.get(source + '_chance', float('nan')):.2f}"
            )
            interval = fair.get(f"{source}_interval")
            if interval:
                lines.append(
                    f"      over other draws of as many faces: {interval[0]:.2f}-{interval[1]:.2f}"
                )
    lines.append(
        "   ('by chance alone': the same errors shuffled across the swatches, median of "
        f"{CHANCE_SHUFFLES} shuffles:\n    what a model equally good on every swatch would show "
        "with this many faces;\n    'other draws': the 95 % interval of the ratio when each "
        f"swatch's faces are drawn again\n    with replacement, {RATIO_RESAMPLES} times)"
    )
    tinted = fair.get("tinted")
    if tinted and tinted["photos"]:
        found = ", ".join(f"{100 * share:.0f}%" for share in tinted["found"])
        skin = " ".join(_fmt(value, 5, 1) for value in tinted["photo_path"])
        lines += [
            f"   Human faces: the sample photos ({', '.join(tinted['photos'])}) with their skin "
            "tinted to each swatch",
            "   (linear light, shading kept, lips too; eyes, brows and exposure stay: crude)",
            f"   found per swatch: {found}",
            f"   photo path skin dE2000 per swatch: {skin}",
        ]
    return "\n".join(lines)


def report_json(report: Any) -> Any:
    """The report with NaN as null, for `--json`."""
    if isinstance(report, dict):
        return {k: report_json(v) for k, v in report.items()}
    if isinstance(report, (list, tuple)):
        return [report_json(v) for v in report]
    if isinstance(report, float) and (report != report or abs(report) == float("inf")):
        return None
    return report
