"""Photos over the working size: segmented reduced, made full size in bands (handseg_core.large).

The threshold (session.WORK_PIXELS) is lowered here so that small pictures take that path."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import handseg_core
from handseg_core import SegmentationResult, large, load_model, session as session_module
from handseg_core.compose import cutout_image
from handseg_core.images import load_rgb_reduced, reduction
from handseg_core.metrics import hand_iou
from tiny_model import hand_picture

GOLDEN = Path(__file__).parents[1] / "data" / "golden"


@pytest.fixture
def small_work_size(monkeypatch):
    monkeypatch.setattr(session_module, "WORK_PIXELS", 30_000)
    monkeypatch.setattr(large, "BAND_ROWS", 37)  # several bands, one of them short


def check_hands(result: SegmentationResult) -> None:
    union = np.zeros(result.mask.shape, bool)
    for hand in result.hands:
        on = hand.mask > 0
        assert not (union & on).any()  # each pixel has one hand
        union |= on
        ys, xs = np.nonzero(on)
        assert hand.box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert hand.area == np.count_nonzero(on)
    assert np.array_equal(union, result.mask > 0)  # together they are the mask


@pytest.mark.parametrize("size", [(400, 300), (333, 251)])
def test_a_large_picture_gives_full_size_results_close_to_the_direct_ones(red_model, small_work_size, monkeypatch,
                                                                          size):
    rgb, truth = hand_picture(*size)
    red = load_model(red_model)
    reduced = red.segment(rgb)
    monkeypatch.setattr(session_module, "WORK_PIXELS", 10**9)
    direct = red.segment(rgb)

    assert isinstance(reduced, large.UpsampledResult) and isinstance(reduced, SegmentationResult)
    assert not isinstance(direct, large.UpsampledResult)
    assert reduced.size == direct.size == size
    assert reduced.mask.shape == reduced.probability.shape == reduced.alpha.shape == (size[1], size[0])
    assert reduced.mask.dtype == np.uint8 and set(np.unique(reduced.mask)) <= {0, 255}
    assert reduced.probability.dtype == np.float32
    assert hand_iou(reduced.mask > 0, direct.mask > 0) > 0.95  # reduced 4 times here: a 50-pixel hand
    assert hand_iou(reduced.mask > 0, truth) > 0.94
    assert reduced.mask is reduced.mask and reduced.alpha is reduced.mask  # made once; no feather: one array
    check_hands(reduced)
    assert reduced.describe()["width"] == size[0] and "UpsampledResult" in repr(reduced)


def test_a_feathered_alpha_and_the_probability_are_interpolated(red_model, small_work_size):
    rgb, _ = hand_picture(400, 300)
    result = load_model(red_model).segment(rgb, handseg_core.Refinement(feather=0.02))
    assert result.alpha is not result.mask and result.alpha.shape == (300, 400)
    assert len(np.unique(result.alpha)) > 2
    assert 0.0 <= result.probability.min() and result.probability.max() <= 1.0


def test_hands_of_a_large_photo_keep_their_landmarks_at_full_size(small_work_size, monkeypatch):
    photo = GOLDEN / "egohands_padova_12.jpg"
    with Image.open(photo) as image:
        rgb = np.asarray(image.convert("RGB"))
    default = load_model(device="cpu")
    monkeypatch.setattr(session_module, "WORK_PIXELS", 60_000)
    reduced = default.segment(rgb)
    monkeypatch.setattr(session_module, "WORK_PIXELS", 10**9)
    direct = default.segment(rgb)

    assert hand_iou(reduced.mask > 0, direct.mask > 0) > 0.85
    check_hands(reduced)
    with_landmarks = [h for h in reduced.hands if h.landmarks is not None]
    direct_marks = [h.landmarks for h in direct.hands if h.landmarks is not None]
    assert with_landmarks and len(with_landmarks) == len(direct_marks)
    for hand in with_landmarks:  # at full-size coordinates, near the direct result's
        nearest = min(np.abs(m[:, :2] - hand.landmarks[:, :2]).mean() for m in direct_marks)
        assert nearest < 12
    largest = reduced.keep("largest")
    assert isinstance(largest, large.UpsampledResult) and len(largest.hands) == 1
    assert np.count_nonzero(largest.mask) <= np.count_nonzero(reduced.mask)


@pytest.mark.parametrize("shape", [(101, 77), (64, 200)])
@pytest.mark.parametrize("interpolation", [cv2.INTER_LINEAR, cv2.INTER_NEAREST])
def test_banded_resizing_matches_a_whole_resize(monkeypatch, shape, interpolation):
    monkeypatch.setattr(large, "BAND_ROWS", 13)
    rng = np.random.default_rng(0)
    for source in (rng.random((31, 23), dtype=np.float32), rng.integers(0, 256, (31, 23), dtype=np.uint8)):
        exact = cv2.INTER_NEAREST_EXACT if interpolation == cv2.INTER_NEAREST else interpolation  # pixel centres
        whole = cv2.resize(source, shape[::-1], interpolation=exact)
        banded = large.resized(source, shape, interpolation)
        tolerance = 1 if source.dtype == np.uint8 else 1e-2  # cv2's fixed-point weights against warpAffine's
        assert banded.shape == whole.shape and np.abs(banded.astype(float) - whole).max() <= tolerance


def test_inputs_over_the_working_size_are_reduced_without_changing_their_displayed_size(tmp_path):
    rgb, _ = hand_picture(400, 300)
    path = tmp_path / "big.png"
    Image.fromarray(rgb).save(path)
    assert reduction((300, 400), 30_000) == 2 and reduction((300, 400), 29_999) == 3
    assert reduction((300, 400), 120_000) == 1 and reduction((300, 400), None) == 1
    for source in (path, Image.fromarray(rgb), rgb, Image.fromarray(rgb).convert("RGBA")):
        pixels, displayed = load_rgb_reduced(source, lambda hw: hw, max_pixels=10_000)
        assert displayed == (300, 400) and pixels.shape == (75, 100, 3) and pixels.dtype == np.uint8
        assert np.abs(pixels.astype(int) - cv2.resize(rgb, (100, 75), interpolation=cv2.INTER_AREA)).mean() < 2
    assert load_rgb_reduced(rgb, lambda hw: hw, max_pixels=None)[0].shape == (300, 400, 3)


@pytest.mark.parametrize("background", [None, "white", (10, 200, 30)])
def test_a_reused_image_gives_the_same_cutout_band_by_band(monkeypatch, background):
    rgb, truth = hand_picture(90, 61)
    alpha = np.where(truth, 255, 0).astype(np.uint8)
    alpha[5:9, 5:40] = 128
    before = rgb.copy()
    expected = cutout_image(rgb, alpha, background)
    assert np.array_equal(rgb, before)  # an array is copied, never changed
    monkeypatch.setattr("handseg_core.compose.BAND_ROWS", 8)
    image = Image.fromarray(rgb)
    reused = cutout_image(image, alpha, background, reuse=True)
    assert np.array_equal(np.asarray(reused), np.asarray(expected))
    kept = Image.fromarray(rgb)
    cutout_image(kept, alpha, background)
    assert kept.mode == "RGB" and np.array_equal(np.asarray(kept), rgb)  # without reuse: untouched
