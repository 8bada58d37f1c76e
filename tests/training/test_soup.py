"""Weight averaging of two models of one architecture (handseg_training.soup)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")

from handseg_training import train as T  # noqa: E402
from handseg_training.config import TrainConfig  # noqa: E402
from handseg_training.model import build_model  # noqa: E402
from handseg_training.soup import average, soup  # noqa: E402


def _checkpoint(folder, seed, decoder_channels=32, encoder="tf_efficientnet_lite0"):
    torch.manual_seed(seed)
    cfg = TrainConfig(name=f"run{seed}", encoder=encoder, decoder_channels=decoder_channels, encoder_weights="none",
                      min_input_size=256)
    model = build_model(cfg.encoder, cfg.decoder_channels, None)
    with torch.no_grad():  # as after training: no two tensors alike, batch-norm statistics included
        for value in model.state_dict().values():
            if value.is_floating_point():
                value.add_(torch.rand_like(value).mul_(0.5))
    path = folder / f"run{seed}" / "model.safetensors"
    T.save_checkpoint(model, cfg, path, {"step": 1})
    return path, model.state_dict()


def test_average_mixes_floats_keeps_counters_and_refuses_other_shapes():
    a = {"w": torch.zeros(2, 3), "n": torch.tensor(5)}
    b = {"w": torch.ones(2, 3), "n": torch.tensor(9)}
    mixed = average(a, b, 0.25)
    assert torch.allclose(mixed["w"], torch.full((2, 3), 0.25)) and int(mixed["n"]) == 9
    with pytest.raises(ValueError, match="shape"):
        average(a, {"w": torch.ones(3, 2), "n": torch.tensor(1)}, 0.5)
    with pytest.raises(ValueError, match="differ in 1 tensors"):
        average(a, {"w": torch.ones(2, 3), "v": torch.ones(1)}, 0.5)
    with pytest.raises(ValueError, match="outside 0..1"):
        average(a, b, 1.5)


def test_soup_of_two_checkpoints_is_a_checkpoint_of_their_mean(tmp_path):
    path_a, state_a = _checkpoint(tmp_path, 1)
    path_b, state_b = _checkpoint(tmp_path, 2)
    written = soup(path_a, path_b, 0.3, tmp_path / "mix" / "model.safetensors")
    model, cfg = T.load_checkpoint(written[0])
    assert cfg.name == "mix" and cfg.min_input_size == 256  # the config of B, named after the folder
    state = model.state_dict()
    for key in ("encoder.model.conv_stem.weight", "segmentation_head.0.bias"):
        assert torch.allclose(state[key], 0.7 * state_a[key] + 0.3 * state_b[key], atol=1e-6)
    running = next(k for k in state if k.endswith("running_var"))
    assert torch.allclose(state[running], 0.7 * state_a[running] + 0.3 * state_b[running], atol=1e-6)
    assert not torch.allclose(state[running], state_a[running])
    _, meta = T.read_checkpoint(written[0])
    assert '"weight": 0.3' in meta["soup"]


def test_a_float_onnx_export_can_be_one_side(tmp_path):
    from handseg_training.export import export

    path_a, state_a = _checkpoint(tmp_path, 1)
    path_b, _ = _checkpoint(tmp_path, 2)
    model_a, cfg_a = T.load_checkpoint(path_a)
    export(model_a, cfg_a, tmp_path / "a.onnx", half=True)
    written = soup(tmp_path / "a.onnx", path_b, 0.0, tmp_path / "same" / "model.safetensors")
    state, _ = T.read_checkpoint(written[0])
    for key in ("encoder.model.conv_stem.weight", "segmentation_head.0.weight"):
        assert torch.allclose(state[key], state_a[key], atol=2e-3)  # through fp16


def test_other_architectures_and_int8_files_are_refused(tmp_path):
    path_a, _ = _checkpoint(tmp_path, 1, decoder_channels=32)
    path_b, _ = _checkpoint(tmp_path, 2, decoder_channels=16)
    with pytest.raises(ValueError, match="one encoder and decoder"):
        soup(path_a, path_b, 0.5, tmp_path / "x" / "model.safetensors")
    with pytest.raises(FileNotFoundError, match="no such model"):
        soup(tmp_path / "missing.onnx", path_b, 0.5, tmp_path / "x" / "model.safetensors")
