"""The dev-set measurement: the engine's own masks scored against the truth, per set and group."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("torch")

from handseg_core import Refinement  # noqa: E402
from handseg_training.devsets import measure, sets_under  # noqa: E402
from tiny_model import hand_picture, write_red_model  # noqa: E402


def _set(folder, count, seed, spoil=False):
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    for i in range(count):
        rgb, truth = hand_picture(96, 64, seed=seed + i)
        if spoil:  # the truth of the right half is wrong: the IoU must show it
            truth = truth.copy()
            truth[:, 48:] = ~truth[:, 48:]
        Image.fromarray(rgb).save(folder / "images" / f"p{i}.png")
        Image.fromarray(truth.astype(np.uint8) * 255).save(folder / "masks" / f"p{i}.png")


def test_scores_per_set_and_with_flip_tta(tmp_path):
    _set(tmp_path / "good", 3, seed=0)
    _set(tmp_path / "spoilt", 3, seed=10, spoil=True)
    model = write_red_model(tmp_path / "models")
    # The synthetic pictures are noise around a red hand; edge snapping reshapes such edges, and
    # what is under test here is the measuring, so it is off.
    unsnapped = Refinement(snap_edges=False)
    plain = measure(str(model), tmp_path, sets=["good", "spoilt"], refinement=unsnapped)
    assert plain["good"]["images"] == 3 and plain["good"]["iou"] > 0.95
    assert plain["spoilt"]["iou"] < 0.6
    per_photo = plain["spoilt"]["per_image"]  # what research.paired compares
    assert sorted(per_photo) == ["p0", "p1", "p2"]
    assert np.mean(list(per_photo.values())) == pytest.approx(plain["spoilt"]["iou"])
    flipped = measure(str(model), tmp_path, sets=["good"], flip_tta=True, refinement=unsnapped)
    assert flipped["good"]["iou"] == pytest.approx(plain["good"]["iou"], abs=0.02)  # a pointwise model
    limited = measure(str(model), tmp_path, sets=["good"], limit=2)
    assert limited["good"]["images"] == 2


def test_a_set_outside_the_root_is_found_by_its_path_and_a_missing_one_is_named(tmp_path, monkeypatch):
    _set(tmp_path / "elsewhere" / "extra", 2, seed=0)
    (tmp_path / "root").mkdir()
    model = write_red_model(tmp_path / "models")
    monkeypatch.chdir(tmp_path / "elsewhere")
    scores = measure(str(model), tmp_path / "root", sets=["extra"], refinement=Refinement(snap_edges=False))
    assert scores["extra"]["images"] == 2
    with pytest.raises(SystemExit, match="no set 'missing'"):
        measure(str(model), tmp_path / "root", sets=["missing"])


def test_the_sets_under_a_root_include_the_held_out_hands_where_their_folder_is(tmp_path):
    assert sets_under(tmp_path) == []
    for name in ("sign_digits", "hands11k_subset", "egohands_cross14"):
        (tmp_path / name).mkdir()
    assert sets_under(tmp_path) == ["egohands_cross14", "hands11k_holdout", "sign_digits"]


def test_hand_free_faces_count_false_hands_and_leave_out_listed_hands(tmp_path):
    faces = tmp_path / "faces_utk" / "images"
    faces.mkdir(parents=True)
    for stem, red in (("a_0", True), ("b_0", False), ("c_0", True), ("d_1", True)):
        rgb, truth = hand_picture(96, 64, seed=len(stem))
        if not red:
            rgb = np.full_like(rgb, 40)  # nothing red: nothing for the model to take for a hand
        Image.fromarray(rgb).save(faces / f"{stem}.jpg", quality=95)
    (tmp_path / "faces_utk" / "hands.txt").write_text("c_0\n")  # shows a hand: never hand-free
    model = write_red_model(tmp_path / "models")
    scores = measure(str(model), tmp_path, sets=["faces_utk_free"])["faces_utk_free"]
    # a_0 and b_0: *0.jpg and not listed; the red one is a false hand
    assert scores["images"] == scores["hand_free"] == 2 and scores["with_hand"] == 0
    json.dumps(scores)  # what --json writes
    assert scores["false"] == 1 and scores["per_image"] == {"a_0": 0.0, "b_0": 1.0}
