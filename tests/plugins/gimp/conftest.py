from __future__ import annotations

from pathlib import Path

import pytest

from tiny_model import write_red_model


@pytest.fixture(autouse=True)
def _no_extra_model_folders(monkeypatch):
    monkeypatch.delenv("HANDSEG_MODELS", raising=False)
    monkeypatch.delenv("HANDSEG_DEFAULT_MODEL", raising=False)


@pytest.fixture(scope="session")
def red_model(tmp_path_factory) -> Path:
    """tiny-red.onnx (red pixels are hands) with its .sha256 sidecar, in a folder of its own."""
    return write_red_model(tmp_path_factory.mktemp("models"))
