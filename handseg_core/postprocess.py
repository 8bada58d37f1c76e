"""From a hand probability map to a clean mask: threshold, morphology, cleanup, feathering.

Sizes are fractions of the image's short side (areas: of its pixel count), so one setting means
the same on a thumbnail and on a 24-megapixel photo.
"""

from __future__ import annotations

import cv2
import numpy as np

from handseg_core.options import NO_REFINEMENT, Refinement  # noqa: F401  (their home is options)


SNAP_RADIUS = 4  # pixels of the photo as decoded; measured against 2 and 8, and against one
# network output cell (4 network pixels) as it lands on the photo: best or level on every dev set
SNAP_SUBSAMPLE = 2  # the filter's coefficients are fitted at half size: the same IoU (within
# 0.0013 on every dev set), in a third of the time
SNAP_EPS = 1e-3  # the guided filter's regulariser, for a grey guide in 0..1
SNAP_FLOOR = 0.02  # probabilities below this, all around, are left as they are


def snap_to_edges(probability: np.ndarray, rgb: np.ndarray, radius: int = SNAP_RADIUS,
                  subsample: int = SNAP_SUBSAMPLE) -> np.ndarray:
    """The probability with its edges moved onto the photo's: a guided filter (He, Sun and Tang,
    2013) with the photo in grey as the guide, a window of 2 * radius + 1 pixels, eps SNAP_EPS,
    its coefficients fitted at 1/`subsample` size and applied at full size (He and Sun's fast
    guided filter, 2015).

    The network's output is smooth at the scale of its stride; the filter fits it, window by
    window, as a linear function of the photo's brightness, so that its edge follows the photo's.
    It is computed in the box around the pixels at SNAP_FLOOR or above, widened by two windows;
    elsewhere the probability is returned as it is. A new array; the input is not changed.
    """
    if probability.shape != rgb.shape[:2]:
        raise ValueError(f"probability {probability.shape} and image {rgb.shape[:2]} differ in size")
    x, y, w, h = cv2.boundingRect((probability >= SNAP_FLOOR).view(np.uint8))
    out = probability.copy()
    if w == 0:
        return out
    margin = 2 * (2 * radius + 1)
    height, width = probability.shape
    y0, y1, x0, x1 = max(0, y - margin), min(height, y + h + margin), max(0, x - margin), min(width, x + w + margin)
    guide = cv2.cvtColor(rgb[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY).astype(np.float32) * np.float32(1 / 255)
    box_hw = guide.shape
    small = (max(1, box_hw[1] // subsample), max(1, box_hw[0] // subsample))
    guide_small = cv2.resize(guide, small, interpolation=cv2.INTER_AREA)
    p = cv2.resize(probability[y0:y1, x0:x1], small, interpolation=cv2.INTER_AREA)
    r = max(1, radius // subsample)

    def mean(values: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(values, -1, (2 * r + 1, 2 * r + 1), borderType=cv2.BORDER_REFLECT)

    def full(values: np.ndarray) -> np.ndarray:
        return cv2.resize(values, box_hw[::-1], interpolation=cv2.INTER_LINEAR)

    mean_i, mean_p = mean(guide_small), mean(p)
    a = (mean(guide_small * p) - mean_i * mean_p) / (mean(guide_small * guide_small) - mean_i * mean_i + np.float32(SNAP_EPS))
    b = mean_p - a * mean_i
    out[y0:y1, x0:x1] = np.clip(full(mean(a)) * guide + full(mean(b)), 0.0, 1.0)
    return out


def _pixels(fraction: float, shape: tuple[int, int]) -> int:
    return max(1, round(fraction * min(shape))) if fraction > 0 else 0


def _kernel(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _components(binary: np.ndarray, connectivity: int) -> tuple[int, np.ndarray, np.ndarray]:
    """cv2's labelling with 16-bit labels (about twice as fast on large masks), or 32-bit ones
    when there are too many regions for 16 bits."""
    try:
        count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=connectivity, ltype=cv2.CV_16U)
    except cv2.error:
        count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=connectivity, ltype=cv2.CV_32S)
    return count, labels, stats


def remove_small_regions(mask: np.ndarray, min_pixels: int) -> np.ndarray:
    """Drop 8-connected foreground regions of a 0/255 mask with fewer than `min_pixels` pixels.

    Returns the input itself when no region is that small, else a new mask.
    """
    if min_pixels <= 1:
        return mask
    x0, y0, w, h = cv2.boundingRect(mask)  # every region lies inside the hands' bounding box
    if w == 0:
        return mask
    count, labels, stats = _components(mask[y0 : y0 + h, x0 : x0 + w], 8)
    small = stats[1:, cv2.CC_STAT_AREA] < min_pixels
    if not small.any():
        return mask
    lookup = np.full(count, 255, np.uint8)  # one uint8 lookup per pixel, no int64 temporaries
    lookup[0] = 0
    lookup[1:][small] = 0
    out = mask.copy()
    out[y0 : y0 + h, x0 : x0 + w] = np.take(lookup, labels)
    return out


def fill_small_holes(mask: np.ndarray, max_pixels: int) -> np.ndarray:
    """Fill the 4-connected background regions of a 0/255 mask that touch no border and have
    fewer than `max_pixels` pixels.

    Returns the input itself when there is no such hole, else a new mask.
    """
    if max_pixels <= 1:
        return mask
    # Holes lie inside the hands' bounding box, and a background pixel on the box's edge reaches
    # the image border: it is the border, or next to the background all around the box, which
    # leads straight out to the border. So the box alone tells the holes.
    x0, y0, w, h = cv2.boundingRect(mask)
    if w == 0:
        return mask
    x1, y1 = x0 + w, y0 + h
    background = cv2.compare(mask[y0:y1, x0:x1], 0, cv2.CMP_EQ)
    count, labels, stats = _components(background, 4)
    bh, bw = background.shape
    left, top, width, height, area = (stats[:, i] for i in range(5))
    inner = (left > 0) & (top > 0) & (left + width < bw) & (top + height < bh) & (area < max_pixels)
    inner[0] = False  # label 0 is the hand, not a hole
    if not inner.any():
        return mask
    out = mask.copy()
    out[y0:y1, x0:x1] |= np.take(np.where(inner, 255, 0).astype(np.uint8), labels)
    return out


def refine(probability: np.ndarray, options: Refinement = Refinement()) -> tuple[np.ndarray, np.ndarray]:
    """Probability (float HxW, 0..1) -> (mask uint8 0/255, alpha uint8 0..255).

    The alpha equals the mask unless `feather` is set, when its edge ramps over that width.
    """
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
        mask = remove_small_regions(mask, round(options.min_area * area))
    if options.fill_holes > 0:
        mask = fill_small_holes(mask, round(options.fill_holes * area))
    alpha = mask
    if r := _pixels(options.feather, shape):
        alpha = cv2.GaussianBlur(mask, (0, 0), sigmaX=r / 2)
    return mask, alpha
