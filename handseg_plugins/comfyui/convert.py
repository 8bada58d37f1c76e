"""ComfyUI tensors <-> the arrays handseg_core takes and gives.

ComfyUI's IMAGE is float32 [B, H, W, C] in 0..1 (C = 3, sometimes 4) and its MASK is float32
[B, H, W] (sometimes [H, W]) in 0..1. handseg_core works on HxWx3 uint8 RGB images and HxW masks.
Inputs may be torch tensors (as ComfyUI passes them) or numpy arrays; outputs are torch tensors
when torch is importable, else numpy arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _as_float_array(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().float().numpy()
    return np.nan_to_num(np.asarray(value, dtype=np.float32))


def _to_uint8(a: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)


def _output(a: np.ndarray) -> Any:
    try:
        import torch
    except ImportError:
        return a
    return torch.from_numpy(np.ascontiguousarray(a))


def images_to_arrays(images: Any) -> list[np.ndarray]:
    """IMAGE [B, H, W, C] float 0..1 -> B uint8 HxWx3 RGB arrays (alpha dropped, grey repeated)."""
    a = _as_float_array(images)
    if a.ndim != 4 or a.shape[-1] not in (1, 3, 4) or 0 in a.shape:
        raise ValueError(f"expected an IMAGE of shape [B, H, W, C] with C = 1, 3 or 4, got {tuple(a.shape)}")
    rgb = np.repeat(a, 3, axis=-1) if a.shape[-1] == 1 else a[..., :3]
    return [_to_uint8(frame) for frame in rgb]


def arrays_to_images(arrays: Sequence[np.ndarray]) -> Any:
    """Equal-sized uint8 HxWx3 (RGB) or HxWx4 (RGBA) arrays -> IMAGE [B, H, W, C] float32 0..1."""
    if not arrays:
        raise ValueError("no images to convert")
    stacked = np.stack([np.asarray(a) for a in arrays])
    if stacked.dtype != np.uint8 or stacked.ndim != 4 or stacked.shape[-1] not in (3, 4):
        raise ValueError(f"expected uint8 HxWx3 or HxWx4 arrays, got {stacked.dtype} {tuple(stacked.shape[1:])}")
    return _output(stacked.astype(np.float32) / 255.0)


def masks_to_arrays(masks: Any, dtype: type = np.uint8) -> list[np.ndarray]:
    """MASK [B, H, W] or [H, W] float 0..1 -> B HxW arrays: uint8 0..255, or float32 0..1."""
    a = _as_float_array(masks)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or 0 in a.shape:
        raise ValueError(f"expected a MASK of shape [B, H, W], got {tuple(a.shape)}")
    a = np.clip(a, 0.0, 1.0)
    if np.dtype(dtype) == np.uint8:
        return [_to_uint8(m) for m in a]
    if np.dtype(dtype) == np.float32:
        return list(a)
    raise ValueError(f"dtype must be numpy.uint8 or numpy.float32, got {dtype}")


def arrays_to_masks(arrays: Sequence[np.ndarray]) -> Any:
    """Equal-sized HxW masks (uint8 0..255, bool, or float 0..1) -> MASK [B, H, W] float32 0..1."""
    if not arrays:
        raise ValueError("no masks to convert")
    converted = []
    for mask in arrays:
        m = np.asarray(mask)
        if m.ndim != 2:
            raise ValueError(f"expected HxW masks, got shape {m.shape}")
        if m.dtype == np.uint8:
            converted.append(m.astype(np.float32) / 255.0)
        elif m.dtype == bool or m.dtype.kind == "f":
            converted.append(np.clip(np.nan_to_num(m.astype(np.float32)), 0.0, 1.0))
        else:
            raise ValueError(f"mask dtype {m.dtype} not understood; use uint8 0..255, bool or float 0..1")
    return _output(np.stack(converted))
