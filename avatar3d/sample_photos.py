"""More real face photos for evaluation and tests, fetched from PyPI by `make photos`.

scikit-image and matplotlib ship two usable faces (the astronaut, Grace Hopper).
The source release of `face_recognition` 1.3.0 on PyPI (MIT) carries, as test data,
public-domain White House photos: Barack Obama three times (a broad smile with teeth,
speaking behind a microphone, standing full length) and Joe Biden standing. They add
a darker skin tone, a grin, an open mouth, small faces in large photos, grey hair and
one person in three photos (how far one person's avatar moves between photos).

`python -m avatar3d.sample_photos` (`make photos`, which `make test` runs) downloads
the release with pip, pinned by hash, and writes the four photos, each checked by its
own hash, to `.cache/photos/` (gitignored; `CHIBI_PHOTOS` moves it). Nothing else of
the package is kept or installed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

RELEASE = "face_recognition==1.3.0"
RELEASE_SHA256 = "5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec"
MEMBER_DIR = "face_recognition-1.3.0/tests/test_images"
# our name -> (file in MEMBER_DIR, sha256 of its bytes)
PHOTOS: dict[str, tuple[str, str]] = {
    "obama": ("obama.jpg", "0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6"),
    "obama_speaking": (
        "obama2.jpg", "a7efcc907375274796f39646510704aa86672d59f6d5469d69af3c85590976a6",
    ),
    "obama_standing": (
        "obama3.jpg", "76ac6bf97c36dc2da0ad16a537d6a5ac1b10f48d49aac29a0cca9a17cdbc3ca3",
    ),
    "biden": ("biden.jpg", "3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c"),
}  # fmt: skip
# photo name -> the person in it, for photos of one person (`same_person_spread`)
PERSON = {"obama": "obama", "obama_speaking": "obama", "obama_standing": "obama"}


def photo_dir() -> Path:
    """Where the photos lie: $CHIBI_PHOTOS, else .cache/photos beside the package."""
    default = Path(__file__).resolve().parents[1] / ".cache" / "photos"
    return Path(os.environ.get("CHIBI_PHOTOS", default))


def installed() -> list[tuple[str, bytes]]:
    """(name, JPEG bytes) of every fetched photo whose bytes match their hash, in
    `PHOTOS` order; none before `fetch` ran."""
    photos = []
    for name, (filename, digest) in PHOTOS.items():
        path = photo_dir() / filename
        if path.is_file():
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() == digest:
                photos.append((name, data))
    return photos


def fetch(directory: Path | None = None) -> list[Path]:
    """Download the release with pip (hash-checked) and write `PHOTOS` to `directory`.

    Raises RuntimeError when pip fails or a file is missing or differs."""
    directory = photo_dir() if directory is None else directory
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        requirements = Path(scratch) / "requirements.txt"
        requirements.write_text(f"{RELEASE} --hash=sha256:{RELEASE_SHA256}\n")
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                   "--no-binary", ":all:", "--require-hashes", "-r", str(requirements),
                   "-d", scratch]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"pip download {RELEASE} failed:\n{done.stderr[-2000:]}")
        (archive,) = Path(scratch).glob("*.tar.gz")
        contents = {}
        with tarfile.open(archive) as tar:
            for filename, digest in PHOTOS.values():
                try:
                    data = tar.extractfile(f"{MEMBER_DIR}/{filename}").read()
                except (KeyError, AttributeError):
                    data = b""
                if hashlib.sha256(data).hexdigest() != digest:
                    raise RuntimeError(f"{filename} in {archive.name} is missing or differs")
                contents[filename] = data
    written = []  # only once every photo checked out
    for filename, data in contents.items():
        target = directory / filename
        partial = target.with_suffix(".part")
        partial.write_bytes(data)
        partial.replace(target)
        written.append(target)
    return written


if __name__ == "__main__":
    for path in fetch():
        print(f"sample photo: {path}")
