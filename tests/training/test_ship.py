"""One command from nothing to a packaged default: train, average, export, quantise, measure."""

from __future__ import annotations

import functools
import shutil
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")
pytest.importorskip("onnx")

from handseg_core import load_model  # noqa: E402
from handseg_core.registry import read_index  # noqa: E402
from handseg_training import quantize as Q  # noqa: E402
from handseg_training import ship  # noqa: E402
from handseg_training.train import read_checkpoint  # noqa: E402
from .test_train_tiny import _synthetic_set  # noqa: E402

CONFIG = """
name = "{name}"
encoder = "tf_efficientnet_lite0"
decoder_channels = 16
encoder_weights = "none"
input_size = 128
hand_limit = 333
hand_extent = 222
lr = {lr}
crop = 64
batch = 4
warmup_steps = 2
max_steps = 3
time_budget_minutes = 10
precision = "fp32"
log_every = 2
seed = 0
[data]
frames = ["egohands_400"]
eval = []
"""


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    root = tmp_path_factory.mktemp("ship")
    data = root / "data"
    _synthetic_set(data / "egohands_400", 10, seed=0)  # trained on, calibrated on, measured on
    configs = []
    for name, lr in (("run-a", 5e-4), ("run-b", 2e-3)):  # two runs that end apart
        configs.append(root / f"{name}.toml")
        configs[-1].write_text(CONFIG.format(name=name, lr=lr))
    finetune = root / "finetune.toml"  # trained further from the mean, its statistics held
    finetune.write_text(CONFIG.format(name="ignored", lr=1e-3).replace("max_steps = 3", "max_steps = 2")
                        .replace("seed = 0", "seed = 0\nfreeze_batchnorm = true"))
    out = root / "out"
    argv = [*map(str, configs), "--finetune", str(finetune), "--out", str(out), "--data-root", str(data),
            "--name", "tiny", "--threads", "1"]
    # An untrained network's masks are noise, which the int8 check would refuse; what is tested
    # here is the chain of steps (quantize's own checks are in test_quantize.py).
    patch = pytest.MonkeyPatch()
    patch.setattr(Q, "quantize", functools.partial(Q.quantize, min_agreement=0.0))
    try:
        ship.main(argv)
    finally:
        patch.undo()
    return out, argv


def test_one_command_leaves_a_float_and_a_default_int8_model_listed_with_their_metrics(shipped):
    out, _ = shipped
    models = {spec.name: spec for spec in read_index(out / "models")}
    assert set(models) == {"tiny", "tiny-int8"}
    index = json.loads((out / "models" / "index.json").read_text())["models"]
    assert [e["name"] for e in index if e.get("default")] == ["tiny-int8"]
    for spec in models.values():
        assert spec.path.is_file() and spec.sha256
        assert (spec.hand_limit, spec.hand_extent) == (333, 222)  # the config's, in the index ...
        session = load_model(str(spec.path))
        assert (session.spec.hand_limit, session.spec.hand_extent) == (333, 222)  # ... and the file
        assert session.spec.input_size == 128
        assert set(spec.metrics) == {"egohands_400"} and 0.0 <= spec.metrics["egohands_400"]["iou"] <= 1.0
        per_photo = json.loads((out / "eval" / f"{spec.name}.json").read_text())["egohands_400"]["per_image"]
        assert len(per_photo) == 10
    assert Q.is_quantized(__import__("onnx").load(str(models["tiny-int8"].path)))
    table = (out / "report.md").read_text()
    assert "| tiny-int8 |" in table and "| tiny |" in table and "egohands_400" in table
    assert "reused" not in table  # the first call made everything


def test_the_model_is_the_mean_of_the_runs(shipped):
    out, _ = shipped
    a, _ = read_checkpoint(out / "runs" / "run-a" / "model.safetensors")
    b, _ = read_checkpoint(out / "runs" / "run-b" / "model.safetensors")
    mean, meta = read_checkpoint(out / "soup" / "model.safetensors")
    assert json.loads(meta["config"])["name"] == "tiny"
    differing = [k for k in a if a[k].is_floating_point() and not np.allclose(a[k].numpy(), b[k].numpy())]
    assert differing
    for key in differing:
        assert np.allclose(mean[key].float().numpy(), (a[key].float().numpy() + b[key].float().numpy()) / 2, atol=1e-6)


def test_the_model_is_trained_further_from_the_mean(shipped):
    out, _ = shipped
    mean, _ = read_checkpoint(out / "soup" / "model.safetensors")
    tuned, meta = read_checkpoint(out / "finetune" / "model.safetensors")
    config = json.loads(meta["config"])
    assert config["init_from"] == str(out / "soup" / "model.safetensors") and config["name"] == "tiny"
    assert config["freeze_batchnorm"] and config["max_steps"] == 2
    moved = [k for k in mean if mean[k].is_floating_point() and not torch.equal(mean[k].float(), tuned[k].float())]
    assert moved and not any("running_" in k for k in moved)  # trained, statistics held
    half, _ = read_checkpoint(out / "finetune" / "mean" / "model.safetensors")  # the model: halfway back
    for key in moved:
        assert np.allclose(half[key].float().numpy(), (mean[key].float().numpy() + tuned[key].float().numpy()) / 2,
                           atol=1e-6)
    exported = load_model(str(out / "models" / "tiny.onnx"))
    assert exported.spec.name == "tiny"


