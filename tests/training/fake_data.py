"""A miniature of ../shared/data's layout, drawn with numpy, for tests of the data tools."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image


def _hand(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A skin-coloured palm with fingers, wrist at the bottom edge, on white."""
    image = np.full((size, size, 3), 245, np.uint8)
    mask = np.zeros((size, size), np.uint8)
    yy, xx = np.mgrid[:size, :size]
    palm = (abs(xx - size / 2) < size * 0.2) & (yy > size * 0.45)
    fingers = np.zeros_like(palm)
    for k in range(4):
        x = size * (0.33 + 0.11 * k)
        fingers |= (abs(xx - x) < size * 0.04) & (yy > size * (0.15 + 0.03 * k)) & (yy <= size * 0.45)
    hand = palm | fingers
    image[hand] = rng.integers(90, 220, 3)
    mask[hand] = 255
    return image, mask


def make(root: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)

    def pairs(name: str, count: int, size: int, stems=None) -> list[str]:
        (root / name / "images").mkdir(parents=True, exist_ok=True)
        (root / name / "masks").mkdir(parents=True, exist_ok=True)
        stems = stems or [f"{name}_{i:03d}" for i in range(count)]
        for stem in stems:
            image, mask = _hand(rng, size)
            Image.fromarray(image).save(root / name / "images" / f"{stem}.jpg", quality=95)
            Image.fromarray(mask).save(root / name / "masks" / f"{stem}.png")
        return stems

    stems = pairs("hands11k_subset", 20, 60, [f"Hand_{i:07d}" for i in range(20)])
    with (root / "hands11k_subset" / "HandInfo.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "skinColor", "imageName"])
        for i, stem in enumerate(stems):
            writer.writerow([f"{i // 2:07d}", ["dark", "medium", "fair", "very fair"][i % 4], f"{stem}.jpg"])
    pairs("massey_asl", 6, 80)
    pairs("sign_digits", 6, 40)
    pairs("egohands_cross14", 2, 64)
    for folder, count in (("backgrounds/bsds500", 4), ("backgrounds/urban100", 3), ("backgrounds/sun_hays80", 2)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)).save(root / folder / f"img{i}.jpg")
    (root / "faces_utk" / "images").mkdir(parents=True)
    for i in range(6):  # names ending in 0 are the out-of-domain set's faces
        Image.fromarray(rng.integers(100, 200, (50, 50, 3), dtype=np.uint8)).save(
            root / "faces_utk" / "images" / f"20_1_{i % 5}_2017011022011108{i}.jpg")
    (root / "egohands_400" / "images").mkdir(parents=True)
    (root / "egohands_400" / "masks").mkdir(parents=True)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (54, 96, 3), dtype=np.uint8)).save(
            root / "egohands_400" / "images" / f"VIDEO_frame_{i:04d}.jpg")
        Image.fromarray(np.zeros((54, 96), np.uint8)).save(root / "egohands_400" / "masks" / f"VIDEO_frame_{i:04d}.png")
    return root
