"""The error breakdown: each wrong pixel in one kind, and IoU with each kind set right."""

from __future__ import annotations

import numpy as np

import pytest

from research.errors import decompose, iou, kinds_of_errors, past_wrists, read_landmarks


def _case():
    truth = np.zeros((100, 200), bool)
    truth[30:70, 60:120] = True  # a hand in the middle
    predicted = truth.copy()
    predicted[29:71, 59:121] = True  # one pixel too wide all round: the outline
    predicted[80:100, 150:200] = True  # a forearm entering at the bottom right corner
    predicted[40:50, 80:90] = False  # a missed patch inside the hand
    predicted[5:8, 5:8] = True  # a false speck inside the frame
    return predicted, truth


def test_every_wrong_pixel_is_in_exactly_one_kind():
    predicted, truth = _case()
    kinds = kinds_of_errors(predicted, truth, band=2)
    stacked = np.stack(list(kinds.values())).astype(int)
    assert (stacked.sum(0) == (predicted != truth)).all()
    assert kinds["frame_edge"][90, 190] and not kinds["frame_edge"][45, 85]
    assert kinds["outline"][29, 80] and kinds["rest"][45, 85] and kinds["rest"][6, 6]
    assert kinds["frame_edge"].sum() == 20 * 50


def test_setting_a_kind_right_gives_the_iou_without_it():
    predicted, truth = _case()
    scores = decompose(predicted, truth, band=2)
    assert scores["iou"] == iou(predicted, truth) < scores["without_outline"] < 1.0
    without_forearm = predicted.copy()
    without_forearm[80:100, 150:200] = False
    assert np.isclose(scores["without_frame_edge"], iou(without_forearm, truth))
    assert scores["without_rest"] > scores["iou"]


def test_a_small_speck_at_the_border_is_not_a_forearm_and_no_band_means_no_outline():
    truth = np.zeros((100, 100), bool)
    predicted = truth.copy()
    predicted[0:2, 0:2] = True  # 4 px: under the smallest region (0.05% of 10,000 = 5 px)
    kinds = kinds_of_errors(predicted, truth, band=0)
    assert not kinds["frame_edge"].any() and not kinds["outline"].any() and kinds["rest"].sum() == 4
    assert decompose(truth, truth) == {"iou": 1.0, "without_outline": 1.0, "without_frame_edge": 1.0, "without_rest": 1.0}


def _upright_hand():
    """A hand pointing up: wrist at (100, 70), middle knuckle 20 px above it; its mask runs on
    down the forearm to the bottom edge, while the truth stops 4 px past the wrist."""
    hands = [[[100.0, 70.0]] + [[100.0, 60.0]] * 8 + [[100.0, 50.0]]]  # landmarks 0..9
    truth = np.zeros((130, 200), bool)
    truth[20:74, 85:115] = True
    predicted = truth.copy()
    predicted[74:130, 88:112] = True  # the forearm, taken for hand
    return hands, predicted, truth


def test_past_wrists_is_the_half_disc_on_the_arm_side():
    hands, _, truth = _upright_hand()
    zone = past_wrists(hands, truth.shape)
    assert zone[75, 100] and zone[99, 100] and not zone[69, 100]  # below the wrist, not above
    assert not zone[99, 140] and not zone[110, 100]  # more than 1.5 palm lengths (30 px) from the wrist
    moved = past_wrists(hands, truth.shape, margin=0.5)  # the line 10 px further down the arm
    assert not moved[75, 100] and moved[81, 100]
    assert not past_wrists([[[5.0, 5.0]] * 10], truth.shape).any()  # no palm: nothing


def test_errors_past_the_wrist_are_their_own_kind_and_the_cut_is_measured():
    hands, predicted, truth = _upright_hand()
    kinds = kinds_of_errors(predicted, truth, band=0, wrist_zone=past_wrists(hands, truth.shape))
    assert kinds["past_wrist"][90, 100] and not kinds["frame_edge"][90, 100]
    assert kinds["frame_edge"][120, 100]  # past the zone's reach (30 px): the forearm at the edge
    scores = decompose(predicted, truth, band=0, hands=hands)
    assert scores["iou"] < scores["without_past_wrist"] < 1.0
    assert scores["cut_at_wrist"] < 1.0  # the cut at the landmark also takes the truth's 4 px past it
    assert decompose(predicted, truth, band=0, hands=hands, margin=0.2)["cut_at_wrist"] > scores["cut_at_wrist"]
    assert "without_past_wrist" not in decompose(predicted, truth, band=0)


def test_a_landmarks_file_that_is_not_one_is_named(tmp_path):
    bad = tmp_path / "hands.json"
    bad.write_text("[1, 2]")
    with pytest.raises(SystemExit, match="hands.json is not a landmarks file"):
        read_landmarks(bad)
    with pytest.raises(SystemExit, match="cannot read landmarks"):
        read_landmarks(tmp_path / "missing.json")
