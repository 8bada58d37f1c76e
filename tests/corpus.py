"""A corpus of bad and odd image files, built on demand in a folder (small and fast to make).

    corpus = make_corpus(tmp_path)          # name -> (path, good)
    for name, (path, good) in corpus.items():
        if good:
            assert load_rgb(path).shape[1::-1] == expected_size(path)

Good files must be processed; bad ones must be refused with a one-line ImageError naming the file.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

# Displayed (width, height) of every good file, keyed by file name (written down, not measured).
_SIZES: dict[str, tuple[int, int]] = {
    "grey16.png": (32, 24),
    "cmyk.jpg": (32, 24),
    "palette.gif": (32, 24),
    "animated.gif": (32, 24),
    "photo.webp": (32, 24),
    "transparent.png": (32, 24),
    "rotated.jpg": (20, 40),  # stored 40x20 with EXIF orientation 6
    "one_pixel.png": (1, 1),
    "wide.png": (6000, 8),
    "grey_alpha.png": (32, 24),
    "main ouverte é.jpg": (30, 20),
    "手.png": (20, 30),
}

BOMB_SIZE = 60000


def expected_size(path: Path) -> tuple[int, int]:
    """(width, height) of a good corpus file as displayed, i.e. after EXIF rotation."""
    name = Path(path).name
    if name not in _SIZES:
        raise KeyError(f"{name} is not a good corpus image; good ones are {sorted(_SIZES)}")
    return _SIZES[name]


def _noise(width: int, height: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (height, width) if channels == 1 else (height, width, channels)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def _gradient_rgb(width: int, height: int) -> np.ndarray:
    """Smooth content, so that JPEGs are small but truncating them still breaks the scan."""
    y, x = np.mgrid[0:height, 0:width]
    r = (x * 255 // max(1, width - 1)).astype(np.uint8)
    g = (y * 255 // max(1, height - 1)).astype(np.uint8)
    b = ((x + y) % 256).astype(np.uint8)
    return np.dstack([r, g, b])


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png_bytes(width: int = BOMB_SIZE, height: int = BOMB_SIZE) -> bytes:
    """A PNG whose valid IHDR claims width x height (8-bit grey) but whose IDAT is tiny."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _encoded(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def _good(folder: Path, corpus: dict, name: str, filename: str, image: Image.Image, **params) -> None:
    path = folder / filename
    image.save(path, **params)
    corpus[name] = (path, True)


def _bad(folder: Path, corpus: dict, name: str, filename: str, data: bytes) -> None:
    path = folder / filename
    path.write_bytes(data)
    corpus[name] = (path, False)


def make_corpus(folder: Path) -> dict[str, tuple[Path, bool]]:
    """Write the corpus into `folder`; returns name -> (path, True if it is a good image)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    corpus: dict[str, tuple[Path, bool]] = {}

    # Bad files: each must raise ImageError.
    _bad(folder, corpus, "zero_bytes", "empty.jpg", b"")
    jpeg = _encoded(Image.fromarray(_noise(64, 48)), "JPEG", quality=90)
    _bad(folder, corpus, "truncated_jpeg", "truncated.jpg", jpeg[: len(jpeg) // 2])
    png = _encoded(Image.fromarray(_noise(64, 48)), "PNG")
    _bad(folder, corpus, "truncated_png", "truncated.png", png[: len(png) // 2])
    _bad(folder, corpus, "text_as_jpeg", "notes.jpg", b"These are not the pixels you are looking for.\n" * 4)
    _bad(folder, corpus, "random_as_png", "random.png", _noise(256, 1, channels=1, seed=7).tobytes())
    _bad(folder, corpus, "bomb_png", "bomb.png", bomb_png_bytes())

    # Good files: each must load at its displayed size.
    grey16 = (np.arange(32 * 24, dtype=np.uint16).reshape(24, 32) * 80).astype(np.uint16)
    _good(folder, corpus, "grey16_png", "grey16.png", Image.fromarray(grey16))
    cmyk = Image.fromarray(_gradient_rgb(32, 24)).convert("CMYK")
    _good(folder, corpus, "cmyk_jpeg", "cmyk.jpg", cmyk, quality=90)
    palette = Image.fromarray(_gradient_rgb(32, 24)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    _good(folder, corpus, "palette_gif", "palette.gif", palette)
    grey_levels = (30, 200, 120)
    frames = [Image.new("RGB", (32, 24), (c,) * 3).convert("P", palette=Image.Palette.ADAPTIVE) for c in grey_levels]
    path = folder / "animated.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    corpus["animated_gif"] = (path, True)
    _good(folder, corpus, "webp", "photo.webp", Image.fromarray(_gradient_rgb(32, 24)), quality=80)

    rgba = np.dstack([_gradient_rgb(32, 24), np.full((24, 32), 255, np.uint8)])
    rgba[:, :10, 3] = 0  # a transparent band on the left
    rgba[:, 10:14, 3] = 128
    _good(folder, corpus, "rgba_png", "transparent.png", Image.fromarray(rgba, "RGBA"))

    rotated = Image.fromarray(_gradient_rgb(40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    _good(folder, corpus, "exif_rotated_jpeg", "rotated.jpg", rotated, exif=exif.tobytes(), quality=90)

    _good(folder, corpus, "one_pixel_png", "one_pixel.png", Image.new("RGB", (1, 1), (200, 30, 40)))
    _good(folder, corpus, "wide_png", "wide.png", Image.fromarray(_noise(6000, 8, seed=3)))
    la = np.dstack([_noise(32, 24, channels=1, seed=4), np.full((24, 32), 255, np.uint8)])
    la[:12, :, 1] = 0
    _good(folder, corpus, "la_png", "grey_alpha.png", Image.fromarray(la))
    _good(folder, corpus, "spaces_accent_jpeg", "main ouverte é.jpg", Image.fromarray(_gradient_rgb(30, 20)))
    _good(folder, corpus, "cjk_png", "手.png", Image.fromarray(_noise(20, 30, seed=5)))
    return corpus
