"""More real face photos for evaluation and tests, fetched from PyPI by `make photos`.

scikit-image and matplotlib ship two usable faces (the astronaut, Grace Hopper).
The source release of `face_recognition` 1.3.0 on PyPI (MIT) carries, as test data,
public-domain White House photos: Barack Obama three times (a broad smile with teeth,
speaking behind a microphone, standing full length) and Joe Biden standing. They add
a darker skin tone, a grin, an open mouth, small faces in large photos, grey hair and
one person in three photos (how far one person's avatar moves between photos). These
are `PHOTOS`, one person each, which `chibi eval` reads. The same release holds his grin
cut through the face by the photo's edge, once on each side: `CUT_PHOTOS`, for the tests
of a face cut by the frame.

`GROUP_PHOTOS` holds a photo of several people: the test image of `insightface` 2.1's
source release on PyPI (MIT code; the photo itself is a promotional still of the TV
series *Friends*, used here as insightface uses it, for tests, and never committed).
Six people round a table, faces of 98-145 px in a 1280 px photo: two women with hair
past the chin, one with her hair tied up, three short-haired men (one turned too far
to be read). It checks what the single-face photos cannot: finding every face of a
group photo, and the teacher's hair reading on real long hair.

`python -m avatar3d.sample_photos` (`make photos`, which `make test` runs) downloads
the releases with pip, pinned by hash, and writes the photos, each checked by its own
hash, to `.cache/photos/` (gitignored; `CHIBI_PHOTOS` moves it). Nothing else of the
packages is kept or installed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Release:
    """A source release on PyPI, pinned by hash, and the photos taken from it:
    our name -> (file in `member_dir`, sha256 of its bytes)."""

    requirement: str
    sha256: str
    member_dir: str
    photos: dict[str, tuple[str, str]]


PHOTOS = {  # one person each: `chibi eval`'s sample photos
    "obama": ("obama.jpg", "0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6"),
    "obama_speaking": (
        "obama2.jpg", "a7efcc907375274796f39646510704aa86672d59f6d5469d69af3c85590976a6",
    ),
    "obama_standing": (
        "obama3.jpg", "76ac6bf97c36dc2da0ad16a537d6a5ac1b10f48d49aac29a0cca9a17cdbc3ca3",
    ),
    "biden": ("biden.jpg", "3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c"),
}  # fmt: skip
# Obama's grin (`PHOTOS["obama"]`) cut through his face by the photo's left and right edge
CUT_PHOTOS = {
    "obama_cut_left": (
        "obama_partial_face.jpg",
        "c2d1f09e7ef3042352b41e41286e6eb0522f64f88308be13886991b95db52117",
    ),
    "obama_cut_right": (
        "obama_partial_face2.jpg",
        "9a812347f97633542b8cd9992de22def11b74f79d82056bc3ee830f13878e028",
    ),
}
FACE_RECOGNITION = Release(
    "face_recognition==1.3.0",
    "5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec",
    "face_recognition-1.3.0/tests/test_images",
    PHOTOS | CUT_PHOTOS,
)
INSIGHTFACE = Release(
    "insightface==2.1",
    "776cbd36b70f5f2ae1a026101cfb80387f0b2280a0dbaf073f8d3ed69f554e01",
    "insightface-2.1/insightface/data/images",
    {"friends": ("t1.jpg", "47f682e945b659f93a9e490b9c9c4a2a864abe64dace9e1a2893845ddfd69489")},
)
RELEASES = (FACE_RECOGNITION, INSIGHTFACE)
GROUP_PHOTOS = INSIGHTFACE.photos
# photo name -> the person in it, for photos of one person (`same_person_spread`)
PERSON = {"obama": "obama", "obama_speaking": "obama", "obama_standing": "obama"}


def photo_dir() -> Path:
    """Where the photos lie: $CHIBI_PHOTOS, else .cache/photos beside the package."""
    default = Path(__file__).resolve().parents[1] / ".cache" / "photos"
    return Path(os.environ.get("CHIBI_PHOTOS", default))


def installed(photos: dict[str, tuple[str, str]] = PHOTOS) -> list[tuple[str, bytes]]:
    """(name, JPEG bytes) of every fetched photo of `photos` (`PHOTOS` or
    `GROUP_PHOTOS`) whose bytes match their hash, in its order; none before `fetch` ran."""
    found = []
    for name, (filename, digest) in photos.items():
        path = photo_dir() / filename
        if path.is_file():
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() == digest:
                found.append((name, data))
    return found


def fetch(directory: Path | None = None) -> list[Path]:
    """Download every release of `RELEASES` with pip (hash-checked) and write its photos
    to `directory`.

    Raises RuntimeError when pip fails or a file is missing or differs; then nothing
    is written."""
    directory = photo_dir() if directory is None else directory
    contents: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for release in RELEASES:
            contents.update(_extract(release, Path(scratch)))
    directory.mkdir(parents=True, exist_ok=True)
    written = []  # only once every photo checked out
    for filename, data in contents.items():
        target = directory / filename
        partial = target.with_suffix(".part")
        partial.write_bytes(data)
        partial.replace(target)
        written.append(target)
    return written


def _extract(release: Release, scratch: Path) -> dict[str, bytes]:
    """filename -> bytes of `release`'s photos, each checked by its hash."""
    folder = scratch / release.requirement
    folder.mkdir()
    requirements = folder / "requirements.txt"
    requirements.write_text(f"{release.requirement} --hash=sha256:{release.sha256}\n")
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
               "--no-binary", ":all:", "--require-hashes", "-r", str(requirements),
               "-d", str(folder)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"pip download {release.requirement} failed:\n{done.stderr[-2000:]}")
    (archive,) = folder.glob("*.tar.gz")
    contents = {}
    with tarfile.open(archive) as tar:
        for filename, digest in release.photos.values():
            try:
                data = tar.extractfile(f"{release.member_dir}/{filename}").read()
            except (KeyError, AttributeError):
                data = b""
            if hashlib.sha256(data).hexdigest() != digest:
                raise RuntimeError(f"{filename} in {archive.name} is missing or differs")
            contents[filename] = data
    return contents


if __name__ == "__main__":
    for path in fetch():
        print(f"sample photo: {path}")
