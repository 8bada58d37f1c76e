"""The error breakdown: each wrong pixel in one kind, and IoU with each kind set right."""

from __future__ import annotations

import numpy as np

from handseg_training.errors import decompose, iou, kinds_of_errors


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
