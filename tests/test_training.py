"""Training: synthetic renders with exact labels, masked teacher labels, a falling loss."""

import io
import json
import os
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata
from skimage.color import rgb2lab

from avatar3d.labelling import load_labelled
from avatar3d.param_arrays import COLOR_NAMES, SLIDER_FIELDS, teacher_targets
from avatar3d.params import GLASSES, HAIR_STYLES, SHAPE_SLIDERS, AvatarParams, hex_to_rgb
from avatar3d.refiners import fit_refiners
from avatar3d.regressor import MODEL_CONFIGS, create_model, crops_to_tensor
from avatar3d.synth import (
    MONK_SKIN_TONES,
    SetSpec,
    as_training_set,
    code_fingerprint,
    load_or_render,
    sample_params,
    sample_skin,
    skin_pull,
)
from avatar3d.training import (
    LoopOptions,
    TrainingSet,
    augment,
    predict_arrays,
    srgb_to_lab,
    train_model,
)
from server.cli import main

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")  # offscreen rendering, no display


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    """6 random avatars x 2 photo-like views, rendered in this process (no cache reuse)."""
    cache = tmp_path_factory.mktemp("synth")
    return load_or_render(SetSpec("test", 6, views=2, seed=7), cache, workers=1)


def test_sampled_params_are_valid_and_cover_the_ranges():
    rng = np.random.default_rng(0)
    samples = [sample_params(rng) for _ in range(300)]
    shape = np.array([[p.shape[n] for n in SHAPE_SLIDERS] for p in samples])
    assert shape.min() < 0.05 and shape.max() > 0.95
    assert {p.hair_style for p in samples} == set(HAIR_STYLES)
    assert {p.glasses for p in samples} == set(GLASSES)
    lightness = rgb2lab(np.array([[p.color_rgb("skin_color") for p in samples]]))[0, :, 0]
    assert lightness.min() < 25 and lightness.max() > 88  # the whole Monk range
    tinted = sample_params(rng, skin_color=MONK_SKIN_TONES[8])
    assert tinted.skin_color == MONK_SKIN_TONES[8]


def test_skin_margin_draws_past_both_ends_of_the_monk_scale_and_zero_changes_nothing():
    def lightness(margin: float | None) -> np.ndarray:
        rng = np.random.default_rng(3)
        draws = [sample_skin(rng) if margin is None else sample_skin(rng, margin)
                 for _ in range(2000)]  # fmt: skip
        return rgb2lab(np.array([[hex_to_rgb(c) for c in draws]]))[0, :, 0]

    plain, zero, wide = lightness(None), lightness(0.0), lightness(0.5)
    assert np.array_equal(plain, zero)
    ends = rgb2lab(np.array([[hex_to_rgb(MONK_SKIN_TONES[i]) for i in (0, -1)]]))[0, :, 0]
    # half a step past the darkest swatch (L* 14.6 -> 11.3) and the lightest (94.2 -> 95.2)
    darker = np.mean(wide < ends[1]), np.mean(plain < ends[1])
    lighter = np.mean(wide > ends[0]), np.mean(plain > ends[0])
    assert darker[0] > 1.5 * darker[1] and lighter[0] > lighter[1]
    assert SetSpec("train", 10, skin_margin=0.5).cache_name() != SetSpec("train", 10).cache_name()


def test_skin_pull_shows_the_darkest_swatch_pulled_lighter_unless_the_skins_reach_past_it():
    plain, wide = skin_pull(0.0), skin_pull(1.0)
    assert plain.shape == (len(MONK_SKIN_TONES), 3)
    assert plain[-1, 0] > 2.0  # the training skins near the darkest swatch are lighter
    assert abs(wide[-1, 0]) < plain[-1, 0] / 2
    assert np.abs(plain[4:8]).max() < 1.0  # mid-scale, skins lie on both sides


