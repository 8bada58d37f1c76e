"""`--hands`, `--json` and `--no-finder`: which hands the default keeps, and what it says of them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

TWO_HANDS = Path(__file__).parents[1] / "data" / "hands" / "utk_4_1_1_20170109194538070.jpg"


@pytest.fixture
def photo(tmp_path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    return Path(shutil.copy(TWO_HANDS, folder / "two.jpg"))


def written(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def test_json_sidecar_describes_each_hand(handseg, photo, tmp_path):
    run = handseg("cutout", photo, "-o", tmp_path / "out", "--json")
    assert run.exit_code == 0, run.stderr
    sidecar = json.loads((tmp_path / "out" / "two.json").read_text())
    assert sidecar["source"] == str(photo) and sidecar["model"] == "handseg-lite2-int8"
    assert [hand["handedness"] for hand in sidecar["hands"]] in (["left", "right"], ["right", "left"])
    alpha = written(tmp_path / "out" / "two.png")[..., 3]
    assert sum(hand["area"] for hand in sidecar["hands"]) == np.count_nonzero(alpha)
    for hand in sidecar["hands"]:
        x0, y0, x1, y1 = hand["box"]
        assert alpha[y0:y1, x0:x1].any() and len(hand["landmarks"]) == 21


def test_without_json_no_sidecar(handseg, photo, tmp_path):
    assert handseg("mask", photo, "-o", tmp_path / "out").exit_code == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["two.png"]


@pytest.mark.parametrize("choice", ["left", "right", "largest", "1"])
def test_hands_keeps_one(handseg, photo, tmp_path, choice):
    run_all = handseg("mask", photo, "-o", tmp_path / "all", "--json")
    run_one = handseg("mask", photo, "-o", tmp_path / "one", "--json", "--hands", choice)
    assert run_all.exit_code == run_one.exit_code == 0, run_one.stderr
    every = json.loads((tmp_path / "all" / "two.json").read_text())["hands"]
    kept = json.loads((tmp_path / "one" / "two.json").read_text())["hands"]
    assert len(every) == 2 and len(kept) == 1
    if choice in ("left", "right"):
        assert kept[0]["handedness"] == choice
    else:
        assert kept[0] == every[0]
    mask_all, mask_one = written(tmp_path / "all" / "two.png") > 0, written(tmp_path / "one" / "two.png") > 0
    assert not (mask_one & ~mask_all).any() and mask_one.sum() == kept[0]["area"] < mask_all.sum()


def test_no_finder_is_the_whole_image_alone(handseg, photo, tmp_path):
    run = handseg("mask", photo, "-o", tmp_path / "out", "--json", "--no-finder")
    assert run.exit_code == 0, run.stderr
    hands = json.loads((tmp_path / "out" / "two.json").read_text())["hands"]
    assert hands and all(hand["landmarks"] is None and hand["handedness"] is None for hand in hands)


@pytest.mark.parametrize("choice", ["both", "0", "-2"])
def test_a_wrong_choice_is_a_usage_error(handseg, photo, tmp_path, choice):
    run = handseg("cutout", photo, "-o", tmp_path / "out", "--hands", choice)
    assert run.exit_code == 2 and "--hands" in run.stderr and "choose all, largest, left, right" in run.stderr
    assert not (tmp_path / "out").exists()
