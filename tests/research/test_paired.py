"""Paired comparison of two dev-set measurements, photo by photo."""

from __future__ import annotations

import json

import numpy as np
import pytest

from research.paired import compare, compare_files


def _ious(values):
    return {f"p{i}": float(v) for i, v in enumerate(values)}


def test_a_consistent_gain_is_significant_and_counted():
    rng = np.random.default_rng(1)
    a = rng.uniform(0.3, 0.9, 200)
    b = a + 0.02 + rng.normal(0, 0.01, 200)
    p = compare(_ious(a), _ious(b))
    assert p.photos == 200
    assert p.difference == pytest.approx(0.02, abs=0.004)
    assert 0 < p.low < p.difference < p.high
    assert p.significant and p.better > 190 and p.worse < 10


def test_noise_around_zero_is_not_significant_and_pairing_ignores_unshared_photos():
    rng = np.random.default_rng(2)
    a = rng.uniform(0.3, 0.9, 300)
    b = a + rng.normal(0, 0.05, 300)
    ia, ib = _ious(a), _ious(b)
    ib["only-in-b"] = 0.0  # would pull B's mean down if it were counted
    p = compare(ia, ib)
    assert p.photos == 300
    assert p.low < 0 < p.high and not p.significant
    assert p.mean_b == pytest.approx(float(b.mean()))


def test_no_shared_photo_is_an_error():
    with pytest.raises(ValueError, match="share no photo"):
        compare({"x": 1.0}, {"y": 1.0})


def test_files_are_compared_set_by_set_and_old_files_are_named(tmp_path):
    a = {"s1": {"iou": 0.5, "per_image": _ious([0.5, 0.5, 0.5])}, "s2": {"iou": 1, "per_image": _ious([1.0])}}
    b = {"s1": {"iou": 0.6, "per_image": _ious([0.6, 0.6, 0.6])}, "s3": {"iou": 1, "per_image": _ious([1.0])}}
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b))
    results = compare_files(tmp_path / "a.json", tmp_path / "b.json", resamples=200)
    assert list(results) == ["s1"]
    assert results["s1"].difference == pytest.approx(0.1) and results["s1"].better == 3
    del b["s1"]["per_image"]
    (tmp_path / "b.json").write_text(json.dumps(b))
    with pytest.raises(SystemExit, match="s1 has no per-photo IoUs"):
        compare_files(tmp_path / "a.json", tmp_path / "b.json")
    with pytest.raises(SystemExit, match="cannot read .*missing.json"):
        compare_files(tmp_path / "missing.json", tmp_path / "b.json")
