"""Faster versions of engine stages, measured by the benchmark as proposals for the engine.

`lean_prepare` and `lean_refine` give the same results as `handseg_core.preprocess.prepare` and
`handseg_core.postprocess.refine` (tests/bench/test_alternatives.py checks it); `decode_draft`
trades exact pixels for a decode at reduced JPEG scale.
"""

from __future__ import annotations

import cv2
import numpy as np

from handseg_core.postprocess import Refinement, _kernel, _pixels
from handseg_core.preprocess import Prepared, resized_size


def decode_draft(path: str, size: tuple[int, int]) -> np.ndarray:
    """A JPEG decoded at the smallest DCT scale (1/2, 1/4, 1/8) that still covers `size`
    (width, height): the network needs no more pixels than that."""
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        im.draft("RGB", size)
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


def lean_prepare(image: np.ndarray, long_side: int, mean, std, stride: int) -> Prepared:
    """`prepare` with the padding done on uint8 and normalisation as one multiply-add per channel,
    written straight into the channel-first tensor."""
    h, w = image.shape[:2]
    rh, rw = resized_size(h, w, long_side)
    if (rh, rw) != (h, w):
        image = cv2.resize(image, (rw, rh), interpolation=cv2.INTER_AREA if rh < h else cv2.INTER_LINEAR)
    ph, pw = -rh % stride, -rw % stride
    if ph or pw:
        image = cv2.copyMakeBorder(image, 0, ph, 0, pw, cv2.BORDER_REPLICATE)
    std = np.asarray(std, np.float32)
    scale, offset = 1 / (255 * std), -np.asarray(mean, np.float32) / std
    tensor = np.empty((1, 3, rh + ph, rw + pw), np.float32)
    for c in range(3):
        np.multiply(image[:, :, c], scale[c], out=tensor[0, c], casting="unsafe")
        tensor[0, c] += offset[c]
    return Prepared(tensor, (rh, rw), (h, w))


def lean_remove_small_regions(mask: np.ndarray, min_pixels: int) -> np.ndarray:
    """`remove_small_regions` for a 0/255 mask: unchanged when no region is small, else one
    uint8 lookup instead of an int64 `np.where`."""
    if min_pixels <= 1:
        return mask
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    small = stats[1:, cv2.CC_STAT_AREA] < min_pixels
    if not small.any():
        return mask
    lookup = np.full(count, 255, np.uint8)
    lookup[0] = 0
    lookup[1:][small] = 0
    return np.take(lookup, labels)


def lean_fill_small_holes(mask: np.ndarray, max_pixels: int) -> np.ndarray:
    """`fill_small_holes` for a 0/255 mask: unchanged when there is no small inner hole, else the
    holes OR-ed in through one uint8 lookup."""
    if max_pixels <= 1:
        return mask
    background = cv2.compare(mask, 0, cv2.CMP_EQ)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(background, connectivity=4)
    h, w = mask.shape
    x, y, bw, bh, area = (stats[:, i] for i in range(5))
    inner = (x > 0) & (y > 0) & (x + bw < w) & (y + bh < h) & (area < max_pixels)
    inner[0] = False  # label 0 is the hand, not a hole
    if not inner.any():
        return mask
    return cv2.bitwise_or(mask, np.take(np.where(inner, 255, 0).astype(np.uint8), labels))


def lean_refine(probability: np.ndarray, options: Refinement = Refinement()) -> tuple[np.ndarray, np.ndarray]:
    """`refine` with a one-pass threshold and the two lean cleanup steps above."""
    shape = probability.shape
    mask = (probability >= options.threshold).view(np.uint8) * np.uint8(255)
    if r := _pixels(options.open_size, shape):
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, _kernel(r))
    if r := _pixels(options.close_size, shape):
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, _kernel(r))
    if r := _pixels(options.dilate, shape):
        mask = cv2.dilate(mask, _kernel(r))
    if r := _pixels(options.erode, shape):
        mask = cv2.erode(mask, _kernel(r))
    area = shape[0] * shape[1]
    if options.min_area > 0:
        mask = lean_remove_small_regions(mask, round(options.min_area * area))
    if options.fill_holes > 0:
        mask = lean_fill_small_holes(mask, round(options.fill_holes * area))
    alpha = mask
    if r := _pixels(options.feather, shape):
        alpha = cv2.GaussianBlur(mask, (0, 0), sigmaX=r / 2)
    return mask, alpha


def lean_mask(segmenter, path: str, input_size: int | None = None, draft: bool = False,
              refinement: Refinement = Refinement()) -> np.ndarray:
    """The hand mask of a JPEG file through the lean stages (and a draft decode when asked)."""
    from dataclasses import replace

    from PIL import Image

    from handseg_core.images import load_rgb
    from handseg_core.preprocess import restore

    spec = segmenter.spec
    size = input_size or spec.input_size
    if draft:
        with Image.open(path) as im:
            width, height = im.size  # EXIF orientation is left out of this sketch
        rgb = decode_draft(path, resized_size(height, width, size)[::-1])
    else:
        rgb = load_rgb(path)
        height, width = rgb.shape[:2]
    prepared = lean_prepare(rgb, size, spec.mean, spec.std, spec.stride)
    prepared = replace(prepared, original_hw=(height, width))
    probability = restore(segmenter._run(prepared.tensor)[0, 0], prepared)
    return lean_refine(probability, refinement)[0]
