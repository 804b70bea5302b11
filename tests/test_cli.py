import io
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pygltflib
import pytest
from PIL import Image

from server.cli import main

REPO = Path(__file__).resolve().parents[1]
CHIBI = REPO / ".venv" / "bin" / "chibi"


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """One file per format, written through the CLI with default params."""
    folder = tmp_path_factory.mktemp("out")
    paths = {}
    for fmt, name in (("glb", "a.glb"), ("vrm1", "a1.vrm"), ("vrm0", "a0.vrm")):
        path = folder / name
        assert main(["avatar", "--format", fmt, "-o", str(path)]) == 0
        paths[fmt] = path
    return paths


def test_every_format_writes_a_binary_gltf(written):
    for fmt, path in written.items():
        data = path.read_bytes()
        assert data[:4] == b"glTF", fmt
        assert int.from_bytes(data[8:12], "little") == len(data), fmt
    # no temporary files are left next to the outputs
    folder = written["glb"].parent
    assert sorted(p.name for p in folder.iterdir()) == ["a.glb", "a0.vrm", "a1.vrm"]


def test_vrm_files_carry_the_thumbnail(written):
    from exporters.inspect import load_gltf

    for fmt in ("vrm1", "vrm0"):
        gltf = load_gltf(written[fmt].read_bytes())
        assert any(image.mimeType == "image/png" for image in gltf.images)
        assert len(gltf.images) >= 2, fmt  # the atlas and the thumbnail


def test_no_thumbnail_leaves_the_vrm_thumbnail_out(written, tmp_path):
    from exporters.inspect import load_gltf

    for fmt in ("vrm1", "vrm0"):
        path = tmp_path / f"{fmt}.vrm"
        assert main(["avatar", "--format", fmt, "--no-thumbnail", "-o", str(path)]) == 0
        images = len(load_gltf(path.read_bytes()).images)
        assert images == len(load_gltf(written[fmt].read_bytes()).images) - 1, fmt


def test_inspect_matches_the_built_avatar(written, capsys):
    from avatar3d.build import build_avatar
    from avatar3d.params import AvatarParams

    avatar = build_avatar(AvatarParams())
    for fmt, path in written.items():
        capsys.readouterr()
        assert main(["inspect", str(path), "--json"]) == 0
        stats = json.loads(capsys.readouterr().out)
        assert stats["triangles"] == avatar.triangle_count, fmt
        assert stats["morph_targets"]["count"] == len(avatar.morph_targets), fmt
        assert stats["skinned_meshes"] == 1
        assert stats["format"] == {"glb": "glb", "vrm1": "VRM 1.0", "vrm0": "VRM 0.x"}[fmt]
        assert stats["performance"]["Quest"]["rank"] == "Excellent", stats["performance"]
        assert stats["performance"]["PC"]["rank"] == "Excellent"
    assert main(["inspect", str(written["vrm1"])]) == 0
    table = capsys.readouterr().out
    assert "triangles" in table and "Quest" in table and "Excellent" in table


