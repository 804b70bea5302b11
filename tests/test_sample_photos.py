"""The real photos fetched at set-up (`avatar3d.sample_photos`)."""

from __future__ import annotations

import dataclasses
import shutil

import pytest

from avatar3d import sample_photos
from avatar3d.imageio import decode_image


def test_setup_fetched_every_photo_and_each_decodes():
    for which in (sample_photos.PHOTOS, sample_photos.CUT_PHOTOS, sample_photos.GROUP_PHOTOS):
        photos = dict(sample_photos.installed(which))
        assert list(photos) == list(which)
        for data in photos.values():
            assert decode_image(data).shape[2] == 3


def test_a_photo_that_differs_from_its_hash_is_not_used(tmp_path, monkeypatch):
    for filename, _ in sample_photos.PHOTOS.values():
        shutil.copy(sample_photos.photo_dir() / filename, tmp_path / filename)
    monkeypatch.setenv("CHIBI_PHOTOS", str(tmp_path))
    assert len(sample_photos.installed()) == 4
    (tmp_path / "obama.jpg").write_bytes(b"\xff\xd8 not the photo")
    (tmp_path / "biden.jpg").unlink()
    assert [name for name, _ in sample_photos.installed()] == ["obama_speaking", "obama_standing"]


def test_the_real_photos_evaluation_reads_include_them():
    from avatar3d.evaluate_real import REAL_ANNOTATIONS, real_photos

    names = [name for name, _ in real_photos()]
    assert names[-4:] == list(sample_photos.PHOTOS)  # one person each: no group photo
    assert all(REAL_ANNOTATIONS[name]["glasses"] == ("none",) for name in sample_photos.PHOTOS)


@pytest.mark.parametrize("broken", ["pip", "member"])
def test_fetch_fails_clearly_and_writes_nothing(tmp_path, monkeypatch, broken):
    if broken == "pip":  # a release pip cannot find (the other one fetched fine)
        wrong = dataclasses.replace(sample_photos.INSIGHTFACE, requirement="insightface==0.0.0")
        monkeypatch.setattr(sample_photos, "RELEASES", (sample_photos.FACE_RECOGNITION, wrong))
    else:  # the right release, but a file it does not hold
        photos = sample_photos.FACE_RECOGNITION.photos
        monkeypatch.setitem(photos, "nobody", ("nobody.jpg", "0" * 64))
    with pytest.raises(RuntimeError, match="failed|missing"):
        sample_photos.fetch(tmp_path / "photos")
    assert not list((tmp_path / "photos").glob("*.jpg"))
