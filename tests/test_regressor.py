"""ChibiNet: factory/config round trip, weights checksum, inference shapes and ranges."""

import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skimage_data

from avatar3d.errors import ChibiError
from avatar3d.inference import Regressor
from avatar3d.model_files import WEIGHTS_DIR, sha256_file, weights_info
from avatar3d.param_arrays import COLOR_NAMES, SLIDER_FIELDS, decode_params, encode_params
from avatar3d.params import GLASSES, HAIR_STYLES, AvatarParams
from avatar3d.regressor import (
    COLOR_COLUMNS,
    COLOR_LAYOUT,
    INPUT_SIZE,
    MODEL_CONFIGS,
    ChibiNetConfig,
    color_layout_bias,
    create_model,
    fuse_batchnorm,
    load_pretrained,
    save_weights,
)
from avatar3d.train_recipe import TrainOptions


def _crops(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, INPUT_SIZE, INPUT_SIZE, 3), np.uint8)


def test_config_round_trips_through_the_factory():
    for name, config in MODEL_CONFIGS.items():
        again = ChibiNetConfig.from_dict(json.loads(json.dumps(config.to_dict())))
        assert again == config
        a, b = create_model(name), create_model(again.to_dict())
        assert [p.shape for p in a.parameters()] == [p.shape for p in b.parameters()]
    with pytest.raises(ValueError, match="unknown model"):
        create_model("resnet-9000")
    with pytest.raises(ValueError, match="unknown ChibiNet config keys"):
        ChibiNetConfig.from_dict({"layers": 3})


def test_every_head_is_bounded_and_decodes_to_valid_params():
    torch.manual_seed(0)
    model = create_model("chibinet-xs")
    # push the raw outputs far out so the bounding functions are exercised
    torch.nn.init.normal_(model.out.weight, std=10.0)
    predictions = Regressor(model, "cpu").predict(_crops(3))
    assert len(predictions) == 3
    for p in predictions:
        assert p.sliders.shape == (len(SLIDER_FIELDS),)
        assert p.colors.shape == (len(COLOR_NAMES), 3)
        assert p.hair_style_probs.shape == (len(HAIR_STYLES),)
        assert p.glasses_probs.shape == (len(GLASSES),)
        for values in (p.sliders, p.colors):
            assert values.min() >= 0.0 and values.max() <= 1.0
        assert p.hair_style_probs.sum() == pytest.approx(1.0, abs=1e-5)
        assert isinstance(p.to_params(), AvatarParams)


def test_params_encode_decode_round_trip():
    params = AvatarParams(
        shape={"eye_size": 0.8, "jaw_width": 0.2}, expression={"smile": 0.7},
        skin_color="#8d5524", hair_style="ponytail", hair_length=0.9, glasses="round",
    )  # fmt: skip
    t = encode_params([params])
    again = decode_params(t.sliders[0], t.colors[0], t.hair_style[0], t.glasses[0])
    assert again == params


@pytest.mark.parametrize("color_pool", [False, True])
def test_batchnorm_folding_keeps_outputs(color_pool):
    torch.manual_seed(1)
    config = {**MODEL_CONFIGS["chibinet-xs"].to_dict(), "color_pool": color_pool}
    model = create_model(config)
    model.train()
    with torch.no_grad():  # give the running stats non-trivial values
        model(torch.rand(8, 3, INPUT_SIZE, INPUT_SIZE))
    model.eval()
    x = torch.rand(2, 3, INPUT_SIZE, INPUT_SIZE)
    with torch.no_grad():
        before = model.forward_logits(x)
        after = fuse_batchnorm(model).forward_logits(x)
    assert torch.allclose(before, after, atol=1e-4)


def test_color_pool_reads_the_pixels_where_it_looks():
    """Every colour looking at one cell of the first stage's map (rows 40-43, columns
    80-83 of a 128 px crop for chibinet-xs) reports the colour of those pixels."""
    model = create_model({**MODEL_CONFIGS["chibinet-xs"].to_dict(), "color_pool": True}).eval()
    with torch.no_grad():
        for weights in (model.out.weight, model.out.bias, model.color_where.weight,
                        model.color_where.bias, model.color_weight):  # fmt: skip
            weights.zero_()
        model.out.bias[COLOR_COLUMNS] = -4.0
        model.color_position.fill_(-1e4)
        model.color_position[:, 10, 20] = 0.0
        model.color_weight[:, -3:, :] = 8.0 * torch.eye(3)  # colour = sigmoid(8 rgb - 4)
        image = torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE)
        image[:, 2] = 1.0  # blue everywhere
        assert (model(image)["colors"][0].argmax(1) == 2).all()
        image[:, :, 40:44, 80:84] = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
        colors = model(image)["colors"][0]
        where = model.color_attention(image)
    assert (colors[:, 0] > 0.95).all() and (colors[:, 1:] < 0.05).all()
    assert where.shape == (1, model.n_colors, 32, 32)
    assert torch.allclose(where[0, :, 10, 20], torch.ones(model.n_colors))


