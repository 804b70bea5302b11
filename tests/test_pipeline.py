"""Photo -> params -> avatar file through the CLI, on real photos; bad inputs by their codes."""

import io
import json
import os
import struct
import subprocess
import sys
import threading
import zlib

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata
from validators import DEFAULT_BUDGET, assert_valid_file

from avatar3d.errors import ChibiError
from avatar3d.native_logs import quiet_native_logs
from avatar3d.params import GLASSES, UNKNOWN_FRAME, AvatarParams, hex_to_rgb
from avatar3d.pipeline import PhotoPipeline, photo_to_params
from server.cli import main


def _png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG")
    return buffer.getvalue()


def _value(record, name: str):
    """A field of AvatarParams or TeacherLabels by dotted name; colours as sRGB floats."""
    group, _, field = name.rpartition(".")
    if group:
        return getattr(record, group)[field]
    if name.endswith("_color"):
        colors = record.colors if hasattr(record, "colors") else {name: getattr(record, name)}
        return hex_to_rgb(colors[name])
    return getattr(record, name)


def _cnn_value(result, name: str):
    from avatar3d.param_arrays import COLOR_NAMES, SLIDER_FIELDS

    if name in ("hair_style", "glasses"):
        return getattr(result.prediction.to_params(), name)

    if name in COLOR_NAMES:
        return tuple(result.prediction.colors[COLOR_NAMES.index(name)])
    return float(result.prediction.sliders[SLIDER_FIELDS.index(name)])


def _cnn_frame(result) -> str:
    """The frame the CNN finds likelier (round or square), whether or not it sees one."""
    from avatar3d.fusion import likelier_frame

    return GLASSES[int(likelier_frame(result.prediction.glasses_probs[None])[0])]


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory) -> bytes:
    return _png(skdata.astronaut())


@pytest.fixture(scope="module")
def pipeline() -> PhotoPipeline:
    return PhotoPipeline()


def test_photo_to_params_on_a_real_photo(astronaut, pipeline):
    (params,) = photo_to_params(astronaut)
    assert isinstance(params, AvatarParams)
    (result,) = pipeline.analyze(astronaut)
    assert result.params == params  # the same shipped model and fusion either way
    sources = result.sources(pipeline.fusion)
    # where the fusion table picks the teacher, the output is the teacher's measurement
    frame_source = sources.pop("glasses_frame", None)
    for name, source in sources.items():
        if name == "glasses" and source == "teacher":  # a frame seen, or not
            frame = _cnn_frame(result) if frame_source == "cnn" else UNKNOWN_FRAME
            expected = frame if result.teacher.glasses else "none"
        elif source == "teacher":
            expected = _value(result.teacher, name)
        elif source == "cnn":
            expected = _cnn_value(result, name)
        else:  # no reliable source: the neutral default
            expected = _value(AvatarParams(), name)
        if name in ("hair_style", "glasses"):
            assert _value(params, name) == expected, (name, source)
        else:
            assert _value(params, name) == pytest.approx(expected, abs=2.5e-3), (name, source)
    assert sources["shape.head_size"] != "teacher"  # the teacher cannot measure it
    assert set(sources.values()) <= {"teacher", "cnn", "default"}
    assert sum(source == "teacher" for source in sources.values()) >= 15
    # no gender, age or ethnicity anywhere in the output
    text = params.to_json().lower()
    assert not any(word in text for word in ("gender", 'age"', "ethnic", "race"))


def test_weights_without_a_fusion_table_leave_the_class_heads_unused(tmp_path, astronaut):
    """Weights from `chibi train --no-eval` (or anyone's) come without a measured
    fusion table: the teacher-first prior then applies, in which no class head
    is trusted, whatever it reads (the shipped network calls the astronaut's hair spiky)."""
    import shutil

    from avatar3d.model_files import DEFAULT_MODEL, WEIGHTS_DIR

    for suffix in (".pt", ".json"):
        shutil.copy(WEIGHTS_DIR / f"{DEFAULT_MODEL}{suffix}", tmp_path)
    unmeasured = PhotoPipeline(DEFAULT_MODEL, tmp_path)
    assert not unmeasured.fusion.choices.keys() & {"hair_style", "glasses"}
    (result,) = unmeasured.analyze(astronaut)
    sources = result.sources(unmeasured.fusion)
    assert sources["hair_style"] == sources["glasses"] == "default"
    assert result.params.hair_style == AvatarParams().hair_style
    assert result.params.glasses == AvatarParams().glasses
    assert sources["skin_color"] == "teacher"


