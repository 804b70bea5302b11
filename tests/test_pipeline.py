"""Photo -> params -> avatar file through the CLI, on real photos; bad inputs by their codes."""

import io
import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata
from validators import DEFAULT_BUDGET, assert_valid_file

from avatar3d.errors import ChibiError
from avatar3d.params import GLASSES, SHAPE_SLIDERS, UNKNOWN_FRAME, AvatarParams, hex_to_rgb
from avatar3d.pipeline import PhotoPipeline, photo_to_params
from avatar3d.teacher import CHIN_FIELDS, FOREHEAD_FIELDS
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


def _sample_photo(name: str) -> bytes:
    from avatar3d.sample_photos import CUT_PHOTOS, PHOTOS, installed

    return dict(installed(PHOTOS | CUT_PHOTOS))[name]


def _params_with_sources(tmp_path, capsys, name: str) -> dict:
    photo = tmp_path / f"{name}.jpg"
    photo.write_bytes(_sample_photo(name))
    capsys.readouterr()
    assert main(["params", "--sources", str(photo)]) == 0
    return json.loads(capsys.readouterr().out)


def test_one_man_grinning_speaking_and_smiling_gets_those_expressions(tmp_path, capsys):
    """Obama's three photos (`sample_photos`): a grin that bares the teeth reads as a
    broad smile (the corners' lift above the upper lip alone read it 0.43); speaking, as
    an open mouth and no smile; standing, as a closed mouth with a faint smile. While
    the mouth is open, the lips' fullness is not read from it; while he speaks, nor is
    his chin (`teacher.OPEN_MOUTH_LIMIT`: it read chin_length 0.00 and mouth_height 0.05,
    against 0.49 and 0.38-0.47 in the other two); with his head up 21 degrees, standing,
    nor is the top of his forehead (`teacher.PITCH_LIMIT`: eye_height read 0.98, against
    0.48 grinning); grinning, nor is his nose (`teacher.EXPRESSION_CONFOUNDS`), and his
    mouth is read at rest (`teacher.mouth_width_at_rest`: it read 1.00, the slider's
    top, against 0.75-0.80 in the other two)."""
    grin, speaking, standing = (
        _params_with_sources(tmp_path, capsys, name)
        for name in ("obama", "obama_speaking", "obama_standing")
    )
    assert grin["params"]["expression"]["smile"] > 0.6
    assert speaking["params"]["expression"]["smile"] < 0.1
    assert speaking["params"]["expression"]["mouth_open"] > 0.4
    assert standing["params"]["expression"]["mouth_open"] < 0.05
    assert 0.05 < standing["params"]["expression"]["smile"] < 0.4
    for printed in (grin, speaking, standing):
        assert printed["sources"]["expression.smile"] == "teacher"
        assert printed["params"]["glasses"] == "none"
    assert speaking["sources"]["shape.lip_fullness"] != "teacher"
    assert standing["sources"]["shape.lip_fullness"] == "teacher"
    for name in CHIN_FIELDS:
        assert speaking["sources"][f"shape.{name}"] != "teacher"
        assert grin["sources"][f"shape.{name}"] == "teacher"
        expected = "teacher" if name not in FOREHEAD_FIELDS else "default"
        assert standing["sources"][f"shape.{name}"] == expected
    names = ("chin_length", "mouth_height", "eye_height", "face_length", "nose_size", "mouth_width")
    for name in names:
        values = [printed["params"]["shape"][name] for printed in (grin, speaking, standing)]
        assert max(values) - min(values) < 0.2, (name, values)
    # his grin flares his nostrils (nose_size 0.65, against 0.45-0.55): not read there
    assert grin["sources"]["shape.nose_size"] != "teacher"
    assert speaking["sources"]["shape.nose_size"] == "teacher"
    assert standing["sources"]["shape.nose_size"] == "teacher"
    for printed in (grin, speaking, standing):
        assert printed["sources"]["shape.mouth_width"] == "teacher"
    assert grin["params"]["shape"]["mouth_width"] < 0.9


