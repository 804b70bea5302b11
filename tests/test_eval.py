"""`chibi eval` end to end on the shipped weights: the report, its JSON and the picture;
and its parts: fairness and its chance level, the per-field splits, the fusion's choices."""

import json

import numpy as np
import pytest
from PIL import Image
from skimage.color import lab2rgb, rgb2lab
from test_scripts import run_script

from avatar3d.eval_sheet import CAPTION_PX, HEADER_PX
from avatar3d.fusion import FusionTable
from avatar3d.model_files import WEIGHTS_DIR
from avatar3d.param_arrays import COLOR_NAMES, SLIDER_FIELDS
from avatar3d.params import GLASSES, HAIR_STYLES, hex_to_rgb
from avatar3d.regressor import create_model
from avatar3d.synth import MONK_SKIN_TONES, sample_params
from avatar3d.training import predict_arrays
from server.cli import main

SIZE = 256  # the sheet's default picture size


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """The module's synthetic renders: `chibi eval` makes the held-out set once."""
    return tmp_path_factory.mktemp("synth")


# The suite's 600 s per test is a guard against hangs; rendering 4,140 faces took 8
# minutes on 2 cores and, on a machine about half as fast (session 43), more than 10.
@pytest.mark.timeout(1800)
def test_eval_reports_the_shipped_weights_and_draws_their_sheet(cache, tmp_path, capsys):
    """Renders the held-out and Monk sets from nothing (8-11 minutes on 2 cores)."""
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
    # stability without the two exposure changes: never more than with them
    stability = report["stability"]
    assert all(
        stability["fused_without_exposure"][name] <= value
        for name, value in stability["fused"].items()
    )
    assert "0.05 under flip, scale_0.8, scale_1.2, jpeg_50 alone" in text

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


def test_fairness_chance_ratio_is_the_worst_swatch_of_a_model_fair_by_construction():
    from avatar3d.evaluate import chance_ratio

    rng = np.random.default_rng(1)
    groups = np.arange(2000) % 10
    errors = rng.gamma(4.0, 1.0, 2000)  # the same distribution on every swatch
    ratio = chance_ratio(errors, groups)
    means = np.bincount(groups, weights=errors) / 200
    assert 1.0 < ratio < 1.15
    assert abs(means.max() / means.mean() - ratio) < 0.1
    fewer = chance_ratio(errors[:200], groups[:200])  # 20 faces per swatch: larger by chance
    assert fewer > ratio


def test_fairness_bootstrap_gives_the_ratio_an_interval_paired_across_models():
    from avatar3d.evaluate import bootstrap_ratios, ratio_interval

    rng = np.random.default_rng(2)
    groups = np.arange(4000) % 10
    errors = rng.gamma(4.0, 0.5, 4000)
    errors[groups == 9] *= 1.3  # the darkest swatch read 30 % worse: ratio about 1.26
    ratio = (errors[groups == 9].mean()) / errors.mean()
    ratios = bootstrap_ratios(errors, groups)
    assert ratios.shape == (1000, 1)
    low, high = ratio_interval(ratios[:, 0])
    assert 1.2 < low < ratio < high < 1.35  # this many faces tell it from the goal
    few = bootstrap_ratios(errors[:400], groups[:400])  # 40 faces a swatch: wider
    few_low, few_high = ratio_interval(few[:, 0])
    assert few_high - few_low > 2 * (high - low)
    # two models on the same faces share every redraw: a copy differs by exactly 0, a
    # model worse on the darkest swatch alone is worse on nearly every redraw
    worse = errors * np.where(groups == 9, 1.1, 1.0)
    paired = bootstrap_ratios(np.stack([errors, errors, worse]), groups)
    assert np.array_equal(paired[:, 0], paired[:, 1])
    assert np.mean(paired[:, 2] > paired[:, 0]) > 0.99


