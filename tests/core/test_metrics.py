from __future__ import annotations

import math

import numpy as np
import pytest

from handseg_core.metrics import MaskStats, hand_iou


def masks(*rows: str) -> np.ndarray:
    return np.array([[c == "#" for c in row] for row in rows])


def test_iou_of_overlapping_masks():
    predicted = masks("##..", "##..")
    truth = masks(".##.", ".##.")
    assert hand_iou(predicted, truth) == pytest.approx(2 / 6)


def test_both_empty_counts_one():
    empty = np.zeros((4, 4), bool)
    assert hand_iou(empty, empty) == 1.0


def test_one_empty_counts_zero():
    empty = np.zeros((4, 4), bool)
    some = masks("#...", "....", "....", "....")
    assert hand_iou(empty, some) == 0.0
    assert hand_iou(some, empty) == 0.0


def test_uint8_masks_count_like_bool():
    predicted = masks("##..", "##..")
    truth = masks(".##.", ".##.")
    assert hand_iou(predicted.astype(np.uint8) * 255, truth.astype(np.uint8) * 255) == hand_iou(predicted, truth)


def test_shape_mismatch():
    with pytest.raises(ValueError, match="differ"):
        hand_iou(np.zeros((3, 4), bool), np.zeros((4, 3), bool))


def test_accumulation_averages_per_image():
    stats = MaskStats()
    assert stats.add(masks("##", "##"), masks("##", "##")) == 1.0  # perfect
    assert stats.add(masks("..", ".."), masks("..", "..")) == 1.0  # both empty
    assert stats.add(masks("#.", ".."), masks("..", "..")) == 0.0  # false alarm
    assert stats.add(masks("##", ".."), masks("#.", "..")) == 0.5
    summary = stats.summary()
    assert summary["images"] == 4
    assert summary["iou"] == pytest.approx((1 + 1 + 0 + 0.5) / 4)
    # Pixels over all images: tp 4 + 0 + 0 + 1, fp 0 + 0 + 1 + 1, fn 0, tn 0 + 4 + 3 + 2.
    assert (stats.tp, stats.fp, stats.fn, stats.tn) == (5, 2, 0, 9)
    assert summary["accuracy"] == pytest.approx(14 / 16)
    assert summary["precision"] == pytest.approx(5 / 7)
    assert summary["recall"] == 1.0


def test_per_image_mean_differs_from_pooled_iou():
    stats = MaskStats()
    big = np.ones((10, 10), bool)
    stats.add(big, big)  # 100 correct pixels
    stats.add(masks("#.", ".."), masks(".#", ".."))  # a small miss
    assert stats.summary()["iou"] == pytest.approx(0.5)
    assert stats.tp / (stats.tp + stats.fp + stats.fn) > 0.9


def test_empty_summary():
    summary = MaskStats().summary()
    assert summary["images"] == 0
    assert all(math.isnan(summary[k]) for k in ("iou", "accuracy", "precision", "recall"))


def test_no_predicted_hands_leaves_precision_undefined():
    stats = MaskStats()
    stats.add(masks("..", ".."), masks("#.", ".."))
    assert math.isnan(stats.summary()["precision"]) and stats.summary()["recall"] == 0.0
