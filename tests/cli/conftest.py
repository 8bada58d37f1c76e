"""Fixtures for the `handseg` command-line tests: a runner, a tiny known model, small photos."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import handseg_cli
from tiny_model import write_red_model

from .helpers import Run, save_picture


@pytest.fixture
def handseg():
    """Run the CLI in this process: handseg("mask", "a.jpg", "-o", "out") -> Run."""
    runner = CliRunner()

    def invoke(*args: object) -> Run:
        result = runner.invoke(handseg_cli.main, [str(a) for a in args], catch_exceptions=False)
        assert "Traceback" not in result.output
        return Run(result.exit_code, result.stdout, result.stderr)

    return invoke


@pytest.fixture(scope="session")
def red_model(tmp_path_factory) -> Path:
    """The tiny ONNX model of tests/tiny_model.py: red pixels are hands."""
    return write_red_model(tmp_path_factory.mktemp("models"))


@pytest.fixture
def photos(tmp_path) -> Path:
    """A folder with three small pictures of different sizes and formats."""
    folder = tmp_path / "photos"
    save_picture(folder / "a.jpg", 64, 48, seed=1)
    save_picture(folder / "b.png", 40, 56, seed=2)
    save_picture(folder / "c.webp", 50, 50, seed=3)
    return folder
