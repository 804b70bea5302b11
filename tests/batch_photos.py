"""Photos for the `chibi batch` tests: real photos (scikit-image's astronaut, re-encoded
at several sizes, crops, JPEG qualities and mirrored; its coffee cup, a real photo with
no face) and broken files written to a folder, and checks of what a job leaves there."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import bad_photos
import numpy as np
from PIL import Image
from skimage import data as skdata
from validators import assert_valid_file, gltf_validate_many

from server.batch import FAILURES, MANIFEST, TMP_SUFFIX

LEDGER_FILES = {MANIFEST, FAILURES, ".chibi-batch.lock", ".chibi-batch-workers.log"}


def encode(rgb: np.ndarray, fmt: str, **kwargs) -> bytes:
    """(H, W, 3) uint8 RGB as a file in Pillow's format `fmt`."""
    return bad_photos.encode(Image.fromarray(rgb), fmt, **kwargs)


def resized(rgb: np.ndarray, side: int) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).resize((side, side), Image.Resampling.LANCZOS))


def sideways_heic(rgb: np.ndarray) -> bytes:
    """`rgb` as a phone stores it: rotated, with the EXIF tag and HEIF's 'irot' box that
    turn it upright."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(np.rot90(rgb).copy(), "HEIF", quality=85, exif=exif.tobytes())


def write(root: Path, rel: str, data: bytes) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_bytes(data)


def make_photos(root: Path) -> dict[str, str | None]:
    """Real photos and broken files under `root`; input key -> expected failure code
    (None: converts)."""
    astronaut = skdata.astronaut()
    jpeg = encode(astronaut, "JPEG", quality=90)
    files = {
        "astronaut.jpg": (jpeg, None),
        # the same name in two folders: mirrored, not merged
        "a/photo.jpg": (encode(resized(astronaut, 384), "JPEG", quality=75), None),
        "b/photo.jpg": (encode(astronaut[:, ::-1].copy(), "JPEG", quality=60), None),
        # one stem, two extensions: both kept (same_jpg.vrm, same_png.vrm)
        "c/same.jpg": (encode(astronaut[20:340, 60:380].copy(), "JPEG", quality=95), None),
        "c/same.png": (encode(resized(astronaut, 320), "PNG"), None),
        "odd: näme?.webp": (encode(astronaut, "WEBP", quality=80), None),
        # an iPhone's: HEIC, upper-case name, stored sideways with its rotation
        "phone/IMG_0001.HEIC": (sideways_heic(resized(astronaut, 384)), None),
        # a Latin-1 file name, not valid UTF-8: keys round-trip, the output name is sanitised
        os.fsdecode(b"caf\xe9.jpg"): (encode(resized(astronaut, 448), "JPEG", quality=85), None),
        # two faces: with --all-faces, pair.vrm and pair~1.vrm
        "pair.jpg": (encode(np.concatenate([astronaut, astronaut[:, ::-1]], 1), "JPEG"), None),
        "broken/truncated.jpg": (jpeg[: len(jpeg) // 3], "invalid_image"),
        "broken/not_an_image.jpg": (b"this is a text file, not a photo\n" * 20, "invalid_image"),
        "broken/coffee.jpg": (encode(skdata.coffee(), "JPEG", quality=90), "no_face"),
    }
    for rel, (blob, _) in files.items():
        write(root, rel, blob)
    write(root, "notes.txt", b"not listed: not an image extension")
    write(root, ".hidden.jpg", jpeg)  # hidden names are skipped
    return {rel: code for rel, (_, code) in files.items()}


def tree(root: Path) -> dict[str, bytes]:
    """Every file under root except the ledger: relative path -> bytes."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in LEDGER_FILES
    }


def stable(records: dict[str, dict]) -> dict[str, dict]:
    """Ledger records without the fields that differ run to run (timings, clock)."""
    return {
        key: {k: v for k, v in r.items() if k not in ("timings_ms", "finished_at")}
        for key, r in records.items()
    }


def check_accounted(output: Path, expected: dict[str, str | None]) -> dict[str, dict]:
    """Every input in exactly one ledger line; outputs listed, on disk, checksummed, valid."""
    lines = {
        name: [json.loads(line) for line in (output / name).read_text().splitlines()]
        for name in (MANIFEST, FAILURES)
    }
    keys = [r["input"] for r in lines[MANIFEST]] + [r["input"] for r in lines[FAILURES]]
    assert sorted(keys) == sorted(expected), "each input exactly once in the ledger"
    assert {r["input"]: r["code"] for r in lines[FAILURES]} == {
        k: code for k, code in expected.items() if code is not None
    }
    assert not [p for p in output.rglob(f"*{TMP_SUFFIX}")], "temporary files left"
    files = {}
    for record in lines[MANIFEST]:
        for entry in record["outputs"]:
            blob = (output / entry["path"]).read_bytes()
            assert entry["sha256"] == hashlib.sha256(blob).hexdigest()
            assert set(entry["params"]) >= {"shape", "skin_color", "hair_style"}
            files[entry["path"]] = blob
    reports = gltf_validate_many(files)
    for name, blob in files.items():
        assert_valid_file(blob, name, report=reports[name])
    return {r["input"]: r for r in lines[MANIFEST]}
