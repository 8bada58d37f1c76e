"""Segmenting one hand where the finder found it: an upright square crop around the hand, its
landmarks drawn as two extra input channels, and the per-hand network's probability pasted back.

The same functions cut and draw the crops for training (`handseg_training.crops`) and at
inference, so the network sees at run time exactly what it learnt from.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from handseg_core.finder import BONES, PALM, pixel_indices, square_matrix

CROP_SIZE = 256  # the per-hand network's input side
CROP_MARGIN = 1.7  # the crop's side / the landmarks' extent (fingertip landmarks sit inside the tips)
MIN_PALM_LENGTHS = 2.6  # ... and at least this many palm lengths (a fist's landmarks span little)
LANDMARK_CHANNELS = 2  # the finger bones, the palm
_BONE_WIDTH = 0.2  # of the palm length
_BLUR = 0.1  # the drawing's Gaussian sigma, of the palm length
REACH = 0.6  # per-hand probabilities count within this many palm lengths of the drawn hand (`reach`)


def upright_rotation(landmarks: np.ndarray) -> float:
    """The rotation (radians) that turns the hand so that wrist -> middle knuckle points up."""
    (wx, wy), (mx, my) = landmarks[0, :2], landmarks[9, :2]
    rotation = math.pi / 2 - math.atan2(-(my - wy), mx - wx)
    return (rotation + math.pi) % (2 * math.pi) - math.pi


def crop_square(landmarks: np.ndarray) -> tuple[float, float, float, float]:
    """(cx, cy, side, rotation) of the upright square around a hand's landmarks (photo pixels)."""
    rotation = upright_rotation(landmarks)
    cos, sin = math.cos(rotation), math.sin(rotation)
    xy = landmarks[:, :2].astype(np.float64)
    # into the upright frame: rotate by -rotation
    u = xy[:, 0] * cos + xy[:, 1] * sin
    v = -xy[:, 0] * sin + xy[:, 1] * cos
    cu, cv_ = (u.min() + u.max()) / 2, (v.min() + v.max()) / 2
    palm = float(np.hypot(*(xy[9] - xy[0])))
    side = max(CROP_MARGIN * max(np.ptp(u), np.ptp(v)), MIN_PALM_LENGTHS * palm, 8.0)
    return cu * cos - cv_ * sin, cu * sin + cv_ * cos, side, rotation


def crop_matrix(square: tuple[float, float, float, float], size: int = CROP_SIZE) -> np.ndarray:
    """2x3 affine from photo coordinates to the crop's (continuous: a pixel's centre at i + 0.5)."""
    return square_matrix(*square, size)


def render_landmarks(points: np.ndarray, size: int = CROP_SIZE, bone_width: float = _BONE_WIDTH) -> np.ndarray:
    """float32 [LANDMARK_CHANNELS, size, size] in 0..1: the finger bones as lines `bone_width`
    palm lengths wide, the palm as a filled polygon, both softened, drawn from 21 landmarks
    already in the crop's coordinates."""
    xy = np.asarray(points, np.float64)[:, :2]
    palm = float(np.hypot(*(xy[9] - xy[0])))
    shift = 4  # cv2 draws at 1/16 pixel
    fixed = np.round((xy - 0.5) * (1 << shift)).astype(np.int32)  # continuous -> pixel indices
    bones = np.zeros((size, size), np.uint8)
    width = max(1, round(bone_width * palm))
    for a, b in BONES:
        cv2.line(bones, tuple(fixed[a]), tuple(fixed[b]), 255, width, cv2.LINE_AA, shift)
    palm_area = np.zeros((size, size), np.uint8)
    cv2.fillPoly(palm_area, [cv2.convexHull(fixed[list(PALM)])], 255, cv2.LINE_AA, shift)
    sigma = max(0.5, _BLUR * palm)
    out = np.stack([bones, palm_area]).astype(np.float32) * np.float32(1 / 255)
    for channel in out:
        cv2.GaussianBlur(channel, (0, 0), sigma, dst=channel)
    return out


def cut(rgb: np.ndarray, square, size: int = CROP_SIZE) -> np.ndarray:
    """The crop of an RGB photo (uint8 size x size x 3); black outside the photo."""
    return cv2.warpAffine(rgb, pixel_indices(crop_matrix(square, size)), (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def landmarks_in_crop(landmarks: np.ndarray, square, size: int = CROP_SIZE) -> np.ndarray:
    matrix = crop_matrix(square, size)
    return landmarks[:, :2] @ matrix[:, :2].T + matrix[:, 2]


def crop_input(rgb: np.ndarray, landmarks: np.ndarray, square, mean, std, size: int = CROP_SIZE) -> np.ndarray:
    """The per-hand network's input for one hand: float32 [3 + LANDMARK_CHANNELS, size, size],
    the crop normalised by mean and std, then the drawn landmarks."""
    crop = cut(rgb, square, size).astype(np.float32) * np.float32(1 / 255)
    crop = (crop - np.float32(mean)) / np.float32(std)
    return np.concatenate([crop.transpose(2, 0, 1), render_landmarks(landmarks_in_crop(landmarks, square, size), size)])


def paste(probability: np.ndarray, square, out_hw: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A crop's probability (size x size) back onto the photo: (its values inside the square's
    bounding box, that box (x0, y0, x1, y1) in pixels of an image of `out_hw`); zero outside the
    square."""
    size = probability.shape[0]
    cx, cy, side, _ = square
    h, w = out_hw
    reach = side / math.sqrt(2)
    x0, y0 = max(0, int(cx - reach)), max(0, int(cy - reach))
    x1, y1 = min(w, int(math.ceil(cx + reach)) + 1), min(h, int(math.ceil(cy + reach)) + 1)
    if x1 <= x0 or y1 <= y0:
        return np.zeros((0, 0), np.float32), (x0, y0, x0, y0)
    matrix = crop_matrix(square, size).astype(np.float64)
    matrix[:, 2] += matrix[:, :2] @ np.array([x0, y0], np.float64)  # box pixels -> crop
    inverse = pixel_indices(matrix.astype(np.float32))
    values = cv2.warpAffine(probability.astype(np.float32), inverse, (x1 - x0, y1 - y0),
                            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                            borderValue=0)
    return values, (x0, y0, x1, y1)


def reach(drawing: np.ndarray, palm: float, lengths: float = REACH) -> np.ndarray:
    """float32 size x size in 0..1: 1 within `lengths` palm lengths of the drawn hand (bones or
    palm), falling to 0 over a further half of that: no hand pixel lies far from its landmarks."""
    on = (drawing.max(0) >= 0.5).view(np.uint8) if drawing.dtype == bool else (drawing.max(0) >= 0.5).astype(np.uint8)
    distance = cv2.distanceTransform(1 - on, cv2.DIST_L2, 3)
    radius = max(1.0, lengths * palm)
    return np.clip(1.5 - distance / radius, 0.0, 1.0).astype(np.float32, copy=False)


def drawn_hand(points: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """float32 size x size in 0..1: a hand drawn from its landmarks (in the crop's coordinates),
    fingers as wide as a finger (DRAWN_FINGER palm lengths) and the palm filled: what stands in
    for the per-hand network where it sees no hand at a hand the finder is sure of."""
    return render_landmarks(points, size, DRAWN_FINGER).max(0)


DRAWN_FINGER = 0.3
