"""Scoring the rembg export as rembg itself runs it (research/rembg_devsets.py)."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("torch")
pytest.importorskip("rembg", reason='rembg is not installed (pip install "rembg[cpu,cli]")')

from handseg_training.devsets import measure  # noqa: E402
from research.rembg_devsets import environment, rembg_segmenter  # noqa: E402
from tests.training.test_devsets import _set  # noqa: E402
from tiny_model import write_red_model  # noqa: E402


def test_scores_the_rembg_export_as_rembg_runs_it(tmp_path, monkeypatch):
    pytest.importorskip("rembg", reason='rembg is not installed (pip install "rembg[cpu,cli]")')
    for name in ("REMBG_HOME", "XDG_DATA_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("U2NET_HOME", str(tmp_path / "u2net"))
    _set(tmp_path / "good", 2, seed=0)
    _set(tmp_path / "spoilt", 2, seed=10, spoil=True)
    model = write_red_model(tmp_path / "models")
    scores = measure(str(model), tmp_path, sets=["good", "spoilt"], segment=rembg_segmenter(str(model)))
    assert scores["good"]["images"] == 2 and scores["good"]["iou"] > 0.8
    assert scores["spoilt"]["iou"] < 0.6
    assert os.environ["U2NET_HOME"] == str(tmp_path / "u2net")  # set for rembg's check only, then restored


def test_the_environment_is_restored(monkeypatch):
    monkeypatch.delenv("HANDSEG_TEST_VARIABLE", raising=False)
    with environment("HANDSEG_TEST_VARIABLE", "inside"):
        assert os.environ["HANDSEG_TEST_VARIABLE"] == "inside"
    assert "HANDSEG_TEST_VARIABLE" not in os.environ
