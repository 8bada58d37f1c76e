"""`handseg eval`: the numbers of handseg_core.metrics on the model's own predictions."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from handseg_core import Refinement, load_model
from handseg_core.images import load_rgb
from handseg_core.metrics import MaskStats

from .helpers import save_picture


@pytest.fixture
def eval_set(tmp_path):
    """images/ + masks/ with three pairs; one truth mask is degraded so the numbers are not all 1."""
    root = tmp_path / "set"
    for i, (w, h) in enumerate([(64, 48), (48, 64), (40, 40)]):
        truth = save_picture(root / "images" / f"p{i}.png", w, h, seed=i)
        if i == 1:
            truth[: h // 2] = False
        (root / "masks").mkdir(exist_ok=True)
        Image.fromarray(truth.astype(np.uint8) * 255).save(root / "masks" / f"p{i}.png")
    save_picture(root / "images" / "no_mask.png", 20, 20)
    return root


def expected(root, model, refinement: Refinement, input_size=None) -> dict:
    session = load_model(model)
    stats = MaskStats()
    for image in sorted((root / "images").glob("p*.png")):
        truth = np.asarray(Image.open(root / "masks" / image.name).convert("L")) >= 128
        stats.add(session.segment(load_rgb(image), refinement, input_size=input_size).mask, truth)
    return stats.summary()


def test_eval_json_matches_the_metrics_module(handseg, eval_set, red_model):
    run = handseg("eval", eval_set, "-m", red_model, "--json")

    assert run.exit_code == 0, run.stderr
    report = json.loads(run.stdout)
    want = expected(eval_set, red_model, Refinement())
    assert report["images"] == 3 and report["model"] == "tiny-red" and report["failed"] == []
    for key in ("iou", "accuracy", "precision", "recall"):
        assert report[key] == pytest.approx(want[key], abs=1e-12), key
    assert 0.5 < report["iou"] < 0.99 and report["precision"] < 0.9 < report["recall"]
    assert run.stderr.strip() == f"1 image(s) in {eval_set / 'images'} have no mask and are left out"


def test_eval_options_change_the_predictions(handseg, eval_set, red_model):
    run = handseg("eval", eval_set, "-m", red_model, "--json", "--size", 32, "--no-refine", "--threshold", 0.9, "-q")

    assert run.exit_code == 0, run.stderr
    report = json.loads(run.stdout)
    want = expected(eval_set, red_model, Refinement(threshold=0.9, min_area=0, fill_holes=0, snap_edges=False),
                    input_size=32)
    assert report["iou"] == pytest.approx(want["iou"], abs=1e-12)
    assert run.stderr == ""


def test_eval_table(handseg, eval_set, red_model):
    run = handseg("eval", eval_set, "-m", red_model, "-q")

    assert run.exit_code == 0, run.stderr
    rows = dict(re.fullmatch(r"(.+?) {2,}(\S+)", line).groups() for line in run.stdout.strip().splitlines())
    want = expected(eval_set, red_model, Refinement())
    assert rows["model"] == "tiny-red" and rows["images"] == "3"
    for name, key in [("IoU (mean per image)", "iou"), ("pixel accuracy", "accuracy"), ("precision", "precision"),
                      ("recall", "recall")]:
        assert float(rows[name]) == pytest.approx(want[key], abs=1e-4), name


def test_eval_reports_a_bad_image_and_scores_the_rest(handseg, eval_set, red_model):
    (eval_set / "images" / "p1.png").write_bytes(b"broken")

    run = handseg("eval", eval_set, "-m", red_model, "--json", "-q")

    assert run.exit_code == 1
    assert run.error_lines == [f"error: {eval_set / 'images' / 'p1.png'}: not an image file handseg can read "
                               "(JPEG, PNG, WebP, AVIF, GIF, BMP, TIFF, HEIC)"]
    report = json.loads(run.stdout)
    assert report["images"] == 2 and report["failed"] == [str(eval_set / "images" / "p1.png")]


def test_eval_needs_images_and_masks_folders(handseg, tmp_path, red_model):
    run = handseg("eval", tmp_path, "-m", red_model)

    assert run.exit_code == 2
    assert "must hold images/ and masks/" in run.stderr
