"""The smaller commands (models, install, app, train's and export's checks), usage errors, and the
fast path of --version and --help."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

from handseg_core import registry
from handseg_core._version import __version__

HEAVY = ("torch", "onnxruntime", "cv2", "numpy", "PIL", "handseg_core", "handseg_training")
# The options' descriptions, which the flags are built from, are all --help may read of the engine.
LIGHT = ("handseg_core", "handseg_core._version", "handseg_core.errors", "handseg_core.options")

IMPORTS_AFTER_HELP = f"""
import sys
from click.testing import CliRunner
import handseg_cli
for args in (["--version"], ["--help"], ["mask", "--help"], ["cutout", "--help"], ["eval", "--help"],
             ["train", "--help"], ["export", "--help"], ["install", "gimp", "--help"]):
    result = CliRunner().invoke(handseg_cli.main, args)
    assert result.exit_code == 0, (args, result.output)
print(" ".join(sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r} and m not in {LIGHT!r})))
"""


def test_version_and_help_import_no_heavy_module():
    done = subprocess.run([sys.executable, "-c", IMPORTS_AFTER_HELP], capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_version_from_the_installed_script():
    script = shutil.which("handseg", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    assert script, "the handseg script is not installed (pip install -e .)"

    done = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60)

    assert done.returncode == 0 and done.stdout.strip() == f"handseg {__version__}"


@pytest.mark.parametrize(
    "args, message",
    [
        (["mask", "a.jpg", "-o", "out", "-m", "no-such-model"], "unknown model 'no-such-model'"),
        (["mask", "a.jpg", "-o", "out", "-m", "missing.onnx"], "missing.onnx: no such model file"),
        (["mask", "a.jpg"], "Missing option '-o'"),
        (["mask", "-o", "out"], "Missing argument 'INPUT...'"),
        (["mask", "a.jpg", "-o", "out", "--threshold", "2"], "--threshold"),
        (["mask", "a.jpg", "-o", "out", "--device", "gpu"], "--device"),
        (["mask", "a.jpg", "-o", "out", "--size", "5000"], "5000 is not in the range 16<=x<=2048"),
        (["mask", "a.jpg", "-o", "out", "--size", "-1"], "-1 is not in the range 16<=x<=2048"),
        (["mask", "a.jpg", "-o", "out", "--size", "0"], "0 is not in the range 16<=x<=2048"),
        (["cutout", "a.jpg", "-o", "out", "--threshold", "-0.1"], "--threshold"),
        (["mask", "a.jpg", "-o", "out", "--feather", "-0.5"], "--feather"),
        (["mask", "a.jpg", "-o", "out", "--dilate", "5"], "--dilate"),
        (["mask", "a.jpg", "-o", "out", "--no-refine", "--dilate", "0.1"], "drop it or drop --dilate"),
        (["cutout", "a.jpg", "-o", "out", "--background", "not-a-colour"], "neither a colour"),
        (["frobnicate"], "No such command"),
    ],
)
def test_usage_errors_exit_2_and_write_nothing(handseg, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)

    run = handseg(*args)

    assert run.exit_code == 2
    assert message in run.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_damaged_model_file_is_one_line_and_exit_1(handseg, photos, red_model, tmp_path):
    damaged = tmp_path / "models" / red_model.name
    damaged.parent.mkdir()
    shutil.copy(red_model, damaged)
    shutil.copy(red_model.with_name(red_model.name + ".sha256"), damaged.with_name(damaged.name + ".sha256"))
    with open(damaged, "ab") as stream:
        stream.write(b"\0")

    run = handseg("mask", photos, "-o", tmp_path / "out", "-m", damaged)

    assert run.exit_code == 1
    assert len(run.stderr.strip().splitlines()) == 1 and "checksum mismatch" in run.stderr
    assert list((tmp_path / "out").iterdir()) == []


def test_models_lists_the_packaged_default(handseg):
    spec = registry.find("handseg-lite2-int8")

    run = handseg("models")

    assert run.exit_code == 0
    row = next(line for line in run.stdout.splitlines() if " handseg-lite2-int8 " in line)
    assert row.startswith("*")
    assert spec.encoder in row and str(spec.input_size) in row and registry.expected_checksum(spec)[:12] in row
    assert f"{spec.path.stat().st_size / 1e6:.1f} MB" in row


def test_models_shows_extra_folders_and_their_metrics(handseg, red_model, tmp_path, monkeypatch):
    folder = tmp_path / "more"
    folder.mkdir()
    shutil.copy(red_model, folder / "red.onnx")
    shutil.copy(registry.sidecar_of(red_model), registry.sidecar_of(folder / "red.onnx"))
    entry = {"name": "red", "file": "red.onnx", "encoder": "none", "input_size": 128,
             "metrics": {"egohands": {"iou": 0.81234}, "asl": 0.9}}
    (folder / "index.json").write_text(json.dumps({"models": [entry]}))
    monkeypatch.setenv("HANDSEG_MODELS", str(folder))

    table = handseg("models")
    listed = handseg("models", "--json")

    assert table.exit_code == 0 and listed.exit_code == 0
    row = next(line for line in table.stdout.splitlines() if " red " in line)
    assert not row.startswith("*") and "egohands IoU 0.812, asl IoU 0.900" in row
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert rows["handseg-lite2-int8"]["default"] is True
    assert rows["handseg-lite2"]["default"] is False and rows["handseg-lite0"]["default"] is False
    assert rows["red"]["default"] is False and rows["red"]["path"] == str(folder / "red.onnx")
    assert rows["red"]["size_bytes"] == red_model.stat().st_size and rows["red"]["metrics"]["asl"] == 0.9


def test_models_lists_only_models_with_a_checksum(handseg, red_model, tmp_path, monkeypatch):
    folder = tmp_path / "more"
    folder.mkdir()
    shutil.copy(red_model, folder / "verified.onnx")
    shutil.copy(registry.sidecar_of(red_model), registry.sidecar_of(folder / "verified.onnx"))
    shutil.copy(red_model, folder / "dropped-in.onnx")
    monkeypatch.setenv("HANDSEG_MODELS", str(folder))

    rows = {r["name"] for r in json.loads(handseg("models", "--json").stdout)}
    by_name = handseg("mask", tmp_path / "none.jpg", "-o", tmp_path / "out", "-m", "dropped-in")

    assert "verified" in rows and "dropped-in" not in rows
    assert by_name.exit_code == 2 and "no recorded checksum" in by_name.stderr


def test_a_model_path_without_checksum_runs_with_one_warning_line(handseg, photos, red_model, tmp_path):
    copy = tmp_path / "elsewhere" / "copy.onnx"
    copy.parent.mkdir()
    shutil.copy(red_model, copy)

    run = handseg("mask", photos, "-o", tmp_path / "out", "-m", copy)

    assert run.exit_code == 0, run.stderr
    warnings = [line for line in run.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings == [f"warning: {copy}: no checksum is recorded for this model, so damage or tampering cannot be "
                        "detected; record one with `handseg export` (it writes copy.onnx.sha256) or "
                        "`sha256sum copy.onnx > copy.onnx.sha256` in its folder"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png", "c.png"]


def fake_plugin(monkeypatch, name: str, **functions) -> list:
    """Put a stand-in handseg_plugins.<name> in place; returns the list its calls are recorded in."""
    calls: list = []
    module = types.ModuleType(f"handseg_plugins.{name}")
    for function_name, result in functions.items():
        def record(*args, _result=result, _name=function_name):
            calls.append((_name, args))
            if isinstance(_result, BaseException):
                raise _result
            return _result
        setattr(module, function_name, record)
    monkeypatch.setitem(sys.modules, f"handseg_plugins.{name}", module)
    return calls


def test_install_comfyui(handseg, tmp_path, monkeypatch):
    calls = fake_plugin(monkeypatch, "comfyui", install=tmp_path / "custom_nodes" / "handseg")

    run = handseg("install", "comfyui", tmp_path)

    assert run.exit_code == 0, run.stderr
    assert calls == [("install", (tmp_path,))]
    assert str(tmp_path / "custom_nodes" / "handseg") in run.stdout


def test_install_gimp_prints_the_report(handseg, tmp_path, monkeypatch):
    calls = fake_plugin(monkeypatch, "gimp", install="installed handseg into GIMP 3.0 at X")

    default = handseg("install", "gimp")
    chosen = handseg("install", "gimp", "--plugins-dir", tmp_path)

    assert default.exit_code == 0 and chosen.exit_code == 0
    assert calls == [("install", (None,)), ("install", (tmp_path,))]
    assert default.stdout == "installed handseg into GIMP 3.0 at X\n"


def test_install_failure_is_one_line(handseg, tmp_path, monkeypatch):
    fake_plugin(monkeypatch, "gimp", install=PermissionError(13, "Permission denied", "/usr/lib/gimp"))

    run = handseg("install", "gimp")

    assert run.exit_code == 1
    assert run.stderr.strip().splitlines() == ["error: [Errno 13] Permission denied: '/usr/lib/gimp'"]


@pytest.mark.parametrize("args, module", [(["install", "gimp"], "gimp"), (["app"], "webapp"),
                                          (["export", "--format", "rembg"], "rembg")])
def test_a_missing_plugin_is_one_line_and_exit_1(handseg, monkeypatch, args, module):
    monkeypatch.setitem(sys.modules, f"handseg_plugins.{module}", None)

    run = handseg(*args)

    assert run.exit_code == 1
    assert len(run.stderr.strip().splitlines()) == 1 and "not available in this installation" in run.stderr


def test_app_passes_port_and_browser_and_its_exit_code(handseg, monkeypatch):
    calls = fake_plugin(monkeypatch, "webapp", launch=3)

    run = handseg("app", "--port", 8123, "--no-browser")
    default = handseg("app")

    assert run.exit_code == 3
    assert calls == [("launch", (8123, False)), ("launch", (8501, True))]
    assert default.exit_code == 3


def test_export_for_rembg(handseg, red_model, tmp_path, monkeypatch):
    written = tmp_path / "u2net" / "handseg.onnx"
    calls = fake_plugin(monkeypatch, "rembg", export_for_rembg=(written, "rembg i -m u2net_custom -x '{}' in out"))

    run = handseg("export", "--format", "rembg", "-m", red_model, "--rembg-home", tmp_path / "u2net")
    default = handseg("export", "--format", "rembg")

    assert run.exit_code == 0 and default.exit_code == 0, run.stderr
    assert calls == [("export_for_rembg", (str(red_model), tmp_path / "u2net")), ("export_for_rembg", (None, None))]
    assert run.stdout.splitlines() == [f"wrote {written}", "use it with: rembg i -m u2net_custom -x '{}' in out"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["export"], "give a CHECKPOINT and -o OUT.onnx"),
        (["export", "CKPT"], "give a CHECKPOINT and -o OUT.onnx"),
        (["export", "CKPT", "-o", "x.onnx", "--default"], "--default goes with --register"),
        (["export", "CKPT", "-o", "x.onnx", "--rembg-home", "h"], "go with --format rembg"),
        (["export", "--format", "rembg", "CKPT"], "--format rembg takes a model (-m), not CHECKPOINT"),
        (["export", "--format", "rembg", "--half"], "--format rembg takes a model (-m), not --half"),
    ],
)
def test_export_usage_errors(handseg, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "CKPT").write_bytes(b"")

    run = handseg(*args)

    assert run.exit_code == 2
    assert message in run.stderr


def test_train_without_torch_says_what_to_install(handseg, tmp_path, monkeypatch):
    config = tmp_path / "tiny.toml"
    config.write_text('name = "tiny"\n')
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "segmentation_models_pytorch", None)

    run = handseg("train", config, "--out", tmp_path / "run")

    assert run.exit_code == 1
    assert len(run.stderr.strip().splitlines()) == 1 and "pip install 'handseg[train]'" in run.stderr
    assert not (tmp_path / "run").exists()


def test_train_with_a_wrong_config_is_one_line(handseg, tmp_path):
    pytest.importorskip("segmentation_models_pytorch")
    config = tmp_path / "bad.toml"
    config.write_text('name = "tiny"\nlearning_rate = 3\n')

    run = handseg("train", config, "--out", tmp_path / "run")

    assert run.exit_code == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {config}: unknown setting(s) learning_rate; known: ")


def test_train_from_an_int8_file_fails_at_once_in_one_line(handseg, tmp_path):
    pytest.importorskip("segmentation_models_pytorch")
    int8 = Path(registry.__file__).parent / "models" / "handseg-lite2-int8.onnx"
    config = tmp_path / "ft.toml"
    config.write_text(f'name = "ft"\nencoder = "tf_efficientnet_lite2"\nencoder_weights = "none"\n'
                      f'init_from = "{int8}"\n[data]\nframes = ["nowhere"]\n')

    run = handseg("train", config, "--out", tmp_path / "run", "--data-root", tmp_path)

    assert run.exit_code == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "handseg-lite2-int8.onnx: its weights do not fit" in lines[0] and "int8 file" in lines[0]


def test_export_refuses_a_file_that_is_no_checkpoint(handseg, tmp_path):
    pytest.importorskip("segmentation_models_pytorch")
    checkpoint = tmp_path / "model.safetensors"
    checkpoint.write_bytes(b"not a checkpoint")

    run = handseg("export", checkpoint, "-o", tmp_path / "m.onnx")

    assert run.exit_code == 1
    assert len(run.stderr.strip().splitlines()) == 1 and "not a loadable handseg checkpoint" in run.stderr
    assert not (tmp_path / "m.onnx").exists()


def test_cuda_without_a_cuda_runtime_is_one_line(handseg, photos, red_model, tmp_path):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")

    run = handseg("mask", photos, "-o", tmp_path / "out", "-m", red_model, "--device", "cuda")

    assert run.exit_code == 1
    assert run.stderr.strip().splitlines() == [
        "error: device 'cuda' asked for, but this onnxruntime has no CUDA support: pip install onnxruntime-gpu"
    ]
