"""Handseg: Hand SEGS gives what Impact Pack's nodes take: SEGS = ((H, W), [SEG, ...]), each SEG
a namedtuple (cropped_image, cropped_mask, confidence, crop_region, bbox, label,
control_net_wrapper = None), crop_region and bbox (x1, y1, x2, y2) inside the image,
cropped_mask a float32 numpy array of the crop region's size."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from handseg_core.hands import Hand
from handseg_plugins.comfyui import NODE_CLASS_MAPPINGS
from handseg_plugins.comfyui.segs import SEG, HandsegHandSegs, crop_region, hands_to_segs, pick

from .test_nodes import widget_defaults

IMPACT_FIELDS = ("cropped_image", "cropped_mask", "confidence", "crop_region", "bbox", "label", "control_net_wrapper")
HAND_RGB = (230, 30, 40)  # what tiny-red takes for hand
BACKGROUND = (40, 160, 160)


def hand(mask: np.ndarray, score: float = 0.9, handedness: str | None = None) -> Hand:
    ys, xs = np.nonzero(mask)
    return Hand(mask=mask.astype(np.uint8) * 255, box=(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1),
                score=score, handedness=handedness)


def two_hands_picture(height: int = 120, width: int = 160) -> np.ndarray:
    rgb = np.full((height, width, 3), BACKGROUND, np.uint8)
    rgb[20:60, 10:50] = HAND_RGB  # 40 x 40
    rgb[70:110, 100:150] = HAND_RGB  # 50 x 40, the larger
    return rgb


def check_segs(segs, shape: tuple[int, int]) -> None:
    """What Impact's nodes rely on (SegsToCombinedMask pastes each cropped_mask at its crop_region)."""
    size, items = segs
    assert size == shape and isinstance(items, list)
    height, width = shape
    for seg in items:
        assert seg._fields == IMPACT_FIELDS and seg.control_net_wrapper is None and seg.label == "hand"
        x1, y1, x2, y2 = seg.crop_region
        assert all(isinstance(v, int) for v in seg.crop_region) and 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
        bx1, by1, bx2, by2 = seg.bbox
        assert 0 <= bx1 < bx2 <= width and 0 <= by1 < by2 <= height
        assert x1 <= bx1 and y1 <= by1 and bx2 <= x2 and by2 <= y2  # the hand lies inside its crop
        assert isinstance(seg.cropped_mask, np.ndarray) and seg.cropped_mask.dtype == np.float32
        assert seg.cropped_mask.shape == (y2 - y1, x2 - x1)
        assert tuple(seg.cropped_image.shape) == (1, y2 - y1, x2 - x1, 3)
        assert 0.0 <= float(seg.confidence) <= 1.0


def combined_mask(segs) -> np.ndarray:
    """Impact's SegsToCombinedMask, from its documented behaviour: the union of the pasted masks."""
    (height, width), items = segs
    out = np.zeros((height, width), np.float32)
    for seg in items:
        x1, y1, x2, y2 = seg.crop_region
        out[y1:y2, x1:x2] = np.maximum(out[y1:y2, x1:x2], seg.cropped_mask)
    return out


def test_seg_has_impacts_fields_in_order():
    assert SEG._fields == IMPACT_FIELDS
    assert SEG(None, None, 1.0, (0, 0, 1, 1), (0, 0, 1, 1), "hand").control_net_wrapper is None


def test_two_touching_hands_give_two_segs():
    left = np.zeros((80, 100), bool)
    right = np.zeros((80, 100), bool)
    left[20:60, 10:50] = True
    right[20:60, 50:90] = True  # shares an edge with the left hand
    rgb = np.zeros((80, 100, 3), np.uint8)
    segs = hands_to_segs(rgb, [hand(left, 0.8), hand(right, 0.7)], crop_factor=1.0)
    check_segs(segs, (80, 100))
    assert [seg.bbox for seg in segs[1]] == [(10, 20, 50, 60), (50, 20, 90, 60)]
    np.testing.assert_array_equal(combined_mask(segs) > 0.5, left | right)
    first = segs[1][0]
    x1, y1, x2, y2 = first.crop_region
    assert not first.cropped_mask[:, 50 - x1:].any()  # each SEG's mask is its own hand only


