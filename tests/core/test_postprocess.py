from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from handseg_core.metrics import hand_iou
from handseg_core.postprocess import (
    NO_REFINEMENT, SNAP_EPS, SNAP_FLOOR, Refinement, fill_small_holes, refine, remove_small_regions, snap_to_edges,
)


def square(size: int, top: int, left: int, side: int) -> np.ndarray:
    p = np.zeros((size, size), np.float32)
    p[top:top + side, left:left + side] = 1.0
    return p


def components(mask: np.ndarray) -> int:
    return cv2.connectedComponents((mask > 0).astype(np.uint8), connectivity=8)[0] - 1


def test_threshold_splits_at_the_given_probability():
    p = np.linspace(0, 1, 101, dtype=np.float32).reshape(1, 101).repeat(3, axis=0)
    for t in (0.0, 0.3, 0.5, 0.9, 1.0):
        mask, alpha = refine(p, NO_REFINEMENT.with_(threshold=t))
        assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}
        assert np.array_equal(mask == 255, p >= t)
        assert np.array_equal(alpha, mask)


def test_default_refinement_output_types():
    p = np.random.default_rng(0).random((40, 30)).astype(np.float32)
    mask, alpha = refine(p)
    assert mask.shape == alpha.shape == (40, 30)
    assert mask.dtype == alpha.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, 255}


def test_refine_does_not_change_the_probability():
    p = square(50, 10, 10, 20)
    before = p.copy()
    refine(p, Refinement(open_size=0.05, close_size=0.05, dilate=0.02, feather=0.05))
    assert np.array_equal(p, before)


def test_opening_removes_specks_and_keeps_the_hand():
    p = square(200, 50, 50, 80)
    p[10, 10] = p[150, 180] = p[20:22, 170:172] = 1.0
    plain, _ = refine(p, NO_REFINEMENT)
    opened, _ = refine(p, NO_REFINEMENT.with_(open_size=0.02))
    assert components(plain) == 4 and components(opened) == 1
    assert hand_iou(opened, p > 0.5) > 0.98


def test_closing_bridges_a_hairline_gap():
    p = np.zeros((200, 200), np.float32)
    p[50:150, 40:99] = 1
    p[50:150, 101:160] = 1  # 2-pixel crack
    plain, _ = refine(p, NO_REFINEMENT)
    closed, _ = refine(p, NO_REFINEMENT.with_(close_size=0.02))
    assert components(plain) == 2 and components(closed) == 1
    assert (closed[60:140, 99:101] == 255).all()


def test_dilate_grows_and_erode_shrinks():
    p = square(100, 30, 30, 40)
    base, _ = refine(p, NO_REFINEMENT)
    grown, _ = refine(p, NO_REFINEMENT.with_(dilate=0.05))
    shrunk, _ = refine(p, NO_REFINEMENT.with_(erode=0.05))
    assert (grown[base == 255] == 255).all() and np.count_nonzero(grown) > np.count_nonzero(base)
    assert (base[shrunk == 255] == 255).all() and np.count_nonzero(shrunk) < np.count_nonzero(base)
    # 5 % of a 100-pixel side is a 5-pixel radius: the 40-pixel square becomes about 30 or 50 wide.
    assert np.count_nonzero(shrunk[50]) == pytest.approx(30, abs=1)
    assert np.count_nonzero(grown[50]) == pytest.approx(50, abs=1)


@pytest.mark.parametrize("option", ["dilate", "erode", "open_size", "close_size"])
def test_sizes_scale_with_the_image(option):
    def picture(scale: int) -> np.ndarray:
        p = np.zeros((100 * scale, 150 * scale), np.float32)
        p[20 * scale:80 * scale, 30 * scale:42 * scale] = 1  # a finger
        p[20 * scale:80 * scale, 48 * scale:60 * scale] = 1  # a finger after a gap
        p[40 * scale:60 * scale, 80 * scale:86 * scale] = 1  # a thin stroke
        return p

    settings = NO_REFINEMENT.with_(**{option: 0.04})
    small, _ = refine(picture(1), settings)
    large, _ = refine(picture(2), settings)
    unrefined, _ = refine(picture(1), NO_REFINEMENT)
    large_at_small = cv2.resize(large, small.shape[::-1], interpolation=cv2.INTER_AREA) >= 128
    assert hand_iou(large_at_small, small) > 0.95
    assert hand_iou(small, unrefined) < 0.9  # the step did change the mask a good deal


