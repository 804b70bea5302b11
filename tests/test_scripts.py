"""The probes in scripts/ that the README and docs/ quote still run, shrunk (those that need no
training set or held-out renders; about 30 s in all; `slider_look.py` runs in
test_eval.py, on the held-out renders `chibi eval` makes there)."""

import os
import re
import subprocess
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def run_script(name: str, *args: str, env: dict[str, str] | None = None) -> str:
    """Run scripts/NAME with `args` (and `env` added) from the repo root; its stdout."""
    env = {**os.environ, "PYOPENGL_PLATFORM": "egl", "PYTHONPATH": str(ROOT), **(env or {})}
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / name), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_slider_visibility_counts_each_slider_and_colour():
    out = run_script("slider_visibility.py", "--avatars", "1", "--zoom", "2")
    assert "magnified 2x about [64.0, 63.0]" in out
    for name in ("shape.eye_spacing", "expression.smile", "nuisance", "lip_color"):
        assert name in out


def test_slider_confounds_finds_the_best_partner():
    pair = "expression.brow_raise:shape.brow_height"
    out = run_script("slider_confounds.py", "--avatars", "1", "--pairs", pair)
    line = next(row for row in out.splitlines() if row.startswith("expression.brow_raise"))
    alone, with_partner = map(float, line.split()[2:4])
    assert with_partner <= alone  # the grid holds 0, so the best is never worse than alone


def test_color_attention_draws_its_picture(tmp_path):
    out_png = tmp_path / "attention.png"
    run_script("color_attention.py", "-o", str(out_png), "--renders", "1")
    with Image.open(out_png) as image:
        assert image.width > 128 and image.height >= 128


def test_glasses_reading_prints_each_group_for_every_photo():
    out = run_script("glasses_reading.py")
    assert out.count("a poor camera") == 6 and "cameraman: skipped" in out
    assert "(12/12 faces found)" in out  # the shadow grid


def test_teacher_noise_lists_every_teacher_slider():
    out = run_script("teacher_noise.py", "--draws", "2")
    assert "shape.lip_fullness" in out


def test_framing_prints_each_framing_of_a_photo():
    out = run_script("framing.py", "--photos", "grace_hopper")
    assert out.count("crop outside") == 9  # the whole photo and its 8 framings
    assert "below chin      0.0" in out and "head_size" in out
    assert "largest / mean change: head_size" in out


def test_fairness_check_compares_models_on_the_same_fresh_faces(tmp_path):
    args = ["--per-tone", "3", "--seed", "9", "--cache", str(tmp_path), "--teacher"]
    out = run_script(
        "fairness_check.py", *args, "--model", "default", "--model", "default",
        "--skin-margin", "0.5",
    )  # fmt: skip
    assert "Monk set: 3 faces a swatch (seed 9)" in out
    assert "CNN" in out and "photo path" in out and "FaceMesh found" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("default  ")]
    assert len(rows) == 4  # the CNN's table and the photo path's, two models each
    for first, second in (rows[:2], rows[2:]):
        assert first == second  # the same weights, the same figures
        assert len(first) == 6 + 10  # ratio, interval, worst, mean, chance, ten swatches
    paired = "default - default: +0.000 (95 % interval +0.000 to +0.000); higher in 0 %"
    assert out.count(paired) == 2
    lightness = [line for line in out.splitlines() if line.startswith("default: L* read minus")]
    assert len(lightness) == 4 and len(set(lightness)) == 2  # per table, equal for both models
    for line in lightness:  # "mean (sd)" for every swatch (NaN where FaceMesh found none)
        assert len(re.findall(r"[+-]\d+\.\d \(\d+\.\d\)|nan \(nan\)", line)) == 10
    # the CNN's mean Lab error beside the training skins' pull, for the margin asked
    assert (
        "training skins' pull (mean of those within dE76 8 of each swatch, minus it; "
        "skin margin 0.5)" in out
    )
    assert out.count("default: Lab read minus true per swatch (correlation with the pull") == 2
    channels = [line for line in out.splitlines() if re.match(r"  [Lab]\* ", line)]
    assert len(channels) == 9 and all(len(line.split()) == 11 for line in channels)


def test_covered_faces_reads_the_group_photos_faces():
    """`--group`: the two faces of the group photo with the narrowest eyes (the leftmost
    woman looks down at her cards, the man beside the rightmost winks), unhidden, read
    as none of the covers, and her hair reaches the chin."""
    out = run_script("covered_faces.py", "--group", "--photos", "group_1", "group_4")
    for name in ("group_1", "group_4"):
        assert re.search(rf"^{name} +20 +0 +0 +0 +0$", out, re.M), name
    assert re.search(r"^group_1 +unhidden 0\.00-1\.00", out, re.M)


