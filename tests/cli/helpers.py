"""Helpers shared by the command-line tests."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from tiny_model import hand_picture

# `handseg` with every image taking 0.2 s more: a batch long enough to signal mid-way
# (python -c SLOW_HANDSEG cutout ...).
SLOW_HANDSEG = """
import sys, time
import handseg_core.session as session
segment = session.HandSegmenter.segment
def slow(self, *args, **kwargs):
    time.sleep(0.2)
    return segment(self, *args, **kwargs)
session.HandSegmenter.segment = slow
import handseg_cli
sys.argv[0] = "handseg"
handseg_cli.main()
"""

SAVE_OPTIONS = {".jpg": {"quality": 95}, ".jpeg": {"quality": 95}, ".webp": {"lossless": True}}


@dataclass
class Run:
    """What one `handseg` invocation did."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error: ")]

    def lines_naming(self, path: Path) -> list[str]:
        """stderr lines that report `path` as failed (they start with it)."""
        return [line for line in self.error_lines if line.startswith(f"error: {path}:")]


def save_picture(path: Path, width: int = 64, height: int = 48, seed: int = 0) -> np.ndarray:
    """Write a red-hand picture to `path`; returns its bool truth mask."""
    rgb, truth = hand_picture(width, height, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, **SAVE_OPTIONS.get(path.suffix.lower(), {}))
    return truth


def digests(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder`, by relative path."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def leftovers(folder: Path) -> list[Path]:
    """Temporary files a write may have left behind."""
    return [p for p in folder.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union
