"""The benchmark reads a packaged model's decoder width off its ONNX graph, float16 files too."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from handseg_core import registry

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from measure import decoder_channels_of  # noqa: E402


@pytest.mark.parametrize("name, channels", [("handseg-lite0", 128), ("handseg-lite2", 256)])
def test_decoder_width_of_the_packaged_models(name, channels):
    spec = registry.available_models()[name]
    assert decoder_channels_of(spec.path) == channels


def test_float16_and_float32_files_read_alike(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("segmentation_models_pytorch")
    from handseg_training.export import half_weights, to_onnx_bytes
    from handseg_training.model import build_model

    model = build_model("tf_efficientnet_lite0", decoder_channels=48)
    full = to_onnx_bytes(model, example_hw=(64, 64))
    (tmp_path / "full.onnx").write_bytes(full)
    (tmp_path / "half.onnx").write_bytes(half_weights(to_onnx_bytes(model, example_hw=(64, 64), fold=False)))
    assert decoder_channels_of(tmp_path / "full.onnx") == decoder_channels_of(tmp_path / "half.onnx") == 48
