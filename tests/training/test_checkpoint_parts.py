"""Checkpoints in parts of at most 16 MiB: written, joined, refused when a part is missing."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")

from handseg_training import train as T  # noqa: E402
from handseg_training.config import TrainConfig  # noqa: E402
from handseg_training.model import build_model  # noqa: E402


@pytest.fixture
def model_and_cfg():
    cfg = TrainConfig(encoder="tf_efficientnet_lite0", decoder_channels=32, encoder_weights="none")
    return build_model(cfg.encoder, cfg.decoder_channels, None), cfg


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_small_model_is_one_file(tmp_path, model_and_cfg):
    model, cfg = model_and_cfg
    written = T.save_checkpoint(model, cfg, tmp_path / "model.safetensors", {"step": 3})
    assert written == [tmp_path / "model.safetensors"]
    state, meta = T.read_checkpoint(tmp_path / "model.safetensors")
    assert meta["parts"] == "1" and meta["step"] == "3"
    assert _same(state, model.state_dict())


def test_large_model_is_split_and_joined(tmp_path, model_and_cfg, monkeypatch):
    model, cfg = model_and_cfg
    monkeypatch.setattr(T, "PART_BYTES", 2**20 + 2**16)  # 1 MiB parts for a ~13 MB model
    written = T.save_checkpoint(model, cfg, tmp_path / "model.safetensors", {})
    assert len(written) > 5
    from safetensors import safe_open

    for part in written:  # within the limit, unless one tensor alone is larger
        with safe_open(str(part), framework="pt") as f:
            assert part.stat().st_size <= 2**20 + 2**16 or len(list(f.keys())) == 1
    assert written[1].name == "model.part2.safetensors"
    state, _ = T.read_checkpoint(tmp_path / "model.safetensors")
    assert _same(state, model.state_dict())
    loaded, loaded_cfg = T.load_checkpoint(tmp_path / "model.safetensors")
    assert loaded_cfg.decoder_channels == 32
    assert _same(loaded.state_dict(), model.state_dict())

    written[2].unlink()
    with pytest.raises(FileNotFoundError, match="model.part3.safetensors is missing"):
        T.read_checkpoint(tmp_path / "model.safetensors")


def test_a_smaller_save_removes_stale_parts(tmp_path, model_and_cfg, monkeypatch):
    model, cfg = model_and_cfg
    monkeypatch.setattr(T, "PART_BYTES", 2**20 + 2**16)
    T.save_checkpoint(model, cfg, tmp_path / "model.safetensors", {})
    monkeypatch.setattr(T, "PART_BYTES", 16 * 2**20)
    assert len(T.save_checkpoint(model, cfg, tmp_path / "model.safetensors", {})) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


def test_fp16_copies_load_as_float32(tmp_path, model_and_cfg):
    from safetensors.torch import save_file

    model, cfg = model_and_cfg
    T.save_checkpoint(model, cfg, tmp_path / "model.safetensors", {})
    state, meta = T.read_checkpoint(tmp_path / "model.safetensors")
    save_file({k: v.half() if v.is_floating_point() else v for k, v in state.items()}, str(tmp_path / "half.safetensors"),
              metadata=meta)
    loaded, _ = T.load_checkpoint(tmp_path / "half.safetensors")
    weight = next(v for k, v in loaded.state_dict().items() if k.endswith("weight"))
    assert weight.dtype == torch.float32
    original = dict(model.state_dict())
    for k, v in loaded.state_dict().items():
        if v.is_floating_point():
            assert torch.allclose(v, original[k], rtol=1e-3, atol=1e-4)


def test_learning_rate_with_a_warm_restart():
    cfg = TrainConfig(lr=1e-3, warmup_steps=10, restart_at=0.6, restart_lr=4e-4)
    assert T.learning_rate(cfg, 0, 0.0) == pytest.approx(1e-4)  # warming up
    assert T.learning_rate(cfg, 10, 0.0) == pytest.approx(1e-3)
    assert T.learning_rate(cfg, 100, 0.3) == pytest.approx(5e-4)  # half-way down the first cosine
    assert T.learning_rate(cfg, 200, 0.6) == pytest.approx(0.0)  # the first cosine ends at restart_at
    assert T.learning_rate(cfg, 200, 0.6, restart_step=200) == pytest.approx(4e-5)  # warming up again
    assert T.learning_rate(cfg, 210, 0.6, restart_step=200) == pytest.approx(4e-4)
    assert T.learning_rate(cfg, 250, 0.8, restart_step=200) == pytest.approx(2e-4)
    assert T.learning_rate(cfg, 300, 1.0, restart_step=200) == pytest.approx(0.0)
    plain = TrainConfig(lr=1e-3, warmup_steps=1)
    assert T.learning_rate(plain, 50, 0.5) == pytest.approx(5e-4)
