from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from tiny_model import hand_picture, write_red_model

# A stand-in for ComfyUI's folder_paths module (a file, so it can also be put on a subprocess's path).
FOLDER_PATHS_FILE = Path(__file__).with_name("fake_comfyui") / "folder_paths.py"


def make_folder_paths(comfyui_dir: Path) -> types.ModuleType:
    """A fresh fake folder_paths module whose models folder is comfyui_dir/models."""
    spec = importlib.util.spec_from_file_location("folder_paths", FOLDER_PATHS_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.models_dir = str(comfyui_dir / "models")
    return module


@pytest.fixture(autouse=True)
def _no_extra_model_folders(monkeypatch):
    monkeypatch.delenv("HANDSEG_MODELS", raising=False)
    monkeypatch.delenv("HANDSEG_DEFAULT_MODEL", raising=False)


@pytest.fixture
def fake_comfyui(tmp_path, monkeypatch) -> Path:
    """A ComfyUI-looking folder whose folder_paths module is importable, with models/handseg registered."""
    from handseg_plugins.comfyui.models import register_models_folder

    root = tmp_path / "ComfyUI"
    (root / "custom_nodes").mkdir(parents=True)
    (root / "main.py").write_text("")
    monkeypatch.setitem(sys.modules, "folder_paths", make_folder_paths(root))
    register_models_folder()
    return root


@pytest.fixture
def red_model_file(fake_comfyui) -> Path:
    """tiny-red.onnx (red pixels are hands) in the fake ComfyUI's models/handseg folder."""
    return write_red_model(fake_comfyui / "models" / "handseg")


@pytest.fixture
def red_model(red_model_file):
    from handseg_plugins.comfyui.nodes import HandsegLoadModel

    (model,) = HandsegLoadModel().load("tiny-red.onnx", "cpu")
    return model


def comfy_images(batch: int, width: int = 53, height: int = 37) -> tuple[torch.Tensor, np.ndarray]:
    """(IMAGE [B, H, W, 3] as ComfyUI's Load Image makes it, bool truth [B, H, W]): red hands."""
    pictures = [hand_picture(width, height, seed=i) for i in range(batch)]
    rgb = np.stack([p[0] for p in pictures])
    truth = np.stack([p[1] for p in pictures])
    return torch.from_numpy(rgb.astype(np.float32) / 255.0), truth