def test_small_regions_are_removed():
    p = square(100, 10, 10, 30)  # 900 px, 9 % of the image
    p[80:83, 80:83] = 1  # 9 px, 0.09 %
    mask, _ = refine(p, NO_REFINEMENT.with_(min_area=0.002))
    assert components(mask) == 1 and mask[81, 81] == 0 and mask[20, 20] == 255
    kept, _ = refine(p, NO_REFINEMENT.with_(min_area=0.0005))
    assert components(kept) == 2


def test_small_holes_are_filled_but_the_gap_between_fingers_stays_open():
    p = np.zeros((200, 200), np.float32)
    p[40:160, 40:160] = 1  # palm
    p[60:62, 60:62] = 0  # a 4-pixel hole (0.01 % of the image)
    p[100:150, 80:120] = 0  # a 2000-pixel enclosed gap (5 %), e.g. fingers that touch at the tips
    mask, _ = refine(p)  # default fill_holes: 0.02 % of the image
    assert (mask[60:62, 60:62] == 255).all()
    assert (mask[100:150, 80:120] == 0).all()
    untouched, _ = refine(p, NO_REFINEMENT)
    assert (untouched[60:62, 60:62] == 0).all()


def test_holes_touching_the_border_are_not_filled():
    mask = np.zeros((50, 50), np.uint8)
    mask[:, 10:40] = 255
    mask[0:2, 20:22] = 0  # a notch at the top border
    assert np.array_equal(fill_small_holes(mask, 100), mask)


def test_remove_and_fill_helpers_leave_their_input_alone():
    mask = np.zeros((30, 30), np.uint8)
    mask[5:25, 5:25] = 255
    mask[10, 10] = 0
    mask[0, 29] = 255
    before = mask.copy()
    removed = remove_small_regions(mask, 5)
    filled = fill_small_holes(mask, 5)
    assert np.array_equal(mask, before)
    assert removed[0, 29] == 0 and filled[10, 10] == 255


def test_feather_ramps_alpha_only_near_edges():
    p = square(200, 50, 50, 100)
    mask, alpha = refine(p, NO_REFINEMENT.with_(feather=0.05))  # 10-pixel feather
    plain, _ = refine(p, NO_REFINEMENT)
    assert np.array_equal(mask, plain)  # the mask itself stays hard
    soft = (alpha > 0) & (alpha < 255)
    assert soft.any()
    outside = cv2.distanceTransform((mask == 0).astype(np.uint8), cv2.DIST_L2, 5)
    inside = cv2.distanceTransform((mask == 255).astype(np.uint8), cv2.DIST_L2, 5)
    distance_to_edge = np.maximum(outside, inside)
    assert distance_to_edge[soft].max() <= 20
    assert (alpha[distance_to_edge > 20] == mask[distance_to_edge > 20]).all()
    assert alpha[100, 100] == 255 and alpha[5, 5] == 0


def test_feather_width_scales_with_the_image():
    widths = []
    for scale in (1, 2):
        p = square(100 * scale, 25 * scale, 25 * scale, 50 * scale)
        _, alpha = refine(p, NO_REFINEMENT.with_(feather=0.05))
        row = alpha[50 * scale]
        widths.append(np.count_nonzero((row > 10) & (row < 245)) / scale)
    assert widths[0] > 2
    assert widths[1] == pytest.approx(widths[0], rel=0.25)


@pytest.mark.parametrize("changes, words", [
    ({"threshold": 1.5}, ["threshold", "0..1", "1.5"]),
    ({"threshold": -0.1}, ["threshold", "0..1"]),
    ({"threshold": math.nan}, ["threshold"]),
    ({"open_size": -0.01}, ["open_size", "fraction"]),
    ({"close_size": 1.0}, ["close_size", "fraction"]),
    ({"dilate": 2}, ["dilate", "fraction"]),
    ({"erode": math.nan}, ["erode"]),
    ({"min_area": 5.0}, ["min_area"]),
    ({"fill_holes": -1}, ["fill_holes"]),
    ({"feather": 10}, ["feather"]),
])
def test_refinement_validation(changes, words):
    with pytest.raises(ValueError) as caught:
        Refinement(**changes)
    for word in words:
        assert word in str(caught.value)
    with pytest.raises(ValueError):
        Refinement().with_(**changes)


def test_refinement_with_returns_a_changed_copy():
    base = Refinement()
    changed = base.with_(dilate=0.01)
    assert changed.dilate == 0.01 and base.dilate == 0.0
    assert changed.threshold == base.threshold