def test_covered_faces_prints_every_cover_for_a_photo(tmp_path):
    """The astronaut's 20 unhidden faces read as none of the covers; each fabric, lens,
    bangs' hair and light has its row, the red mask hides her mouth, and her hair length
    reads short.
    The sheet draws six covers."""
    sheet = tmp_path / "covers.png"
    out = run_script("covered_faces.py", "--photos", "astronaut", "--sheet", str(sheet))
    with Image.open(sheet) as image:
        assert image.width == 3 * 256 and image.height > 6 * 256
    assert re.search(r"^astronaut +20 +0 +0 +0 +0$", out, re.M)
    for fabric in ("light blue", "black", "red", "pink"):
        assert re.search(rf"^{fabric} +\d+ of +\d+ +\d+\.\d$", out, re.M), fabric
    assert re.search(r"^red +[1-9] of", out, re.M)
    assert re.search(r"^dark +eyes hidden on +\d of +5$", out, re.M)
    assert re.search(r"^astronaut +skin +\d+\.\d", out, re.M)
    assert re.search(r"^strong blue +1 of +1", out, re.M)
    for hair in ("black", "dark brown", "auburn", "blonde"):
        assert re.search(rf"^{hair} +\+0\.15 +\d+\.\d +\d+\.\d$", out, re.M), hair
    # her bob ends about where the shortest side locks do, on every unhidden face
    assert re.search(r"^astronaut +unhidden 0\.00-0\.[0-2]\d \(20/20\) +covered 0\.", out, re.M)


def test_cut_faces_prints_each_side_and_each_turn():
    """A tenth of each face cut off at each side moves the teacher's sliders less than
    the default lies from them (what `teacher.CHIN` and the edge padding rest on), and
    the turned faces' changes are printed for each angle."""
    out = run_script("cut_faces.py", "--levels", "0.1")
    assert re.search(r"^11 faces;", out, re.M)
    for side in ("left", "right", "top", "bottom"):
        change, default = map(float, re.search(
            rf"cut at the {side} +0\.10: (\d\.\d+) \((\d\.\d+)\)", out).groups())  # fmt: skip
        assert change < default, side
    out = run_script("cut_faces.py", "--roll", "--angles", "30")
    change = float(re.search(r"^ +\+30 degrees: (\d\.\d+), smile", out, re.M).group(1))
    assert change < 0.03  # 0.016; read as it lay, 0.044 (session 40)


def test_cut_faces_blur_moves_the_sliders_more_the_more_it_blurs():
    """FaceMesh reads a blurred face's shape further off the sharper it was (what
    docs/photos.md's "Blur, sensor noise and JPEG" quotes): the mean change of the shape
    sliders grows from a blur of half a percent of the face's width to one of two percent."""
    out = run_script("cut_faces.py", "--blur", "--shares", "0.005", "0.02", "--by-field")
    assert re.search(r"^11 faces blurred;", out, re.M)
    light, heavy = (
        float(re.search(rf"sigma {share} of the face's width \(11 faces\): (\d\.\d+),", out)[1])
        for share in ("0.005", "0.020")
    )
    assert light < 0.03 < heavy  # 0.012 and 0.061 (session 41)
    assert re.search(r"mean \(largest\) change: face_width \d\.\d+ \(\d\.\d+\)", out)


def test_cut_faces_noise_moves_the_sliders_more_the_more_noise():
    """Sensor-like noise moves the teacher's shape sliders further the stronger it is, and
    less than the default lies from them (what docs/photos.md's noise sentence quotes)."""
    out = run_script("cut_faces.py", "--noise", "--sigmas", "4", "16")
    assert re.search(r"^11 faces made noisy;", out, re.M)
    light, heavy = (
        float(re.search(rf"noise of {sigma} levels \(11 faces\): (\d\.\d+),", out)[1])
        for sigma in (4, 16)
    )
    assert light < heavy < 0.05  # 0.013 and 0.029 (session 42)


def test_cut_faces_shrink_reads_small_faces_nearly_as_large_ones():
    """Faces made smaller until the eyes lie 20 px apart: the shape sliders move less than
    the default lies from them (0.09), and the teacher stays sure of every iris colour it
    was sure of at 24 px (what docs/photos.md's "A small face" quotes)."""
    out = run_script("cut_faces.py", "--shrink", "--eye-distances", "24", "20")
    assert re.search(r"^11 faces made smaller;", out, re.M)
    change = float(re.search(r"eyes 20 px apart \(11 faces\): (\d\.\d+),", out)[1])
    assert change < 0.05  # 0.031 (session 42)
    sure, of = map(int, re.search(r"eyes 24 px.*\n.* iris \d+\.\d \((\d+)/(\d+)\)", out).groups())
    assert sure == of > 0  # 0 of 7 while the iris's confidence counted to 40 pixels
