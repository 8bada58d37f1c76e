"""Reading images of any kind into an RGB array at their displayed orientation."""

from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Union

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from handseg_core.errors import ImageError

ImageInput = Union[str, os.PathLike, Image.Image, np.ndarray]

# Beyond this many pixels an image is refused before it is decoded (decompression bombs).
MAX_PIXELS = 150_000_000

# The file names the CLI and the web app take as images. HEIC/HEIF (iPhones' default) is read
# with pillow-heif where it is installed (`pip install "handseg[heif]"`); without it such a file
# gets an error saying so, rather than being passed over.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".avif", ".bmp", ".gif", ".tif", ".tiff", ".heic", ".heif", ".hif")
# ISO base media files whose first `ftyp` brand says HEIF: what a renamed HEIC file is known by.
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"})
_heif_registered = False


def describe(source: ImageInput) -> str:
    """How to name an input in a message."""
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, Image.Image):
        return getattr(source, "filename", "") or "<PIL image>"
    return "<array>"


def open_image(path: str | os.PathLike) -> Image.Image:
    """Open and fully decode an image file, with EXIF orientation applied.

    Raises:
        ImageError: the file is missing, empty, not an image, truncated, or too large.
    """
    return _open(path)[0]


SizeFor = Callable[[tuple[int, int]], tuple[int, int]]


def load_rgb_reduced(source: ImageInput, size_for: SizeFor,
                     max_pixels: int | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode only as many pixels as will be used: (RGB array, (height, width) displayed).

    `size_for` gets the displayed (height, width) of the full image and returns the (height,
    width) the pixels will be resized to. A JPEG file is then decoded at the smallest DCT scale
    (1/2, 1/4 or 1/8) that still covers that size: a 12-megapixel photo meant for a 512-pixel
    network input decodes at a quarter of each side, several times faster. Other inputs are
    decoded whole. Any input that still has more than `max_pixels` pixels is then reduced by the
    smallest whole factor that brings it within (each pixel the mean of a block), without a
    full-size copy of an RGB or grey image. The array's size may thus be smaller than the
    displayed size returned.

    Raises:
        ImageError: as `load_rgb`.
    """
    if isinstance(source, (str, os.PathLike)):
        image, displayed = _open(source, size_for)
        return _reduced_rgb(image, max_pixels), displayed
    if isinstance(source, Image.Image):
        with _pil_errors(source):
            return _reduced_rgb(source, max_pixels), (source.height, source.width)
    if isinstance(source, np.ndarray) and source.ndim == 3 and source.shape[2] == 3 and source.dtype == np.uint8:
        factor = reduction(source.shape[:2], max_pixels)
        if factor > 1 and min(source.shape[:2]) > 0:
            return _reduce_array(source, factor), source.shape[:2]
    rgb = load_rgb(source)
    factor = reduction(rgb.shape[:2], max_pixels)
    return (_reduce_array(rgb, factor) if factor > 1 else rgb), rgb.shape[:2]


def reduction(hw: tuple[int, int], max_pixels: int | None) -> int:
    """The smallest whole factor that brings an image of (height, width) `hw` within
    `max_pixels` pixels (1: none needed)."""
    h, w = hw
    if not max_pixels or h * w <= max_pixels:
        return 1
    factor = max(2, int((h * w / max_pixels) ** 0.5))
    while -(-h // factor) * -(-w // factor) > max_pixels:
        factor += 1
    return factor


def _reduce_array(rgb: np.ndarray, factor: int) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    return cv2.resize(rgb, (-(-w // factor), -(-h // factor)), interpolation=cv2.INTER_AREA)


def _reduced_rgb(image: Image.Image, max_pixels: int | None) -> np.ndarray:
    """`to_rgb_array` of the image reduced by `reduction`: by PIL itself (no full-size copy) for
    RGB, grey and their alpha modes."""
    factor = reduction((image.height, image.width), max_pixels)
    if factor == 1:
        return to_rgb_array(image)
    if image.mode in ("RGB", "L", "RGBA", "LA"):
        return to_rgb_array(image.reduce(factor))
    return _reduce_array(to_rgb_array(image), factor)


_SWAPS_SIDES = {5, 6, 7, 8}  # EXIF orientations that turn the stored image by 90 degrees


def _is_heif(p: Path) -> bool:
    with open(p, "rb") as f:
        head = f.read(12)
    return head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS


def _can_read_heif() -> bool:
    """Whether PIL opens HEIF files: pillow-heif's opener, registered on first need."""
    global _heif_registered
    if not _heif_registered:
        try:
            import pillow_heif
        except ImportError:
            return False
        # pillow-heif applies the file's rotation itself and leaves an EXIF orientation of 1, so
        # exif_transpose below turns nothing twice.
        pillow_heif.register_heif_opener()
        _heif_registered = True
    return True


def _open(path: str | os.PathLike, size_for: SizeFor | None = None) -> tuple[Image.Image, tuple[int, int]]:
    p = Path(path)
    if not p.exists():
        raise ImageError(str(p), "no such file")
    if p.is_dir():
        raise ImageError(str(p), "is a folder, not an image")
    if p.stat().st_size == 0:
        raise ImageError(str(p), "empty file (0 bytes)")
    try:
        if _is_heif(p) and not _can_read_heif():
            raise ImageError(str(p), 'a HEIC/HEIF photo: install pillow-heif to read it (pip install "handseg[heif]") '
                                     "or save it as JPEG")
        with warnings.catch_warnings():
            # PIL warns from 89 Mpx; our own limit (MAX_PIXELS, checked below) decides.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(p)
            try:
                w, h = im.size
                if w * h > MAX_PIXELS:
                    raise ImageError(str(p), f"too large ({w}x{h} pixels; handseg takes at most {MAX_PIXELS:,})")
                im.seek(0)  # the first frame of an animation
                orientation = im.getexif().get(ExifTags.Base.Orientation, 1)
                swapped = orientation in _SWAPS_SIDES
                displayed = (w, h) if swapped else (h, w)
                if size_for is not None and im.format == "JPEG":
                    needed_h, needed_w = size_for(displayed)
                    stored = (needed_h, needed_w) if swapped else (needed_w, needed_h)
                    im.draft(None, (max(1, stored[0]), max(1, stored[1])))  # whole sides only: never below
                im.load()
                if orientation == 1 and _file_closed(im):
                    return im, displayed  # read and its file closed: no copy (of what may be 600 MB)
                upright = ImageOps.exif_transpose(im)
            except BaseException:
                im.close()
                raise
            im.close()
            return upright, displayed
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(str(p), "not an image file handseg can read (JPEG, PNG, WebP, AVIF, GIF, BMP, TIFF, HEIC)") from None
    except Image.DecompressionBombError:
        raise ImageError(str(p), f"too large (handseg takes at most {MAX_PIXELS:,} pixels)") from None
    except OSError as exc:
        reason = str(exc) or type(exc).__name__
        if "truncated" in reason.lower():
            reason = "truncated or damaged file"
        raise ImageError(str(p), f"cannot decode ({reason})") from None
    except (ValueError, SyntaxError, EOFError, MemoryError) as exc:
        raise ImageError(str(p), f"cannot decode ({exc or type(exc).__name__})") from None


def _file_closed(im: Image.Image) -> bool:
    """Whether PIL has read and closed the image's file (one frame, fully loaded)."""
    files = [getattr(im, "fp", None), getattr(im, "_fp", None)]
    return all(f is None or getattr(f, "closed", False) for f in files)


def to_rgb_array(image: Image.Image, matte: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """Any PIL mode to uint8 RGB; transparent areas are laid over `matte`."""
    mode = image.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        a = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or a.max(initial=0) > 255 else 255.0
        grey = np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode in ("LA", "PA", "La", "RGBa"):
        image = _to_rgba(image)
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, matte)
        background.paste(image, mask=image.getchannel("A"))
        image = background
    elif image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8)


