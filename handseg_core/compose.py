"""Cut-outs: the hands on transparency, on a colour, or on another image."""

from __future__ import annotations

import os
import re
from typing import Union

import numpy as np
from PIL import Image, ImageColor

from handseg_core.errors import HandsegError
from handseg_core.images import ImageInput, load_rgba

Background = Union[None, str, tuple, os.PathLike, Image.Image, np.ndarray]

_HEX = re.compile(r"^#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})$")


def parse_colour(value: str) -> tuple[int, int, int] | None:
    """'white', '#RRGGBB', 'RRGGBB', '#RGB' or a CSS colour name -> RGB; None when not a colour."""
    text = value.strip()
    if _HEX.match(text):
        text = text if text.startswith("#") else "#" + text
    try:
        return ImageColor.getrgb(text)[:3]
    except ValueError:
        return None


def as_alpha(mask: np.ndarray | Image.Image, size: tuple[int, int]) -> Image.Image:
    """A mask (uint8 0..255, bool, or float 0..1; HxW) as an 'L' image of `size` (width, height)."""
    a = np.asarray(mask)
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    elif a.dtype.kind == "f":
        a = np.clip(a * 255 + 0.5, 0, 255).astype(np.uint8)
    elif a.dtype != np.uint8:
        raise HandsegError(f"mask dtype {a.dtype} not understood; pass uint8 0..255, bool or float 0..1")
    if a.ndim != 2:
        raise HandsegError(f"mask must be HxW, got shape {a.shape}")
    alpha = Image.fromarray(a, "L")
    if alpha.size != size:
        raise HandsegError(f"mask is {alpha.size[0]}x{alpha.size[1]} but the image is {size[0]}x{size[1]}")
    return alpha


def cutout_image(image: ImageInput, mask: np.ndarray | Image.Image, background: Background = None) -> Image.Image:
    """Keep the hands of `image` where `mask` is set; see handseg_core.cutout."""
    rgba = load_rgba(image)
    alpha = as_alpha(mask, rgba.size)
    if rgba.getextrema()[3][0] < 255:  # keep the image's own transparency too
        alpha = Image.fromarray(np.minimum(np.asarray(alpha), np.asarray(rgba.getchannel("A"))), "L")
    rgba.putalpha(alpha)
    if background is None or (isinstance(background, str) and background.strip().lower() in ("", "transparent", "none")):
        return _clear_hidden(rgba)
    base = _background_image(background, rgba.size)
    base.alpha_composite(rgba)
    return base.convert("RGB")


def _clear_hidden(rgba: Image.Image) -> Image.Image:
    """Black out the colour under fully transparent pixels: the removed background is gone from
    the file, not merely hidden (an editor that drops the alpha would otherwise show it again)."""
    pixels = np.array(rgba)
    pixels[pixels[..., 3] == 0, :3] = 0
    return Image.fromarray(pixels, "RGBA")


def _background_image(background: Background, size: tuple[int, int]) -> Image.Image:
    if isinstance(background, tuple):
        return Image.new("RGBA", size, tuple(int(c) for c in background[:3]) + (255,))
    if isinstance(background, str):
        colour = parse_colour(background)
        if colour is not None:
            return Image.new("RGBA", size, colour + (255,))
        if not os.path.exists(background):
            raise HandsegError(
                f"background {background!r} is neither a colour (white, #RRGGBB) nor an existing image file"
            )
    picture = load_rgba(background)
    return _cover(picture, size)


def _cover(picture: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Scale and centre-crop `picture` to fill `size`, aspect kept."""
    w, h = size
    scale = max(w / picture.width, h / picture.height)
    resized = picture.resize((max(w, round(picture.width * scale)), max(h, round(picture.height * scale))), Image.LANCZOS)
    left, top = (resized.width - w) // 2, (resized.height - h) // 2
    out = Image.new("RGBA", size, (0, 0, 0, 255))
    out.alpha_composite(resized.crop((left, top, left + w, top + h)))
    return out