def test_inspect_counts_a_shared_vertex_buffer_once(tmp_path, capsys):
    """A high-quality avatar's materials are primitives of one mesh over one vertex
    buffer: its vertices count once, as an engine imports them (not once a material)."""
    from avatar3d.build import build_avatar
    from avatar3d.params import AvatarParams

    avatar = build_avatar(AvatarParams(), "high")
    path = tmp_path / "high.glb"
    assert main(["avatar", "--quality", "high", "--format", "glb", "-o", str(path)]) == 0
    capsys.readouterr()
    assert main(["inspect", str(path), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["material_slots"] > 1
    assert stats["vertices"] == len(avatar.vertices)


def test_preview_of_a_written_file(written, tmp_path):
    out = tmp_path / "p.png"
    assert main(["preview", str(written["vrm1"]), "-o", str(out), "--size", "128"]) == 0
    image = np.asarray(Image.open(io.BytesIO(out.read_bytes())))
    assert image.shape[:2] == (128, 256)
    assert image.std() > 10


@pytest.mark.parametrize(
    "content, field",
    [
        ('{"hair_length": "long"}', "hair_length"),
        ('{"shape": {"eye_size": 2}}', "shape.eye_size"),
        ('{"hair_style": "mohawk"}', "hair_style"),
        ('{"skin_color": 12}', "skin_color"),
        ('{"tail": true}', "tail"),
        ('{"shape": {"eye_size": 0.5,', "malformed JSON"),
        pytest.param("[" * 100_000 + "]" * 100_000, "malformed JSON", id="nested-100000-deep"),
        pytest.param('{"hair_length": 1%s}' % ("0" * 5000), "malformed JSON", id="5001-digits"),
        ("[1, 2]", "JSON object"),
        (None, "--params"),  # missing file
    ],
)
def test_bad_params_exit_2_name_the_field_and_write_nothing(tmp_path, capsys, content, field):
    params = tmp_path / "p.json"
    if content is not None:
        params.write_text(content)
    out = tmp_path / "out.vrm"
    assert main(["avatar", "--params", str(params), "-o", str(out)]) == 2
    assert field in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == (["p.json"] if content else [])


def test_client_reads_its_files_as_the_other_commands_do(tmp_path, capsys):
    """A folder given as the photo or the params file: one line and the same codes as
    chibi convert / chibi avatar, before any connection is tried."""
    args = ["-o", str(tmp_path / "c.vrm"), "--url", "ws://127.0.0.1:9/ws"]
    assert main(["client", "--params", str(tmp_path), *args]) == 2
    assert f"cannot read {tmp_path}" in capsys.readouterr().err
    assert main(["client", str(tmp_path), *args]) == 3
    assert "[invalid_image]: cannot read" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_client_checks_its_outputs_before_the_round_trip(tmp_path, capsys):
    """An output under a file (or a missing folder) was a traceback after the avatar came
    back (or a folder made without a word); now io_error before connecting (exit 4)."""
    (tmp_path / "file").write_text("not a folder")
    url = ["--url", "ws://127.0.0.1:9/ws", "--params", str(REPO / "samples/params/default.json")]
    for output in ("file/x.vrm", "missing/x.vrm"):
        assert main(["client", *url, "-o", str(tmp_path / output)]) == 3
        assert "[io_error]" in capsys.readouterr().err
    assert main(["client", *url, "-o", str(tmp_path / "a.vrm"), "--preview", str(tmp_path)]) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_label_leaves_earlier_labels_alone_when_it_finds_no_face(tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (200, 200), (120, 120, 120)).save(photos / "grey.png")
    labels = tmp_path / "labels.jsonl"
    labels.write_text("earlier labels\n")
    assert main(["label", str(photos), "-o", str(labels)]) == 1
    assert "no face labelled" in capsys.readouterr().err
    assert labels.read_text() == "earlier labels\n"
    assert main(["label", str(photos), "-o", str(tmp_path / "missing" / "l.jsonl")]) == 3


def test_a_failed_export_keeps_the_old_file(tmp_path, monkeypatch, capsys):
    import exporters

    out = tmp_path / "keep.glb"
    out.write_bytes(b"old")

    def broken_export(avatar, fmt, thumbnail_png=None):
        raise RuntimeError("simulated failure in the middle of an export")

    monkeypatch.setattr(exporters, "export", broken_export)
    with pytest.raises(RuntimeError):
        main(["avatar", "-o", str(out)])
    assert out.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.glb"]


def test_unwritable_output_is_a_clear_error(tmp_path, capsys):
    out = tmp_path / "missing-folder" / "a.glb"
    assert main(["avatar", "-o", str(out)]) == 3
    assert "io_error" in capsys.readouterr().err


@pytest.mark.parametrize("output", ["", ".", "/"])
def test_an_output_without_a_file_name_is_a_clear_error(output, capsys):
    assert main(["avatar", "-o", output]) == 3
    assert "[io_error]: the output needs a file name" in capsys.readouterr().err


def test_a_folder_as_the_output_is_refused_before_the_work(tmp_path, capsys):
    """`chibi eval --sheet DIR` ran the minutes-long evaluation and failed at the write."""
    assert main(["eval", "--sheet", str(tmp_path)]) == 3
    assert f"[io_error]: the output {tmp_path} is a folder" in capsys.readouterr().err
    assert main(["avatar", "-o", str(tmp_path)]) == 3
    assert list(tmp_path.iterdir()) == []


def test_an_output_that_is_a_pipe_is_written_into_not_replaced(tmp_path):
    """`-o /dev/stdout` or a FIFO: the bytes go down the pipe (renaming a file over it,
    as root, replaced /dev/null with a model)."""
    import stat
    import threading

    fifo = tmp_path / "out.glb"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    assert main(["avatar", "-o", str(fifo)]) == 0
    reader.join(timeout=30)
    assert received and received[0][:4] == b"glTF"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["out.glb"]


def test_inspect_and_preview_reject_non_models(tmp_path, capsys):
    bogus = tmp_path / "bogus.glb"
    bogus.write_bytes(b"hello, not a model")
    assert main(["inspect", str(bogus)]) == 3
    assert "invalid_model" in capsys.readouterr().err
    assert main(["preview", str(bogus), "-o", str(tmp_path / "x.png")]) == 3
    assert not (tmp_path / "x.png").exists()
    assert main(["inspect", str(tmp_path / "nope.vrm")]) == 2


def test_installed_console_script(tmp_path, capsys):
    assert CHIBI.exists(), "the console script is installed by `make setup`"
    out = tmp_path / "cli.vrm"
    env = {**os.environ, "PYOPENGL_PLATFORM": "egl"}
    done = subprocess.run(
        [str(CHIBI), "avatar", "-o", str(out)], capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, done.stderr
    assert out.read_bytes()[:4] == b"glTF"
    assert main(["inspect", str(out)]) == 0
    assert "VRM 1.0" in capsys.readouterr().out  # .vrm without --format means VRM 1.0
    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = capsys.readouterr().out
    assert all(name in help_text for name in ("avatar", "preview", "inspect"))


def _stats(**overrides):
    stats = {
        "triangles": 7_500,
        "texture_memory_mb": 10.0,
        "skinned_meshes": 1,
        "meshes": 0,
        "material_slots": 1,
        "bones": 75,
        "bounds_m": [0.8, 1.1, 0.4],
    }
    return {**stats, **overrides}


@pytest.mark.parametrize(
    "overrides, pc, quest, limited_by",
    [
        ({}, "Excellent", "Excellent", []),
        ({"triangles": 7_501}, "Excellent", "Good", ["triangles"]),
        ({"material_slots": 2}, "Excellent", "Medium", ["material_slots"]),
        ({"texture_memory_mb": 40.01}, "Good", "VeryPoor", ["texture_memory_mb"]),
        ({"triangles": 70_001}, "VeryPoor", "VeryPoor", ["triangles"]),
        ({"bones": 151}, "Medium", "VeryPoor", ["bones"]),
        ({"bounds_m": [0.8, 5.5, 0.4]}, "Medium", "Medium", ["bounds_m"]),
    ],
)
def test_vrchat_rank_tables(overrides, pc, quest, limited_by):
    from exporters.inspect import performance_ranks

    ranks = performance_ranks(_stats(**overrides))
    assert ranks["PC"]["rank"] == pc
    assert ranks["Quest"]["rank"] == quest
    assert ranks["Quest"]["limited_by"] == limited_by


def test_texture_memory_counts_the_mip_chain():
    from exporters.inspect import _mip_chain_bytes

    assert _mip_chain_bytes(1024, 1024) == 4 * sum(4**k for k in range(11))
    assert _mip_chain_bytes(1, 1) == 4
    assert _mip_chain_bytes(4, 1) == 4 * (4 + 2 + 1)


def _with_json_change(glb: bytes, path: tuple, value) -> bytes:
    """The same glb with one JSON value replaced (the binary chunk kept)."""
    json_len = int.from_bytes(glb[12:16], "little")
    doc = json.loads(glb[20 : 20 + json_len])
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    chunk = json.dumps(doc).encode()
    chunk += b" " * (-len(chunk) % 4)
    rest = glb[20 + json_len :]
    total = 20 + len(chunk) + len(rest)
    header = b"glTF" + (2).to_bytes(4, "little") + total.to_bytes(4, "little")
    return header + len(chunk).to_bytes(4, "little") + b"JSON" + chunk + rest


@pytest.mark.parametrize(
    "path, value",
    [
        (("meshes", 0, "primitives", 0, "attributes", "POSITION"), 10**6),
        (("nodes",), "not a list"),
        (("skins", 0, "joints"), None),
        (("materials", 0), 5),
        (("images", 0, "bufferView"), 10**6),
        (("extensions",), [1, 2]),
    ],
)
def test_inspect_rejects_malformed_gltf_json(written, path, value):
    from avatar3d.errors import ChibiError
    from exporters.inspect import inspect_file

    data = _with_json_change(written["vrm0"].read_bytes(), path, value)
    with pytest.raises(ChibiError) as info:
        inspect_file(data)
    assert info.value.code == "invalid_model"


def _png_header(width: int, height: int) -> bytes:
    """A PNG's signature, IHDR and an empty IDAT: enough for a reader of sizes."""
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body).to_bytes(4, "big")
        return len(body).to_bytes(4, "big") + kind + body + crc

    size = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 6, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", size) + chunk(b"IDAT", b"")


def test_inspect_answers_odd_third_party_files_with_invalid_model(written):
    """Each was a traceback or a wrong figure: a negative vertex count (negative triangles),
    a POSITION accessor without min/max (bounds of -inf, printed as non-JSON -Infinity),
    material extras nested 900 deep, an embedded texture declaring 20000 x 20000 pixels."""
    import base64

    from avatar3d.errors import ChibiError
    from exporters.inspect import inspect_file

    glb = written["vrm0"].read_bytes()
    doc = json.loads(glb[20 : 20 + int.from_bytes(glb[12:16], "little")])
    position = doc["meshes"][0]["primitives"][0]["attributes"]["POSITION"]
    deep: dict = {}
    for _ in range(900):
        deep = {"a": deep}
    huge = "data:image/png;base64," + base64.b64encode(_png_header(20000, 20000)).decode()
    edits = {
        "count of -30": (("accessors", position, "count"), -30),
        "lacks the min/max": (("accessors", position, "min"), None),
        "malformed glTF: RecursionError": (("materials", 0, "extras"), deep),
        "too large for any engine": (("images", 0), {"uri": huge, "mimeType": "image/png"}),
    }
    for message, (path, value) in edits.items():
        with pytest.raises(ChibiError, match=message) as info:
            inspect_file(_with_json_change(glb, path, value))
        assert info.value.code == "invalid_model"


def test_preview_of_a_model_in_centimetres(written, tmp_path):
    """A file whose root scales the avatar 100x (a centimetre export) is framed like any
    other; the far plane stood at 50 m, in front of it (a pyrender traceback)."""
    from exporters.inspect import load_gltf

    gltf = load_gltf(written["glb"].read_bytes())
    gltf.nodes.append(pygltflib.Node(children=list(gltf.scenes[0].nodes), scale=[100] * 3))
    gltf.scenes[0].nodes = [len(gltf.nodes) - 1]
    scaled = tmp_path / "cm.glb"
    gltf.save_binary(str(scaled))
    pictures = []
    for path in (written["glb"], scaled):
        out = tmp_path / f"{path.stem}.png"
        assert main(["preview", str(path), "-o", str(out), "--size", "96"]) == 0
        pictures.append(np.asarray(Image.open(out)).astype(int))
    assert np.abs(pictures[0] - pictures[1]).mean() < 2


def test_inspect_bounds_follow_node_transforms(written, tmp_path, capsys):
    """Bounds are measured in the scene: an unskinned mesh through its node and the
    node's parents (scaled by 2, turned 90 degrees about Z), a skinned one as glTF
    draws it, without its node's transform."""
    from exporters.inspect import load_gltf

    def bounds(path) -> list[float]:
        capsys.readouterr()
        assert main(["inspect", str(path), "--json"]) == 0
        return json.loads(capsys.readouterr().out)["bounds_m"]

    width, height, depth = bounds(written["glb"])
    gltf = load_gltf(written["glb"].read_bytes())
    mesh_node = next(i for i, node in enumerate(gltf.nodes) if node.mesh is not None)
    gltf.nodes[mesh_node].scale = [0.01, 0.01, 0.01]  # ignored while the mesh is skinned
    skinned = tmp_path / "skinned.glb"
    gltf.save_binary(str(skinned))
    assert bounds(skinned) == pytest.approx([width, height, depth], abs=1e-3)

    gltf.nodes[mesh_node].skin = None
    gltf.nodes[mesh_node].scale = [2.0, 2.0, 2.0]
    gltf.nodes[mesh_node].rotation = [0.0, 0.0, 2**-0.5, 2**-0.5]
    gltf.nodes.append(pygltflib.Node(children=[mesh_node], matrix=[
        0.5, 0, 0, 0, 0, 0.5, 0, 0, 0, 0, 0.5, 0, 3, 0, 0, 1]))  # fmt: skip
    for scene in gltf.scenes:
        scene.nodes = [len(gltf.nodes) - 1 if n == mesh_node else n for n in scene.nodes]
    moved = tmp_path / "moved.glb"
    gltf.save_binary(str(moved))
    assert bounds(moved) == pytest.approx([height, width, depth], abs=1e-3)


@pytest.mark.parametrize(
    "option, message",
    [(["--epochs", "0"], "--epochs must be at least 1"),
     (["--batch-size", "0"], "--batch-size must be at least 1"),
     (["--threads", "-1"], "--threads must be at least 1"),
     (["--avatars", "-5"], "--avatars must be at least 1"),
     (["--lr", "0"], "--lr must be above 0"), (["--framing", "2"], "--framing"),
     (["--name", "../escaped"], "--name must be a file name"),
     (["--out", "FILE"], "--out: cannot use"),
     (["--real", "LABELS"], "not a `chibi label` record"),
     (["--real", "DIR"], "cannot read the labels file")],
)  # fmt: skip
def test_train_refuses_bad_options_before_rendering(tmp_path, capsys, option, message):
    """Each of these trained anyway (0 read as the default), or failed with a traceback
    after the renders or the whole training."""
    (tmp_path / "FILE").write_text("a file, not a folder")
    (tmp_path / "LABELS").write_text('{"path": 5, "face": -1, "labels": 7}\n')
    (tmp_path / "DIR").mkdir()
    option = [str(tmp_path / o) if o in ("FILE", "LABELS", "DIR") else o for o in option]
    cache = tmp_path / "cache"
    args = ["train", "--avatars", "3", "--refine-avatars", "0", "--no-eval", "--cache",
            str(cache), "--out", str(tmp_path / "w"), *option]  # fmt: skip
    assert main(args) == 2
    assert message in capsys.readouterr().err
    assert not cache.exists()  # nothing was rendered