def test_synthetic_set_has_exact_labels_and_photo_like_crops(tiny_set):
    crops = tiny_set["crops"]
    assert crops.shape == (12, 128, 128, 3) and crops.dtype == np.uint8
    # the two views of one avatar share labels but are different pictures
    assert np.array_equal(tiny_set["sliders"][0], tiny_set["sliders"][1])
    assert np.abs(crops[0].astype(int) - crops[1].astype(int)).mean() > 10
    # not a flat render: a textured background and noise give many distinct values
    assert len(np.unique(crops[0].reshape(-1, 3), axis=0)) > 2000


def test_render_cache_names_follow_the_code_not_its_comments_docstrings_or_imports():
    def fingerprint(text: str) -> str:
        return code_fingerprint(textwrap.dedent(text))

    base = fingerprint('''
        """Module docstring."""
        from .regressor import encode_params


        class Painter:
            """Paints."""

            def paint(self, x):
                """Returns x darker."""
                return x * 0.5  # half
        ''')
    reworded = fingerprint('''
        """Another docstring."""
        from typing import Any

        from .param_arrays import encode_params  # moved


        class Painter:
            def paint(self, x):
                """Says it differently."""
                return x * 0.5
        ''')
    darker = fingerprint("""
        from .regressor import encode_params


        class Painter:
            def paint(self, x):
                return x * 0.6
        """)
    assert reworded == base and darker != base
    assert SetSpec("train", 10).cache_name() != SetSpec("train", 10, teacher=True).cache_name()


def test_crops_are_aligned_like_real_photos():
    """A frontal, evenly lit default avatar: after the same similarity fit as a real photo,
    the irises sit at the canonical eye centres and skin lies between them."""
    from avatar3d.build import build_avatar
    from avatar3d.landmarks import ALIGN_WEIGHTS, CANONICAL_CROP_POINTS, similarity_fit, warp_image
    from avatar3d.synth_render import View, render_view

    params = AvatarParams(skin_color="#f3e7db", iris_color="#202020")
    view = View(yaw=0.0, pitch=0.0, roll=0.25, yfov=0.5, fill=0.5, shift=(0.08, -0.05),
                key_dir=np.array([0.0, 0.0, 1.0]), key_intensity=1.5,
                key_color=np.ones(3), fill_intensity=0.5, ambient=0.3)  # fmt: skip
    rgb, alpha, points = render_view(build_avatar(params), params, view)
    photo = (np.clip(rgb * alpha[..., None], 0, 1) * 255).astype(np.uint8)
    crop = warp_image(photo, similarity_fit(points, CANONICAL_CROP_POINTS, ALIGN_WEIGHTS), 128)
    luma = crop.astype(float).mean(axis=2)
    rows, cols = np.nonzero(luma[40:64, 30:98] < 70)  # the dark irises (hair is higher up)
    rows, cols = rows + 40, cols + 30
    centres = []
    for side, (x, y) in zip((cols < 64, cols >= 64), CANONICAL_CROP_POINTS[:2], strict=True):
        assert side.sum() > 10
        # a chibi's eyes sit ~6 px further apart than the canonical human's in the crop
        assert abs(cols[side].mean() - x) < 6.5 and abs(rows[side].mean() - y) < 6
        centres.append(cols[side].mean())
    assert abs(np.mean(centres) - CANONICAL_CROP_POINTS[:2, 0].mean()) < 1.0
    assert luma[40, 64] > 150  # skin between the eyes, above the nose


def test_short_training_run_lowers_the_loss(tiny_set):
    torch.set_num_threads(1)  # two threads on two busy shared cores is several times slower
    data = as_training_set(tiny_set)
    model = create_model("chibinet-xs")
    history = train_model(model, data, None, LoopOptions(epochs=12, batch_size=6, lr=3e-3))
    assert len(history.losses) == 12
    assert np.mean(history.losses[-3:]) < 0.8 * np.mean(history.losses[:2]), history.losses
    assert history.seconds < 60


