"""handseg: cut hands out of photos.

    >>> import handseg_core
    >>> result = handseg_core.segment("photo.jpg")          # default model, loaded once
    >>> result.mask.shape, result.mask.dtype                 # (H, W), uint8 0/255
    >>> handseg_core.cutout("photo.jpg", result.mask).save("hands.png")

For many images, keep a session: `session = handseg_core.load_model()`, then
`session.segment(image)`.
"""

from __future__ import annotations

from handseg_core._version import __version__
from handseg_core.compose import Background
from handseg_core.errors import ChecksumError, HandsegError, ImageError, ModelError
from handseg_core.images import ImageInput
from handseg_core.postprocess import Refinement, refine
from handseg_core.session import HandSegmenter, SegmentationResult, load_model

__all__ = [
    "ChecksumError",
    "HandSegmenter",
    "HandsegError",
    "ImageError",
    "ModelError",
    "Refinement",
    "SegmentationResult",
    "__version__",
    "cutout",
    "load_model",
    "refine",
    "segment",
]


def segment(image: ImageInput, refinement: Refinement | None = None, **options) -> SegmentationResult:
    """Find the hands in `image` with the default model; see `HandSegmenter.segment`."""
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