def test_a_face_cut_by_the_frame_reads_like_the_whole_face(tmp_path, capsys):
    """Obama's grin, and the same photo cut through his face by its left and by its
    right edge (`sample_photos.CUT_PHOTOS`). FaceMesh's crops repeat the photo's edge
    pixels past it (`face.FaceAnalyzer._mesh_in_box`); through a grey band the right cut
    read his smile 0.49 against 0.72 whole, and the shape sliders 0.079 from the whole
    photo's on average (now 0.64 and 0.067). His chin is in both photos, so every field
    of the face is read (`teacher.CHIN`); the hair's length is not, with the photo cut
    beside his face (`teacher_hair`)."""
    from avatar3d.sample_photos import CUT_PHOTOS

    whole = _params_with_sources(tmp_path, capsys, "obama")
    for name in CUT_PHOTOS:
        cut = _params_with_sources(tmp_path, capsys, name)
        differ = {field for field, source in cut["sources"].items()
                  if source != whole["sources"][field]}  # fmt: skip
        assert differ == {"hair_length"}, name
        shape = [abs(value - whole["params"]["shape"][field])
                 for field, value in cut["params"]["shape"].items()]  # fmt: skip
        assert np.mean(shape) < 0.075, name
        smile = cut["params"]["expression"]["smile"] - whole["params"]["expression"]["smile"]
        assert abs(smile) < 0.15, name
        for field in ("skin_color", "hair_color", "lip_color"):
            colours = [hex_to_rgb(printed["params"][field]) for printed in (cut, whole)]
            assert np.abs(np.subtract(*colours)).max() < 0.05, (name, field)


def test_a_chin_cut_off_by_the_frame_is_not_read(tmp_path, capsys):
    """The astronaut's photo cut a twentieth and a tenth of her face above the chin: the
    fields read from the chin take the default (`teacher.CHIN`), the others are read as
    before, and nearly as they were: FaceMesh's guess at the chin no longer sets the face
    scale (`teacher.LENGTH_RATIO`)."""
    from avatar3d.face import thread_analyzer
    from avatar3d.teacher import CHIN

    rgb = skdata.astronaut()
    (face,) = thread_analyzer().analyze(rgb)
    x0, y0, x1, y1 = face.bbox
    printed = {}
    for name, share in (("whole", None), ("cut", 0.05), ("cut_more", 0.1)):
        image = rgb if share is None else rgb[: round(face.landmarks[CHIN, 1] - share * (y1 - y0))]
        (tmp_path / f"{name}.png").write_bytes(_png(np.ascontiguousarray(image)))
        capsys.readouterr()
        assert main(["params", "--sources", str(tmp_path / f"{name}.png")]) == 0
        printed[name] = json.loads(capsys.readouterr().out)
    for field, source in printed["whole"]["sources"].items():
        chin_field = field.split(".")[-1] in CHIN_FIELDS
        if chin_field:
            assert source == "teacher", field
        expected = "default" if chin_field else source
        for cut in ("cut", "cut_more"):
            assert printed[cut]["sources"][field] == expected, (cut, field)
    read = [name for name in SHAPE_SLIDERS if name not in (*CHIN_FIELDS, "head_size", "ear_size")]
    whole, cut = (printed[name]["params"]["shape"] for name in ("whole", "cut_more"))
    # 0.009 on average; 0.019 while the guessed chin set the scale (session 41)
    assert np.mean([abs(cut[name] - whole[name]) for name in read]) < 0.014


