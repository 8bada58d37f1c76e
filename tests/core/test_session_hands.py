"""The default model with its hand finder and per-hand network, on real photos of hands over faces."""

from pathlib import Path

import cv2
import numpy as np
import pytest

import handseg_core
from handseg_core import registry
from handseg_core.metrics import hand_iou

HANDS = Path(__file__).parents[1] / "data" / "hands"
PHOTOS = sorted(HANDS.glob("*.jpg"))


@pytest.fixture(scope="module")
def session():
    return handseg_core.load_model(device="cpu")


def truth_of(photo: Path) -> np.ndarray:
    return cv2.imread(str(photo.with_suffix(".truth.png")), cv2.IMREAD_GRAYSCALE) > 127


def test_the_default_has_a_per_hand_network():
    spec = registry.find(None)
    assert spec.hands_model and registry.find_kind(spec.hands_model, registry.HANDS_KIND).input_size == 256


@pytest.mark.parametrize("photo", PHOTOS, ids=lambda p: p.stem)
def test_hands_over_faces_are_found_and_cut_along_the_hand(session, photo):
    # rough teacher masks (tests/data/README.md): a floor, not a fine-edge judge
    result = session.segment(photo)
    assert hand_iou(result.mask > 0, truth_of(photo)) >= 0.45
    found = [hand for hand in result.hands if hand.landmarks is not None]
    assert found and all(hand.handedness in ("left", "right") for hand in found)
    assert result.hand_fraction < 0.4  # not the face


def test_on_these_photos_it_beats_the_whole_image_alone(session):
    with_finder = np.mean([hand_iou(session.segment(p).mask > 0, truth_of(p)) for p in PHOTOS])
    whole = np.mean([hand_iou(session.segment(p, find_hands=False).mask > 0, truth_of(p)) for p in PHOTOS])
    assert with_finder > whole + 0.05


def test_hands_make_up_the_mask(session):
    result = session.segment(HANDS / "utk_4_1_1_20170109194538070.jpg")
    assert len(result.hands) == 2 and {h.handedness for h in result.hands} == {"left", "right"}
    union = np.zeros(result.mask.shape, bool)
    for hand in result.hands:
        own = hand.mask > 0
        assert not (union & own).any()
        union |= own
        x0, y0, x1, y1 = hand.box
        assert own[y0:y1, x0:x1].sum() == hand.area and 0 < hand.score <= 1
        assert hand.landmarks.shape == (21, 3)
    assert (union == (result.mask > 0)).all()
    assert [h.area for h in result.hands] == sorted((h.area for h in result.hands), reverse=True)


def test_landmarks_are_at_the_displayed_size(session, tmp_path):
    photo = HANDS / "utk_35_0_0_20170119200919084.jpg"
    big = tmp_path / "big.png"
    rgb = cv2.imread(str(photo))
    cv2.imwrite(str(big), cv2.resize(rgb, (600, 600), interpolation=cv2.INTER_CUBIC))
    small, large = session.segment(photo), session.segment(big)
    a = next(h for h in small.hands if h.landmarks is not None)
    b = next(h for h in large.hands if h.landmarks is not None)
    assert np.abs(b.landmarks[:, :2] / 3 - a.landmarks[:, :2]).mean() < 4
    assert large.mask.shape == (600, 600)


def test_no_hand_gives_no_hands(session):
    result = session.segment(Path(__file__).parents[1] / "data" / "golden" / "face_no_hand.jpg")
    assert result.hands == () and not result.mask.any()


def test_without_the_finder_hands_are_the_masks_regions(session):
    result = session.segment(HANDS / "utk_4_1_1_20170109194538070.jpg", find_hands=False)
    assert all(hand.landmarks is None and hand.handedness is None for hand in result.hands)
    assert sum(hand.area for hand in result.hands) == np.count_nonzero(result.mask)


TWO_HANDS = HANDS / "utk_4_1_1_20170109194538070.jpg"


@pytest.mark.parametrize("choice", ["left", "right", "largest", 1])
def test_keep_one_hand(session, choice):
    result = session.segment(TWO_HANDS, handseg_core.Refinement(feather=0.02))
    kept = result.keep(choice)
    assert len(kept.hands) == 1
    hand = kept.hands[0]
    if choice in ("left", "right"):
        assert hand.handedness == choice
    else:
        assert hand.area == max(h.area for h in result.hands)
    assert ((kept.mask > 0) == (hand.mask > 0)).all()
    other = next(h for h in result.hands if h.handedness != hand.handedness)
    assert not (kept.alpha[other.mask > 0]).any() and not kept.probability[other.mask > 0].any()
    assert (kept.alpha[hand.mask > 0] == result.alpha[hand.mask > 0]).all()  # its own edge is kept
    assert session.segment(TWO_HANDS, handseg_core.Refinement(feather=0.02), keep=choice).hands == kept.hands


def test_keep_all_or_more_than_there_are(session):
    result = session.segment(TWO_HANDS)
    assert result.keep("all") is result and result.keep(5) is result


def test_a_choice_no_hand_fits_gives_an_empty_result(session):
    result = session.segment(TWO_HANDS, find_hands=False)  # no handedness without the finder
    kept = result.keep("left")
    assert kept.hands == () and not kept.mask.any() and not kept.alpha.any()


@pytest.mark.parametrize("choice", ["both", "0", -1, "1.5", ""])
def test_a_wrong_choice_says_what_is_accepted(session, choice):
    with pytest.raises(handseg_core.HandsegError, match="choose all, largest, left, right"):
        session.segment(TWO_HANDS, keep=choice)


def test_describe_is_plain_json(session):
    import json

    described = json.loads(json.dumps(session.segment(TWO_HANDS).describe()))
    assert described["model"] == "handseg-lite2-int8" and len(described["hands"]) == 2
    hand = described["hands"][0]
    assert set(hand) == {"box", "area", "score", "handedness", "landmarks"}
    assert len(hand["landmarks"]) == 21 and hand["handedness"] in ("left", "right")
    x0, y0, x1, y1 = hand["box"]
    assert 0 <= x0 < x1 <= described["width"] and 0 <= y0 < y1 <= described["height"]


ON_CHEEK = HANDS / "utk_26_1_4_20170117174112221.jpg"  # a hand on a cheek the per-hand network misses


def test_a_sure_hand_the_network_misses_is_drawn_from_its_landmarks(session, monkeypatch):
    from handseg_core import hands as per_hand

    result = session.segment(ON_CHEEK)
    assert result.hands and result.hands[0].landmarks is not None
    assert hand_iou(result.mask > 0, truth_of(ON_CHEEK)) >= 0.45
    monkeypatch.setattr(per_hand, "DRAWN_MIN_SCORE", 2.0)  # no finder score reaches it: no stand-in
    assert not session.segment(ON_CHEEK).mask.any()


def test_where_the_network_sees_the_hand_nothing_is_drawn(session, monkeypatch):
    from handseg_core import hands as per_hand

    with_stand_in = session.segment(TWO_HANDS)
    monkeypatch.setattr(per_hand, "DRAWN_MIN_SCORE", 2.0)
    assert (session.segment(TWO_HANDS).mask == with_stand_in.mask).all()
