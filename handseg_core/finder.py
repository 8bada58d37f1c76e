"""Finding hands: a box, a score, the handedness and 21 landmarks for each hand in a photo.

The models are MediaPipe Hands' palm detector and hand landmark model (Apache-2.0, from the
mediapipe 0.10.21 wheel, converted to ONNX by `handseg_training.mediapipe_convert`); the steps
around them are written here from MediaPipe's published graph settings (palm_detection_cpu,
hand_landmark_cpu):

1. the photo, letterboxed into 192x192, goes through the palm detector: 2,016 anchors, each a
   box and 7 palm keypoints; scores above `min_palm_score` survive a weighted non-maximum
   suppression;
2. each palm becomes a rotated square: turned so that wrist -> middle knuckle points up, moved
   half a palm towards the fingers and enlarged 2.6x, so that it holds the whole hand;
3. that square, warped to 224x224, goes through the landmark model: 21 points, a presence score
   and the handedness; hands below `min_presence` are dropped.

`HandFinder.find` also runs test-time variants (the photo with a border, and mirrored) where
`FinderOptions.variants` asks for them, and merges the hands they find.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from handseg_core import registry
from handseg_core.errors import ModelError, OptionError

PALM_SIZE = 192
LANDMARK_SIZE = 224
# SSD anchors of the palm detector (MediaPipe's SsdAnchorsCalculator options for it)
_STRIDES = (8, 16, 16, 16)
_ROI_SCALE = 2.6  # palm box -> hand square (RectTransformationCalculator)
_ROI_SHIFT_Y = -0.5
_NMS_IOU = 0.3
LANDMARK_NAMES = (
    "wrist", "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip", "index_mcp", "index_pip", "index_dip",
    "index_tip", "middle_mcp", "middle_pip", "middle_dip", "middle_tip", "ring_mcp", "ring_pip", "ring_dip",
    "ring_tip", "pinky_mcp", "pinky_pip", "pinky_dip", "pinky_tip",
)
# The 20 bones between the landmarks, finger by finger (MediaPipe's HAND_CONNECTIONS, without the palm's
# cross links); PALM the outline of the palm.
BONES = ((0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (9, 10), (10, 11), (11, 12),
         (13, 14), (14, 15), (15, 16), (0, 17), (17, 18), (18, 19), (19, 20), (5, 9), (9, 13), (13, 17))
PALM = (0, 1, 2, 5, 9, 13, 17)


@dataclass(frozen=True)
class FoundHand:
    """One hand as the finder sees it (coordinates in the photo's pixels).

    box: (x0, y0, x1, y1) around the landmarks.
    score: the landmark model's presence score, 0..1.
    handedness: "left" or "right": which hand it is (of the person it belongs to).
    landmarks: float32 [21, 3]: x, y in pixels, z relative depth in pixels (LANDMARK_NAMES order).
    """

    box: tuple[float, float, float, float]
    score: float
    handedness: str
    handedness_score: float
    landmarks: np.ndarray = field(repr=False, compare=False)

    @property
    def palm_length(self) -> float:
        """Wrist to middle knuckle, in pixels: the hand's scale."""
        return float(np.hypot(*(self.landmarks[9, :2] - self.landmarks[0, :2])))


@dataclass(frozen=True)
class FinderOptions:
    """min_palm_score: the palm detector's threshold (MediaPipe's min_detection_confidence).
    min_presence: the landmark model's presence threshold.
    min_score: a found hand's score after merging the variants (its presence averaged over all of
        them) must reach this: a hand seen in one of the six variants of the fallback needs a
        presence of at least 0.9 (hand-free face crops: 8 of 16 false finds dropped, no real hand).
    max_hands: at most this many hands, the most certain first.
    variants: test-time variants, each (border, mirrored): the photo with a border of this
        fraction of its long side on every side, mirrored or not. (0.0, False) is the photo itself.
    fallback: more variants, run only where `variants` find no hand.
    merge_palms: merge the variants' palms first and run the landmark model once per hand (its
        time then does not grow with the variants, but fewer hands are found: 28 of 33 against 30);
        False: landmarks in every variant, merged per hand afterwards.
    """

    min_palm_score: float = 0.5
    min_presence: float = 0.5
    min_score: float = 0.15
    max_hands: int = 8
    # the photo, with a border of a quarter of its long side, and that mirrored: hands cut by the
    # frame (a fist at the chin of a face crop) are found in the bordered views (faces_utk_hands:
    # 12 of 33 found in the photo alone, 30 with the three; docs/models.md)
    variants: tuple[tuple[float, bool], ...] = ((0.0, False), (0.25, False), (0.25, True))
    # where those find no hand at all, these are tried too (a photo with hands pays nothing):
    # faces_utk_hands 33 of 33 with both, against 30
    fallback: tuple[tuple[float, bool], ...] = ((0.5, False), (0.0, True), (0.5, True))
    merge_palms: bool = False

    def __post_init__(self):
        for name in ("min_palm_score", "min_presence", "min_score"):
            value = getattr(self, name)
            if not isinstance(value, (int, float, np.number)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
                raise OptionError(f"{name} must be a number within 0..1, got {value!r}")
        if not isinstance(self.max_hands, (int, np.integer)) or isinstance(self.max_hands, bool) or self.max_hands < 1:
            raise OptionError(f"max_hands must be a whole number of at least 1, got {self.max_hands!r}")
        if not self.variants:
            raise OptionError("variants must name at least one variant, e.g. ((0.0, False),)")


def _anchors() -> np.ndarray:
    """[2016, 2] anchor centres (x, y), normalised; all anchors are 1x1 (fixed_anchor_size)."""
    centres = []
    layer = 0
    while layer < len(_STRIDES):
        stride = _STRIDES[layer]
        repeats = 0
        while layer < len(_STRIDES) and _STRIDES[layer] == stride:  # layers of one stride share a grid
            repeats += 2  # two anchors per layer (aspect ratio 1 and the interpolated scale)
            layer += 1
        side = math.ceil(PALM_SIZE / stride)
        ys, xs = np.meshgrid((np.arange(side) + 0.5) / side, (np.arange(side) + 0.5) / side, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], 1)
        centres.append(np.repeat(grid, repeats, axis=0))
    return np.concatenate(centres).astype(np.float32)


_ANCHORS = _anchors()


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / np.maximum(area(box) + area(boxes) - inter, 1e-9)


def decode_palms(raw_boxes: np.ndarray, raw_scores: np.ndarray, min_score: float) -> list[tuple[float, np.ndarray]]:
    """The palm detector's outputs -> [(score, [9, 2] normalised points)]: the box's corners
    (x0, y0), (x1, y1), then the 7 keypoints, after a weighted non-maximum suppression."""
    scores = 1 / (1 + np.exp(-np.clip(raw_scores.reshape(-1).astype(np.float64), -100, 100)))
    keep = np.flatnonzero(scores >= min_score)
    if keep.size == 0:
        return []
    raw = raw_boxes.reshape(-1, 18)[keep] / PALM_SIZE
    anchor = _ANCHORS[keep]
    centre = raw[:, :2] + anchor
    half = raw[:, 2:4] / 2
    boxes = np.concatenate([centre - half, centre + half], 1)
    keypoints = raw[:, 4:].reshape(-1, 7, 2) + anchor[:, None]
    order = np.argsort(-scores[keep], kind="stable")
    boxes, keypoints, found = boxes[order], keypoints[order], scores[keep][order]
    palms = []
    remaining = np.arange(len(found))
    while remaining.size:
        first = remaining[0]
        overlap = _iou(boxes[first], boxes[remaining]) > _NMS_IOU
        members = remaining[overlap]
        weights = found[members][:, None]
        box = (boxes[members] * weights).sum(0) / weights.sum()
        points = (keypoints[members] * weights[:, :, None]).sum(0) / weights.sum()
        palms.append((float(found[first]), np.concatenate([box.reshape(2, 2), points])))
        remaining = remaining[~overlap]
    return palms


def _letterbox(rgb: np.ndarray, side: int) -> tuple[np.ndarray, float, float, float]:
    """`rgb` scaled into a side x side square, centred on black: (float32 CHW 0..1, scale, dx, dy)
    where a photo pixel p lands on p * scale + (dx, dy)."""
    h, w = rgb.shape[:2]
    scale = side / max(h, w)
    dx, dy = (side - w * scale) / 2, (side - h * scale) / 2
    matrix = pixel_indices(np.float32([[scale, 0, dx], [0, scale, dy]]))
    square = cv2.warpAffine(rgb, matrix, (side, side), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return square.astype(np.float32).transpose(2, 0, 1) * np.float32(1 / 255), scale, dx, dy


def pixel_indices(matrix: np.ndarray) -> np.ndarray:
    """An affine map between continuous coordinates (a pixel's centre at i + 0.5, as the models'
    outputs have them) as cv2.warpAffine wants it: between pixel indices."""
    out = matrix.copy()
    out[:, 2] += matrix[:, :2].sum(1) * 0.5 - 0.5
    return out


def hand_square(points: np.ndarray) -> tuple[float, float, float, float]:
    """A palm's points in photo pixels -> the square the landmark model sees: (cx, cy, side,
    rotation in radians)."""
    (x0, y0), (x1, y1) = points[0], points[1]
    wrist, middle = points[2], points[2 + 2]
    rotation = math.pi / 2 - math.atan2(-(middle[1] - wrist[1]), middle[0] - wrist[0])
    rotation = (rotation + math.pi) % (2 * math.pi) - math.pi
    w, h = x1 - x0, y1 - y0
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    cx += -h * _ROI_SHIFT_Y * math.sin(rotation)
    cy += h * _ROI_SHIFT_Y * math.cos(rotation)
    side = max(w, h) * _ROI_SCALE
    return cx, cy, side, rotation


def square_matrix(cx: float, cy: float, side: float, rotation: float, out: int) -> np.ndarray:
    """2x3 affine from photo pixels to the out x out view of a rotated square."""
    cos, sin = math.cos(rotation), math.sin(rotation)
    scale = out / side
    # photo -> square: translate the centre to 0, rotate by -rotation, scale, move to out/2
    return np.float32([
        [cos * scale, sin * scale, out / 2 - scale * (cos * cx + sin * cy)],
        [-sin * scale, cos * scale, out / 2 - scale * (-sin * cx + cos * cy)],
    ])


class HandFinder:
    """The palm detector and landmark model, loaded once (ONNX Runtime; thread-safe runs)."""

    def __init__(self, palm: str = registry.PALM_MODEL, landmarks: str = registry.LANDMARK_MODEL, *,
                 threads: int | None = None, providers: list[str] | None = None):
        import onnxruntime as ort

        from handseg_core.runtime import session_options

        options = session_options(threads)
        self._sessions = {}
        for role, name in (("palm", palm), ("landmarks", landmarks)):
            spec = registry.find_finder(name)
            data = registry.read_verified(spec)
            try:
                self._sessions[role] = ort.InferenceSession(data, sess_options=options,
                                                            providers=providers or ["CPUExecutionProvider"])
            except Exception as exc:  # onnxruntime raises its own types
                reason = (str(exc).splitlines() or [type(exc).__name__])[0]
                raise ModelError(f"{spec.path}: not a loadable ONNX model ({reason})") from None
        self.names = (palm, landmarks)

    def __repr__(self) -> str:
        return f"HandFinder{self.names!r}"

    def palms(self, rgb: np.ndarray, min_score: float = 0.5) -> list[tuple[float, np.ndarray]]:
        """[(score, [9, 2] points in photo pixels)]: each palm's box corners, then its 7 keypoints."""
        tensor, scale, dx, dy = _letterbox(rgb, PALM_SIZE)
        raw_boxes, raw_scores = self._sessions["palm"].run(None, {"image": tensor[None]})
        return [(score, (points * PALM_SIZE - (dx, dy)) / scale)
                for score, points in decode_palms(raw_boxes[0], raw_scores[0], min_score)]

    def landmarks(self, rgb: np.ndarray, squares: list[tuple[float, float, float, float]]):
        """For each square (cx, cy, side, rotation): ([21, 3] landmarks in photo pixels, presence,
        the probability that it is a right hand), from one batched run.

        The model's handedness output is MediaPipe's "Left" score, which it names for a mirrored
        (selfie) view: on an ordinary photo it is the probability of a right hand (52 of 53
        single-hand 11k Hands photos, whose file list says which hand each shows)."""
        if not squares:
            return []
        views, inverses = [], []
        for square in squares:
            matrix = square_matrix(*square, LANDMARK_SIZE)
            view = cv2.warpAffine(rgb, pixel_indices(matrix), (LANDMARK_SIZE, LANDMARK_SIZE), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
            views.append(view.astype(np.float32).transpose(2, 0, 1) * np.float32(1 / 255))
            inverses.append(cv2.invertAffineTransform(matrix))
        points, presence, handedness, _ = self._sessions["landmarks"].run(None, {"image": np.stack(views)})
        out = []
        for k, inverse in enumerate(inverses):
            p = points[k].reshape(21, 3).astype(np.float32)
            xy = p[:, :2] @ inverse[:, :2].T + inverse[:, 2]
            z = p[:, 2:] * float(np.hypot(*inverse[:, 0]))
            out.append((np.concatenate([xy, z], 1), float(presence[k, 0]), float(handedness[k, 0])))
        return out

    def find(self, rgb: np.ndarray, options: FinderOptions | None = None) -> list[FoundHand]:
        """The hands in an HxWx3 uint8 RGB photo, the most certain first (none: an empty list)."""
        options = options or FinderOptions()
        found = self._find(rgb, options)
        if not found and options.fallback:
            found = self._find(rgb, replace(options, variants=options.variants + options.fallback, fallback=()))
        return [hand for hand in found if hand.score >= options.min_score]

    def _find(self, rgb: np.ndarray, options: FinderOptions) -> list[FoundHand]:
        h, w = rgb.shape[:2]
        if options.merge_palms:
            palms = []
            for border, mirrored in options.variants:
                view, pad = _variant(rgb, border, mirrored)
                for score, points in self.palms(view, options.min_palm_score):
                    points = points - pad
                    if mirrored:
                        points[:, 0] = w - points[:, 0]
                        points[:2, 0] = points[1::-1, 0]  # the box's corners swap sides
                    palms.append((score, points))
            squares = [hand_square(points) for _, points in merge_palms(palms)]
            candidates = [_hand(landmarks, presence, p_right, (w, h))
                          for landmarks, presence, p_right in self.landmarks(rgb, squares)
                          if presence >= options.min_presence]
            return merge_hands(candidates, 1, (w, h))[: options.max_hands]
        candidates: list[FoundHand] = []
        for border, mirrored in options.variants:
            view, pad = _variant(rgb, border, mirrored)
            squares = [hand_square(points) for _, points in self.palms(view, options.min_palm_score)]
            for landmarks, presence, p_right in self.landmarks(view, squares):
                if presence < options.min_presence:
                    continue
                landmarks[:, :2] -= pad
                if mirrored:
                    landmarks[:, 0] = w - landmarks[:, 0]
                    p_right = 1.0 - p_right
                candidates.append(_hand(landmarks, presence, p_right, (w, h)))
        return merge_hands(candidates, len(options.variants), (w, h))[: options.max_hands]


def _variant(rgb: np.ndarray, border: float, mirrored: bool) -> tuple[np.ndarray, int]:
    """The photo mirrored and with a black border of `border` times its long side: (view, border px)."""
    view = rgb[:, ::-1] if mirrored else rgb
    pad = round(border * max(rgb.shape[:2]))
    if pad:
        view = cv2.copyMakeBorder(np.ascontiguousarray(view), pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    return np.ascontiguousarray(view), pad


def merge_palms(palms: list[tuple[float, np.ndarray]]) -> list[tuple[float, np.ndarray]]:
    """Palms found in several variants (photo pixels) as one list: a weighted non-maximum
    suppression over all of them, as within one pass."""
    if not palms:
        return []
    scores = np.array([score for score, _ in palms])
    points = np.stack([p for _, p in palms]).astype(np.float64)
    order = np.argsort(-scores, kind="stable")
    scores, points = scores[order], points[order]
    boxes = points[:, :2].reshape(-1, 4)
    merged, remaining = [], np.arange(len(scores))
    while remaining.size:
        overlap = _iou(boxes[remaining[0]], boxes[remaining]) > _NMS_IOU
        members = remaining[overlap]
        weights = scores[members][:, None, None]
        merged.append((float(scores[members[0]]), (points[members] * weights).sum(0) / weights.sum()))
        remaining = remaining[~overlap]
    return merged


def _hand(landmarks: np.ndarray, presence: float, p_right: float, size: tuple[int, int]) -> FoundHand:
    w, h = size
    x0, y0 = landmarks[:, :2].min(0)
    x1, y1 = landmarks[:, :2].max(0)
    box = (float(max(0, x0)), float(max(0, y0)), float(min(w, x1)), float(min(h, y1)))
    return FoundHand(box=box, score=presence, handedness="right" if p_right >= 0.5 else "left",
                     handedness_score=max(p_right, 1 - p_right), landmarks=landmarks)


def _p_right(hand: FoundHand) -> float:
    return hand.handedness_score if hand.handedness == "right" else 1 - hand.handedness_score


def merge_hands(hands: list[FoundHand], variants: int, size: tuple[int, int]) -> list[FoundHand]:
    """One hand per group of overlapping finds (from the variants or from two palms on one hand):
    the landmarks' score-weighted mean, the score averaged over all `variants` (a hand seen in one
    of four variants scores a quarter), the most certain first."""
    order = sorted(hands, key=lambda hand: -hand.score)
    groups: list[list[FoundHand]] = []
    for hand in order:
        for group in groups:
            if _box_iou(group[0].box, hand.box) > 0.5:
                group.append(hand)
                break
        else:
            groups.append([hand])
    merged = []
    for group in groups:
        if len(group) == 1 and variants == 1:
            merged.append(group[0])
            continue
        weights = np.array([h.score for h in group], np.float32)
        landmarks = (np.stack([h.landmarks for h in group]) * weights[:, None, None]).sum(0) / weights.sum()
        p_right = sum(h.score * _p_right(h) for h in group) / weights.sum()
        hand = _hand(landmarks.astype(np.float32), float(weights.sum()) / max(variants, len(group)), p_right, size)
        merged.append(hand)
    return sorted(merged, key=lambda hand: -hand.score)


def _box_iou(a, b) -> float:
    return float(_iou(np.asarray(a, np.float64), np.asarray([b], np.float64))[0])


_finders: dict[tuple, HandFinder] = {}
_lock = threading.Lock()


def load_finder(*, threads: int | None = None) -> HandFinder:
    """The packaged hand finder, loaded once and shared (like `load_model`)."""
    key = (threads,)
    with _lock:
        if key not in _finders:
            _finders[key] = HandFinder(threads=threads)
        return _finders[key]
