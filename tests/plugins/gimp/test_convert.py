from __future__ import annotations

import numpy as np
import pytest

import handseg_core
from handseg_core.images import load_rgb
from handseg_core.metrics import hand_iou
from handseg_plugins.gimp.convert import (
    READ_CHANNELS,
    channel_format,
    mask_to_bytes,
    on_canvas,
    rgb_from_bytes,
)
from tiny_model import hand_picture


def test_rgb_bytes_come_back_as_the_same_array():
    rgb, _ = hand_picture(37, 23)

    assert np.array_equal(rgb_from_bytes(rgb.tobytes(), 37, 23, 3), rgb)


def test_transparent_pixels_are_laid_over_white_as_handseg_does():
    rgb, _ = hand_picture(40, 30)
    alpha = np.tile(np.linspace(0, 255, 40).astype(np.uint8), (30, 1))
    rgba = np.dstack([rgb, alpha])

    ours = rgb_from_bytes(rgba.tobytes(), 40, 30, READ_CHANNELS)

    assert np.abs(ours.astype(int) - load_rgb(rgba).astype(int)).max() <= 1
    assert (ours[:, 0] == 255).all() and np.array_equal(ours[:, -1], rgb[:, -1])


@pytest.mark.parametrize("channels", [1, 2])
def test_grey_pixels_become_grey_rgb(channels):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    data = np.dstack([grey] + [np.full_like(grey, 255)] * (channels - 1)).tobytes()

    rgb = rgb_from_bytes(data, 4, 3, channels)

    assert rgb.shape == (3, 4, 3) and all(np.array_equal(rgb[..., c], grey) for c in range(3))


@pytest.mark.parametrize("data, width, height, channels, message", [
    (b"\0" * 11, 2, 2, 3, "expected 12 bytes for 2x2x3, got 11"),
    (b"", 0, 2, 4, "empty drawable"),
    (b"\0" * 10, 2, 1, 5, "channels must be 1, 2, 3 or 4"),
])
def test_wrong_buffers_say_what_was_expected(data, width, height, channels, message):
    with pytest.raises(ValueError, match=message):
        rgb_from_bytes(data, width, height, channels)


def test_masks_become_one_byte_per_pixel_row_by_row():
    mask = np.array([[0, 255, 128], [7, 0, 255]], np.uint8)

    assert mask_to_bytes(mask) == bytes([0, 255, 128, 7, 0, 255])
    assert mask_to_bytes(mask[:, ::-1]) == bytes([128, 255, 0, 255, 0, 7])
    assert mask_to_bytes(np.array([[True, False]])) == bytes([255, 0])


@pytest.mark.parametrize("mask, message", [(np.zeros((2, 2, 1), np.uint8), "HxW"),
                                           (np.zeros((2, 2), np.float32), "uint8 or bool")])
def test_masks_of_other_shapes_or_types_are_refused(mask, message):
    with pytest.raises(ValueError, match=message):
        mask_to_bytes(mask)


@pytest.mark.parametrize("model, fmt", [("Y", "Y u8"), ("Y'", "Y' u8"), ("Y~", "Y~ u8"), ("R'G'B'A", "Y u8")])
def test_masks_are_written_in_the_channels_own_grey(model, fmt):
    assert channel_format(model) == fmt


@pytest.mark.parametrize("offset", [(0, 0), (3, 2), (-2, -1), (5, 4), (9, 9), (-9, 0)])
def test_a_layer_mask_lands_where_the_layer_lies(offset):
    mask = np.arange(1, 1 + 4 * 6, dtype=np.uint8).reshape(4, 6)
    x, y = offset

    placed = on_canvas(mask, offset, (7, 5))

    expected = np.zeros((5, 7), np.uint8)
    for row in range(4):
        for column in range(6):
            if 0 <= y + row < 5 and 0 <= x + column < 7:
                expected[y + row, x + column] = mask[row, column]
    assert np.array_equal(placed, expected)


def test_a_layer_larger_than_the_canvas_is_cut_to_it():
    mask = np.full((10, 12), 255, np.uint8)

    assert np.array_equal(on_canvas(mask, (-1, -2), (5, 4)), np.full((4, 5), 255, np.uint8))


def test_gimp_pixels_through_handseg_and_back(red_model):
    rgb, truth = hand_picture(96, 72)
    data = np.dstack([rgb, np.full(truth.shape, 255, np.uint8)]).tobytes()

    # The conversion is under test: no edge snapping, which reshapes edges on this noise picture.
    unsnapped = handseg_core.Refinement(snap_edges=False)
    mask = handseg_core.load_model(red_model).segment(rgb_from_bytes(data, 96, 72), unsnapped).mask
    back = np.frombuffer(mask_to_bytes(mask), np.uint8).reshape(72, 96)

    assert hand_iou(back > 127, truth) > 0.95
