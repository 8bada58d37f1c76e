"""Candidates side by side: runs start together, reports are gathered, what travels back is small."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")

from handseg_training import candidates as C  # noqa: E402
from handseg_training.train import load_checkpoint  # noqa: E402
from .test_train_tiny import _synthetic_set  # noqa: E402

CONFIG = """
name = "{name}"
encoder = "tf_efficientnet_lite0"
decoder_channels = {channels}
encoder_weights = "none"
input_size = 128
crop = 64
batch = 4
warmup_steps = 2
max_steps = 4
restart_at = 0.5
time_budget_minutes = 10
precision = "fp32"
log_every = 2
[data]
frames = ["scenes"]
eval = ["test"]
"""


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    _synthetic_set(root / "scenes", 8, seed=0)
    _synthetic_set(root / "test", 3, seed=1)
    configs = []
    for name, channels in (("tiny-a", 16), ("tiny-b", 32)):
        configs.append(root / f"{name}.toml")
        configs[-1].write_text(CONFIG.format(name=name, channels=channels))
    out, packed = root / "runs", root / "packed"
    result = subprocess.run(
        [sys.executable, "-m", "handseg_training.candidates", *map(str, configs), "--out", str(out),
         "--data-root", str(root), "--pack", str(packed), "--threads", "1", "--data-seed", "7"],
        capture_output=True, text=True, timeout=600, cwd=Path(__file__).parents[2],
    )
    return result, out, packed


def test_both_runs_finish_and_are_compared(compared):
    result, out, _ = compared
    assert result.returncode == 0, result.stderr
    rows = json.loads((out / "comparison.json").read_text())
    assert set(rows) == {"tiny-a", "tiny-b"}
    for row in rows.values():
        assert row["exit_code"] == 0
        assert row["steps"] == 4 and row["images_seen"] == 16
        assert 0.0 <= row["eval"]["test"]["iou"] <= 1.0
    for name in rows:  # --data-seed reaches every run (handseg train --data-seed); the seed stays
        config = json.loads((out / name / "config.json").read_text())
        assert config["data_seed"] == 7 and config["seed"] == 0
    assert rows["tiny-a"]["parameters"] < rows["tiny-b"]["parameters"]  # 16 vs 32 decoder channels
    table = (out / "comparison.md").read_text()
    assert "| tiny-a |" in table and "| test |" in table.splitlines()[0] + "|"


def test_packed_files_are_fp16_checkpoints_and_one_archive(compared):
    _, out, packed = compared
    assert sorted(p.name for p in packed.iterdir()) == ["reports.tar.gz", "tiny-a.fp16.safetensors", "tiny-b.fp16.safetensors"]
    full = (out / "tiny-b" / "model.safetensors").stat().st_size
    half = (packed / "tiny-b.fp16.safetensors").stat().st_size
    assert half < 0.6 * full
    model, cfg = load_checkpoint(packed / "tiny-b.fp16.safetensors")
    assert cfg.name == "tiny-b" and cfg.decoder_channels == 32
    with tarfile.open(packed / "reports.tar.gz") as tar:
        names = set(tar.getnames())
    assert {"comparison.md", "tiny-a/report.json", "tiny-b/train.log"} <= names


def test_markdown_marks_missing_results():
    rows = {"ok": {"parameters": 3_300_000, "steps": 10, "images_seen": 320,
                   "eval": {"set": {"iou": 0.8123, "groups": {}}}},
            "crashed": {"parameters": None, "exit_code": 1}}
    lines = C.markdown(rows).splitlines()
    assert lines[2] == "| ok | 3.3 M | 10 | 320 | 0.812 | - |"
    assert lines[3] == "| crashed | - | - | - | - | - |"