# The engine's cleanup skips work when there is nothing to do and avoids int64 temporaries; these
# are the plain definitions it must agree with, pixel for pixel.
def plain_refine(probability: np.ndarray, options: Refinement) -> tuple[np.ndarray, np.ndarray]:
    def pixels(fraction):
        return max(1, round(fraction * min(probability.shape))) if fraction > 0 else 0

    def kernel(r):
        return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))

    mask = np.where(probability >= options.threshold, 255, 0).astype(np.uint8)
    for size, op in ((options.open_size, cv2.MORPH_OPEN), (options.close_size, cv2.MORPH_CLOSE),
                     (options.dilate, cv2.MORPH_DILATE), (options.erode, cv2.MORPH_ERODE)):
        if r := pixels(size):
            mask = cv2.morphologyEx(mask, op, kernel(r))
    area = mask.size
    if options.min_area > 0 and (limit := round(options.min_area * area)) > 1:
        mask = plain_remove(mask, limit)
    if options.fill_holes > 0 and (limit := round(options.fill_holes * area)) > 1:
        mask = plain_fill(mask, limit)
    alpha = mask
    if r := pixels(options.feather):
        alpha = cv2.GaussianBlur(mask, (0, 0), sigmaX=r / 2)
    return mask, alpha


def blobby_probability(seed: int, shape=(180, 320)) -> np.ndarray:
    """Smooth random blobs with specks and holes: every cleanup step has work to do."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.random(shape, dtype=np.float32), (0, 0), sigmaX=rng.uniform(1, 6))
    noise = (noise - noise.min()) / (noise.max() - noise.min() + 1e-6)
    return np.clip(noise + rng.normal(0, 0.05, shape).astype(np.float32), 0, 1)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("options", [
    Refinement(),
    NO_REFINEMENT,
    Refinement(threshold=0.3, min_area=0.01, fill_holes=0.01),
    Refinement(threshold=0.7, open_size=0.01, close_size=0.01, dilate=0.005, erode=0.005, min_area=0.002,
               fill_holes=0.005, feather=0.01),
    Refinement(threshold=1.0),
    Refinement(threshold=0.0),
])
def test_refine_equals_the_plain_definition(seed, options):
    probability = blobby_probability(seed)
    mask, alpha = refine(probability, options)
    expected_mask, expected_alpha = plain_refine(probability, options)
    assert mask.dtype == np.uint8 and mask.shape == probability.shape
    np.testing.assert_array_equal(mask, expected_mask)
    np.testing.assert_array_equal(alpha, expected_alpha)


def plain_remove(mask, min_pixels):
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_pixels
    keep[0] = False
    return np.where(keep[labels], 255, 0).astype(np.uint8)


def plain_fill(mask, max_pixels):
    background = (mask == 0).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(background, connectivity=4)
    x, y, w, h, size = (stats[:, i] for i in range(5))
    inner = (x > 0) & (y > 0) & (x + w < mask.shape[1]) & (y + h < mask.shape[0]) & (size < max_pixels)
    inner[0] = False
    out = mask.copy()
    out[inner[labels] & (background == 1)] = 255
    return out


def masks_of_every_kind():
    rng = np.random.default_rng(7)
    yield np.zeros((40, 50), np.uint8)  # no hand
    yield np.full((40, 50), 255, np.uint8)  # all hand
    for seed in range(8):  # blobs, some touching the border, with holes and specks
        yield np.where(blobby_probability(seed, (90, 120)) > rng.uniform(0.3, 0.7), 255, 0).astype(np.uint8)
    ring = np.zeros((30, 30), np.uint8)
    ring[0:10, 0:10] = 255
    ring[3:6, 3:6] = 0  # a hole one pixel in from a hand that touches two borders
    ring[0, 4] = 0  # a notch that opens onto the border
    yield ring
    dots = np.zeros((600, 600), np.uint8)
    dots[::2, ::2] = 255  # 90,000 regions: more than 16-bit labels hold
    yield dots
    yield cv2.bitwise_not(dots)  # and as many holes


@pytest.mark.parametrize("limit", [2, 5, 60, 10_000])
def test_cleanup_helpers_equal_their_plain_definitions(limit):
    for mask in masks_of_every_kind():
        np.testing.assert_array_equal(remove_small_regions(mask, limit), plain_remove(mask, limit))
        np.testing.assert_array_equal(fill_small_holes(mask, limit), plain_fill(mask, limit))


# Edge snapping (a guided filter with the photo as guide)


def plain_guided_filter(guide: np.ndarray, p: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He, Sun and Tang's guided filter, written out: window means by summing reflect-padded
    shifts (float64), over the whole image."""
    def mean(x: np.ndarray) -> np.ndarray:
        padded = np.pad(x, radius, mode="symmetric")
        h, w = x.shape
        total = sum(padded[dy:dy + h, dx:dx + w] for dy in range(2 * radius + 1) for dx in range(2 * radius + 1))
        return total / (2 * radius + 1) ** 2

    mean_i, mean_p = mean(guide), mean(p)
    a = (mean(guide * p) - mean_i * mean_p) / (mean(guide * guide) - mean_i * mean_i + eps)
    b = mean_p - a * mean_i
    return np.clip(mean(a) * guide + mean(b), 0, 1)


