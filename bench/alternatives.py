"""A faster decode, measured by the benchmark as a proposal for the engine.

`decode_draft` trades exact pixels for a decode at reduced JPEG scale; `draft_mask` runs the
engine's own stages on it. (The lean preprocess and refine once proposed here are now the
engine's `prepare` and `refine`.)
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from handseg_core.postprocess import Refinement, refine
from handseg_core.preprocess import prepare, resized_size, restore


def decode_draft(path: str, size: tuple[int, int]) -> np.ndarray:
    """A JPEG decoded at the smallest DCT scale (1/2, 1/4, 1/8) that still covers `size`
    (width, height): the network needs no more pixels than that."""
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        im.draft("RGB", size)
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


def draft_mask(segmenter, path: str, input_size: int | None = None, refinement: Refinement = Refinement()) -> np.ndarray:
    """The hand mask of a JPEG file, decoded as a draft, through the engine's stages."""
    from PIL import Image

    spec = segmenter.spec
    size = input_size or spec.input_size
    with Image.open(path) as im:
        width, height = im.size  # EXIF orientation is left out of this sketch
    rgb = decode_draft(path, resized_size(height, width, size)[::-1])
    prepared = prepare(rgb, size, spec.mean, spec.std, spec.stride)
    prepared = replace(prepared, original_hw=(height, width))
    probability = restore(segmenter._run(prepared.tensor)[0, 0], prepared)
    return refine(probability, refinement)[0]
