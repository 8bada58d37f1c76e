"""The hand finder: MediaPipe's palm detector and landmark model run by handseg's own steps."""

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from handseg_core import finder as F
from handseg_core import registry
from handseg_core.errors import ChecksumError

DATA = Path(__file__).parents[1] / "data"
GOLDEN = json.loads((DATA / "finder_golden.json").read_text())


def rgb_of(name: str) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(DATA / name)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def hand_finder():
    return F.load_finder()


def test_anchors_match_the_palm_detectors_grid():
    assert F._ANCHORS.shape == (2016, 2)
    # stride 8: a 24x24 grid, two anchors a cell; then stride 16: 12x12, six a cell
    assert np.allclose(F._ANCHORS[0], [0.5 / 24, 0.5 / 24]) and np.allclose(F._ANCHORS[1], F._ANCHORS[0])
    assert np.allclose(F._ANCHORS[2], [1.5 / 24, 0.5 / 24])
    assert np.allclose(F._ANCHORS[1152:1158], [0.5 / 12, 0.5 / 12])
    assert np.allclose(F._ANCHORS[-1], [11.5 / 12, 11.5 / 12])


def test_decode_palms_offsets_from_the_anchor_and_merges_overlaps():
    boxes = np.zeros((2016, 18), np.float32)
    scores = np.full((2016, 1), -20.0, np.float32)
    boxes[0, :4] = [19.2, 0, 38.4, 38.4]  # x shifted by 0.1, a 0.2 x 0.2 box
    boxes[0, 4:] = 9.6  # every keypoint 0.05 right and down of the anchor
    scores[0] = 3.0
    boxes[1] = boxes[0]
    boxes[1, 0] += 1.92  # an overlapping box 0.01 to the right, less certain
    scores[1] = 1.0
    palms = F.decode_palms(boxes, scores, 0.5)
    assert len(palms) == 1
    score, points = palms[0]
    assert score == pytest.approx(1 / (1 + math.exp(-3)))
    w0, w1 = 1 / (1 + math.exp(-3)), 1 / (1 + math.exp(-1))
    cx = 0.5 / 24 + 0.1 + 0.01 * w1 / (w0 + w1)  # the score-weighted mean of the two
    assert points[0] == pytest.approx([cx - 0.1, 0.5 / 24 - 0.1], abs=1e-6)
    assert points[2] == pytest.approx([0.5 / 24 + 0.05, 0.5 / 24 + 0.05], abs=1e-6)
    assert F.decode_palms(boxes, scores, 0.99) == []


def test_hand_square_turns_the_fingers_up_and_moves_towards_them():
    # a palm box 0..10 with the middle knuckle straight above the wrist: no turn
    upright = np.array([[0, 0], [10, 10], [5, 10], [0, 0], [5, 0], [0, 0], [0, 0], [0, 0], [0, 0]], np.float64)
    cx, cy, side, rotation = F.hand_square(upright)
    assert rotation == pytest.approx(0) and side == pytest.approx(26)
    assert (cx, cy) == pytest.approx((5, 0))  # half a palm towards the fingers
    pointing_right = upright.copy()
    pointing_right[2], pointing_right[4] = [0, 5], [10, 5]
    cx, cy, _, rotation = F.hand_square(pointing_right)
    assert rotation == pytest.approx(math.pi / 2) and (cx, cy) == pytest.approx((10, 5))


def test_landmarks_agree_with_mediapipes_own(hand_finder):
    """Every hand MediaPipe finds in one pass is found, its landmarks within 3% of the hand's
    size of MediaPipe's on most hands (8 of 9 here; the other, 6%, starts from a palm box decoded a
    little differently) and within 12% on all."""
    errors = []
    single_pass = F.FinderOptions(variants=((0.0, False),), fallback=())  # as MediaPipe runs
    for name, hands in GOLDEN.items():
        found = hand_finder.find(rgb_of(name), single_pass)
        for expected in map(np.array, hands):
            size = np.ptp(expected, 0).max()
            errors.append(min([np.abs(h.landmarks[:, :2] - expected).mean() / size for h in found], default=1.0))
    errors = np.array(errors)
    assert len(errors) == 9 and errors.max() < 0.12, errors
    assert (errors < 0.03).sum() >= 8, errors


def test_no_hand_on_a_face_without_one(hand_finder):
    assert GOLDEN["golden/face_no_hand.jpg"] == []
    assert hand_finder.find(rgb_of("golden/face_no_hand.jpg")) == []  # every variant, the fallback too


