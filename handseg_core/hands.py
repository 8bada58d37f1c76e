"""Hands as results: each found hand segmented in its own crop, merged with the whole-image
network, and the final mask split into one `Hand` per hand.

How the two networks combine (measured on the development sets, docs/models.md): the larger of
the two probabilities, except where the whole-image network's hand region is much larger than
the found hand inside it (a face or an arm taken for hand): there the per-hand network decides.
Hands the finder misses come from the whole-image network alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from handseg_core import handcrop, registry
from handseg_core.errors import ModelError
from handseg_core.finder import FoundHand
from handseg_core.options import HandChoice, parse_choice
from handseg_core.registry import ModelSpec

KIND = registry.HANDS_KIND
SPILL = 4.0
# Where the per-hand network paints less than DRAWN_COVER of the hand drawn from its landmarks,
# at a hand the finder is sure of (score DRAWN_MIN_SCORE), the drawn hand stands in: a real hand
# on a cheek is then never left out.
DRAWN_MIN_SCORE = 0.3
DRAWN_COVER = 0.25
# The per-hand network decides over the crop's centre, the whole-image one at its edge: the
# weight is 1 inside CORE of the crop's half-side and falls to 0 at its edge.
CORE = 0.7


@dataclass(frozen=True)
class Hand:
    """One hand in a `SegmentationResult`, at the image's displayed size.

    mask: uint8 HxW, 255 on this hand's pixels (the result's mask is the union of its hands').
    box: (x0, y0, x1, y1) of the mask's pixels, x1 and y1 exclusive.
    score: how sure handseg is that this is a hand, 0..1 (the finder's, or for a hand only the
        whole-image network found, its mean probability).
    handedness: "left", "right" or None where the finder did not see the hand.
    landmarks: float32 [21, 3] (x, y in pixels, relative depth), MediaPipe's order, or None.
    """

    mask: np.ndarray = field(repr=False, compare=False)
    box: tuple[int, int, int, int]
    score: float
    handedness: str | None = None
    landmarks: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def area(self) -> int:
        return int(np.count_nonzero(self.mask))


class PerHandSegmenter:
    """The per-hand network (ONNX Runtime): crops around found hands -> their probabilities."""

    def __init__(self, spec: ModelSpec, options, providers: list[str]):
        import onnxruntime as ort

        data = registry.read_verified(spec)
        try:
            self._session = ort.InferenceSession(data, sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own types
            reason = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise ModelError(f"{spec.path}: not a loadable ONNX model ({reason})") from None
        self.spec = spec

    def probabilities(self, rgb: np.ndarray, hands: list[FoundHand]):
        """For each hand: (probability inside its square's bounding box, that box, the square)."""
        if not hands:
            return []
        size = self.spec.input_size
        squares = [handcrop.crop_square(hand.landmarks) for hand in hands]
        batch = np.stack([handcrop.crop_input(rgb, hand.landmarks, square, self.spec.mean, self.spec.std, size)
                          for hand, square in zip(hands, squares)])
        out = self._session.run(None, {"image": batch})[0][:, 0]
        for k, (hand, square) in enumerate(zip(hands, squares)):
            if handcrop.REACH > 0:  # what the network paints far from the landmarks is not this hand
                out[k] *= handcrop.reach(batch[k, 3:], hand.palm_length * size / square[2])
            if hand.score >= DRAWN_MIN_SCORE:
                drawn = handcrop.drawn_hand(handcrop.landmarks_in_crop(hand.landmarks, square, size), size)
                if np.count_nonzero(out[k] >= 0.5) < DRAWN_COVER * np.count_nonzero(drawn >= 0.5):
                    np.maximum(out[k], drawn, out=out[k])
        return [(*handcrop.paste(p, square, rgb.shape[:2]), square) for p, square in zip(out, squares)]


def _weight(square, shape: tuple[int, int], size: int = 64):
    """The per-hand network's weight over its square, pasted like its probability."""
    ramp = np.clip((1 - np.abs(np.linspace(-1 + 1 / size, 1 - 1 / size, size))) / (1 - CORE), 0, 1)
    window = np.minimum.outer(ramp, ramp).astype(np.float32)
    scaled = cv2.resize(window, (handcrop.CROP_SIZE, handcrop.CROP_SIZE), interpolation=cv2.INTER_LINEAR)
    return handcrop.paste(scaled, square, shape)[0]


def combine(whole: np.ndarray, pastes, rule: str = "spill") -> np.ndarray:
    """The whole-image probability with each found hand's crop laid over it (a new array).

    rule "spill" (the default): the larger of the per-hand probability (the largest where crops
    overlap) and the whole image's, except on whole-image regions much larger than the found hand
    they hold (SPILL), which the per-hand network decides; "blend": the per-hand network decides
    inside every crop, fading to the whole image at its edge; "max": the larger everywhere.
    Measured (docs/models.md): "blend" cut the forearms EgoHands labels as hand (cross14 0.784
    against 0.802), "max" kept a whole face the whole-image network takes for hand.
    """
    if not pastes:
        return whole.copy()
    hands = np.zeros_like(whole)
    weight = np.zeros_like(whole)
    for values, (x0, y0, x1, y1), square in pastes:
        if values.size == 0:
            continue
        np.maximum(hands[y0:y1, x0:x1], values, out=hands[y0:y1, x0:x1])
        np.maximum(weight[y0:y1, x0:x1], _weight(square, whole.shape), out=weight[y0:y1, x0:x1])
    blended = weight * hands + (1 - weight) * whole
    if rule == "blend":
        return blended
    out = np.maximum(whole, hands)
    if rule == "max":
        return out
    # "spill": the larger of the two, except on a region of the whole image's hands that is much
    # larger than the crops' hand it holds (a face or an arm taken for hand around a found
    # hand): there the per-hand network decides, as in "blend"
    count, labels, stats, _ = cv2.connectedComponentsWithStats((whole >= 0.5).view(np.uint8), connectivity=8)
    claimed = hands >= 0.5
    for label in range(1, count):
        x, y, w, h, area = stats[label]
        region = labels[y:y + h, x:x + w] == label
        held = np.count_nonzero(claimed[y:y + h, x:x + w] & region)
        if held and area > SPILL * held:
            out[y:y + h, x:x + w][region] = blended[y:y + h, x:x + w][region]
    return out


def owners(pastes, shape: tuple[int, int]) -> np.ndarray:
    """int16 map: the index of the found hand whose crop gives each pixel the highest
    probability (at least 0.5), -1 where none does."""
    owner = np.full(shape, -1, np.int16)
    best = np.zeros(shape, np.float32)
    for k, (values, (x0, y0, x1, y1), _) in enumerate(pastes):
        if values.size == 0:
            continue
        region = best[y0:y1, x0:x1]
        wins = (values > region) & (values >= 0.5)
        region[wins] = values[wins]
        owner[y0:y1, x0:x1][wins] = k
    return owner


def split(mask: np.ndarray, found: list[FoundHand], owner: np.ndarray, probability: np.ndarray) -> list[Hand]:
    """The mask as hands, the largest first; together their masks are `mask`. Each found hand
    has the pixels its crop wins (`owners`) and the unowned regions that touch only them (its
    fringe); a region that touches no found hand's pixels is a hand of its own (one the finder
    missed and the whole-image network saw)."""
    on = mask > 0
    owner = np.where(on, owner, -1).astype(np.int16)
    count, labels, stats, _ = cv2.connectedComponentsWithStats((on & (owner < 0)).view(np.uint8), connectivity=8)
    extra = []
    for label in range(1, count):
        x, y, bw, bh, _ = stats[label]
        y0, y1, x0, x1 = max(0, y - 1), y + bh + 1, max(0, x - 1), x + bw + 1
        region = labels[y0:y1, x0:x1] == label
        ring = cv2.dilate(region.view(np.uint8), np.ones((3, 3), np.uint8)).view(bool) & ~region
        neighbours = owner[y0:y1, x0:x1][ring]
        neighbours = neighbours[neighbours >= 0]
        if neighbours.size:
            owner[y0:y1, x0:x1][region] = np.bincount(neighbours).argmax()
        else:
            owner[y0:y1, x0:x1][region] = len(found) + len(extra)
            extra.append(float(probability[y0:y1, x0:x1][region].mean()))
    hands = [_hand(owner == k, hand.score, hand.handedness, hand.landmarks) for k, hand in enumerate(found)]
    hands += [_hand(owner == len(found) + k, score, None, None) for k, score in enumerate(extra)]
    return sorted((hand for hand in hands if hand.box[2] > hand.box[0]), key=lambda hand: -hand.area)


def _hand(pixels: np.ndarray, score: float, handedness, landmarks) -> Hand:
    mask = pixels.astype(np.uint8) * np.uint8(255)
    x, y, bw, bh = cv2.boundingRect(mask)
    return Hand(mask=mask, box=(x, y, x + bw, y + bh), score=round(float(score), 4), handedness=handedness,
                landmarks=landmarks)


def scaled(hands: list[FoundHand], factor_xy: tuple[float, float]) -> list[FoundHand]:
    """Found hands with their coordinates scaled (decoded pixels -> displayed pixels)."""
    fx, fy = factor_xy
    out = []
    for hand in hands:
        landmarks = hand.landmarks.copy()
        landmarks[:, 0] *= fx
        landmarks[:, 1] *= fy
        landmarks[:, 2] *= (fx + fy) / 2
        x0, y0, x1, y1 = hand.box
        out.append(FoundHand((x0 * fx, y0 * fy, x1 * fx, y1 * fy), hand.score, hand.handedness,
                             hand.handedness_score, landmarks))
    return out


# --- which hands to keep (the choices are described with the other options, options.py)


def chosen(hands: tuple[Hand, ...] | list[Hand], choice: HandChoice) -> list[int]:
    """Indices of the hands a choice keeps (hands sorted by area, the largest first, as results
    hold them); none where no hand fits (no left hand in the photo: an empty result)."""
    choice = parse_choice(choice)
    if choice == "all":
        return list(range(len(hands)))
    if choice in ("left", "right"):
        return [k for k, hand in enumerate(hands) if hand.handedness == choice]
    count = 1 if choice == "largest" else choice
    return list(range(min(count, len(hands))))


def restrict(hands, keep: list[int], mask: np.ndarray, probability: np.ndarray, alpha: np.ndarray):
    """mask, probability and alpha with only the kept hands: each pixel goes with the hand it is
    nearest to, so a feathered edge stays with its hand and nothing of a dropped hand remains."""
    kept = np.zeros(mask.shape, bool)
    dropped = np.zeros(mask.shape, bool)
    for k, hand in enumerate(hands):
        (kept if k in keep else dropped)[hand.mask > 0] = True
    if not dropped.any():
        return mask, probability, alpha
    if not kept.any():
        zeros = np.zeros_like(mask)
        return zeros, np.zeros_like(probability), np.zeros_like(alpha)
    to_kept = cv2.distanceTransform((~kept).view(np.uint8), cv2.DIST_L2, 3)
    to_dropped = cv2.distanceTransform((~dropped).view(np.uint8), cv2.DIST_L2, 3)
    ours = to_kept <= to_dropped
    return (np.where(kept, mask, 0).astype(mask.dtype), np.where(ours, probability, 0).astype(probability.dtype),
            np.where(ours, alpha, 0).astype(alpha.dtype))


def describe(hand: Hand) -> dict:
    """One hand as plain JSON values (what `handseg cutout --json` writes)."""
    landmarks = None
    if hand.landmarks is not None:
        landmarks = [[round(float(v), 2) for v in point] for point in hand.landmarks]
    return {"box": list(hand.box), "area": hand.area, "score": hand.score, "handedness": hand.handedness,
            "landmarks": landmarks}