def test_training_is_reproducible_tensor_for_tensor(tiny_set):
    """The same seed gives the same weights, colour pool and exposure scaling included:
    the shipped weights must come back from `chibi train` exactly."""
    torch.set_num_threads(1)
    data = as_training_set(tiny_set)
    config = {**MODEL_CONFIGS["chibinet-xs"].to_dict(), "color_pool": True,
              "color_layout": True, "exposure_norm": True}  # fmt: skip
    states = []
    for _ in range(2):
        torch.manual_seed(0)
        model = create_model(config)
        train_model(model, data, None, LoopOptions(epochs=2, batch_size=6, lr=3e-3))
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_a_stopped_training_resumes_from_its_checkpoint_to_the_same_weights(tiny_set, tmp_path):
    """A run killed after an epoch (here: its log raises right after epoch 2 of 3 is
    saved) and started again on a fresh network ends tensor for tensor where the run
    that was never stopped ends, with its losses; another run's options are refused."""
    torch.set_num_threads(1)
    data = as_training_set(tiny_set)
    options = LoopOptions(epochs=3, batch_size=6, lr=3e-3, framing=0.5)
    torch.manual_seed(0)
    whole = create_model("chibinet-xs")
    expected = train_model(whole, data, None, options)

    class Stopped(Exception):
        pass

    def stop_after_2(message: str) -> None:
        if message.startswith("epoch 2/3"):
            raise Stopped

    checkpoint = tmp_path / "run.ckpt"
    torch.manual_seed(0)
    with pytest.raises(Stopped):
        train_model(create_model("chibinet-xs"), data, None, options, stop_after_2, checkpoint)
    assert [p.name for p in tmp_path.iterdir()] == ["run.ckpt"]  # no temporary file left
    torch.manual_seed(1)  # other initial weights: what counts is the checkpoint's
    resumed = create_model("chibinet-xs")
    logged = []
    history = train_model(resumed, data, None, options, logged.append, checkpoint)
    assert logged[0] == f"resuming from {checkpoint} after epoch 2/3"
    assert len(logged) == 2 and logged[1].startswith("epoch 3/3")
    assert history.losses == expected.losses
    final = resumed.state_dict()
    assert all(torch.equal(v, final[k]) for k, v in whole.state_dict().items())

    with pytest.raises(ValueError, match=r"another run \(differs in: loop\)"):
        train_model(create_model("chibinet-xs"), data, None,
                    LoopOptions(epochs=3, batch_size=6, lr=1e-3), None, checkpoint)  # fmt: skip
    (tmp_path / "garbage.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="is not a training checkpoint"):
        train_model(create_model("chibinet-xs"), data, None, options, None,
                    tmp_path / "garbage.ckpt")  # fmt: skip


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without a GPU")
def test_training_on_cuda_without_a_gpu_is_refused_before_any_work(tiny_set, tmp_path, capsys):
    model = create_model("chibinet-xs")
    with pytest.raises(ValueError, match="needs a GPU"):
        train_model(model, as_training_set(tiny_set), None, LoopOptions(device="cuda"))
    cache = tmp_path / "synth"
    assert main(["train", "--device", "cuda", "--avatars", "4", "--cache", str(cache)]) == 2
    assert "torch sees no GPU" in capsys.readouterr().err
    assert not cache.exists()  # nothing rendered


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (a GPU machine)")
def test_training_on_cuda_follows_the_cpu_run_and_returns_a_cpu_model(tiny_set):
    """`chibi train --device cuda`: the same batches and augmentation as on the CPU (every
    random draw is made there), so the losses follow the CPU run's, and the trained
    model comes back on the CPU for the refiners and the evaluation."""
    torch.set_num_threads(1)
    data = as_training_set(tiny_set)
    runs = {}
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        model = create_model("chibinet-xs")
        options = LoopOptions(epochs=4, batch_size=6, lr=3e-3, device=device)
        runs[device] = (model, train_model(model, data, None, options).losses)
    model, losses = runs["cuda"]
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert np.allclose(losses, runs["cpu"][1], rtol=0.02), (losses, runs["cpu"][1])
    on_gpu, on_cpu = (predict_arrays(runs[d][0], tiny_set["crops"]) for d in ("cuda", "cpu"))
    assert np.abs(on_gpu.sliders - on_cpu.sliders).max() < 0.02


def test_teacher_labels_mask_the_fields_they_lack():
    records = [
        {"shape": {"eye_size": 0.7}, "expression": {"smile": 0.4},
         "colors": {"skin_color": "#a07e56"}, "confidence": {"eye_size": 0.8, "smile": 0.5}},
        {"shape": {}, "expression": {}, "colors": {}, "confidence": 1.0},
    ]  # fmt: skip
    targets, slider_mask, color_mask = teacher_targets(records)
    eye = SLIDER_FIELDS.index("shape.eye_size")
    smile = SLIDER_FIELDS.index("expression.smile")
    assert targets.sliders[0, eye] == pytest.approx(0.7)
    assert slider_mask[0, eye] == pytest.approx(0.8) and slider_mask[0, smile] == pytest.approx(0.5)
    assert slider_mask[0].sum() == pytest.approx(1.3) and slider_mask[1].sum() == 0
    skin = COLOR_NAMES.index("skin_color")
    assert color_mask[0, skin] == 1.0 and color_mask[0].sum() == 1.0
    assert np.allclose(targets.colors[0, skin], [0xA0 / 255, 0x7E / 255, 0x56 / 255])


def test_flip_augmentation_swaps_the_mirrored_sliders():
    left = SLIDER_FIELDS.index("expression.blink_left")
    right = SLIDER_FIELDS.index("expression.blink_right")
    n = 64
    sliders = torch.zeros(n, len(SLIDER_FIELDS))
    sliders[:, left] = 1.0
    images = torch.zeros(n, 3, 128, 128)
    images[..., :64] = 1.0  # bright left half: a flip moves it to the right
    batch = {"sliders": sliders, "slider_mask": torch.ones_like(sliders)}
    out = augment(images, batch, torch.Generator().manual_seed(0))
    flipped = out[..., 64:].mean(dim=(1, 2, 3)) > out[..., :64].mean(dim=(1, 2, 3))
    assert 10 < int(flipped.sum()) < 54
    assert torch.equal(batch["sliders"][:, right] == 1.0, flipped)
    assert torch.equal(batch["sliders"][:, left] == 1.0, ~flipped)


def test_tight_framing_greys_the_crop_past_one_photo_edge():
    """`--framing`: a share of the crops is flat grey (the pipeline's fill past a photo's
    edge) below a line under the chin, above one over the forehead or beside the face."""
    from avatar3d.training import FRAMING_EDGES, frame_tightly

    images = torch.rand(2000, 3, 32, 32) * 0.4  # never the grey fill itself
    out = frame_tightly(images.clone(), 0.3, torch.Generator().manual_seed(0))
    grey = (out == 128 / 255).all(dim=1)  # (N, H, W)
    cut = grey.flatten(1).any(dim=1)
    assert 0.25 < cut.float().mean() < 0.35
    assert torch.equal(out[~cut], images[~cut])
    sides = {"below": 0, "above": 0, "left": 0, "right": 0}
    for mask in grey[cut]:
        rows, cols = mask.all(dim=1), mask.all(dim=0)  # whole grey rows / columns
        assert torch.equal(mask, rows[:, None] | cols[None, :])  # one straight edge
        if rows.any():  # the edge's place: the share of the crop kept
            side, grey_share = ("below" if rows[-1] else "above"), rows.float().mean()
        else:
            side, grey_share = ("right" if cols[-1] else "left"), cols.float().mean()
        where = 1 - grey_share if side in ("below", "right") else grey_share
        low, high = FRAMING_EDGES[list(sides).index(side)]
        assert low - 1 / 32 <= where <= high + 1 / 32, (side, where)
        sides[side] += 1
    assert sides["below"] > sides["above"] > 0 and sides["left"] > 0 and sides["right"] > 0


def test_augmentation_without_framing_draws_as_before_and_framing_only_adds_grey():
    """Framing draws after everything else, so with it off the augmentation (and the
    shipped recipe's weights) stay as they were, and with it on only the grey differs."""
    images = torch.rand(64, 3, 64, 64)
    sliders = torch.rand(64, len(SLIDER_FIELDS))
    batch = {"sliders": sliders, "slider_mask": torch.ones_like(sliders)}
    outs = []
    for framing in (0.0, 0.5):
        copy = {k: v.clone() for k, v in batch.items()}
        outs.append(augment(images.clone(), copy, torch.Generator().manual_seed(3), framing))
    plain, framed = outs
    differs = (plain != framed).any(dim=1)
    assert differs.flatten(1).any(dim=1).float().mean() > 0.3
    assert (framed.permute(0, 2, 3, 1)[differs] == 128 / 255).all()


def test_lab_conversion_matches_scikit_image():
    rgb = np.random.default_rng(0).random((50, 3))
    ours = srgb_to_lab(torch.from_numpy(rgb)).numpy()
    assert np.allclose(ours, rgb2lab(rgb[None])[0], atol=0.05)


def test_label_command_then_training_on_teacher_labels(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(skdata.astronaut()).save(photos / "astronaut.png")
    Image.fromarray(skdata.coffee()).save(photos / "coffee.jpg")  # no face: skipped
    (photos / "notes.txt").write_text("not a photo")
    labels = tmp_path / "labels.jsonl"
    assert main(["label", str(photos), "-o", str(labels)]) == 0
    records = [json.loads(line) for line in labels.read_text().splitlines()]
    assert [r["path"].endswith("astronaut.png") for r in records] == [True]
    assert "data" not in json.dumps(records)  # labels only, never pixels
    astronaut = records[0]["labels"]
    assert astronaut["glasses"] is False and astronaut["confidence"]["glasses"] > 0.9
    real = load_labelled(labels)
    assert isinstance(real, TrainingSet) and len(real) == 1 and real.source == "teacher"
    assert real.class_mask.sum() == 0  # no hair style / glasses labels from the teacher
    assert real.slider_mask[0, SLIDER_FIELDS.index("shape.head_size")] == 0
    assert real.slider_mask[0, SLIDER_FIELDS.index("shape.eye_size")] > 0
    model = create_model("chibinet-xs")
    history = train_model(model, None, real, LoopOptions(epochs=8, batch_size=4, augment=False))
    assert history.losses[-1] < history.losses[0]


def test_labels_leave_out_what_a_cover_hid_and_what_the_skin_scale_guessed(
    tmp_path, astronaut, astronaut_face
):
    from avatar3d.painted import black_and_white, paint_dark_lenses, paint_face_mask
    from avatar3d.teacher import HIDDEN_WITH_THE_EYES, HIDDEN_WITH_THE_MOUTH

    photos = tmp_path / "photos"
    photos.mkdir()
    covers = {
        "lenses": paint_dark_lenses(astronaut, astronaut_face),
        "mask": paint_face_mask(astronaut, astronaut_face, (25, 25, 28)),
        "plain": astronaut,
        "grey": black_and_white(astronaut),
    }
    for name, rgb in covers.items():
        Image.fromarray(rgb).save(photos / f"{name}.png")
    labels = tmp_path / "labels.jsonl"
    assert main(["label", str(photos), "-o", str(labels)]) == 0
    records = [json.loads(line)["labels"] for line in labels.read_text().splitlines()]
    real = load_labelled(labels)  # sorted by name: grey, lenses, mask, plain
    assert len(real) == 4
    unmeasured = [set(record["hidden"]) | set(record["skin_scale"]) for record in records]
    assert unmeasured == [
        {"skin_color", "lip_color"},
        set(HIDDEN_WITH_THE_EYES),
        set(HIDDEN_WITH_THE_MOUTH),
        set(),
    ]
    for i, fields in enumerate(unmeasured):
        for j, field in enumerate(SLIDER_FIELDS):
            labelled = records[i]["confidence"].get(field.rpartition(".")[2], 0) > 0
            assert (real.slider_mask[i, j] > 0) == (labelled and field not in fields), field
        for j, field in enumerate(COLOR_NAMES):
            assert (real.color_mask[i, j] > 0) == (field not in fields), field
    # the photo path still holds what a cover hid at its default, sure (`fusion.fuse`)
    _, slider_conf, color_conf = teacher_targets(records)
    assert slider_conf[2, SLIDER_FIELDS.index("expression.smile")] == 1.0
    assert color_conf[0, COLOR_NAMES.index("skin_color")] > 0


def test_a_long_style_read_leaves_its_length_out_of_the_labels():
    """The teacher's length of long hair is the long style's (`teacher_hair`); training
    labels carry no style, so it is left out of them, and kept for the photo path."""
    record = {"hair_length": 0.0, "hair_style": "long", "confidence": {"hair_length": 0.8}}
    hair = SLIDER_FIELDS.index("hair_length")
    assert teacher_targets([record], measured_only=True)[1][0, hair] == 0
    assert teacher_targets([record])[1][0, hair] == pytest.approx(0.8)
    short = record | {"hair_style": None}
    assert teacher_targets([short], measured_only=True)[1][0, hair] == pytest.approx(0.8)


@pytest.mark.timeout(120)
def test_label_skips_entries_that_are_not_readable_photos(tmp_path, capsys):
    """A folder, a dangling link and a FIFO named like photos are each one `skip` line
    (a traceback, a 'no such file' that ended the run, and a hang before); the photo
    beside them is labelled."""
    photos = tmp_path / "photos"
    (photos / "album.jpg").mkdir(parents=True)
    (photos / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    os.mkfifo(photos / "pipe.jpg")
    Image.fromarray(skdata.astronaut()).save(photos / "z.png")
    labels = tmp_path / "labels.jsonl"
    assert main(["label", str(photos), "-o", str(labels)]) == 0
    errors = capsys.readouterr().err
    for name in ("album.jpg", "gone.jpg", "pipe.jpg"):
        assert f"skip {name}: io_error" in errors, errors
    records = [json.loads(line) for line in labels.read_text().splitlines()]
    assert [record["path"].endswith("z.png") for record in records] == [True]


def test_photos_are_not_written_by_labelling(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(skdata.astronaut()).save(buffer, "PNG")
    (tmp_path / "a.png").write_bytes(buffer.getvalue())
    before = set(p.name for p in tmp_path.iterdir())
    main(["label", str(tmp_path), "-o", str(tmp_path / "l.jsonl")])
    assert set(p.name for p in tmp_path.iterdir()) - before == {"l.jsonl"}


def test_refiners_leave_training_alone_then_learn_colours_and_sliders(tiny_set):
    """With `color_refine` and `slider_refine` the network trains exactly as without
    (the refiners are built last, frozen and zero at their output); `fit_refiners` then
    lowers the colour and the slider error, each refiner fitting as it would alone."""
    torch.set_num_threads(1)
    data = as_training_set(tiny_set)
    config = {**MODEL_CONFIGS["chibinet-xs"].to_dict(), "color_pool": True}
    models = []
    for color, slider in ((0, 0), (16, 16), (16, 0)):
        torch.manual_seed(0)
        model = create_model({**config, "color_refine": color, "color_refiners": 2,
                              "slider_refine": slider, "slider_refiners": 2})  # fmt: skip
        train_model(model, data, None, LoopOptions(epochs=2, batch_size=6, lr=3e-3))
        models.append(model)
    plain, refined, colour_only = models
    trunk = plain.state_dict()
    assert all(torch.equal(trunk[k], refined.state_dict()[k]) for k in trunk)
    images = crops_to_tensor(tiny_set["crops"])
    with torch.inference_mode():
        assert torch.equal(refined(images)["colors"], plain(images)["colors"])
        assert torch.equal(refined(images)["sliders"], plain(images)["sliders"])

    losses = fit_refiners(refined, data, epochs=200)
    assert set(losses) == {"color", "slider"}
    assert losses["color"][-1] < 0.7 * losses["color"][0], losses["color"][::20]
    assert losses["slider"][-1] < 0.9 * losses["slider"][0], losses["slider"][::20]
    assert all(torch.equal(trunk[k], refined.state_dict()[k]) for k in trunk)
    for refiner in (refined.color_refiner, refined.slider_refiner):
        assert not any(p.requires_grad for p in refiner.parameters())
    before, after = (predict_arrays(m, tiny_set["crops"]) for m in (plain, refined))
    for field in ("colors", "sliders"):
        error = [np.abs(getattr(p, field) - tiny_set[field]).mean() for p in (before, after)]
        assert error[1] < 0.9 * error[0], (field, error)
    # the same batches, apart parameters and losses: the colour refiners alone fit alike
    assert fit_refiners(colour_only, data, epochs=200).keys() == {"color"}
    for mine, alone in zip(refined.color_refiner.parameters(),
                           colour_only.color_refiner.parameters(), strict=True):  # fmt: skip
        torch.testing.assert_close(mine, alone)


def test_train_command_fits_the_refiner_and_saves_loadable_weights(tmp_path, capsys):
    """`chibi train` with the default model, shrunk: renders, trains, renders the
    refiners' own set, fits the colour refiners on both, writes weights that load by
    name with their checksum."""
    from avatar3d.model_files import DEFAULT_MODEL
    from avatar3d.regressor import load_pretrained

    assert MODEL_CONFIGS[DEFAULT_MODEL].color_refine
    out = tmp_path / "weights"
    args = ["train", "--avatars", "4", "--epochs", "1", "--workers", "1", "--no-eval",
            "--cache", str(tmp_path / "synth"), "--out", str(out),
            "--checkpoint", str(tmp_path / "run.ckpt")]  # fmt: skip
    assert main(args) == 0
    log = capsys.readouterr().err
    assert "resuming" not in log and (tmp_path / "run.ckpt").exists()
    # 3 training avatars (avatar 0 is held out) and 2 x 4 fresh ones, each also mirrored
    assert "colour refiners: Lab L1" in log and "slider refiners: L1" in log
    assert "on 22 crops" in log
    info = json.loads((out / f"{DEFAULT_MODEL}.json").read_text())
    assert info["training"]["refine_set"].startswith("refine-a8-v1-s3-")
    assert (tmp_path / "synth" / info["training"]["refine_set"]).exists()
    for kind in ("color", "slider"):
        losses = info["training"][f"{kind}_refiner_loss"]
        assert losses[-1] < losses[0], kind
    model = load_pretrained(DEFAULT_MODEL, out)
    for refiner in (model.color_refiner, model.slider_refiner):
        assert refiner.weights[-1].abs().sum() > 0
    # the same command again takes the finished network from its checkpoint, refits the
    # refiners and writes the same weights
    assert main(args) == 0
    assert f"resuming from {tmp_path / 'run.ckpt'} after epoch 1/1" in capsys.readouterr().err
    assert json.loads((out / f"{DEFAULT_MODEL}.json").read_text())["sha256"] == info["sha256"]
    # ... and with other options it refuses that checkpoint, before training anything
    assert main([*args, "--epochs", "2"]) == 2
    assert "was written by another run (differs in: loop)" in capsys.readouterr().err

    # fine-tuning those weights, with tight framing: the network trains without the
    # refiners (restarted at zero, as a fresh network's are), then they are fitted again
    from avatar3d.training import new_model

    started = new_model(DEFAULT_MODEL, str(out / f"{DEFAULT_MODEL}.pt"))
    assert started.slider_refiner.weights[-1].abs().sum() == 0
    assert started.color_refiner.weights[-1].abs().sum() == 0
    assert torch.equal(started.out.weight, model.out.weight)
    args = ["train", "--init", str(out / f"{DEFAULT_MODEL}.pt"), "--framing", "0.5",
            "--avatars", "4", "--epochs", "1", "--workers", "1", "--no-eval",
            "--cache", str(tmp_path / "synth"), "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    assert "slider refiners: L1" in capsys.readouterr().err
    tuned = json.loads((out / f"{DEFAULT_MODEL}-finetuned.json").read_text())["training"]
    assert tuned["loop"]["framing"] == 0.5 and tuned["options"]["init"].endswith(".pt")
    assert tuned["init_sha256"] == json.loads((out / f"{DEFAULT_MODEL}.json").read_text())["sha256"]
    model = load_pretrained(f"{DEFAULT_MODEL}-finetuned", out)
    assert model.slider_refiner.weights[-1].abs().sum() > 0
