"""The landmarks script: which photos it reads, and its message where mediapipe is missing
(MediaPipe itself runs in a virtual environment of its own, not in the tests)."""

from __future__ import annotations

import sys

import pytest

from research.landmarks import main, photos_in


def test_a_data_sets_folder_is_read_from_its_images(tmp_path):
    (tmp_path / "images").mkdir()
    for name in ("b.jpg", "a.PNG", "notes.txt"):
        (tmp_path / "images" / name).write_bytes(b"")
    assert [p.name for p in photos_in(tmp_path)] == ["a.PNG", "b.jpg"]
    assert [p.name for p in photos_in(tmp_path / "images")] == ["a.PNG", "b.jpg"]


def test_without_mediapipe_it_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # import mediapipe raises ImportError
    with pytest.raises(SystemExit, match=r"needs mediapipe .*pip install mediapipe==0.10.21"):
        main([str(tmp_path), "--out", str(tmp_path / "hands.json")])
    assert not (tmp_path / "hands.json").exists()
