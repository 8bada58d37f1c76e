"""The JPEG draft decode the benchmark proposes: smaller pixels, nearly the engine's mask."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from handseg_core import load_model
from handseg_core.metrics import hand_iou

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from alternatives import decode_draft, draft_mask  # noqa: E402
from tiny_model import hand_picture, write_red_model  # noqa: E402


def write_jpeg(tmp_path: Path, width: int, height: int) -> tuple[Path, np.ndarray]:
    rgb, truth = hand_picture(width, height)
    path = tmp_path / "hand.jpg"
    Image.fromarray(rgb).save(path, quality=95)
    return path, truth


def test_draft_decode_is_reduced_but_covers_the_size(tmp_path):
    path, _ = write_jpeg(tmp_path, 1280, 960)
    small = decode_draft(str(path), (320, 240))
    assert small.shape == (240, 320, 3)  # JPEG scale 1/4 exactly covers 320x240
    assert decode_draft(str(path), (330, 250)).shape == (480, 640, 3)  # 1/4 would not cover: 1/2


def test_draft_mask_is_full_size_and_close_to_the_engine(tmp_path):
    path, truth = write_jpeg(tmp_path, 1280, 960)
    segmenter = load_model(write_red_model(tmp_path / "models"), device="cpu")
    engine = segmenter.segment(path).mask > 0
    draft = draft_mask(segmenter, str(path)) > 0
    assert draft.shape == engine.shape == truth.shape
    assert hand_iou(draft, engine) > 0.97
    assert hand_iou(draft, truth) > 0.9
