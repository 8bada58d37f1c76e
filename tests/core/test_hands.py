"""Combining the per-hand crops with the whole image, and splitting the mask into hands."""

import numpy as np
import pytest

from handseg_core import handcrop
from handseg_core import hands as H
from handseg_core.finder import FoundHand

SHAPE = (100, 120)


def found(x: float, y: float, score: float = 0.9, side: str = "left") -> FoundHand:
    landmarks = np.zeros((21, 3), np.float32)
    landmarks[:, 0], landmarks[:, 1] = x, y
    return FoundHand((x, y, x, y), score, side, 0.9, landmarks)


def crop_paste(crop: np.ndarray, square):
    values, box = handcrop.paste(crop, square, SHAPE)
    return values, box, square


def test_inside_a_crop_the_per_hand_network_decides():
    whole = np.zeros(SHAPE, np.float32)
    whole[:, :10] = 0.9  # a hand the finder missed, far from the crop
    whole[40:60, 40:80] = 0.8  # face skin the whole-image network took for hand, inside the crop
    square = (60.0, 50.0, 40.0, 0.0)  # a 40 px square around (60, 50): 6.4 crop pixels a photo pixel
    crop = np.zeros((256, 256), np.float32)
    crop[96:128, 96:128] = 0.95  # the hand: photo x 55-60, y 45-50
    combined = H.combine(whole, [crop_paste(crop, square)])
    assert combined[47, 57] == pytest.approx(0.95, abs=1e-3)  # the crop's core: the per-hand network
    assert combined[53, 63] == pytest.approx(0.0, abs=1e-3)  # ... which says the face is no hand
    assert 0.05 < combined[50, 78] < 0.75  # towards the square's edge: fading to the whole image
    assert np.allclose(combined[:, :10], 0.9)  # outside every crop: the whole image
    maxed = H.combine(whole, [crop_paste(crop, square)], rule="max")
    assert maxed[53, 63] == pytest.approx(0.8) and maxed[47, 57] == pytest.approx(0.95, abs=1e-3)


def test_overlapping_crops_keep_the_larger_probability():
    whole = np.zeros(SHAPE, np.float32)
    a = crop_paste(np.full((256, 256), 0.3, np.float32), (50.0, 50.0, 60.0, 0.0))
    b = crop_paste(np.full((256, 256), 0.7, np.float32), (60.0, 55.0, 60.0, 0.3))
    combined = H.combine(whole, [a, b])
    assert combined[55, 57] == pytest.approx(0.7, abs=1e-3)


def test_split_gives_each_pixel_one_hand_and_keeps_the_union():
    mask = np.zeros(SHAPE, np.uint8)
    mask[20:40, 20:40] = 255  # hand 0
    mask[20:40, 40:60] = 255  # hand 1, touching hand 0
    mask[40:43, 45:50] = 255  # a fringe below hand 1 that no crop reaches
    mask[80:90, 100:110] = 255  # a hand the finder missed
    a = (np.full((20, 20), 0.9, np.float32), (20, 20, 40, 40), None)
    b = (np.full((20, 20), 0.8, np.float32), (40, 20, 60, 40), None)
    owner = H.owners([a, b], SHAPE)
    probability = mask.astype(np.float32) / 255 * 0.7
    hands = H.split(mask, [found(30, 30, side="left"), found(50, 30, side="right")], owner, probability)
    assert len(hands) == 3
    union = np.zeros(SHAPE, bool)
    for hand in hands:
        assert not (union & (hand.mask > 0)).any()  # no pixel in two hands
        union |= hand.mask > 0
    assert (union == (mask > 0)).all()
    by_side = {hand.handedness: hand for hand in hands}
    assert by_side["left"].box == (20, 20, 40, 40)
    assert by_side["right"].box == (40, 20, 60, 43)  # the fringe went to the hand it touches
    missed = by_side[None]
    assert missed.landmarks is None and missed.score == pytest.approx(0.7) and missed.area == 100
    assert [hand.area for hand in hands] == sorted((hand.area for hand in hands), reverse=True)


def test_no_hand_no_hands():
    empty = np.zeros(SHAPE, np.uint8)
    assert H.split(empty, [], np.full(SHAPE, -1, np.int16), np.zeros(SHAPE, np.float32)) == []
    # a found hand whose crop says "no hand here" yields no Hand either
    owner = H.owners([crop_paste(np.full((256, 256), 0.1, np.float32), (20.0, 20.0, 20.0, 0.0))], SHAPE)
    assert H.split(empty, [found(20, 20)], owner, np.zeros(SHAPE, np.float32)) == []


def test_scaled_moves_landmarks_and_boxes_to_the_displayed_size():
    (hand,) = H.scaled([found(10, 20)], (2.0, 3.0))
    assert hand.landmarks[0, :2] == pytest.approx([20, 60]) and hand.box == pytest.approx((20, 60, 20, 60))
