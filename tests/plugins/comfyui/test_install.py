from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import handseg_plugins.comfyui
from handseg_core import HandsegError
from handseg_plugins.comfyui import NODE_CLASS_MAPPINGS
from handseg_plugins.comfyui.install import InstallError, install


@pytest.fixture
def comfyui_dir(tmp_path) -> Path:
    root = tmp_path / "ComfyUI"
    (root / "custom_nodes").mkdir(parents=True)
    (root / "main.py").write_text("")
    return root


def load_like_comfyui(pack: Path, *prelude: str) -> subprocess.CompletedProcess:
    """Import the pack's __init__.py from a fresh Python the way ComfyUI does (by file location)."""
    code = "\n".join([
        *prelude,
        "import importlib.util, json, sys",
        f"spec = importlib.util.spec_from_file_location('handseg_pack', {str(pack / '__init__.py')!r})",
        "module = importlib.util.module_from_spec(spec)",
        "spec.loader.exec_module(module)",
        "print(json.dumps({k: v.__name__ for k, v in module.NODE_CLASS_MAPPINGS.items()}))",
    ])
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_install_is_reexported():
    assert handseg_plugins.comfyui.install is install


def test_install_writes_a_shim_models_folder_and_example_workflows(comfyui_dir):
    pack = install(comfyui_dir)
    assert pack == (comfyui_dir / "custom_nodes" / "handseg").resolve()
    assert (comfyui_dir / "models" / "handseg").is_dir()
    assert (pack / "example_workflows" / "remove_background.json").is_file()
    loaded = load_like_comfyui(pack)
    assert loaded.returncode == 0, loaded.stderr
    assert json.loads(loaded.stdout) == {k: v.__name__ for k, v in NODE_CLASS_MAPPINGS.items()}


def test_installing_again_updates_the_shim(comfyui_dir):
    pack = install(comfyui_dir)
    (pack / "__init__.py").write_text((pack / "__init__.py").read_text() + "\nSTALE = True\n")
    assert install(comfyui_dir) == pack
    assert "STALE" not in (pack / "__init__.py").read_text()


def test_the_shim_says_what_to_do_when_handseg_is_missing(comfyui_dir):
    pack = install(comfyui_dir)
    loaded = load_like_comfyui(pack, "import sys; sys.modules['handseg_plugins'] = None")
    assert loaded.returncode != 0
    assert "pip install /path/to/handseg" in loaded.stderr and "Python that runs ComfyUI" in loaded.stderr
    assert "pip install handseg`" not in loaded.stderr  # not on PyPI yet


def test_not_a_folder(tmp_path):
    with pytest.raises(InstallError, match="no such folder"):
        install(tmp_path / "missing")


@pytest.mark.parametrize("remove", ["main.py", "custom_nodes"])
def test_not_comfyui(comfyui_dir, remove):
    target = comfyui_dir / remove
    target.unlink() if target.is_file() else target.rmdir()
    with pytest.raises(InstallError, match=f"does not look like ComfyUI \\(no {remove}"):
        install(comfyui_dir)
    assert not (comfyui_dir / "models").exists()


def test_a_foreign_custom_nodes_handseg_is_left_alone(comfyui_dir):
    foreign = comfyui_dir / "custom_nodes" / "handseg"
    foreign.mkdir()
    (foreign / "__init__.py").write_text("NODE_CLASS_MAPPINGS = {}\n")
    with pytest.raises(HandsegError, match="not made by handseg"):
        install(comfyui_dir)
    assert (foreign / "__init__.py").read_text() == "NODE_CLASS_MAPPINGS = {}\n"


def test_the_pack_imports_outside_comfyui_without_folder_paths():
    code = (
        "import sys; sys.modules['folder_paths'] = None\n"
        "import handseg_plugins.comfyui as pack\n"
        "from handseg_core import registry\n"
        "choices = pack.NODE_CLASS_MAPPINGS['HandsegLoadModel'].INPUT_TYPES()['required']['model'][0]\n"
        "assert sorted(choices) == sorted(registry.available_models()), choices\n"
        "print(sorted(pack.NODE_DISPLAY_NAME_MAPPINGS))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "HandsegRemoveBackground" in result.stdout


def test_the_pack_registers_its_folder_when_imported_inside_comfyui(comfyui_dir, tmp_path):
    from .conftest import FOLDER_PATHS_FILE

    (tmp_path / "folder_paths.py").write_text(FOLDER_PATHS_FILE.read_text())
    pack = install(comfyui_dir)
    (comfyui_dir / "models" / "handseg" / "extra.onnx").write_bytes(b"x")
    (comfyui_dir / "models" / "handseg" / "extra.onnx.sha256").write_text(hashlib.sha256(b"x").hexdigest() + "\n")
    loaded = load_like_comfyui(
        pack,
        f"import os, sys; sys.path.insert(0, {str(tmp_path)!r}); os.environ['FAKE_COMFYUI_DIR'] = {str(comfyui_dir)!r}",
        "import folder_paths",
        "import atexit",
        "atexit.register(lambda: print(folder_paths.folder_names_and_paths['handseg'][1]))",
        "atexit.register(lambda: print(module.NODE_CLASS_MAPPINGS['HandsegLoadModel'].INPUT_TYPES()['required']['model'][0]))",
    )
    assert loaded.returncode == 0, loaded.stderr
    assert "'extra.onnx'" in loaded.stdout and "'.onnx'" in loaded.stdout