def test_params_command_prints_valid_json(tmp_path, astronaut, capsys):
    photo = tmp_path / "astronaut.png"
    photo.write_bytes(astronaut)
    assert main(["params", str(photo)]) == 0
    params = AvatarParams.from_json(capsys.readouterr().out)
    assert params.hair_style
    assert params.glasses == "none"


def test_params_command_keeps_mediapipe_start_up_logs_off_stderr(tmp_path, astronaut):
    """A fresh `chibi params` process prints the JSON and nothing on stderr: MediaPipe's
    graphs log to descriptor 2 as they load and first run (`avatar3d.native_logs`), and
    CHIBI_NATIVE_LOGS=1 lets those lines through."""
    photo = tmp_path / "astronaut.png"
    photo.write_bytes(astronaut)

    def chibi_params(**env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "server.cli", "params", str(photo)],
            capture_output=True, text=True, timeout=300, env={**os.environ, **env},
        )  # fmt: skip

    quiet = chibi_params()
    assert quiet.returncode == 0, quiet.stderr
    assert AvatarParams.from_dict(json.loads(quiet.stdout))
    assert quiet.stderr == ""
    loud = chibi_params(CHIBI_NATIVE_LOGS="1")
    assert loud.returncode == 0 and loud.stdout == quiet.stdout
    assert "inference_feedback_manager" in loud.stderr


def test_quiet_native_logs_restores_stderr_when_threads_overlap(capfd):
    """Blocks on two threads that open and close out of order: what is written inside
    any block is dropped, and descriptor 2 is the test's again after the last."""
    inside, release = threading.Event(), threading.Event()

    def other_thread() -> None:
        with quiet_native_logs():
            inside.set()
            release.wait(10)
            os.write(2, b"dropped on the other thread\n")

    os.write(2, b"before\n")
    with quiet_native_logs():
        thread = threading.Thread(target=other_thread)
        thread.start()
        inside.wait(10)
        os.write(2, b"dropped\n")
    os.write(2, b"dropped while the other thread's block is open\n")
    release.set()
    thread.join()
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "before\nafter\n"


