from __future__ import annotations

import numpy as np
import pytest

from handseg_core.preprocess import prepare, resize_long_side, resized_size, restore

HALF = (0.5, 0.5, 0.5)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@pytest.mark.parametrize("hw, long_side, expected", [
    ((100, 200), 64, (32, 64)),
    ((200, 100), 64, (64, 32)),
    ((480, 640), 512, (384, 512)),
    ((512, 512), 512, (512, 512)),
    ((10, 10), 512, (512, 512)),  # small images are enlarged to the network's size
    ((8, 6000), 512, (1, 512)),  # never below one pixel
    ((6000, 8), 512, (512, 1)),
    ((1, 1), 64, (64, 64)),
])
def test_resized_size(hw, long_side, expected):
    assert resized_size(*hw, long_side) == expected


def test_resize_long_side_averages_down_and_interpolates_up():
    """Reduced: each output pixel is the mean of the block it covers (no aliasing from a stripe
    pattern); enlarged: smooth; at its size already: the image itself, not a copy."""
    stripes = np.zeros((64, 128, 3), np.uint8)
    stripes[:, ::2] = 200  # one-pixel stripes: a point sample would give 0 or 200
    reduced = resize_long_side(stripes, 32)
    assert reduced.shape == (16, 32, 3)
    assert np.abs(reduced.astype(int) - 100).max() <= 1
    ramp = np.repeat(np.linspace(0, 250, 10, dtype=np.uint8)[None, :, None], 3, axis=2).repeat(5, axis=0)
    enlarged = resize_long_side(ramp, 40)
    assert enlarged.shape == (20, 40, 3)
    assert (np.diff(enlarged[10, :, 0].astype(int)) >= 0).all()
    assert resize_long_side(stripes, 128) is stripes


@pytest.mark.parametrize("hw", [(100, 200), (37, 53), (1, 1), (8, 6000), (512, 512), (300, 17)])
@pytest.mark.parametrize("stride", [8, 32])
def test_tensor_is_padded_to_the_stride(hw, stride):
    image = np.zeros((*hw, 3), np.uint8)
    prepared = prepare(image, 128, HALF, HALF, stride)
    n, c, h, w = prepared.tensor.shape
    rh, rw = prepared.resized_hw
    assert (n, c) == (1, 3)
    assert prepared.tensor.dtype == np.float32
    assert h % stride == 0 and w % stride == 0
    assert rh <= h < rh + stride and rw <= w < rw + stride
    assert max(rh, rw) == 128
    assert prepared.original_hw == hw
    assert prepared.tensor.flags.c_contiguous


@pytest.mark.parametrize("mean, std", [(HALF, HALF), (IMAGENET_MEAN, IMAGENET_STD), ((0, 0, 0), (1, 1, 1))])
def test_normalisation_values(mean, std):
    colour = np.array([255, 0, 128], np.uint8)
    image = np.broadcast_to(colour, (16, 16, 3)).copy()
    tensor = prepare(image, 16, mean, std, 16).tensor
    for c in range(3):
        expected = (colour[c] / 255 - mean[c]) / std[c]
        assert np.allclose(tensor[0, c], expected, atol=1e-5)


def test_half_normalisation_spans_minus_one_to_one():
    image = np.zeros((4, 8, 3), np.uint8)
    image[:, 4:] = 255
    tensor = prepare(image, 8, HALF, HALF, 4).tensor
    assert tensor.min() == pytest.approx(-1.0) and tensor.max() == pytest.approx(1.0)


def test_channels_stay_in_rgb_order():
    image = np.zeros((8, 8, 3), np.uint8)
    image[..., 0] = 255  # red
    tensor = prepare(image, 8, (0, 0, 0), (1, 1, 1), 8).tensor
    assert np.allclose(tensor[0, 0], 1) and np.allclose(tensor[0, 1:], 0)


def test_padding_repeats_the_border_pixels():
    image = np.zeros((10, 12, 3), np.uint8)
    image[-1] = 200  # last row
    image[:, -1] = 100  # last column
    prepared = prepare(image, 12, (0, 0, 0), (1, 1, 1), 8)  # no resize: 10x12 padded to 16x16
    assert prepared.resized_hw == (10, 12)
    t = prepared.tensor[0, 0]
    assert t.shape == (16, 16)
    assert np.allclose(t[:10, :12], image[..., 0] / 255)
    assert np.allclose(t[10:, :11], 200 / 255)  # rows below repeat the last row
    assert np.allclose(t[:9, 12:], 100 / 255)  # columns to the right repeat the last column


