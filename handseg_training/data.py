"""Reading training data into memory.

Everything is decoded once into uint8 tensors of a fixed size so that batches can be cut and
augmented on the training device (see `augment.py`) without a data-loader process per core.
"""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from handseg_core import atomic

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}

# What training must not see (the out-of-domain set, research/oodset.py, is built from them);
# configs list the same patterns in data.exclude.
EXCLUDE = ["backgrounds/urban100/*", "backgrounds/sun_hays80/*", "faces_utk/images/*0.jpg"]


def excluded(path: Path, root: Path, patterns: list[str]) -> bool:
    """Whether `path` (below `root`) matches one of the glob `patterns`."""
    try:
        relative = path.relative_to(root).as_posix()
    except ValueError:
        relative = path.as_posix()
    return any(fnmatch.fnmatch(relative, pattern) for pattern in patterns)


@dataclass
class PairFolder:
    """A folder with `images/` and `masks/` paired by file stem (the layout of ../shared/data)."""

    root: Path

    def pairs(self) -> list[tuple[Path, Path]]:
        images = self.root / "images"
        masks = self.root / "masks"
        if not images.is_dir() or not masks.is_dir():
            raise FileNotFoundError(
                f"{self.root}: expected images/ and masks/ folders paired by file stem"
            )
        mask_by_stem = {p.stem: p for p in masks.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
        found = []
        for image in sorted(images.iterdir()):
            if image.suffix.lower() in IMAGE_SUFFIXES and image.stem in mask_by_stem:
                found.append((image, mask_by_stem[image.stem]))
        if not found:
            raise FileNotFoundError(f"{self.root}: no image/mask pairs found")
        return found


def video_of(path: Path) -> str:
    """EgoHands frame names are VIDEO_frame_NNNN; the video is the group for validation splits."""
    stem = path.stem
    return stem.rsplit("_frame_", 1)[0] if "_frame_" in stem else stem


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path}: cannot be decoded as an image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_mask(path: Path) -> np.ndarray:
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise ValueError(f"{path}: cannot be decoded as a mask")
    return mask


def fit_into(image: np.ndarray, size: tuple[int, int], interpolation: int) -> np.ndarray:
    """Resize to exactly (height, width)."""
    h, w = size
    if image.shape[:2] == (h, w):
        return image
    return cv2.resize(image, (w, h), interpolation=interpolation)


def _cache_path(cache_dir: Path | None, key: str) -> Path | None:
    if cache_dir is None:
        return None
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    return cache_dir / f"{digest}.pt"


def _save_cache(tensor: torch.Tensor, path: Path | None) -> None:
    """Write atomically: runs started side by side share one cache and may read it meanwhile."""
    if path is None:
        return
    with atomic.replacing(path) as temporary:
        torch.save(tensor, temporary)


def load_pairs(
    pairs: list[tuple[Path, Path]],
    size: tuple[int, int],
    cache_dir: Path | None = None,
    labels: list[Path] | None = None,
) -> torch.Tensor:
    """Decode pairs into one uint8 tensor [N, 4, H, W]: RGB and the mask (0/255) as channel 3;
    with `labels` (a mask file per pair), [N, 5, H, W] with those as channel 4."""
    key = f"pairs|{size}|" + "|".join(f"{a}:{a.stat().st_mtime_ns}" for a, _ in pairs)
    if labels is not None:
        key += "|labels|" + "|".join(f"{b}:{b.stat().st_mtime_ns}" for b in labels)
    cached = _cache_path(cache_dir, key)
    if cached is not None and cached.exists():
        return torch.load(cached, weights_only=True)
    out = torch.empty((len(pairs), 4 if labels is None else 5, *size), dtype=torch.uint8)

    def binary(path: Path) -> torch.Tensor:
        mask = fit_into(read_mask(path), size, cv2.INTER_LINEAR)
        return torch.from_numpy(np.where(mask >= 128, 255, 0).astype(np.uint8))

    for i, (image_path, mask_path) in enumerate(pairs):
        out[i, :3] = torch.from_numpy(fit_into(read_rgb(image_path), size, cv2.INTER_AREA)).permute(2, 0, 1)
        out[i, 3] = binary(mask_path)
        if labels is not None:
            out[i, 4] = binary(labels[i]) & out[i, 3]  # a label never outside what is pasted
    _save_cache(out, cached)
    return out


def load_images(paths: list[Path], size: tuple[int, int], cache_dir: Path | None = None) -> torch.Tensor:
    """Decode images (centre-cropped to the aspect of `size`) into uint8 [N, 3, H, W]."""
    key = f"images|{size}|" + "|".join(f"{p}:{p.stat().st_mtime_ns}" for p in paths)
    cached = _cache_path(cache_dir, key)
    if cached is not None and cached.exists():
        return torch.load(cached, weights_only=True)
    h, w = size
    out = torch.empty((len(paths), 3, h, w), dtype=torch.uint8)
    for i, path in enumerate(paths):
        image = cv2.resize(centre_crop(read_rgb(path), size), (w, h), interpolation=cv2.INTER_AREA)
        out[i] = torch.from_numpy(image).permute(2, 0, 1)
    _save_cache(out, cached)
    return out


def centre_crop(image: np.ndarray, aspect_hw: tuple[int, int]) -> np.ndarray:
    """The largest centred part of `image` with the aspect ratio of (height, width)."""
    h, w = aspect_hw
    ih, iw = image.shape[:2]
    scale = max(h / ih, w / iw)
    ch, cw = min(ih, round(h / scale)), min(iw, round(w / scale))
    y0, x0 = (ih - ch) // 2, (iw - cw) // 2
    return image[y0 : y0 + ch, x0 : x0 + cw]


def list_images(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def hands11k_subjects(root: Path) -> dict[str, dict[str, str]]:
    """Image stem -> row of HandInfo.csv (subject id, skin colour, ...)."""
    table = root / "HandInfo.csv"
    if not table.exists():
        return {}
    with table.open(newline="") as f:
        return {Path(row["imageName"]).stem: row for row in csv.DictReader(f)}


def split_by_subject(
    pairs: list[tuple[Path, Path]], info: dict[str, dict[str, str]], holdout_fraction: float, seed: int
) -> tuple[list[tuple[Path, Path]], list[tuple[Path, Path]]]:
    """Split 11k-Hands pairs so that no subject is on both sides."""
    subjects = sorted({info[i.stem]["id"] for i, _ in pairs if i.stem in info})
    rng = np.random.default_rng(seed)
    held = set(rng.choice(subjects, size=round(len(subjects) * holdout_fraction), replace=False))
    train = [p for p in pairs if info.get(p[0].stem, {}).get("id") not in held]
    test = [p for p in pairs if info.get(p[0].stem, {}).get("id") in held]
    return train, test
