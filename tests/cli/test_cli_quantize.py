"""`handseg quantize`: an int8 copy of a model, calibrated on photos, checked, registered."""

from __future__ import annotations

import hashlib
import json

import pytest

pytest.importorskip("onnx")
pytest.importorskip("torch")

from handseg_core import load_model  # noqa: E402
from tiny_model import write_layered_model, write_red_model  # noqa: E402

from .helpers import save_picture  # noqa: E402


@pytest.fixture
def calibration(tmp_path):
    folder = tmp_path / "calibration"
    for i in range(10):
        save_picture(folder / ("hands" if i % 2 else "more") / f"{i}.png", 96 + 8 * i, 72 + 4 * i, seed=i)
    return folder


@pytest.fixture
def layered(tmp_path):
    return write_layered_model(tmp_path / "models")


def test_quantize_writes_and_reports(handseg, layered, calibration, tmp_path):
    (calibration / "hands" / "broken.jpg").write_bytes(b"GIF89a truncated")
    out = tmp_path / "layered-int8.onnx"

    run = handseg("quantize", layered, calibration, "-o", out)

    assert run.exit_code == 0, run.stderr
    assert f"wrote {out}" in run.stdout and "calibrated on 10 photos" in run.stdout
    assert "masks agree with" in run.stdout
    assert "up to 64 of 11 photos" in run.stderr
    assert [line for line in run.stderr.splitlines() if line.startswith("skipped ")] == \
        [line for line in run.stderr.splitlines() if "broken.jpg" in line]
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    assert out.with_name(out.name + ".sha256").read_text().split()[0] == digest
    assert load_model(out, device="cpu").spec.name == "layered-int8"


def test_quantize_registers_under_a_name(handseg, layered, calibration, tmp_path, monkeypatch):
    models = tmp_path / "mine"

    run = handseg("quantize", layered, calibration, "-o", tmp_path / "q.onnx", "--name", "fast",
                  "--register", models, "--default")

    assert run.exit_code == 0, run.stderr
    entries = json.loads((models / "index.json").read_text())["models"]
    assert [(e["name"], e["file"], e.get("default")) for e in entries] == [("fast", "q.onnx", True)]
    monkeypatch.setenv("HANDSEG_MODELS", str(models))
    assert load_model("fast", device="cpu").spec.description.endswith("10 calibration photos)")


def test_quantize_never_overwrites_an_input(handseg, layered, calibration):
    photo = calibration / "hands" / "1.png"
    before = photo.read_bytes()

    run = handseg("quantize", layered, photo, calibration, "-o", photo)

    assert run.exit_code != 0
    assert run.error_lines == [f"error: {photo}: will not overwrite an input or a file that is not .onnx; choose another -o"]
    assert photo.read_bytes() == before


def test_quantize_never_overwrites_the_model(handseg, layered, calibration):
    before = layered.read_bytes()

    run = handseg("quantize", layered, calibration, "-o", layered.parent / ".." / layered.parent.name / layered.name)

    assert run.exit_code != 0 and len(run.error_lines) == 1
    assert "will not overwrite an input" in run.error_lines[0]
    assert layered.read_bytes() == before


def test_quantize_explains_what_it_cannot_do(handseg, layered, calibration, tmp_path):
    few = handseg("quantize", layered, calibration / "hands" / "1.png", "-o", tmp_path / "a.onnx")
    assert few.exit_code != 0 and few.error_lines == [
        "error: 1 readable calibration photos; give at least 8 (photos of hands, faces and backgrounds)"]

    one_conv = write_red_model(tmp_path / "other")
    odd = handseg("quantize", one_conv, calibration, "-o", tmp_path / "b.onnx")
    assert odd.exit_code != 0 and len(odd.error_lines) == 1 and "not a handseg model?" in odd.error_lines[0]

    stray = handseg("quantize", layered, calibration, "-o", tmp_path / "c.onnx", "--default")
    assert stray.exit_code == 2 and "--default goes with --register" in stray.stderr
    assert not list(tmp_path.glob("*.onnx"))