def test_prepare_leaves_the_image_unchanged():
    image = np.random.default_rng(0).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    before = image.copy()
    prepare(image, 64, IMAGENET_MEAN, IMAGENET_STD, 32)
    assert np.array_equal(image, before)


def test_restore_crops_the_padding_exactly_without_resize():
    image = np.zeros((10, 12, 3), np.uint8)
    prepared = prepare(image, 12, HALF, HALF, 8)
    network = np.full((16, 16), 0.9, np.float32)  # padding says "hand"...
    content = np.random.default_rng(1).random((10, 12)).astype(np.float32)
    network[:10, :12] = content  # ...the image area has its own values
    restored = restore(network, prepared)
    assert restored.shape == (10, 12) and restored.dtype == np.float32
    assert np.array_equal(restored, content)


@pytest.mark.parametrize("hw, long_side", [((100, 200), 64), ((30, 20), 128), ((8, 600), 64), ((257, 129), 96)])
def test_restore_maps_back_to_the_original_size(hw, long_side):
    h, w = hw
    prepared = prepare(np.zeros((h, w, 3), np.uint8), long_side, HALF, HALF, 32)
    rh, rw = prepared.resized_hw
    _, _, ph, pw = prepared.tensor.shape
    network = np.ones((ph, pw), np.float32)  # padding at 1.0 must not leak in
    network[:rh, :rw] = 0.25
    restored = restore(network, prepared)
    assert restored.shape == (h, w) and restored.dtype == np.float32
    assert np.allclose(restored, 0.25)


def test_restore_keeps_positions_on_a_ramp():
    h, w = 60, 200
    prepared = prepare(np.zeros((h, w, 3), np.uint8), 50, HALF, HALF, 16)
    rh, rw = prepared.resized_hw
    assert (rh, rw) == (15, 50)
    _, _, ph, pw = prepared.tensor.shape
    # A map whose value is the horizontal position (pixel centres, as a fraction of the width).
    network = np.zeros((ph, pw), np.float32)
    network[:rh, :rw] = (np.arange(rw) + 0.5) / rw
    restored = restore(network, prepared)
    expected = (np.arange(w) + 0.5) / w
    inner = slice(w // rw * 2, -w // rw * 2)  # away from the clamped borders
    assert np.abs(restored[:, inner] - expected[inner]).max() < 1e-4
    assert np.abs(restored - expected).max() <= 1.5 / rw


def test_restore_clips_to_probabilities():
    prepared = prepare(np.zeros((8, 8, 3), np.uint8), 8, HALF, HALF, 8)
    restored = restore(np.array([[-0.5, 2.0] * 4] * 8, np.float32), prepared)
    assert restored.min() == 0.0 and restored.max() == 1.0


def plain_prepare_tensor(image: np.ndarray, long_side: int, mean, std, stride: int) -> np.ndarray:
    """The definition the engine's fused normalise-and-pad must agree with."""
    import cv2

    h, w = image.shape[:2]
    rh, rw = resized_size(h, w, long_side)
    if (rh, rw) != (h, w):
        image = cv2.resize(image, (rw, rh), interpolation=cv2.INTER_AREA if rh < h else cv2.INTER_LINEAR)
    x = (image.astype(np.float32) / 255 - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    x = np.pad(x, ((0, -rh % stride), (0, -rw % stride), (0, 0)), mode="edge")
    return x.transpose(2, 0, 1)[None]


@pytest.mark.parametrize("size, long_side", [((720, 1280), 512), ((300, 200), 512), ((37, 101), 64), ((64, 64), 64)])
@pytest.mark.parametrize("mean, std", [(HALF, HALF), (IMAGENET_MEAN, IMAGENET_STD)])
def test_prepare_equals_the_plain_definition(size, long_side, mean, std):
    image = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    got = prepare(image, long_side, mean, std, 32)
    assert got.tensor.dtype == np.float32 and got.tensor.flags.c_contiguous
    np.testing.assert_allclose(got.tensor, plain_prepare_tensor(image, long_side, mean, std, 32), rtol=0, atol=1e-5)