def test_fairness_reports_per_swatch_colour_error_and_how_often_a_face_was_found():
    from avatar3d.evaluate import delta_e, evaluate_fairness

    rng = np.random.default_rng(3)
    n = 4 * len(MONK_SKIN_TONES)
    tone = np.arange(n) % len(MONK_SKIN_TONES)
    colors = rng.uniform(0.2, 0.9, (n, len(COLOR_NAMES), 3)).astype(np.float32)
    found = (np.arange(n) // len(MONK_SKIN_TONES)) < np.where(tone < 5, 4, 1)  # 4/4 or 1/4
    arrays = {
        "crops": rng.integers(0, 255, (n, 128, 128, 3), dtype=np.uint8),
        "colors": colors,
        "avatar_index": np.arange(n),
        "teacher_found": found,
        "teacher_colors": np.clip(colors + 0.05, 0, 1),
        "teacher_color_conf": found[:, None] * np.ones((n, len(COLOR_NAMES)), np.float32),
        "teacher_sliders": rng.uniform(0, 1, (n, len(SLIDER_FIELDS))).astype(np.float32),
        "teacher_slider_conf": np.ones((n, len(SLIDER_FIELDS)), np.float32),
    }
    unsure = found & (np.arange(n) % 3 == 0)  # found, but the skin sample is too small
    arrays["teacher_color_conf"][unsure] = 0.1
    model = create_model("chibinet-s").eval()
    result = evaluate_fairness(model, arrays, FusionTable.teacher_first())
    assert result["found"] == [1.0] * 5 + [0.25] * 5
    skin = COLOR_NAMES.index("skin_color")
    expected = delta_e(arrays["teacher_colors"][:, skin], colors[:, skin])
    for k in range(len(MONK_SKIN_TONES)):
        assert result["teacher"][k] == pytest.approx(expected[(tone == k) & found].mean(), rel=1e-5)
    assert len(result["cnn"]) == len(MONK_SKIN_TONES)
    # the photo path: faces it accepts only; the CNN's skin where the teacher was unsure
    cnn_skin = predict_arrays(model, arrays["crops"]).colors[:, skin]
    cnn = delta_e(cnn_skin, colors[:, skin])
    path = np.where(unsure, cnn, expected)
    for k in range(len(MONK_SKIN_TONES)):
        assert result["photo_path"][k] == pytest.approx(path[(tone == k) & found].mean(), rel=1e-5)
    # and the signed lightness errors: the teacher's skin here is 0.05 lighter in sRGB
    lightness = rgb2lab(colors[:, skin][None].astype(np.float64))[0, :, 0]
    cnn_l = rgb2lab(cnn_skin[None].astype(np.float64))[0, :, 0] - lightness
    teacher_l = rgb2lab(arrays["teacher_colors"][:, skin][None])[0, :, 0] - lightness
    path_l = np.where(unsure, cnn_l, teacher_l)
    assert teacher_l.min() > 0  # read lighter, so counted positive
    for k in range(len(MONK_SKIN_TONES)):
        assert result["cnn_lightness"][k] == pytest.approx(cnn_l[tone == k].mean(), abs=1e-3)
        assert result["photo_path_lightness"][k] == pytest.approx(
            path_l[(tone == k) & found].mean(), abs=1e-3
        )
    assert "photo_path" not in evaluate_fairness(model, arrays)


def test_eval_report_prints_each_fairness_verdict_with_its_chance_level():
    from avatar3d.fusion import CLASS_FIELDS, FUSION_FIELDS
    from server.commands.eval import format_report

    per_field = {name: 0.1 for name in FUSION_FIELDS}
    tones = list(MONK_SKIN_TONES)
    report = {
        "model": "m",
        "synthetic": {"count": 3, "cnn": per_field, "default": per_field,
                      "hair_style_accuracy": 1.0, "glasses_accuracy": 1.0,
                      "iris_by_eye_opening": {"open": {"error": 5.7, "count": 202},
                                              "shut": {"error": 17.7, "count": 17}},
                      "lips_from_skin": {"cnn": 5.79, "from_cnn_skin": 5.83,
                                         "from_true_skin": 5.27}},
        "real": {"photos": [], "agreement": per_field},
        "fusion": FusionTable.teacher_first().to_dict(),
        "stability": {"fused": per_field, "cnn": per_field, "class_changes": {"count": 0},
                      "worst_under": {name: "flip" for name in FUSION_FIELDS},
                      "fused_without_exposure": {name: 0.02 for name in FUSION_FIELDS}
                                                | {"skin_color": 0.06}},
        "same_person": {"fused": {"shape.face_width": 0.02, "skin_color": 0.2},
                        "cnn": {"shape.face_width": 0.1, "skin_color": 0.1},
                        "photos": {"p": ["p_smiling", "p_speaking"]}},
        "fairness": {"tones": tones, "cnn": [1.0] * 9 + [2.0], "cnn_chance": 1.05,
                     "teacher": [3.0] * 10, "teacher_chance": 1.1,
                     "photo_path": [2.0] * 9 + [2.3], "photo_path_chance": 1.12,
                     "cnn_lightness": [-0.9] + [0.0] * 8 + [2.4],
                     "photo_path_lightness": [-6.7] + [0.0] * 8 + [8.1],
                     "tinted": {"photos": ["a"], "tones": tones, "found": [1.0] * 9 + [0.0],
                                "photo_path": [3.0] * 9 + [float("nan")]}},
    }  # fmt: skip
    text = format_report(report)
    assert "   cnn: mean 1.10, worst 2.00, worst/mean 1.82 (goal <= 1.2) does NOT meet" in text
    assert "   teacher: mean 3.00, worst 3.00, worst/mean 1.00 (goal <= 1.2) meets" in text
    assert "   photo path: mean 2.03, worst 2.30, worst/mean 1.13 (goal <= 1.2) meets" in text
    assert "by chance alone 1.12" in text
    assert f"   {tones[0]:10}   1.000  -0.9    3.000       -       2.000  -6.7" in text
    assert f"   {tones[-1]:10}   2.000  +2.4    3.000       -       2.300  +8.1" in text
    assert "found per swatch: " + "100%, " * 9 + "0%" in text
    assert "skin dE2000 per swatch: " + "  3.0 " * 9 + "    -" in text
    assert all(name in text for name in CLASS_FIELDS)
    assert "eye is shut (the blink sliders): open 5.70 (202 faces), shut 17.70 (17 faces)" in text
    assert "from the CNN's skin 5.83, from the true skin 5.27; the CNN's lips 5.79" in text
    assert "One person, several photos (p: p_smiling, p_speaking)" in text
    assert "   skin_color                     0.200     0.100  no" in text
    assert "   => 1/2 fields within 0.05" in text
    held = f"{len(FUSION_FIELDS) - 1}/{len(FUSION_FIELDS)}"
    assert f"   => {held} within 0.05 under flip, scale_0.8, scale_1.2, jpeg_50 alone" in text
    skin_row = "   skin_color                     0.100     0.100  NO     flip"
    assert skin_row + " " * 19 + "0.060" in text  # the column without the brightness


def test_stability_reports_each_field_with_and_without_the_exposure_changes():
    """A colour that follows the photo's brightness fails the goal under darker_20 and
    holds it under the other perturbations."""
    from dataclasses import replace

    from avatar3d.evaluate_real import FaceReading, stability
    from avatar3d.fusion import FUSION_FIELDS

    base = FaceReading(
        cnn_sliders=np.full(len(SLIDER_FIELDS), 0.5), cnn_colors=np.full((5, 3), 0.5),
        teacher_sliders=np.zeros(len(SLIDER_FIELDS)),
        teacher_slider_conf=np.zeros(len(SLIDER_FIELDS)),
        teacher_colors=np.zeros((5, 3)), teacher_color_conf=np.zeros(5),
        hair_style=0, glasses=0, glasses_probs=np.array([1.0, 0.0, 0.0]),
        teacher_glasses=np.zeros(1), teacher_glasses_conf=np.zeros(1),
    )  # fmt: skip
    sliders = base.cnn_sliders.copy()
    sliders[0] += 0.03
    variants = {
        "original": base,
        "darker_20": replace(base, cnn_colors=base.cnn_colors * 0.8),
        "jpeg_50": replace(base, cnn_sliders=sliders, cnn_colors=base.cnn_colors + 0.02),
    }
    table = FusionTable({name: "cnn" for name in FUSION_FIELDS})
    result = stability({"photo": variants}, table)
    skin, first_slider = "skin_color", SLIDER_FIELDS[0]
    assert result["fused"][skin] == pytest.approx(0.1)
    assert result["worst_under"][skin] == "darker_20"
    assert result["fused_without_exposure"][skin] == pytest.approx(0.02)
    assert result["fused"][first_slider] == result["fused_without_exposure"][first_slider]
    assert result["fused"][first_slider] == pytest.approx(0.03)


def test_lips_from_skin_tells_a_model_that_reads_the_lips_from_one_that_guesses():
    """A lip colour guessed from the skin (the renders' mean offset) scores the
    'from skin' figure; one that reads the lips exactly scores 0 against it."""
    from avatar3d.evaluate import lips_from_skin, render_lip_offset

    params = [sample_params(np.random.default_rng([9, i])) for i in range(200)]
    truth = np.array([[hex_to_rgb(getattr(p, name)) for name in COLOR_NAMES] for p in params])
    exact = lips_from_skin(truth, truth)
    assert exact["cnn"] == pytest.approx(0.0, abs=1e-9)
    assert exact["from_cnn_skin"] == exact["from_true_skin"]
    # the renders' lips scatter around skin + offset by ~6 Lab units a channel
    assert 3.0 < exact["from_true_skin"] < 8.0
    guessed = truth.copy()
    lips, skin = COLOR_NAMES.index("lip_color"), COLOR_NAMES.index("skin_color")
    guessed[:, lips] = lab2rgb(rgb2lab(truth[:, skin]) + render_lip_offset())
    guess = lips_from_skin(guessed, truth)
    assert guess["cnn"] == pytest.approx(guess["from_true_skin"], rel=1e-3)


def test_iris_error_is_split_by_how_far_the_more_open_eye_is_shut():
    from avatar3d.evaluate import delta_e, iris_by_eye_opening

    blinks = [SLIDER_FIELDS.index(f"expression.blink_{s}") for s in ("left", "right")]
    sliders = np.zeros((5, len(SLIDER_FIELDS)))
    # open; a wink (one eye open is open); partly shut; both shut; both half shut
    sliders[:, blinks] = [[0.0, 0.0], [1.0, 0.0], [0.3, 0.9], [1.0, 1.0], [0.5, 0.7]]
    truth = np.full((5, len(COLOR_NAMES), 3), 0.5)
    predicted = truth.copy()
    iris = COLOR_NAMES.index("iris_color")
    predicted[:, iris] = [[0.5, 0.5, 0.5], [0.6, 0.5, 0.5], [0.5, 0.6, 0.5], [0.2, 0.2, 0.6],
                          [0.5, 0.5, 0.9]]  # fmt: skip
    errors = delta_e(predicted[:, iris], truth[:, iris])
    bands = iris_by_eye_opening(predicted, sliders, truth)
    assert list(bands) == ["open", "partly shut", "half shut or more"]
    assert bands["open"] == {"error": pytest.approx(errors[:2].mean()), "count": 2.0}
    assert bands["partly shut"] == {"error": pytest.approx(errors[2]), "count": 1.0}
    assert bands["half shut or more"] == {"error": pytest.approx(errors[3:].mean()), "count": 2.0}


def test_a_class_head_is_used_only_where_annotated_real_photos_show_it_right():
    """Renders alone do not qualify a class head: session 19's network names the hair
    style of 92 % of the held-out renders, and calls the astronaut's hair 'spiky'."""
    from types import SimpleNamespace

    from avatar3d.evaluate import fusion_from_real
    from avatar3d.evaluate_real import class_accuracy_real
    from avatar3d.fusion import FUSION_FIELDS

    def reading(style: str, glasses: str, frame_seen: bool) -> SimpleNamespace:
        probs = np.eye(len(GLASSES))[GLASSES.index(glasses)] * 0.5 + [0.2, 0.2, 0.1]
        return SimpleNamespace(
            hair_style=HAIR_STYLES.index(style), glasses=GLASSES.index(glasses),
            glasses_probs=probs, teacher_glasses=np.array([int(frame_seen)]),
            teacher_glasses_conf=np.array([1.0]),
        )  # fmt: skip

    readings = {
        "astronaut": {"photo": reading("short", "none", False),
                      "flip": reading("short", "none", False)},
        "grace_hopper": {"photo": reading("bun", "square", True)},  # one of the right answers
        "cameraman": {"photo": reading("long", "none", False)},  # its hair style: not annotated
    }  # fmt: skip
    all_right = {"hair_style": 1.0, "glasses": 1.0, "glasses_frame": 1.0, "glasses_teacher": 1.0}
    assert class_accuracy_real(readings) == all_right
    # the CNN sees round glasses on the mirror image, the teacher still no frame
    readings["astronaut"]["flip"] = reading("spiky", "round", False)
    accuracy = class_accuracy_real(readings)  # 3 readings of hair style, 4 of glasses
    assert accuracy == all_right | {"hair_style": pytest.approx(2 / 3), "glasses": 0.75}
    # the teacher sees Grace Hopper's frame, the CNN reads none, else round: the frame's
    # shape is wrong (judged on her photo alone), whether there is one right
    readings["grace_hopper"]["photo"] = reading("bun", "none", True)
    accuracy = class_accuracy_real(readings)
    assert accuracy["glasses_frame"] == 0.0 and accuracy["glasses_teacher"] == 1.0
    readings["grace_hopper"]["photo"] = reading("bun", "square", False)  # the teacher misses it
    assert class_accuracy_real(readings)["glasses_teacher"] == 0.75

    errors = {source: {name: 0.1 for name in FUSION_FIELDS} for source in ("cnn", "teacher")}
    synthetic = {"cnn": errors["cnn"], "default": {name: 0.2 for name in FUSION_FIELDS},
                 "hair_style_accuracy": 0.95, "glasses_accuracy": 0.85,
                 "glasses_frame_accuracy": 0.95}  # fmt: skip
    choices = fusion_from_real(errors, synthetic, all_right).choices
    assert choices["hair_style"] == "cnn" and choices["glasses"] == "default"  # 0.85 < 0.9
    for real in (0.75, float("nan")):  # wrong once; no annotated photo at all
        table = fusion_from_real(errors, synthetic, all_right | {"hair_style": real})
        assert table.choices["hair_style"] == "default"
    # the teacher's glasses pass the same test, and come before the CNN's
    synthetic |= {"glasses_accuracy": 0.95, "teacher_glasses_accuracy": 0.92}
    assert fusion_from_real(errors, synthetic, all_right).choices["glasses"] == "teacher"
    wrong_once = all_right | {"glasses_teacher": 0.75}
    assert fusion_from_real(errors, synthetic, wrong_once).choices["glasses"] == "cnn"
    # a frame's shape misread on one photo leaves the teacher's glasses, at UNKNOWN_FRAME
    choices = fusion_from_real(errors, synthetic, all_right | {"glasses_frame": 6 / 7}).choices
    assert choices["glasses"] == "teacher" and choices["glasses_frame"] == "default"
    synthetic["teacher_glasses_accuracy"] = 0.85
    assert fusion_from_real(errors, synthetic, all_right).choices["glasses"] == "cnn"


def test_the_cnn_stands_in_for_an_unsure_teacher_only_where_real_photos_bear_it_out():
    """Where the teacher is missing or unsure, the CNN fills in only if it beats the
    default on the renders and is no further from the teacher than the default on the
    real photos: trained on chibi renders, it read 15 of the 20 sliders the teacher
    measures on the sample photos further off than the neutral default (session 39)."""
    from avatar3d.evaluate import fusion_from_real
    from avatar3d.fusion import FUSION_FIELDS, FusionTable, fuse_arrays

    errors = {source: {name: 0.1 for name in FUSION_FIELDS} for source in ("cnn", "teacher")}
    errors["default"] = {name: 0.2 for name in FUSION_FIELDS} | {"shape.face_width": 0.05}
    synthetic = {"cnn": {name: 0.1 for name in FUSION_FIELDS} | {"shape.jaw_width": 0.3},
                 "default": {name: 0.2 for name in FUSION_FIELDS},
                 "hair_style_accuracy": 0.5, "glasses_accuracy": 0.5,
                 "glasses_frame_accuracy": 0.5}  # fmt: skip
    table = fusion_from_real(errors, synthetic, {})
    informative = {name: table.evidence[name]["cnn_informative"] for name in FUSION_FIELDS}
    assert not informative["shape.face_width"]  # the default is nearer the teacher
    assert not informative["shape.jaw_width"]  # the CNN is no better than it on renders
    assert informative["shape.eye_size"]
    assert table.evidence["shape.face_width"]["default"] == 0.05
    assert table.source("shape.face_width") == "teacher"  # which source wins is unchanged
    # an unsure teacher: the default where the CNN is not borne out, else the CNN
    n = len(FUSION_FIELDS) - 5
    width, eye = FUSION_FIELDS.index("shape.face_width"), FUSION_FIELDS.index("shape.eye_size")
    sliders, _ = fuse_arrays(
        np.full((1, n), 0.9), np.zeros((1, 5, 3)), np.full((1, n), 0.1), np.full((1, n), 0.1),
        np.zeros((1, 5, 3)), np.ones((1, 5)), table,
    )  # fmt: skip
    assert sliders[0, width] == pytest.approx(0.5) and sliders[0, eye] == pytest.approx(0.9)
    # reports without the default's real error (before session 39): the renders decide
    del errors["default"]
    assert fusion_from_real(errors, synthetic, {}).evidence["shape.face_width"]["cnn_informative"]
    assert FusionTable.from_errors(errors["cnn"], errors["teacher"], {}).evidence[
        "shape.face_width"
    ]["cnn_informative"]