def test_quiet_native_logs_runs_in_a_process_without_stderr():
    """A service started with descriptor 2 closed still builds its analyzer."""
    code = (
        "import os; os.close(2)\n"
        "from avatar3d.native_logs import quiet_native_logs\n"
        "with quiet_native_logs():\n"
        "    with quiet_native_logs():\n"
        "        pass\n"
        "print('built')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout == "built\n"


def test_glasses_on_the_photo_are_glasses_on_the_avatar(tmp_path, capsys):
    """Grace Hopper's browline frames give the avatar square glasses; the astronaut
    (above) gets none, though the CNN alone sees glasses on her too."""
    from matplotlib import cbook

    photo = tmp_path / "hopper.jpg"
    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        photo.write_bytes(handle.read())
    assert main(["params", "--sources", str(photo)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["params"]["glasses"] == "square" and printed["sources"]["glasses"] == "teacher"
    out = tmp_path / "hopper.vrm"
    assert main(["convert", str(photo), "-o", str(out)]) == 0
    assert_valid_file(out.read_bytes(), "hopper.vrm", DEFAULT_BUDGET)


def test_convert_a_real_photo_to_a_valid_vrm(tmp_path, astronaut):
    photo = tmp_path / "astronaut.png"
    photo.write_bytes(astronaut)
    out = tmp_path / "astronaut.vrm"
    assert main(["convert", str(photo), "-o", str(out)]) == 0
    assert_valid_file(out.read_bytes(), "astronaut.vrm", DEFAULT_BUDGET)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


def test_an_iphone_heic_converts_like_the_same_photo_as_png(tmp_path, astronaut, capsys):
    # stored sideways with HEIF's rotation box and the EXIF tag, as an iPhone saves it
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    sideways = Image.fromarray(np.rot90(skdata.astronaut()).copy())
    sideways.save(buffer, "HEIF", quality=90, exif=exif.tobytes())
    photo = tmp_path / "IMG_0001.HEIC"
    photo.write_bytes(buffer.getvalue())
    out = tmp_path / "me.vrm"
    assert main(["convert", str(photo), "-o", str(out)]) == 0
    assert_valid_file(out.read_bytes(), "me.vrm", DEFAULT_BUDGET)
    capsys.readouterr()
    assert main(["params", str(photo)]) == 0
    from_heic = AvatarParams.from_json(capsys.readouterr().out)
    (from_png,) = photo_to_params(astronaut)
    for name in from_png.shape:  # upright: the same face, read through lossy compression
        assert from_heic.shape[name] == pytest.approx(from_png.shape[name], abs=0.03), name
    skin = np.subtract(hex_to_rgb(from_heic.skin_color), hex_to_rgb(from_png.skin_color))
    assert np.abs(skin).max() < 0.03


def test_convert_all_faces_writes_one_file_per_face(tmp_path, capsys):
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        hopper = np.asarray(Image.open(handle).convert("RGB").resize((440, 512)))
    group = np.concatenate([skdata.astronaut(), hopper], axis=1)  # two people side by side
    photo = tmp_path / "two.png"
    photo.write_bytes(_png(group))
    out = tmp_path / "two.glb"
    assert main(["convert", str(photo), "--all-faces", "--format", "glb", "-o", str(out)]) == 0
    written = sorted(p.name for p in tmp_path.glob("two*.glb"))
    assert written == ["two.glb", "two_1.glb"]
    for name in written:
        assert (tmp_path / name).read_bytes()[:4] == b"glTF"
    capsys.readouterr()
    assert main(["params", str(photo), "--all-faces"]) == 0
    faces = json.loads(capsys.readouterr().out)
    assert sorted(face["glasses"] for face in faces) == ["none", "square"]  # each face its own


def test_one_face_asked_for_is_the_first_of_every_face(tmp_path, capsys):
    """`chibi params PHOTO` answers with the face `--all-faces` puts first (the largest
    that passes the checks) on the group photo, whose face turned too far and tiled
    faces once took the places of larger ones: the two read different people."""
    from avatar3d.sample_photos import GROUP_PHOTOS, installed

    photo = tmp_path / "group.jpg"
    photo.write_bytes(dict(installed(GROUP_PHOTOS))["friends"])
    assert main(["params", str(photo)]) == 0
    one = json.loads(capsys.readouterr().out)
    assert main(["params", str(photo), "--all-faces"]) == 0
    every = json.loads(capsys.readouterr().out)
    assert len(every) == 4 and one == every[0]


def _bad_inputs(tmp_path):
    blank = tmp_path / "blank.png"
    blank.write_bytes(_png(np.full((256, 256, 3), 200, np.uint8)))
    tiny = tmp_path / "tiny.png"  # the face is about 20 px
    tiny.write_bytes(_png(np.asarray(Image.fromarray(skdata.astronaut()).resize((80, 80)))))
    text = tmp_path / "text.jpg"
    text.write_bytes(b"this is not a jpeg")
    huge = tmp_path / "bomb.png"  # a valid PNG claiming 100000 x 100000 pixels
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    chunks = [(b"IHDR", ihdr), (b"IDAT", zlib.compress(b"\x00" * 64)), (b"IEND", b"")]
    huge.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + b"".join(
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
            for kind, data in chunks
        )
    )
    return [
        (blank, "no_face"),
        (tiny, "face_too_small"),
        (text, "invalid_image"),
        (huge, "image_too_large"),
        (tmp_path, "invalid_image"),
    ]


@pytest.mark.parametrize("command", ["convert", "params"])
def test_bad_inputs_are_answered_by_their_codes(tmp_path, capsys, command):
    for path, code in _bad_inputs(tmp_path):
        out = tmp_path / "out.vrm"
        args = [command, str(path)] + (["-o", str(out)] if command == "convert" else [])
        assert main(args) != 0, path
        err = capsys.readouterr().err
        assert f"[{code}]" in err, (path.name, err)
        assert not out.exists()
    assert (
        main(
            [command, str(tmp_path / "missing.jpg")]
            + (["-o", str(tmp_path / "x.glb")] if command == "convert" else [])
        )
        == 2
    )


def test_pipeline_raises_typed_errors(pipeline):
    with pytest.raises(ChibiError) as err:
        pipeline.analyze(b"\x89PNG\r\n\x1a\n broken")
    assert err.value.code == "invalid_image"
    assert json.dumps(err.value.code)  # stable, serialisable


def test_fusion_table_picks_the_more_reliable_source_per_field():
    from avatar3d.fusion import FUSION_FIELDS, FusionTable, fuse_arrays

    cnn = {name: 0.2 for name in FUSION_FIELDS} | {"shape.eye_size": 0.01, "skin_color": 1.0}
    teacher = {name: 0.05 for name in FUSION_FIELDS} | {"skin_color": 3.0, "shape.ear_size": None}
    table = FusionTable.from_errors(
        cnn, teacher, {}, cnn_qualified={"shape.eye_size"}, cnn_informative={"skin_color"}
    )
    assert table.source("shape.eye_size") == "cnn"  # smaller error, qualified
    assert table.source("skin_color") == "teacher"  # smaller error but not qualified
    assert table.source("shape.ear_size") == "default"  # no teacher, CNN not informative
    qualified_all = FusionTable.from_errors(cnn, teacher, {})
    assert qualified_all.source("shape.ear_size") == "cnn"
    assert table.source("shape.face_width") == "teacher"
    assert table.evidence["shape.eye_size"]["cnn"] == 0.01
    again = FusionTable.from_dict(json.loads(json.dumps(table.to_dict())))
    assert again.choices == table.choices

    n = len(FUSION_FIELDS) - 5
    cnn_s, teach_s = np.full((2, n), 0.1), np.full((2, n), 0.9)
    conf = np.full((2, n), 0.8)
    conf[1] = 0.1  # below min_confidence: the CNN's value is kept
    cnn_c, teach_c = np.zeros((2, 5, 3)), np.ones((2, 5, 3))
    sliders, colors = fuse_arrays(cnn_s, cnn_c, teach_s, conf, teach_c, np.ones((2, 5)), table)
    width = list(FUSION_FIELDS).index("shape.face_width")
    eye = list(FUSION_FIELDS).index("shape.eye_size")
    # low teacher confidence: the CNN's value if the CNN is trusted there, else the default
    assert sliders[0, width] == pytest.approx(0.9) and sliders[1, width] == pytest.approx(0.5)
    trusting, _ = fuse_arrays(cnn_s, cnn_c, teach_s, conf, teach_c, np.ones((2, 5)), qualified_all)
    assert trusting[1, width] == pytest.approx(0.1)
    assert sliders[0, eye] == pytest.approx(0.1)
    assert colors[0, 0, 0] == 1.0  # skin from the teacher
    ear = list(FUSION_FIELDS).index("shape.ear_size")
    assert sliders[0, ear] == pytest.approx(0.5)  # the default, not the CNN's 0.1


def test_glasses_fuse_the_teachers_frame_or_none_with_the_frames_source():
    from avatar3d.fusion import FusionTable, fuse_glasses

    probs = np.array([[0.6, 0.1, 0.3]] * 3)  # the CNN: most likely none, else square
    seen, confidence = np.array([1, 0, 1]), np.array([0.9, 0.9, 0.1])
    answers = {}
    for source in ("teacher", "cnn", "default"):
        table = FusionTable({"glasses": source, "glasses_frame": "cnn"})
        answers[source] = [GLASSES[i] for i in fuse_glasses(probs, seen, confidence, table)]
    assert answers["teacher"] == ["square", "none", "none"]  # the last: unsure, the default
    assert answers["cnn"] == ["none"] * 3
    assert answers["default"] == ["none"] * 3
    # where the CNN's frame shape is not trusted, a frame seen is drawn as UNKNOWN_FRAME
    table = FusionTable({"glasses": "teacher", "glasses_frame": "default"})
    assert [GLASSES[i] for i in fuse_glasses(probs, seen, confidence, table)] == [
        UNKNOWN_FRAME,
        "none",
        "none",
    ]
    # the prior without a measured table leaves glasses at the default
    assert FusionTable.teacher_first().source("glasses") == "default"