def step_photo(width: int = 80, height: int = 40, edge: int = 40) -> np.ndarray:
    """A dark hand on the left of column `edge`, a bright wall on the right, with mild noise."""
    rgb = np.empty((height, width, 3), np.uint8)
    rgb[:, :edge] = (90, 60, 50)
    rgb[:, edge:] = (220, 220, 210)
    noise = np.random.default_rng(0).integers(-6, 7, rgb.shape)
    return np.clip(rgb.astype(int) + noise, 0, 255).astype(np.uint8)


def test_snapping_moves_a_blurred_edge_onto_the_photos_edge():
    rgb = step_photo(edge=40)
    columns = np.arange(80, dtype=np.float32)
    # The network's edge: blurred over a few pixels, 0.5 at column 41.5, past the photo's edge.
    blurred = np.tile(1 / (1 + np.exp((columns - 41.5) / 1.5)), (40, 1)).astype(np.float32)

    snapped = snap_to_edges(blurred, rgb)

    assert ((blurred >= 0.5).sum(axis=1) == 42).all()
    assert ((snapped >= 0.5).sum(axis=1) == 40).all()  # the photo's edge
    steps = -np.diff(snapped, axis=1)
    assert (steps.argmax(axis=1) == 39).all() and steps[:, 39].min() > 0.3  # one sharp drop, at the edge
    assert -np.diff(blurred, axis=1).max() < 0.2  # where the network's fell gently


def test_snapping_equals_the_plain_guided_filter_around_the_hand():
    rng = np.random.default_rng(1)
    rgb = cv2.GaussianBlur(rng.integers(0, 256, (60, 90, 3), dtype=np.uint8), (5, 5), 0)
    p = np.zeros((60, 90), np.float32)
    p[20:40, 30:55] = cv2.GaussianBlur(rng.random((20, 25)).astype(np.float32), (3, 3), 0)
    radius = 3

    snapped = snap_to_edges(p, rgb, radius, subsample=1)  # the exact filter; by default it is
    # fitted at half size, which the blurred-edge test above runs

    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float64) / 255
    expected = plain_guided_filter(grey, p.astype(np.float64), radius, SNAP_EPS)
    ys, xs = np.nonzero(p >= SNAP_FLOOR)
    margin = 2 * (2 * radius + 1)
    y0, y1 = max(0, ys.min() - margin), ys.max() + 1 + margin
    x0, x1 = max(0, xs.min() - margin), xs.max() + 1 + margin
    inner = (slice(y0 + 2 * radius + 1, y1 - 2 * radius - 1), slice(x0 + 2 * radius + 1, x1 - 2 * radius - 1))
    assert np.abs(snapped[inner] - expected[inner]).max() < 1e-4  # away from the box's own border
    outside = np.ones(p.shape, bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(snapped[outside], p[outside])


def test_snapping_leaves_no_hand_and_its_inputs_alone():
    rgb = step_photo()
    empty = np.full((40, 80), SNAP_FLOOR / 2, np.float32)
    p = np.zeros((40, 80), np.float32)
    p[10:30, 10:30] = 1
    kept_p, kept_rgb = p.copy(), rgb.copy()

    assert np.array_equal(snap_to_edges(empty, rgb), empty)
    snap_to_edges(p, rgb)

    assert np.array_equal(p, kept_p) and np.array_equal(rgb, kept_rgb)
    with pytest.raises(ValueError, match=r"probability \(40, 80\) and image \(40, 79\) differ"):
        snap_to_edges(p, rgb[:, :79])


def test_snapping_is_a_refinement_setting_that_no_refinement_turns_off():
    assert Refinement().snap_edges is True
    assert NO_REFINEMENT.snap_edges is False
    assert Refinement().with_(snap_edges=False).snap_edges is False
