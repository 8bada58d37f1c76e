"""The U2-Net references are the paper's networks: its parameter counts, full-size outputs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import u2net  # noqa: E402


@pytest.mark.parametrize("build, millions", [(u2net.u2net, 44.0), (u2net.u2netp, 1.13)])
def test_parameter_count_matches_the_paper(build, millions):
    count = sum(p.numel() for p in build().parameters()) / 1e6
    assert count == pytest.approx(millions, rel=0.01)


def test_outputs_are_seven_probability_maps_at_input_size():
    with torch.no_grad():
        outputs = u2net.u2netp().eval()(torch.rand(1, 3, 72, 100))  # odd sizes: pooling rounds up
    assert len(outputs) == 7
    for out in outputs:
        assert out.shape == (1, 1, 72, 100)
        assert 0 <= float(out.min()) and float(out.max()) <= 1
