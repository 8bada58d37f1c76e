"""Cut-outs: the hands on transparency, on a colour, or on another image."""

from __future__ import annotations

import os
import re
from typing import Union

import numpy as np
from PIL import Image, ImageChops, ImageColor

from handseg_core.errors import HandsegError
from handseg_core.images import ImageInput, load_rgba, open_image

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


BAND_ROWS = 512  # rows composited at once: a large photo is never copied whole as an array


def cutout_image(image: ImageInput, mask: np.ndarray | Image.Image, background: Background = None, *,
                 reuse: bool = False) -> Image.Image:
    """Keep the hands of `image` where `mask` is set; see handseg_core.cutout.

    `reuse`: an RGB or RGBA PIL `image` may become the cut-out itself (it is changed), which
    saves a copy of a large photo; for callers that do not use the image afterwards. An image
    given by its path or as an RGB array is always used so (it is a copy made here).
    """
    if isinstance(image, (str, os.PathLike)):
        image, reuse = open_image(image), True  # decoded here: nobody else holds it
    elif isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        image, reuse = Image.fromarray(np.ascontiguousarray(image), "RGB"), True  # a copy of its own
    if reuse and isinstance(image, Image.Image) and image.mode in ("RGB", "RGBA"):
        rgba = image
        rgba.load()
    else:
        rgba = load_rgba(image)
    alpha = as_alpha(mask, rgba.size)
    if rgba.mode == "RGBA" and rgba.getextrema()[3][0] < 255:  # keep the image's own transparency too
        alpha = ImageChops.darker(alpha, rgba.getchannel("A"))
    rgba.putalpha(alpha)
    del alpha
    if background is None or (isinstance(background, str) and background.strip().lower() in ("", "transparent", "none")):
        return _clear_hidden(rgba)
    return _composited(rgba, _background_bands(background, rgba.size))


def _bands(size: tuple[int, int]):
    width, height = size
    for y0 in range(0, height, BAND_ROWS):
        yield (0, y0, width, min(height, y0 + BAND_ROWS))


def _clear_hidden(rgba: Image.Image) -> Image.Image:
    """Black out the colour under fully transparent pixels: the removed background is gone from
    the file, not merely hidden (an editor that drops the alpha would otherwise show it again).
    In place, band by band."""
    for box in _bands(rgba.size):
        pixels = np.array(rgba.crop(box))
        hidden = pixels[..., 3] == 0
        if hidden.any():
            pixels[hidden, :3] = 0
            rgba.paste(Image.fromarray(pixels, "RGBA"), box[:2])
    return rgba


def _composited(rgba: Image.Image, background_band) -> Image.Image:
    """The RGBA image laid over the background (`background_band(box)`: its RGBA pixels in
    `box`), as RGB, band by band."""
    out = Image.new("RGB", rgba.size)
    for box in _bands(rgba.size):
        out.paste(Image.alpha_composite(background_band(box), rgba.crop(box)).convert("RGB"), box[:2])
    return out


def _background_bands(background: Background, size: tuple[int, int]):
    if isinstance(background, str):
        colour = parse_colour(background)
        if colour is not None:
            background = colour
    if isinstance(background, tuple):
        fill = tuple(int(c) for c in background[:3]) + (255,)
        return lambda box: Image.new("RGBA", (box[2] - box[0], box[3] - box[1]), fill)
    picture = _background_image(background, size)
    return picture.crop


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