def test_crop_factor_grows_about_the_centre_and_stays_inside_the_image():
    assert crop_region((40, 40, 60, 60), (100, 100), 3.0) == (20, 20, 80, 80)
    assert crop_region((0, 0, 20, 10), (100, 100), 3.0) == (0, 0, 60, 30)  # moved in, not cut
    assert crop_region((10, 10, 90, 90), (100, 100), 3.0) == (0, 0, 100, 100)  # cut to the image
    mask = np.zeros((100, 100), bool)
    mask[0:10, 0:20] = True
    (seg,) = hands_to_segs(np.zeros((100, 100, 3), np.uint8), [hand(mask)], crop_factor=3.0)[1]
    assert seg.crop_region == (0, 0, 60, 30) and seg.cropped_mask[:10, :20].all()


def test_dilation_and_drop_size():
    big = np.zeros((100, 100), bool)
    big[30:70, 30:70] = True
    small = np.zeros((100, 100), bool)
    small[5:10, 5:10] = True
    rgb = np.zeros((100, 100, 3), np.uint8)
    (grown,) = hands_to_segs(rgb, [hand(big), hand(small)], crop_factor=1.0, dilation=5, drop_size=10)[1]
    assert grown.bbox == (30, 30, 70, 70)  # the hand's own box
    assert grown.crop_region == (25, 25, 75, 75) and grown.cropped_mask.sum() > 40 * 40
    (shrunk,) = hands_to_segs(rgb, [hand(big)], crop_factor=1.0, dilation=-5)[1]
    assert shrunk.cropped_mask.sum() < 40 * 40
    assert hands_to_segs(rgb, [hand(small)], dilation=-5, drop_size=1)[1] == []  # eroded away


def test_pick_by_choice_order_and_count():
    masks = []
    for x0, width in ((0, 10), (20, 30), (60, 20)):
        m = np.zeros((40, 100), bool)
        m[0:30, x0:x0 + width] = True
        masks.append(m)
    hands = (hand(masks[1], 0.5, "left"), hand(masks[2], 0.9, "right"), hand(masks[0], 0.7, "left"))  # largest first
    assert pick(hands, "all") == list(hands)
    assert pick(hands, "largest") == [hands[0]]
    assert pick(hands, "left") == [hands[0], hands[2]]
    assert pick(hands, "all", sort_by="score") == [hands[1], hands[2], hands[0]]
    assert pick(hands, "all", sort_by="score", max_hands=2) == [hands[1], hands[2]]
    assert pick(hands, "2") == [hands[0], hands[1]]
    with pytest.raises(Exception, match="sort_by"):
        pick(hands, "all", sort_by="size")


def test_the_node_is_registered():
    assert NODE_CLASS_MAPPINGS["HandsegHandSegs"] is HandsegHandSegs
    assert HandsegHandSegs.RETURN_TYPES == ("SEGS", "BBOX") and HandsegHandSegs.OUTPUT_IS_LIST == (True, False)


def test_the_node_gives_one_seg_per_hand_with_crop_mask_and_label(red_model):
    rgb = two_hands_picture()
    image = torch.from_numpy(rgb[None].astype(np.float32) / 255.0)
    (segs,), (boxes,) = HandsegHandSegs().find_hands(red_model, image, **widget_defaults(HandsegHandSegs))
    check_segs(segs, (120, 160))
    assert [seg.bbox for seg in segs[1]] == [(100, 70, 150, 110), (10, 20, 50, 60)]  # the larger first
    assert boxes == [[100, 70, 150, 110], [10, 20, 50, 60]]
    truth = np.all(rgb == HAND_RGB, axis=-1)
    np.testing.assert_array_equal(combined_mask(segs) > 0.5, truth)
    crop = segs[1][1]
    x1, y1, x2, y2 = crop.crop_region
    np.testing.assert_allclose(crop.cropped_image[0].numpy(), rgb[y1:y2, x1:x2] / 255.0, atol=1e-6)


def test_a_batch_gives_one_segs_per_frame_and_no_hands_an_empty_segs(red_model):
    frames = np.stack([two_hands_picture(), np.full((120, 160, 3), BACKGROUND, np.uint8), two_hands_picture()])
    image = torch.from_numpy(frames.astype(np.float32) / 255.0)
    values = widget_defaults(HandsegHandSegs) | {"hands": "largest"}
    segs, boxes = HandsegHandSegs().find_hands(red_model, image, **values)
    assert len(segs) == 3
    for frame in segs:
        check_segs(frame, (120, 160))
    assert [len(frame[1]) for frame in segs] == [1, 0, 1]
    assert segs[1] == ((120, 160), [])
    assert boxes == [[[100, 70, 150, 110]], [], [[100, 70, 150, 110]]]
