"""handseg: cut hands out of photos.

    >>> import handseg_core
    >>> result = handseg_core.segment("photo.jpg")          # default model, loaded once
    >>> result.mask.shape, result.mask.dtype                 # (H, W), uint8 0/255
    >>> handseg_core.cutout("photo.jpg", result.mask).save("hands.png")

For many images, keep a session: `session = handseg_core.load_model()`, then
`session.segment(image)`. Options are described in `handseg_core.options` (`Refinement`,
`Inference`); folders of files are run by `handseg_core.batch`, as `handseg mask` runs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from handseg_core._version import __version__
from handseg_core.errors import ChecksumError, HandsegError, ImageError, ModelError
from handseg_core.options import Inference, Refinement

if TYPE_CHECKING:
    from handseg_core.compose import Background
    from handseg_core.images import ImageInput
    from handseg_core.postprocess import refine
    from handseg_core.session import HandSegmenter, SegmentationResult, load_model

# The engine (OpenCV, ONNX Runtime) is imported on first use, so that reading the options'
# descriptions (the CLI's --help) costs nothing.
_LAZY = {"HandSegmenter": "session", "SegmentationResult": "session", "load_model": "session", "refine": "postprocess"}

__all__ = [
    "ChecksumError",
    "HandSegmenter",
    "HandsegError",
    "ImageError",
    "Inference",
    "ModelError",
    "Refinement",
    "SegmentationResult",
    "__version__",
    "cutout",
    "load_model",
    "refine",
    "segment",
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f"handseg_core.{_LAZY[name]}"), name)
    else:
        try:
            value = importlib.import_module(f"handseg_core.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"handseg_core.{name}":
                raise
            raise AttributeError(f"module 'handseg_core' has no attribute {name!r}") from None
    globals()[name] = value
    return value


def segment(image: ImageInput, refinement: Refinement | None = None, **options) -> SegmentationResult:
    """Find the hands in `image` with the default model; see `HandSegmenter.segment`."""
    from handseg_core.session import load_model

    return load_model().segment(image, refinement, **options)


def cutout(image: ImageInput, mask=None, background: Background = None):
    """The hands of `image` as a PIL image.

    Args:
        image: a path, a PIL image or an HxWx3 uint8 RGB array.
        mask: HxW hand mask (uint8 0..255, bool or float 0..1), e.g. `result.mask` or the soft
            `result.alpha`; found with the default model when omitted.
        background: None or "transparent" for an RGBA image; a colour ("white", "#RRGGBB", an
            (r, g, b) tuple) or an image (path, PIL image, array) for an RGB composite.

    Raises:
        ImageError: the image or background image cannot be read.
        HandsegError: the mask does not fit the image, or the background is not understood.
    """
    from handseg_core.compose import cutout_image

    if mask is None:
        mask = segment(image).alpha
    return cutout_image(image, mask, background)