@pytest.mark.parametrize("quarter_turns", [2, 1, 3])  # upside down; sideways either way
def test_a_photo_turned_over_reads_like_the_upright_one(tmp_path, capsys, hopper, quarter_turns):
    """A photo whose orientation tag was lost lies sideways or upside down, where the
    detector finds no face; the photo is read turned back (`FaceAnalyzer._turned_photo`).
    Through FaceMesh's whole-photo fallback Grace Hopper upside down read eye_size 0.00
    for 0.52, sideways her shape sliders lay 0.09 off the upright photo's on average."""
    printed = {}
    for name, image in (("upright", hopper), ("turned", np.rot90(hopper, quarter_turns))):
        (tmp_path / f"{name}.png").write_bytes(_png(np.ascontiguousarray(image)))
        capsys.readouterr()
        assert main(["params", str(tmp_path / f"{name}.png")]) == 0
        printed[name] = json.loads(capsys.readouterr().out)
    upright, turned = (printed[name]["shape"] for name in ("upright", "turned"))
    assert np.mean([abs(turned[name] - upright[name]) for name in SHAPE_SLIDERS]) < 0.01
    smiles = (printed[name]["expression"]["smile"] for name in ("upright", "turned"))
    assert abs(np.subtract(*smiles)) < 0.02


@pytest.mark.parametrize("quarter_turns", [1, 3])
def test_a_face_whose_eye_line_the_detector_misjudged_is_read_again(
    tmp_path, capsys, quarter_turns
):
    """The astronaut lying sideways: the detector finds her face but puts its eye line
    52-63 degrees from level for 90, so FaceMesh's crops stood 30 degrees off upright; they
    are read again turned by FaceMesh's own eye line. Her shape sliders lay 0.036 and 0.102
    off the upright photo's on average, now 0.008 and 0.011."""
    rgb = skdata.astronaut()
    printed = {}
    for name, image in (("upright", rgb), ("turned", np.rot90(rgb, quarter_turns))):
        (tmp_path / f"{name}.png").write_bytes(_png(np.ascontiguousarray(image)))
        capsys.readouterr()
        assert main(["params", str(tmp_path / f"{name}.png")]) == 0
        printed[name] = json.loads(capsys.readouterr().out)["shape"]
    change = [abs(printed["turned"][name] - printed["upright"][name]) for name in SHAPE_SLIDERS]
    assert np.mean(change) < 0.02


def test_a_rolled_head_reads_like_the_upright_one(tmp_path, capsys):
    """The astronaut's photo turned 40 degrees either way about her face. FaceMesh's
    crops turn the face upright by the detector's eye line (`face.UPRIGHT_STEP`); read
    as it lay, her shape sliders moved 0.059 and 0.096 from the upright photo's on
    average, chin_length 0.44 (now 0.010 and 0.017, at most 0.039)."""
    import cv2

    from avatar3d.face import thread_analyzer

    rgb = skdata.astronaut()
    (face,) = thread_analyzer().analyze(rgb)
    x0, y0, x1, y1 = face.bbox
    centre, half = ((x0 + x1) / 2, (y0 + y1) / 2), int(1.6 * (x1 - x0))
    shapes = {}
    for degrees in (0, 40, -40):
        turn = cv2.getRotationMatrix2D(centre, degrees, 1.0)
        turn[:, 2] += (half - centre[0], half - centre[1])
        turned = cv2.warpAffine(rgb, turn, (2 * half,) * 2, borderMode=cv2.BORDER_REFLECT_101)
        (tmp_path / "turned.png").write_bytes(_png(turned))
        capsys.readouterr()
        assert main(["params", str(tmp_path / "turned.png")]) == 0
        shapes[degrees] = json.loads(capsys.readouterr().out)["shape"]
    for degrees in (40, -40):
        change = [abs(value - shapes[0][name]) for name, value in shapes[degrees].items()]
        assert max(change) < 0.1 and np.mean(change) < 0.03, (degrees, change)


def test_convert_a_full_length_photo_to_a_valid_vrm(tmp_path):
    """Biden standing: a 970x2204 photo whose face is a tenth of its width."""
    photo = tmp_path / "biden.jpg"
    photo.write_bytes(_sample_photo("biden"))
    out = tmp_path / "biden.vrm"
    assert main(["convert", str(photo), "--format", "vrm0", "-o", str(out)]) == 0
    assert_valid_file(out.read_bytes(), "biden.vrm", DEFAULT_BUDGET)