def test_exposure_norm_keeps_the_sliders_and_leaves_the_colours_to_the_pixels():
    """With exposure_norm a darker copy of a crop (no clipping) gives the same sliders,
    while the colours, read from the pixels as they are, still see the difference."""
    torch.manual_seed(0)
    config = {**MODEL_CONFIGS["chibinet-xs"].to_dict(), "color_pool": True}
    crop = 0.2 + 0.6 * torch.rand(1, 3, INPUT_SIZE, INPUT_SIZE)
    for exposure_norm in (False, True):
        torch.manual_seed(1)
        model = create_model({**config, "exposure_norm": exposure_norm})
        with torch.no_grad():  # non-trivial running stats, so the untrained net is not linear
            model(torch.rand(8, 3, INPUT_SIZE, INPUT_SIZE))
            model.eval()
            model.out.weight.mul_(100.0)  # the untrained heads' outputs are tiny
            bright, dark = model.forward_logits(crop), model.forward_logits(0.7 * crop)
        moved = (bright - dark).abs()
        sliders, colors = moved[0, : model.n_sliders], moved[0, model.n_sliders :][:15]
        assert sliders.max() < 1e-5 if exposure_norm else sliders.max() > 1e-4
        assert colors.max() > 1e-3
    with pytest.raises(ValueError):
        ChibiNetConfig(exposure_norm=True)


def test_color_layout_starts_each_colour_where_it_lies():
    """The initial softmax of each colour puts most of its weight near its own places
    in the canonical crop (the irises around the eye centres, the lips at the mouth)."""
    bias = color_layout_bias(64)
    weights = torch.softmax(bias.flatten(1), dim=-1).view(-1, 64, 64)
    centres = (torch.arange(64) + 0.5) * 2.0
    for k, name in enumerate(COLOR_NAMES):
        near = torch.zeros(64, 64, dtype=torch.bool)
        for x, y, sigma in COLOR_LAYOUT[name]:
            dist2 = (centres.view(1, -1) - x) ** 2 + (centres.view(-1, 1) - y) ** 2
            near |= dist2 <= (2.0 * sigma) ** 2
        assert weights[k][near].sum() > 0.5, name
    model = create_model("chibinet-mce")
    assert torch.equal(model.color_position.detach(), bias)


