"""Two `chibi eval --json` reports side by side: what a change of weights or recipe did.

    .venv/bin/chibi eval --json BEFORE.json   # and, for the new weights,
    .venv/bin/chibi eval --model NAME --weights-dir DIR --json AFTER.json
    .venv/bin/python scripts/compare_eval.py BEFORE.json AFTER.json

Prints, per field, the CNN's error on the synthetic held-out renders and the largest
change of the final params under the stability perturbations, before and after, with a
star where the goal is met (`evaluate.SLIDER_GOAL`, `COLOR_GOAL`, `STABILITY_GOAL`);
then the goals met, the slider MAE, the fairness ratio (with the worst swatch and the
mean it divides: a ratio also rises when the other swatches improve; and its interval
over redraws of the faces, which `scripts/fairness_check.py` narrows and pairs) and
every fusion choice that differs, and every field whose stand-in for an unsure teacher
(the CNN or the default) does. Whether new weights are better is then read from one
table rather than from two reports of 150 lines each.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from avatar3d.evaluate import COLOR_GOAL, FAIRNESS_GOAL, SLIDER_GOAL, STABILITY_GOAL
from avatar3d.fusion import FUSION_FIELDS, FusionTable
from avatar3d.param_arrays import COLOR_NAMES, SLIDER_FIELDS


def _cell(value: float | None, goal: float) -> str:
    if value is None:
        return f"{'-':>8} "
    return f"{value:8.3f}{'*' if value <= goal else ' '}"


def compare(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The comparison's lines for two `chibi eval --json` reports."""
    lines = [
        f"before: {before['model']}   after: {after['model']}   (* meets the goal)",
        f"{'':26}{'synthetic error (CNN)':^30} {'stability (final params)':^30}".rstrip(),
        (f"{'field':26}" + f"{'before':>9}{'after':>10}{'change':>10} " * 2).rstrip(),
    ]
    met = {label: {"sliders": 0, "colours": 0, "stable": 0} for label in ("before", "after")}
    for name in (*SLIDER_FIELDS, *COLOR_NAMES):
        kind, goal = ("sliders", SLIDER_GOAL) if name in SLIDER_FIELDS else ("colours", COLOR_GOAL)
        row = f"{name:26}"
        for table, part_goal, count in (
            (("synthetic", "cnn"), goal, kind), (("stability", "fused"), STABILITY_GOAL, "stable")
        ):  # fmt: skip
            values = [report[table[0]][table[1]].get(name) for report in (before, after)]
            for label, value in zip(("before", "after"), values, strict=True):
                met[label][count] += value is not None and value <= part_goal
            change = f"{values[1] - values[0]:+10.3f}" if None not in values else " " * 10
            row += f"{_cell(values[0], part_goal)} {_cell(values[1], part_goal)}{change} "
        lines.append(row.rstrip())
    lines.append("")
    for label, report in (("before", before), ("after", after)):
        mae = np.mean([report["synthetic"]["cnn"][name] for name in SLIDER_FIELDS])
        swatches = report["fairness"]["cnn"]  # the CNN's skin error per Monk swatch
        worst, mean = max(swatches), np.mean(swatches)
        interval = report["fairness"].get("cnn_interval")  # reports before session 31 lack it
        redraws = f", redraws {interval[0]:.2f}-{interval[1]:.2f}" if interval else ""
        lines.append(
            f"{label:7} sliders <= {SLIDER_GOAL}: {met[label]['sliders']}/{len(SLIDER_FIELDS)} "
            f"(MAE {mae:.4f}); colours <= {COLOR_GOAL:g}: {met[label]['colours']}/"
            f"{len(COLOR_NAMES)}; stable: {met[label]['stable']}/"
            f"{len(SLIDER_FIELDS) + len(COLOR_NAMES)}; CNN fairness {worst / mean:.3f} "
            f"(worst {worst:.2f} / mean {mean:.2f} dE2000; goal <= "
            f"{FAIRNESS_GOAL}, chance {report['fairness']['cnn_chance']:.3f}{redraws})"
        )
    tables = [FusionTable.from_dict(report["fusion"]) for report in (before, after)]
    stand_ins = [(name, *(table.stand_in(name) for table in tables)) for name in FUSION_FIELDS]
    moved = [f"{name}: {was} -> {now}" for name, was, now in stand_ins if was != now]
    lines.append("fills in for an unsure teacher, changed: " + ("; ".join(moved) or "none"))
    changed = [
        f"{name}: {choice} -> {after['fusion']['choices'].get(name)}"
        for name, choice in before["fusion"]["choices"].items()
        if after["fusion"]["choices"].get(name) != choice
    ]
    lines.append("fusion choices changed: " + ("; ".join(changed) if changed else "none"))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path, help="`chibi eval --json` report")
    parser.add_argument("after", type=Path, help="`chibi eval --json` report")
    args = parser.parse_args()
    reports = [json.loads(path.read_text()) for path in (args.before, args.after)]
    print("\n".join(compare(*reports)))


if __name__ == "__main__":
    main()