def load_rgb(source: ImageInput) -> np.ndarray:
    """Path, PIL image or array -> HxWx3 uint8 RGB (a copy; the input is never changed).

    Raises:
        ImageError: the input cannot be read or is not an image.
    """
    if isinstance(source, (str, os.PathLike)):
        return to_rgb_array(open_image(source))
    if isinstance(source, Image.Image):
        with _pil_errors(source):
            return to_rgb_array(source)
    if isinstance(source, np.ndarray):
        return _check_array(source)
    raise ImageError(describe(source), f"expected a path, a PIL image or a numpy array, got {type(source).__name__}")


def _check_array(a: np.ndarray) -> np.ndarray:
    if a.dtype != np.uint8:
        raise ImageError("<array>", f"dtype {a.dtype}; expected uint8 RGB (HxWx3): convert with (a * 255).astype(np.uint8)")
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ImageError("<array>", f"shape {a.shape}; expected HxWx3 RGB (or HxW grey, HxWx4 RGBA)")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ImageError("<array>", f"empty image of shape {a.shape}")
    if a.ndim == 2:
        return np.repeat(a[:, :, None], 3, axis=2)
    if a.shape[2] == 4:
        return to_rgb_array(Image.fromarray(a, "RGBA"))
    return np.ascontiguousarray(a).copy()


def load_rgba(source: ImageInput) -> Image.Image:
    """The image as RGBA (its own transparency kept), for cut-outs."""
    if isinstance(source, (str, os.PathLike)):
        image = open_image(source)
    elif isinstance(source, Image.Image):
        with _pil_errors(source):
            source.load()
        image = source
    elif isinstance(source, np.ndarray) and source.dtype == np.uint8 and source.ndim == 3 and source.shape[2] == 4:
        return Image.fromarray(np.ascontiguousarray(source), "RGBA")
    else:
        return Image.fromarray(load_rgb(source)).convert("RGBA")
    if image.mode == "RGBA":
        return image.copy()
    with _pil_errors(image):
        if image.mode == "RGB":
            return image.convert("RGBA")
        if image.mode in ("LA", "PA", "La", "RGBa") or (image.mode == "P" and "transparency" in image.info):
            return _to_rgba(image)
        return Image.fromarray(to_rgb_array(image)).convert("RGBA")


def _to_rgba(image: Image.Image) -> Image.Image:
    # PIL converts premultiplied La only to LA.
    return (image.convert("LA") if image.mode == "La" else image).convert("RGBA")


@contextmanager
def _pil_errors(image: Image.Image):
    """PIL's errors on a caller's image (lazily read from a damaged file, odd mode) as ImageError."""
    try:
        yield
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageError(describe(image), f"cannot read this {image.mode} image ({reason})") from None