def test_saved_weights_load_by_name_and_tampering_is_refused(tmp_path):
    model = create_model("chibinet-xs").eval()
    save_weights(model, tmp_path, "tiny", {"note": "test"})
    info = weights_info("tiny", tmp_path)
    assert info["sha256"] == sha256_file(tmp_path / "tiny.pt")
    assert info["config"]["name"] == "chibinet-xs" and info["note"] == "test"
    loaded = load_pretrained("tiny", tmp_path, device="cpu")
    x = torch.rand(1, 3, INPUT_SIZE, INPUT_SIZE)
    with torch.no_grad():  # float16 storage: equal up to half precision
        assert torch.allclose(model.forward_logits(x), loaded.forward_logits(x), atol=2e-2)

    data = bytearray((tmp_path / "tiny.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "tiny.pt").write_bytes(bytes(data))
    with pytest.raises(ChibiError) as err:
        load_pretrained("tiny", tmp_path)
    assert err.value.code == "weights_checksum"
    with pytest.raises(ChibiError) as err:
        load_pretrained("absent", tmp_path)
    assert err.value.code == "model_unavailable"


def test_shipped_weights_verify_and_fit_the_budget(tmp_path):
    info = weights_info("default")
    path = WEIGHTS_DIR / info["file"]
    assert path.stat().st_size <= 5 * 1024 * 1024
    assert sha256_file(path) == info["sha256"]
    model = load_pretrained("default", device="cpu")
    # (a record written before a config option existed means that option's default)
    recorded = ChibiNetConfig.from_dict(info["config"])
    assert model.config == recorded
    # `chibi train` with its defaults builds this very architecture
    assert TrainOptions().model == info["name"] == info["training"]["options"]["model"]
    assert MODEL_CONFIGS[info["name"]] == recorded
    # a tampered copy of the shipped file is refused
    for name in (info["file"], f"{info['name']}.json"):
        shutil.copy(WEIGHTS_DIR / name, tmp_path / name)
    with open(tmp_path / info["file"], "r+b") as handle:
        handle.seek(200)
        byte = handle.read(1)
        handle.seek(200)
        handle.write(bytes([byte[0] ^ 1]))
    with pytest.raises(ChibiError) as err:
        load_pretrained(info["name"], tmp_path)
    assert err.value.code == "weights_checksum"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (a GPU machine)")
def test_cuda_is_picked_when_present_and_predicts_what_the_cpu_does():
    """CPU by default, CUDA when present, and the same avatar either way: the CUDA path
    (device pick, checksum load, BN folding, inference) against the CPU on real-photo
    pixels. TF32 convolutions moved the outputs 6e-4 and changed the rounded params."""
    from skimage import data

    from avatar3d.regressor import pick_device

    assert pick_device().type == "cuda"
    assert next(load_pretrained("default").parameters()).is_cuda
    photo = data.astronaut()
    crops = np.stack(
        [photo[y : y + INPUT_SIZE, x : x + INPUT_SIZE] for y in (0, 96, 192) for x in (96, 192)]
        + [photo[40:168, 180:308, :][:, ::-1]]
    )
    cpu = Regressor(load_pretrained("default", device="cpu"), "cpu").predict(crops)
    gpu = Regressor(load_pretrained("default", device="cuda"), "cuda").predict(crops)
    for a, b in zip(cpu, gpu, strict=True):
        assert np.abs(a.sliders - b.sliders).max() < 2e-5
        assert np.abs(a.colors - b.colors).max() < 2e-5
        assert a.hair_style_probs.argmax() == b.hair_style_probs.argmax()
        assert a.glasses_probs.argmax() == b.glasses_probs.argmax()


def test_the_pipeline_runs_the_cnn_in_onnxruntime_with_pytorchs_results():
    """On the CPU the photo path runs ChibiNet through ONNX Runtime (the graph exported
    from the checked weights); it must give what PyTorch gives, for one face and for
    several at once, with and without the mirror average."""
    from skimage import data

    from avatar3d.inference import OnnxChibiNet
    from avatar3d.pipeline import PhotoPipeline

    pipeline = PhotoPipeline(device="cpu")
    assert pipeline.regressor.backend == "onnxruntime"
    assert isinstance(pipeline.regressor.forward, OnnxChibiNet)
    photo = data.astronaut()
    crops = np.stack(
        [photo[y : y + INPUT_SIZE, x : x + INPUT_SIZE] for y in (0, 96, 192) for x in (96, 192)]
    )
    for flip in (True, False):
        eager = Regressor(load_pretrained(), "cpu", flip_average=flip, backend="torch")
        onnx = Regressor(load_pretrained(), "cpu", flip_average=flip)
        assert (eager.backend, onnx.backend) == ("torch", "onnxruntime")
        for batch in (crops, crops[2:3]):
            for a, b in zip(eager.predict(batch), onnx.predict(batch), strict=True):
                assert np.abs(a.sliders - b.sliders).max() < 2e-5
                assert np.abs(a.colors - b.colors).max() < 2e-5
                assert np.abs(a.hair_style_probs - b.hair_style_probs).max() < 2e-5
                assert np.abs(a.glasses_probs - b.glasses_probs).max() < 2e-5
    with pytest.raises(ValueError, match="backend must be one of"):
        Regressor(load_pretrained(), "cpu", backend="tensorrt")


def test_the_cpu_path_runs_a_cached_graph_of_the_checked_weights(tmp_path):
    """`OnnxRegressor` exports the shipped weights once into its cache, named by their
    sha256, and from then on reads the graph back: the same bytes and predictions as a
    `Regressor` exporting in memory. A damaged cached graph is exported again, tampered
    weights are refused before any graph is looked up."""
    from skimage import data

    from avatar3d.onnx_net import OnnxRegressor, cached_graph, graph_key

    crops = np.stack([data.astronaut()[y : y + INPUT_SIZE, 96:224] for y in (0, 96, 192)])
    sha = weights_info("default")["sha256"]
    cached = OnnxRegressor.from_weights("default", WEIGHTS_DIR, tmp_path)
    stored = tmp_path / f"chibinet-{graph_key(sha)}.onnx"
    assert [path.name for path in tmp_path.iterdir()] == [stored.name]
    in_memory = Regressor(load_pretrained("default", device="cpu"), "cpu")
    assert stored.read_bytes() == cached.forward.graph == in_memory.forward.graph
    for a, b in zip(cached.predict(crops), in_memory.predict(crops), strict=True):
        assert np.array_equal(a.sliders, b.sliders) and np.array_equal(a.colors, b.colors)

    def no_export() -> bytes:
        raise AssertionError("the cached graph was exported again")

    assert cached_graph(sha, no_export, tmp_path) == stored.read_bytes()
    assert graph_key("0" * 64) != graph_key(sha)  # other weights, another graph

    stored.write_bytes(b"not a graph")
    again = OnnxRegressor.from_weights("default", WEIGHTS_DIR, tmp_path)
    assert stored.read_bytes() == again.forward.graph == in_memory.forward.graph

    for name in (weights_info("default")["file"], f"{weights_info('default')['name']}.json"):
        shutil.copy(WEIGHTS_DIR / name, tmp_path / name)
    (tmp_path / weights_info("default")["file"]).write_bytes(b"tampered")
    with pytest.raises(ChibiError) as err:
        OnnxRegressor.from_weights(weights_info("default")["name"], tmp_path, tmp_path)
    assert err.value.code == "weights_checksum"


def test_the_graph_cache_keeps_the_most_recently_used_graphs(tmp_path):
    """Each version of the weights, the exporting code or torch adds a 4 MB graph:
    writing one keeps the `KEEP_GRAPHS` most recently used (a graph read counts as
    used) and drops a `.part` a killed process left, not one being written now."""
    from avatar3d.onnx_net import KEEP_GRAPHS, STALE_PART_S, cached_graph, graph_key

    used, new = "1" * 64, "2" * 64
    hour_ago = time.time() - 3600
    old = [tmp_path / f"chibinet-{i:032x}.onnx" for i in range(KEEP_GRAPHS + 1)]
    old.append(tmp_path / f"chibinet-{graph_key(used)}.onnx")  # the least recently used
    for age, path in enumerate(old):
        path.write_bytes(b"graph")
        os.utime(path, (hour_ago - age * 60, hour_ago - age * 60))
    (tmp_path / "killed.part").write_bytes(b"half")
    os.utime(tmp_path / "killed.part", (hour_ago - STALE_PART_S, hour_ago - STALE_PART_S))
    (tmp_path / "writing.part").write_bytes(b"half")
    (tmp_path / "notes.txt").write_bytes(b"not ours")

    assert cached_graph(used, lambda: b"unused", tmp_path) == b"graph"  # now the newest
    assert cached_graph(new, lambda: b"new graph", tmp_path) == b"new graph"
    newest = {f"chibinet-{graph_key(new)}.onnx", old[-1].name, *(p.name for p in old[:2])}
    assert len(newest) == KEEP_GRAPHS
    kept = {path.name for path in tmp_path.iterdir()}
    assert kept == newest | {"notes.txt", "writing.part"}


def test_a_cached_graph_reads_a_photo_without_importing_torch(tmp_path):
    """With its graph cached, a fresh process's photo path never imports torch (1.3 s of
    a 2.9 s `chibi params`), and reads what the process that exported it read."""
    photo = tmp_path / "astronaut.png"
    Image.fromarray(skimage_data.astronaut()).save(photo)
    code = (
        "import sys\n"
        "from avatar3d.pipeline import PhotoPipeline\n"
        f"params = PhotoPipeline(device='cpu').params(open({str(photo)!r}, 'rb').read())[0]\n"
        "print('torch' in sys.modules, params.to_json())\n"
    )
    env = {**os.environ, "CHIBI_ONNX_CACHE": str(tmp_path / "onnx")}
    runs = [
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        for _ in range(2)
    ]
    assert all(run.returncode == 0 for run in runs), runs[0].stderr[-2000:]
    exported, cached = (run.stdout.split(" ", 1) for run in runs)
    assert exported[0] == "True" and cached[0] == "False"
    assert exported[1] == cached[1]
