"""Per-hand crops: the upright square, the landmark drawing, cutting and pasting back."""

import math

import numpy as np
import pytest

from handseg_core import handcrop as C


def open_hand(angle: float = 0.0, centre=(200.0, 150.0), palm: float = 40.0) -> np.ndarray:
    """21 landmarks of an open hand, fingers up, turned by `angle` (radians, clockwise on screen)."""
    points = [(0, 0)]
    for k, x in enumerate((-0.6, -0.3, 0.0, 0.3, 0.55)):  # thumb, index ... pinky
        base = (x, -0.9 if k else -0.4)
        for j in range(4):
            points.append((base[0] + (x * 0.2 if k == 0 else 0), base[1] - 0.35 * j))
    xy = np.array(points, np.float64) * palm
    xy[9] = (0, -palm)  # the middle knuckle one palm above the wrist
    cos, sin = math.cos(angle), math.sin(angle)
    turned = np.stack([xy[:, 0] * cos - xy[:, 1] * sin, xy[:, 0] * sin + xy[:, 1] * cos], 1) + centre
    return np.concatenate([turned, np.zeros((21, 1))], 1).astype(np.float32)


@pytest.mark.parametrize("angle", [0.0, 0.7, -2.0, math.pi])
def test_the_crop_is_upright_and_holds_the_hand(angle):
    hand = open_hand(angle)
    square = C.crop_square(hand)
    inside = C.landmarks_in_crop(hand, square)
    wrist_to_middle = inside[9] - inside[0]
    assert wrist_to_middle / np.linalg.norm(wrist_to_middle) == pytest.approx([0, -1], abs=1e-6)
    assert inside.min() > 0 and inside.max() < C.CROP_SIZE  # every landmark inside, with a margin
    extent = np.ptp(inside, 0).max()
    assert extent == pytest.approx(C.CROP_SIZE / C.CROP_MARGIN, rel=1e-3)


def test_a_fist_gets_at_least_its_palm_lengths():
    fist = open_hand()
    fist[1:, :2] = fist[0, :2] + (fist[1:, :2] - fist[0, :2]) * 0.3
    fist[9, :2] = fist[0, :2] + (0, -40)
    _, _, side, _ = C.crop_square(fist)
    assert side == pytest.approx(C.MIN_PALM_LENGTHS * 40)


def test_the_drawing_follows_the_bones_and_the_palm():
    hand = open_hand()
    square = C.crop_square(hand)
    points = C.landmarks_in_crop(hand, square)
    drawn = C.render_landmarks(points)
    assert drawn.shape == (C.LANDMARK_CHANNELS, C.CROP_SIZE, C.CROP_SIZE) and drawn.dtype == np.float32
    assert 0 <= drawn.min() and drawn.max() <= 1
    tip = np.round(points[12]).astype(int)  # the middle finger's tip: on a bone, off the palm
    assert drawn[0, tip[1], tip[0]] > 0.3 and drawn[1, tip[1], tip[0]] < 0.05
    palm = np.round(points[[0, 5, 17]].mean(0)).astype(int)
    assert drawn[1, palm[1], palm[0]] > 0.9
    assert drawn[:, :8, :8].max() == 0  # nothing in a far corner


def test_cut_and_paste_back_are_inverse():
    rng = np.random.default_rng(0)
    photo = (rng.random((300, 400, 3)) * 255).astype(np.uint8)
    photo = np.ascontiguousarray(np.repeat(np.repeat(photo[::10, ::10], 10, 0), 10, 1))  # smooth blocks
    hand = open_hand(0.5)
    square = C.crop_square(hand)
    crop = C.cut(photo, square)
    grey = crop[..., 0].astype(np.float32)
    values, (x0, y0, x1, y1) = C.paste(grey, square, photo.shape[:2])
    inside = C.paste(np.ones_like(grey), square, photo.shape[:2])[0] > 0.999
    assert inside.mean() > 0.3
    error = np.abs(values - photo[y0:y1, x0:x1, 0])[inside]
    assert np.median(error) < 1.0  # interpolation at block edges only


def test_outside_the_photo_is_black_and_the_paste_is_clipped():
    photo = np.full((100, 100, 3), 200, np.uint8)
    hand = open_hand(centre=(95.0, 95.0), palm=30.0)  # mostly off the photo
    square = C.crop_square(hand)
    crop = C.cut(photo, square)
    assert crop.min() == 0 and crop.max() == 200
    values, (x0, y0, x1, y1) = C.paste(np.ones((256, 256), np.float32), square, (100, 100))
    assert x1 <= 100 and y1 <= 100 and values.shape == (y1 - y0, x1 - x0)


def test_crop_input_normalises_rgb_and_appends_the_drawing():
    photo = np.full((300, 400, 3), 255, np.uint8)
    hand = open_hand()
    square = C.crop_square(hand)
    x = C.crop_input(photo, hand, square, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert x.shape == (5, C.CROP_SIZE, C.CROP_SIZE)
    assert x[:3].max() == pytest.approx(1.0) and x[3:].max() > 0.5


def test_the_drawn_hand_has_fingers_as_wide_as_fingers_and_a_filled_palm():
    hand = open_hand()
    points = C.landmarks_in_crop(hand, C.crop_square(hand))
    drawn = C.drawn_hand(points)
    assert drawn.shape == (C.CROP_SIZE, C.CROP_SIZE) and drawn.dtype == np.float32
    for k in (4, 8, 12, 16, 20, 0):  # the fingertips and the wrist are on it
        x, y = np.round(points[k] - 0.5).astype(int)
        assert drawn[y, x] > 0.5
    # wider than the network's input drawing: its fingers are DRAWN_FINGER palm lengths wide
    thin = C.render_landmarks(points).max(0)
    assert np.count_nonzero(drawn >= 0.5) > 1.2 * np.count_nonzero(thin >= 0.5)
    assert drawn[:8, :8].max() == 0
