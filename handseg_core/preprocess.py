"""From a decoded RGB image to the network's input tensor, and from its output back."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Prepared:
    """A network input and what is needed to map the output back onto the image."""

    tensor: np.ndarray  # float32 [1, 3, H', W'], normalised and padded
    resized_hw: tuple[int, int]  # size of the image inside the padding
    original_hw: tuple[int, int]


def default_long_side(shape: tuple[int, ...], input_size: int, min_input_size: int = 0) -> int:
    """The long side a model sees by default: the image's own, within [min_input_size, input_size]."""
    return max(min(min_input_size, input_size), min(input_size, max(shape[:2])))


def resized_size(height: int, width: int, long_side: int) -> tuple[int, int]:
    """(height, width) with the long side at `long_side`, aspect kept, at least 1 pixel."""
    scale = long_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_long_side(image: np.ndarray, long_side: int) -> np.ndarray:
    """`image` with its long side at `long_side` (aspect kept): averaged when reduced (INTER_AREA),
    interpolated when enlarged; the image itself when it is that size already."""
    h, w = image.shape[:2]
    rh, rw = resized_size(h, w, long_side)
    if (rh, rw) == (h, w):
        return image
    return cv2.resize(image, (rw, rh), interpolation=cv2.INTER_AREA if rh < h else cv2.INTER_LINEAR)


def prepare(
    image: np.ndarray,
    long_side: int,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    stride: int,
) -> Prepared:
    """Resize (long side to `long_side`), normalise, and pad to a multiple of `stride`.

    Padding repeats the border pixels so that the network sees no artificial edge.
    """
    h, w = image.shape[:2]
    image = resize_long_side(image, long_side)
    rh, rw = image.shape[:2]
    ph, pw = -rh % stride, -rw % stride
    if ph or pw:  # padded while still uint8: a quarter of the bytes to copy
        image = cv2.copyMakeBorder(image, 0, ph, 0, pw, cv2.BORDER_REPLICATE)
    # (x / 255 - mean) / std as one multiply-add per channel, written straight into the
    # channel-first tensor: no float HxWx3 intermediate and no transpose copy.
    std = np.asarray(std, np.float32)
    scale, offset = 1 / (255 * std), -np.asarray(mean, np.float32) / std
    tensor = np.empty((1, 3, rh + ph, rw + pw), np.float32)
    for c in range(3):
        np.multiply(image[:, :, c], scale[c], out=tensor[0, c], casting="unsafe")
        tensor[0, c] += offset[c]
    return Prepared(tensor, (rh, rw), (h, w))


def restore(probability: np.ndarray, prepared: Prepared) -> np.ndarray:
    """Crop the padding off a [H', W'] network output and resize it to the original image."""
    rh, rw = prepared.resized_hw
    p = probability[:rh, :rw]
    h, w = prepared.original_hw
    if (rh, rw) != (h, w):
        p = cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(p, 0.0, 1.0).astype(np.float32, copy=False)
