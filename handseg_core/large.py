"""Results of very large photos: worked out at a reduced size, made full size on use, in bands.

A 150-megapixel photo's probability alone is 600 MB of float32, and each step of the pipeline
(edge snapping, combining the hands, cleanup) makes several arrays of that size. A photo of more
than WORK_PIXELS pixels is therefore segmented at a reduced size (a JPEG file decoded at a DCT
scale, anything else reduced by a whole factor: `images.load_rgb_reduced`), and its result's
full-size arrays are made from that one band of rows at a time, when first read: the mask (and
a feathered alpha) as uint8, the float probability and each hand's mask only when asked for.
The mask's edge is the reduced mask's, interpolated; the cleanup steps work at the reduced size.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

from handseg_core.hands import Hand
from handseg_core.session import SegmentationResult

BAND_ROWS = 512  # rows of the full-size image made at once (12,247 x 512 float32: 25 MB)


def band_resized(source: np.ndarray, out_hw: tuple[int, int], y0: int, y1: int, interpolation: int) -> np.ndarray:
    """Rows y0..y1 of `source` resized to `out_hw`, as `cv2.resize` would place them (pixel
    centres aligned), without making the other rows."""
    sh, sw = source.shape[:2]
    oh, ow = out_hw
    sx, sy = sw / ow, sh / oh
    matrix = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, (y0 + 0.5) * sy - 0.5]])
    return cv2.warpAffine(source, matrix, (ow, y1 - y0), flags=interpolation | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def bands(height: int):
    for y0 in range(0, height, BAND_ROWS):
        yield y0, min(height, y0 + BAND_ROWS)


def resized(source: np.ndarray, out_hw: tuple[int, int], interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """`source` resized to `out_hw`, band by band: no full-size temporary beyond the result."""
    out = np.empty(tuple(out_hw) + source.shape[2:], source.dtype)
    for y0, y1 in bands(out_hw[0]):
        out[y0:y1] = band_resized(source, out_hw, y0, y1, interpolation)
    return out


def mask_resized(mask: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """A 0/255 mask at `out_hw`: interpolated, then cut at half (its edge a smooth line through
    the reduced mask's)."""
    out = np.empty(tuple(out_hw), np.uint8)
    for y0, y1 in bands(out_hw[0]):
        cv2.threshold(band_resized(mask, out_hw, y0, y1, cv2.INTER_LINEAR), 127, 255, cv2.THRESH_BINARY,
                      dst=out[y0:y1])
    return out


class UpsampledResult(SegmentationResult):
    """A `SegmentationResult` of a photo larger than WORK_PIXELS, worked out at a reduced size
    (`work`): the same attributes at the photo's size, each made on first use and kept."""

    def __init__(self, work: SegmentationResult, displayed_hw: tuple[int, int]):
        object.__setattr__(self, "model", work.model)
        object.__setattr__(self, "_work", work)
        object.__setattr__(self, "_hw", tuple(int(v) for v in displayed_hw))
        object.__setattr__(self, "_made", {})
        object.__setattr__(self, "_lock", threading.RLock())

    def __repr__(self) -> str:
        return f"UpsampledResult(model={self.model!r}, size={self.size}, hands={len(self._work.hands)})"

    def _once(self, name: str, make):
        with self._lock:
            if name not in self._made:
                self._made[name] = make()
            return self._made[name]

    @property
    def size(self) -> tuple[int, int]:
        return self._hw[1], self._hw[0]

    @property
    def mask(self) -> np.ndarray:
        return self._once("mask", lambda: mask_resized(self._work.mask, self._hw))

    @property
    def alpha(self) -> np.ndarray:
        if self._work.alpha is self._work.mask:
            return self.mask
        return self._once("alpha", lambda: resized(self._work.alpha, self._hw))

    @property
    def probability(self) -> np.ndarray:
        return self._once("probability", lambda: resized(self._work.probability, self._hw))

    @property
    def hands(self) -> tuple[Hand, ...]:
        return self._once("hands", self._hands)

    def keep(self, choice) -> SegmentationResult:
        kept = self._work.keep(choice)
        return self if kept is self._work else UpsampledResult(kept, self._hw)

    def _owners(self) -> np.ndarray:
        """uint16 map at the reduced size: 1 + the index of the hand each mask pixel belongs to,
        spread one pixel outwards, so that every pixel of the interpolated mask has its hand."""
        work = self._work
        owner = np.zeros(work.mask.shape, np.uint16)
        for k, hand in enumerate(work.hands):
            owner[hand.mask > 0] = k + 1
        spread = cv2.dilate(owner, np.ones((3, 3), np.uint8))
        return np.where(owner > 0, owner, spread)

    def _hands(self) -> tuple[Hand, ...]:
        work = self._work
        if not work.hands:
            return ()
        owners = self._owners()
        mask = self.mask
        count = len(work.hands)
        areas = np.zeros(count, np.int64)
        boxes = [[None, None, None, None] for _ in range(count)]  # x0, y0, x1, y1
        for y0, y1 in bands(self._hw[0]):
            labels = band_resized(owners, self._hw, y0, y1, cv2.INTER_NEAREST)
            labels[mask[y0:y1] == 0] = 0
            found = np.bincount(labels.ravel(), minlength=count + 1)[1:]
            areas += found
            for k in np.flatnonzero(found):
                rows, cols = np.nonzero(labels == k + 1)
                box = boxes[k]
                box[0] = cols.min() if box[0] is None else min(box[0], cols.min())
                box[2] = cols.max() + 1 if box[2] is None else max(box[2], cols.max() + 1)
                box[1] = y0 + rows.min() if box[1] is None else box[1]
                box[3] = y0 + rows.max() + 1
        fx, fy = self._hw[1] / work.mask.shape[1], self._hw[0] / work.mask.shape[0]
        hands = []
        for k, hand in enumerate(work.hands):
            if areas[k] == 0:
                continue
            landmarks = None
            if hand.landmarks is not None:
                landmarks = hand.landmarks.copy()
                landmarks[:, 0] *= fx
                landmarks[:, 1] *= fy
                landmarks[:, 2] *= (fx + fy) / 2
            hands.append(UpsampledHand(self, k + 1, tuple(int(v) for v in boxes[k]), int(areas[k]), hand.score,
                                       hand.handedness, landmarks))
        return tuple(sorted(hands, key=lambda h: -h.area))

    def _hand_mask(self, label: int) -> np.ndarray:
        owners = self._once("owners", self._owners)
        mask = self.mask
        out = np.zeros(self._hw, np.uint8)
        for y0, y1 in bands(self._hw[0]):
            labels = band_resized(owners, self._hw, y0, y1, cv2.INTER_NEAREST)
            out[y0:y1][(labels == label) & (mask[y0:y1] > 0)] = 255
        return out


class UpsampledHand(Hand):
    """A `Hand` of an `UpsampledResult`: its box and area counted at the photo's size, its mask
    made on first use."""

    def __init__(self, result: UpsampledResult, label: int, box, area: int, score: float, handedness, landmarks):
        object.__setattr__(self, "_result", result)
        object.__setattr__(self, "_label", label)
        object.__setattr__(self, "_area", area)
        object.__setattr__(self, "box", box)
        object.__setattr__(self, "score", score)
        object.__setattr__(self, "handedness", handedness)
        object.__setattr__(self, "landmarks", landmarks)

    @property
    def mask(self) -> np.ndarray:
        return self._result._once(f"hand{self._label}", lambda: self._result._hand_mask(self._label))

    @property
    def area(self) -> int:
        return self._area
