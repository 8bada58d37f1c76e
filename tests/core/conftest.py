from __future__ import annotations

from pathlib import Path

import pytest

from corpus import make_corpus
from tiny_model import write_red_model


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> dict[str, tuple[Path, bool]]:
    return make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="session")
def red_model(tmp_path_factory) -> Path:
    """A deterministic ONNX model (red pixels are hands) with metadata and a .sha256 sidecar."""
    return write_red_model(tmp_path_factory.mktemp("models"))


@pytest.fixture(autouse=True)
def _no_extra_model_folders(monkeypatch):
    monkeypatch.delenv("HANDSEG_MODELS", raising=False)
    monkeypatch.delenv("HANDSEG_DEFAULT_MODEL", raising=False)
