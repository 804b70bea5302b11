"""`chibi eval` end to end on the shipped weights: the report, its JSON and the picture."""

import json

import numpy as np
import pytest
from PIL import Image
from test_scripts import run_script

from avatar3d.eval_sheet import CAPTION_PX, HEADER_PX
from avatar3d.model_files import WEIGHTS_DIR
from avatar3d.param_arrays import COLOR_NAMES, SLIDER_FIELDS
from server.cli import main

SIZE = 256  # the sheet's default picture size


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """The module's synthetic renders: `chibi eval` makes the held-out set once."""
    return tmp_path_factory.mktemp("synth")


def test_eval_reports_the_shipped_weights_and_draws_their_sheet(cache, tmp_path, capsys):
    """Renders the held-out and Monk sets from nothing (about 8 minutes on 2 cores)."""
    report_path, sheet_path = tmp_path / "report.json", tmp_path / "sheet.png"
    argv = ["eval", "--cache", str(cache), "--json", str(report_path)]
    assert main([*argv, "--sheet", str(sheet_path)]) == 0
    text = capsys.readouterr().out
    assert "1. Synthetic held-out renders: 300 faces" in text
    report = json.loads(report_path.read_bytes())
    cnn, default = report["synthetic"]["cnn"], report["synthetic"]["default"]
    # README "Where the goals stand": slider MAE 0.111 for the shipped weights
    assert np.mean([cnn[name] for name in SLIDER_FIELDS]) < 0.12
    assert np.mean([default[name] for name in SLIDER_FIELDS]) > 0.2
    # the fusion table measured here is the one shipped beside the weights
    shipped = json.loads((WEIGHTS_DIR / "chibinet-mcer.fusion.json").read_text())
    assert report["fusion"]["choices"] == shipped["choices"]
    fills_in = [
        {name: ev.get("cnn_informative") for name, ev in table["evidence"].items()}
        for table in (report["fusion"], shipped)
    ]
    assert fills_in[0] == fills_in[1]  # and so is who stands in for an unsure teacher
    # one man in three photos (sample_photos): how far his params move between them
    assert "One person, several photos (obama: obama, obama_speaking, obama_standing)" in text
    same = report["same_person"]["fused"]
    assert "expression.smile" not in same and 0 <= same["shape.face_width"] < 1

    # scripts/compare_eval.py, against a copy whose face_length meets the goal and whose
    # glasses come from another source: the rows and counts that moved, and nothing else
    other = json.loads(report_path.read_bytes())
    other["model"] = "changed"
    before_length = report["synthetic"]["cnn"]["shape.face_length"]
    other["synthetic"]["cnn"]["shape.face_length"] = 0.04
    other["fusion"]["choices"]["glasses"] = "default"
    other_path = tmp_path / "other.json"
    other_path.write_text(json.dumps(other))
    lines = run_script("compare_eval.py", str(report_path), str(other_path)).splitlines()
    assert lines[0].startswith("before: chibinet-mcer   after: changed")
    rows = {line.split()[0]: line.split()[1:] for line in lines[3:31]}
    assert list(rows) == [*SLIDER_FIELDS, *COLOR_NAMES]
    assert rows["shape.face_length"][:3] == [f"{before_length:.3f}", "0.040*",
                                             f"{0.04 - before_length:+.3f}"]  # fmt: skip
    assert all(row[2] == "+0.000" for name, row in rows.items() if name != "shape.face_length")
    met = [line.split("sliders <= 0.05: ")[1].split("/")[0] for line in lines[32:34]]
    assert int(met[1]) == int(met[0]) + (before_length > 0.05)
    swatches = report["fairness"]["cnn"]
    assert f"(worst {max(swatches):.2f} / mean {np.mean(swatches):.2f} dE2000;" in lines[32]
    choice = report["fusion"]["choices"]["glasses"]
    assert lines[-1] == f"fusion choices changed: glasses: {choice} -> default"

    sheet = np.asarray(Image.open(sheet_path)).astype(np.int16)
    assert sheet.shape[1] == 3 * SIZE
    # held-out rows from the best CNN reading to the worst: the CNN's avatar departs
    # further from the true one down the section
    first = HEADER_PX + CAPTION_PX
    last = HEADER_PX + 5 * (CAPTION_PX + SIZE) + CAPTION_PX
    gaps = []
    for top in (first, last):
        row = sheet[top : top + SIZE]
        truth, predicted = row[:, SIZE : 2 * SIZE], row[:, 2 * SIZE :]
        assert truth.std() > 20  # a head, not an empty square
        gaps.append(np.abs(truth - predicted).mean())
    assert gaps[0] < gaps[1]


def test_slider_look_weighs_the_slider_errors_on_the_avatar(cache):
    out = run_script(
        "slider_look.py", "--faces", "3", "--range-faces", "1", env={"CHIBI_CACHE": str(cache)}
    )
    means = {}
    for name in ("the CNN's sliders", "every slider off by 0.05", "the default sliders"):
        line = next(row for row in out.splitlines() if row.startswith(name))
        means[name] = float(line[len(name) :].split()[0])
    assert 0 < means["the CNN's sliders"] < means["the default sliders"]
    ranges = {row.split()[0]: float(row.split()[1]) for row in out.splitlines()[-23:]}
    assert set(ranges) == set(SLIDER_FIELDS)
    assert ranges["shape.eye_spacing"] > ranges["expression.smile"]


def test_eval_refuses_a_missing_output_folder_before_any_work(tmp_path, capsys):
    missing = tmp_path / "no such folder" / "sheet.png"
    assert main(["eval", "--cache", str(tmp_path / "cache"), "--sheet", str(missing)]) == 3
    assert "error [io_error]: output folder does not exist" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()  # nothing was rendered