def test_a_second_call_reuses_every_step(shipped, capsys):
    out, argv = shipped
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.onnx")}
    ship.main(argv)
    said = capsys.readouterr().out
    assert said.count("reusing") == 7  # runs, mean, fine-tuned, their mean, float, int8
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.onnx")} == before
    assert "reused the output of step 1, 2, 3, 4 from an earlier one" in (out / "report.md").read_text()


def test_an_int8_model_that_disagrees_leaves_the_float_model_as_the_measured_default(shipped, tmp_path, monkeypatch):
    out, argv = shipped
    again = tmp_path / "again"
    for step in ("runs", "soup", "finetune"):  # the trained runs, their mean and its fine-tuning, reused
        shutil.copytree(out / step, again / step)
    monkeypatch.setattr(Q, "quantize", functools.partial(Q.quantize, min_agreement=1.01))  # no model passes
    argv = [*argv[: argv.index("--out") + 1], str(again), *argv[argv.index("--out") + 2:]]

    with pytest.raises(SystemExit, match="no int8 model: the int8 model's masks agree"):
        ship.main(argv)

    index = json.loads((again / "models" / "index.json").read_text())["models"]
    assert [(e["name"], e.get("default", False)) for e in index] == [("tiny", True)]
    assert set(index[0]["metrics"]) == {"egohands_400"}
    assert not (again / "models" / "tiny-int8.onnx").exists()
    assert "| tiny |" in (again / "report.md").read_text()


def test_fresh_deletes_only_what_ship_wrote(tmp_path):
    out = tmp_path / "out"
    mine = [out / "runs" / "run-a" / "model.safetensors", out / "soup" / "model.safetensors",
            out / "finetune" / "model.safetensors",
            out / "models" / "tiny.onnx", out / "eval" / "tiny.json", out / "report.md"]
    theirs = [out / "notes.txt", out / "runs" / "someone-else" / "model.safetensors"]
    for path in mine + theirs:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")

    ship.forget(out, ["run-a"])

    assert [p for p in mine if p.exists()] == []
    assert all(p.exists() for p in theirs)


def test_each_config_runs_once_per_data_seed_and_all_are_averaged(tmp_path):
    data = tmp_path / "data"
    _synthetic_set(data / "egohands_400", 8, seed=1)
    config = tmp_path / "run-a.toml"
    config.write_text(CONFIG.format(name="run-a", lr=2e-3))
    out = tmp_path / "out"
    patch = pytest.MonkeyPatch()
    patch.setattr(Q, "quantize", functools.partial(Q.quantize, min_agreement=0.0))
    try:
        ship.main([str(config), "--data-seeds", "3", "4", "--finetune", "none", "--out", str(out),
                   "--data-root", str(data), "--name", "tiny", "--threads", "1"])
    finally:
        patch.undo()

    runs = [read_checkpoint(out / "runs" / f"seed{n}" / "run-a" / "model.safetensors") for n in (3, 4)]
    assert [json.loads(meta["config"])["data_seed"] for _, meta in runs] == [3, 4]
    (a, _), (b, _) = runs
    differing = [k for k in a if a[k].is_floating_point() and not torch.equal(a[k], b[k])]
    assert differing  # the same start, other batches
    mean, _ = read_checkpoint(out / "soup" / "model.safetensors")
    for key in differing:
        assert np.allclose(mean[key].float().numpy(), (a[key].float().numpy() + b[key].float().numpy()) / 2, atol=1e-6)
    ship.forget(out, ["run-a"])
    assert not list((out / "runs").rglob("model.safetensors"))


def test_a_seed_given_twice_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        ship.main(["--data-seeds", "1", "1", "--out", str(tmp_path), "--data-root", str(tmp_path)])
    assert "give each seed once" in capsys.readouterr().err


def test_the_default_recipe_is_both_configs_at_data_seeds_0_and_1(tmp_path, monkeypatch):
    seen = {}

    def stop(configs, out, args, reused):
        seen.update(configs=[c.name for c in configs], seeds=args.data_seeds, finetune=args.finetune)
        raise SystemExit("stopped before training")

    monkeypatch.setattr(ship, "train_runs", stop)
    with pytest.raises(SystemExit, match="stopped before training"):
        ship.main(["--out", str(tmp_path / "out"), "--data-root", str(tmp_path)])
    assert seen == {"configs": ["lite2-gpu.toml", "lite2-own20-gpu.toml"], "seeds": [0, 1], "finetune": ship.FINETUNE}