def test_the_fallback_runs_only_where_nothing_is_found(hand_finder, monkeypatch):
    calls = []
    original = hand_finder._find
    monkeypatch.setattr(hand_finder, "_find", lambda rgb, options: calls.append(len(options.variants)) or original(rgb, options))
    hand_finder.find(rgb_of("../../examples/hand.jpg"))
    assert calls == [3]
    hand_finder.find(rgb_of("golden/face_no_hand.jpg"))
    assert calls == [3, 3, 6]


def test_handedness_is_the_persons_own(hand_finder):
    # HandInfo.csv of 11k Hands: Hand_0000006 "dorsal right", Hand_0001040 "palmar left"
    for name, side in (("golden/hands11k_fair_Hand_0000006.jpg", "right"), ("golden/hands11k_dark_Hand_0001040.jpg", "left")):
        (hand,) = hand_finder.find(rgb_of(name))
        assert hand.handedness == side and hand.handedness_score > 0.8
    mirrored = np.ascontiguousarray(rgb_of("golden/hands11k_fair_Hand_0000006.jpg")[:, ::-1])
    assert hand_finder.find(mirrored)[0].handedness == "left"


def test_a_border_variant_finds_hands_cut_by_the_frame(hand_finder):
    # a face crop where the hand leaves the frame: found with the border variant, landmarks mapped back
    rgb = rgb_of("hands/utk_4_1_1_20170109194538070.jpg")
    truth = cv2.imread(str(DATA / "hands/utk_4_1_1_20170109194538070.truth.png"), cv2.IMREAD_GRAYSCALE) > 127
    both = hand_finder.find(rgb, F.FinderOptions(variants=((0.0, False), (0.25, False), (0.0, True))))
    assert both
    for hand in both:
        xy = np.clip(hand.landmarks[:, :2].round().astype(int), 0, 199)
        assert truth[xy[:, 1], xy[:, 0]].mean() > 0.5  # on the hand, not beside it
        assert 0 < hand.score <= 1


def test_merge_averages_a_hand_seen_twice_and_scores_by_variants():
    landmarks = np.tile(np.array([[10.0, 10.0, 0.0]], np.float32), (21, 1))
    landmarks[:, :2] += np.arange(21)[:, None]
    a = F._hand(landmarks, 0.9, 0.8, (100, 100))
    b = F._hand(landmarks + np.float32([2, 0, 0]), 0.6, 0.9, (100, 100))
    far = F._hand(landmarks + np.float32([60, 60, 0]), 0.7, 0.1, (100, 100))
    merged = F.merge_hands([b, far, a], variants=2, size=(100, 100))
    assert len(merged) == 2
    assert merged[0].score == pytest.approx(0.75) and merged[0].handedness == "right"
    assert merged[0].landmarks[0, 0] == pytest.approx(10 + 2 * 0.6 / 1.5)
    assert merged[1].score == pytest.approx(0.35) and merged[1].handedness == "left"
    assert merged[1].box == (70, 70, 90, 90)


@pytest.mark.parametrize("bad", [dict(min_palm_score=1.5), dict(min_presence=-0.1), dict(min_score=2), dict(max_hands=0),
                                 dict(variants=())])
def test_options_are_checked(bad):
    with pytest.raises(ValueError):
        F.FinderOptions(**bad)


def test_finder_models_are_packaged_with_their_checksums():
    for name in (registry.PALM_MODEL, registry.LANDMARK_MODEL):
        spec = registry.find_finder(name)
        assert registry.sha256_of(registry.read_verified(spec)) == spec.sha256
        assert "Apache-2.0" in spec.terms and spec.kind in registry.FINDER_KINDS
    assert (registry.PACKAGED_DIR / "LICENSE-mediapipe.txt").is_file()
    # not segmenters: no menu offers them
    assert registry.PALM_MODEL not in registry.available_models()


def test_a_tampered_finder_model_is_refused(tmp_path, monkeypatch):
    spec = registry.find_finder(registry.PALM_MODEL)
    copy = tmp_path / spec.file
    data = bytearray(spec.path.read_bytes())
    data[-100] ^= 1
    copy.write_bytes(bytes(data))
    with pytest.raises(ChecksumError):
        registry.read_verified(registry.ModelSpec(**{**spec.__dict__, "folder": str(tmp_path)}))


def test_a_hand_only_one_fallback_variant_sees_is_dropped():
    # a hand-free face: nothing in the three variants; one of the six with the fallback sees a
    # "hand" with a middling presence, which min_score drops
    face = np.asarray(Image.open(Path(__file__).parents[1] / "data" / "faces" / "utk_26_0_1_20170116142927380.jpg").convert("RGB"))
    finder = F.load_finder()
    assert finder.find(face, F.FinderOptions(fallback=())) == []
    weak = finder.find(face, F.FinderOptions(min_score=0.0))
    assert len(weak) == 1 and weak[0].score < F.FinderOptions().min_score
    assert finder.find(face) == []
