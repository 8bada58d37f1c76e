"""The lean stages the benchmark proposes give the engine's results exactly."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from handseg_core.postprocess import Refinement, refine
from handseg_core.preprocess import prepare

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from alternatives import lean_prepare, lean_refine  # noqa: E402


def blobby_probability(seed: int, shape=(180, 320)) -> np.ndarray:
    """Smooth random blobs with specks and holes: every cleanup step has work to do."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.random(shape, dtype=np.float32), (0, 0), sigmaX=rng.uniform(1, 6))
    noise = (noise - noise.min()) / (noise.max() - noise.min() + 1e-6)
    return np.clip(noise + rng.normal(0, 0.05, shape).astype(np.float32), 0, 1)


REFINEMENTS = [
    Refinement(),
    Refinement(min_area=0.0, fill_holes=0.0),
    Refinement(threshold=0.3, min_area=0.01, fill_holes=0.01),
    Refinement(threshold=0.7, open_size=0.01, close_size=0.01, dilate=0.005, erode=0.005, min_area=0.002,
               fill_holes=0.005, feather=0.01),
    Refinement(threshold=1.0),
    Refinement(threshold=0.0),
]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("options", REFINEMENTS)
def test_lean_refine_equals_refine(seed, options):
    probability = blobby_probability(seed)
    mask, alpha = refine(probability, options)
    lean_mask, lean_alpha = lean_refine(probability, options)
    assert lean_mask.dtype == np.uint8 and lean_mask.shape == mask.shape
    np.testing.assert_array_equal(lean_mask, mask)
    np.testing.assert_array_equal(lean_alpha, alpha)


@pytest.mark.parametrize("size, long_side", [((720, 1280), 512), ((300, 200), 512), ((37, 101), 64), ((64, 64), 64)])
@pytest.mark.parametrize("mean, std", [((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)), ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
def test_lean_prepare_equals_prepare(size, long_side, mean, std):
    image = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    expected, got = prepare(image, long_side, mean, std, 32), lean_prepare(image, long_side, mean, std, 32)
    assert got.tensor.shape == expected.tensor.shape and got.tensor.dtype == np.float32
    assert got.tensor.flags.c_contiguous
    assert (got.resized_hw, got.original_hw) == (expected.resized_hw, expected.original_hw)
    np.testing.assert_allclose(got.tensor, expected.tensor, rtol=0, atol=1e-5)
