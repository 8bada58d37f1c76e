"""GIMP pixel buffers <-> the arrays handseg_core takes and gives.

The plug-in reads every drawable, whatever its mode (RGB, greyscale, indexed, any bit depth), as
READ_FORMAT: GEGL converts on the way out, so only one layout arrives here. Masks go back as one
byte per pixel: in a channel's own colour model (layer masks and selections hold opacity, not
perceptual grey), or as perceptual grey (LAYER_FORMAT) into a layer.
"""

from __future__ import annotations

import numpy as np

READ_FORMAT = "R'G'B'A u8"
READ_CHANNELS = 4
LAYER_FORMAT = "Y' u8"
GREY_MODELS = ("Y", "Y'", "Y~")
MATTE = 255


def rgb_from_bytes(data: bytes, width: int, height: int, channels: int = READ_CHANNELS) -> np.ndarray:
    """Packed 8-bit pixels (grey, grey+alpha, RGB or RGBA) -> HxWx3 uint8 RGB.

    Transparent pixels are laid over white, as handseg does for RGBA files.

    Raises:
        ValueError: the buffer does not hold width x height pixels of `channels` bytes.
    """
    if channels not in (1, 2, 3, 4):
        raise ValueError(f"channels must be 1, 2, 3 or 4, got {channels}")
    if width <= 0 or height <= 0:
        raise ValueError(f"empty drawable of {width}x{height} pixels")
    expected = width * height * channels
    if len(data) != expected:
        raise ValueError(f"expected {expected} bytes for {width}x{height}x{channels}, got {len(data)}")
    pixels = np.frombuffer(data, np.uint8).reshape(height, width, channels)
    colour = pixels[..., :3] if channels >= 3 else np.repeat(pixels[..., :1], 3, axis=2)
    if channels in (1, 3):
        return colour.copy()
    alpha = pixels[..., -1:].astype(np.uint32)
    blended = (colour.astype(np.uint32) * alpha + MATTE * (255 - alpha) + 127) // 255
    return blended.astype(np.uint8)


def mask_to_bytes(mask: np.ndarray) -> bytes:
    """An HxW mask (uint8 0..255 or bool) as one byte per pixel, row by row.

    Raises:
        ValueError: the mask is not 2-D, or not uint8 or bool.
    """
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"expected an HxW mask, got shape {m.shape}")
    if m.dtype == bool:
        m = m.astype(np.uint8) * 255
    elif m.dtype != np.uint8:
        raise ValueError(f"expected a uint8 or bool mask, got {m.dtype}")
    return np.ascontiguousarray(m).tobytes()


def channel_format(model: str) -> str:
    """The 8-bit format to write a mask into a channel whose babl colour model is `model`.

    Writing in the channel's own model keeps the numbers: 128 stays half opacity whether the
    channel is linear ("Y") or not ("Y'").
    """
    return f"{model} u8" if model in GREY_MODELS else "Y u8"


def on_canvas(mask: np.ndarray, offset: tuple[int, int], canvas: tuple[int, int]) -> np.ndarray:
    """`mask` of a layer at `offset` (x, y), placed on an empty canvas of `canvas` (width, height).

    Parts of the layer outside the canvas are cut off.
    """
    width, height = canvas
    x, y = offset
    placed = np.zeros((height, width), np.uint8)
    h, w = mask.shape
    left, top = max(x, 0), max(y, 0)
    right, bottom = min(x + w, width), min(y + h, height)
    if right > left and bottom > top:
        placed[top:bottom, left:right] = mask[top - y:bottom - y, left - x:right - x]
    return placed
