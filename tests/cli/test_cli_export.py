"""`handseg export --register` (handseg_training.export.register), and train -> export -> use."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")

from handseg_core import registry  # noqa: E402
from handseg_core.errors import ModelError  # noqa: E402
from handseg_training.export import register  # noqa: E402

from .helpers import save_picture  # noqa: E402


@pytest.fixture
def exported(red_model, tmp_path):
    """A model file with its sidecar outside any models folder, and its spec."""
    folder = tmp_path / "exported"
    folder.mkdir()
    path = folder / "red.onnx"
    shutil.copy(red_model, path)
    shutil.copy(red_model.with_name(red_model.name + ".sha256"), path.with_name("red.onnx.sha256"))
    spec = registry.ModelSpec(name="red", file="red.onnx", sha256=registry.sha256_of(path.read_bytes()),
                              encoder="none", input_size=128, stride=16, folder=str(folder))
    return spec


def test_register_copies_the_file_and_lists_it(exported, tmp_path, monkeypatch):
    models = tmp_path / "models"

    index = register(exported, models, default=False)

    assert index == models / "index.json"
    assert (models / "red.onnx").read_bytes() == exported.path.read_bytes()
    assert (models / "red.onnx.sha256").exists()
    monkeypatch.setenv("HANDSEG_MODELS", str(models))
    found = registry.find("red")
    assert found.path == models / "red.onnx" and found.sha256 == exported.sha256
    assert registry.read_verified(found) == exported.path.read_bytes()
    assert not [p for p in models.iterdir() if p.suffix == ".tmp"]


def test_register_updates_in_place_and_moves_the_default(exported, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    others = [{"name": "old", "file": "old.onnx", "default": True}, {"name": "red", "file": "red.onnx"},
              {"name": "last", "file": "last.onnx"}]
    (models / "index.json").write_text(json.dumps({"models": others}))

    register(replace(exported, description="new"), models, default=True)

    entries = json.loads((models / "index.json").read_text())["models"]
    assert [e["name"] for e in entries] == ["old", "red", "last"]
    assert "default" not in entries[0] and entries[1]["default"] is True and entries[1]["description"] == "new"


def test_register_refuses_a_broken_index(exported, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "index.json").write_text("{not json")

    with pytest.raises(ModelError, match="not a valid model index"):
        register(exported, models)

    assert (models / "index.json").read_text() == "{not json"


@pytest.mark.slow
def test_train_export_register_and_use(handseg, tmp_path, monkeypatch):
    data = tmp_path / "data" / "scenes"
    (data / "masks").mkdir(parents=True)
    for i in range(4):
        name = f"V{i % 2}_frame_{i:04d}.png"
        truth = save_picture(data / "images" / name, 96, 64, seed=i)
        Image.fromarray(truth.astype(np.uint8) * 255).save(data / "masks" / name)
    config = tmp_path / "tiny.toml"
    config.write_text(
        'name = "tiny"\nencoder = "tf_efficientnet_lite0"\ndecoder_channels = 16\nencoder_weights = "none"\n'
        'input_size = 64\ncrop = 64\nbatch = 2\nmax_steps = 3\nprecision = "fp32"\nlog_every = 1\n'
        '[data]\nframes = ["scenes"]\nframe_size = [64, 96]\neval = ["scenes"]\n'
    )
    run_dir, models = tmp_path / "run", tmp_path / "models"

    trained = handseg("train", config, "--out", run_dir, "--data-root", tmp_path / "data", "--device", "cpu",
                      "--cache", tmp_path / "cache")
    exported = handseg("export", run_dir / "model.safetensors", "-o", tmp_path / "tiny.onnx", "--name", "tiny-cli",
                       "--register", models, "--default")
    monkeypatch.setenv("HANDSEG_MODELS", os.fspath(models))
    used = handseg("mask", data / "images", "-o", tmp_path / "masks", "-m", "tiny-cli")

    assert trained.exit_code == 0, trained.stderr
    assert f"checkpoint: {run_dir / 'model.safetensors'}" in trained.stdout
    assert exported.exit_code == 0, exported.stderr
    assert f"registered tiny-cli in {models / 'index.json'}" in exported.stdout
    entry = json.loads((models / "index.json").read_text())["models"][0]
    assert entry["name"] == "tiny-cli" and entry["default"] is True and "scenes" in entry["metrics"]
    assert used.exit_code == 0, used.stderr
    assert len(list((tmp_path / "masks").glob("*.png"))) == 4

    half = handseg("export", run_dir / "model.safetensors", "-o", tmp_path / "tiny-half.onnx", "--half")
    assert half.exit_code == 0, half.stderr
    assert (tmp_path / "tiny-half.onnx").stat().st_size < 0.7 * (tmp_path / "tiny.onnx").stat().st_size
    used_half = handseg("mask", data / "images", "-o", tmp_path / "masks-half", "-m", tmp_path / "tiny-half.onnx")
    assert used_half.exit_code == 0, used_half.stderr
    for mask in (tmp_path / "masks").glob("*.png"):  # the same masks, up to a few edge pixels
        a = np.asarray(Image.open(mask)) > 0
        b = np.asarray(Image.open(tmp_path / "masks-half" / mask.name)) > 0
        assert (a != b).mean() < 0.01
