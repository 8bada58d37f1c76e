"""Hands in motion: frames in, masks that hold from frame to frame out (no file I/O here; video
files are `handseg_core.videofile`).

Each frame is segmented on its own, then `Stabiliser` ties it to the frames before it:

1. the motion from the previous frame is measured with OpenCV's DIS optical flow, at a reduced
   size (`Stabilisation.flow_size`);
2. the previous frame's (already stabilised) probability is warped along that motion and blended
   with the new one, `strength` of it where the warped previous frame looks like the new one and
   less where it does not (an occlusion, a hand that just came in); the mask is cut from it with
   a little hysteresis: a pixel that was hand (moved along the motion) stays hand a little under
   the threshold, one that was not needs a little over it;
3. hands are followed by the overlap of their boxes, each previous hand moved along the motion
   first; a followed hand keeps its track number and its handedness (the majority of what the
   finder said of it so far), so a hand the finder sees as "left" in one frame and "right" in the
   next stays one hand;
4. a hand seen in at least two frames and missed in the next is kept, moved along the motion,
   for up to `hold` frames.

`flicker` measures what this is for: the mean change of the mask between consecutive frames
after motion compensation.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Iterator, NamedTuple

import cv2
import numpy as np

from handseg_core import hands as per_hand
from handseg_core.errors import OptionError
from handseg_core.hands import Hand
from handseg_core.options import HandChoice, Refinement, parse_choice
from handseg_core.postprocess import refine

# Grey-level difference (0..255) between a pixel and where the flow says it came from, above which
# the previous frame no longer counts there (an occlusion, a hand that just came in).
MISMATCH = 40.0
# A new hand follows a previous one (moved along the motion) where their boxes overlap this much.
MATCH_IOU = 0.1


@dataclass(frozen=True)
class Stabilisation:
    """How frames are tied together.

    strength: the weight of the previous frame's probability (moved along the motion) in the
        blend, 0..0.9.
    hysteresis: where the previous frame (moved along the motion) had hand, a pixel stays hand
        down to this much under the threshold; where it had none, it must be this much over it.
        0..0.3. strength 0 and hysteresis 0: each frame's mask on its own.
    hold: how many frames a hand seen before is kept where the finder and the network miss it.
    flow_size: the long side, in pixels, at which the motion is measured (more: slower, finer).

    The defaults were chosen on EgoHands' near frames (docs/python.md, "Video"): strength 0.5
    alone took 18% of the flicker away, 0.3 with a hysteresis of 0.05 took 24%, at the same IoU.
    """

    strength: float = 0.3
    hysteresis: float = 0.05
    hold: int = 2
    flow_size: int = 320

    def __post_init__(self):
        if not isinstance(self.strength, (int, float)) or not 0 <= self.strength <= 0.9:
            raise OptionError(f"strength must be a number from 0 to 0.9, got {self.strength!r}")
        if not isinstance(self.hysteresis, (int, float)) or not 0 <= self.hysteresis <= 0.3:
            raise OptionError(f"hysteresis must be a number from 0 to 0.3, got {self.hysteresis!r}")
        if not isinstance(self.hold, int) or isinstance(self.hold, bool) or not 0 <= self.hold <= 30:
            raise OptionError(f"hold must be a whole number of frames from 0 to 30, got {self.hold!r}")
        if not isinstance(self.flow_size, int) or isinstance(self.flow_size, bool) or not 32 <= self.flow_size <= 4096:
            raise OptionError(f"flow_size must be a whole number of pixels from 32 to 4096, got {self.flow_size!r}")


@dataclass(frozen=True)
class VideoFrame:
    """One frame of a video's result.

    index: the frame's position, from 0.
    result: its `SegmentationResult` (stabilised unless asked otherwise).
    tracks: one number per hand of `result.hands`: the same hand has the same number in every
        frame it is in.
    held: per hand, True where it was missed in this frame and kept from the frames before.
    image: the frame itself (HxWx3 uint8 RGB), as it was given.
    """

    index: int
    result: Any  # SegmentationResult (session.py imports this module's users, not the reverse)
    tracks: tuple[int, ...] = ()
    held: tuple[bool, ...] = ()
    image: np.ndarray | None = field(default=None, repr=False, compare=False)

    def describe(self) -> dict:
        """The frame as plain JSON values: `SegmentationResult.describe()` with the frame index
        and each hand's track number (and `held` where it was kept through a miss)."""
        described = self.result.describe()
        for hand, track, held in zip(described["hands"], self.tracks, self.held):
            hand["track"] = track
            if held:
                hand["held"] = True
        return {"frame": self.index, **described}


class Motion:
    """The backward optical flow from one frame to the one before it, and warping by it."""

    def __init__(self, flow: np.ndarray, shape: tuple[int, int]):
        height, width = shape
        scale_x, scale_y = width / flow.shape[1], height / flow.shape[0]
        if flow.shape[:2] != (height, width):
            flow = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR)
        grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
        self.map_x = grid_x + flow[..., 0] * scale_x
        self.map_y = grid_y + flow[..., 1] * scale_y
        self.shape = shape

    def warp(self, image: np.ndarray, nearest: bool = False) -> np.ndarray:
        """`image` of the previous frame, moved to where its pixels are in this one (0 where the
        flow points outside the frame)."""
        return cv2.remap(image, self.map_x, self.map_y, cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    def move_points(self, points: np.ndarray) -> np.ndarray:
        """Points (x, y, ...) of the previous frame moved to this one (the flow at each point,
        taken backwards)."""
        moved = points.copy()
        height, width = self.shape
        for row in moved:
            x = int(min(max(round(float(row[0])), 0), width - 1))
            y = int(min(max(round(float(row[1])), 0), height - 1))
            row[0] -= self.map_x[y, x] - x
            row[1] -= self.map_y[y, x] - y
        return moved


class FlowMeter:
    """Measures the motion between consecutive frames with DIS optical flow at a reduced size."""

    def __init__(self, flow_size: int = 320):
        self.flow_size = flow_size
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        self._dis.setFinestScale(0)  # the preset stops at a quarter of the size: motion of a pixel or two is lost

    def grey(self, rgb: np.ndarray) -> np.ndarray:
        height, width = rgb.shape[:2]
        scale = min(1.0, self.flow_size / max(height, width))
        grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
        if scale < 1:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        return grey

    def motion(self, grey: np.ndarray, previous_grey: np.ndarray, shape: tuple[int, int]) -> Motion:
        flow = self._dis.calc(grey, previous_grey, None)
        return Motion(flow, shape)


class _Found(NamedTuple):
    """What `hands.split` reads of a hand: its score, handedness and landmarks."""

    score: float
    handedness: str | None
    landmarks: np.ndarray | None


@dataclass
class _Track:
    number: int
    mask: np.ndarray
    box: tuple[int, int, int, int]
    score: float
    landmarks: np.ndarray | None
    votes: Counter = field(default_factory=Counter)
    seen: int = 1
    missed: int = 0

    def handedness(self, fallback: str | None) -> str | None:
        if not self.votes:
            return fallback
        (left, right) = self.votes["left"], self.votes["right"]
        if left == right:
            return fallback or max(self.votes, key=self.votes.get)
        return "left" if left > right else "right"


def box_iou(a, b) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _box(mask: np.ndarray) -> tuple[int, int, int, int]:
    x, y, w, h = cv2.boundingRect(mask)
    return x, y, x + w, y + h


class Stabiliser:
    """Ties each frame's result to the frames before it (see the module's description).

    Feed it the frames in order: `stabiliser.update(rgb, result)` returns the frame's
    `VideoFrame`. The result must keep all its hands (`keep="all"`); choose hands afterwards.
    """

    def __init__(self, options: Stabilisation | None = None, refinement: Refinement | None = None):
        if options is not None and not isinstance(options, Stabilisation):
            raise OptionError(f"options must be a handseg_core.video.Stabilisation, got {type(options).__name__}")
        self.options = options or Stabilisation()
        self.refinement = refinement or Refinement()
        self._meter = FlowMeter(self.options.flow_size)
        self._grey: np.ndarray | None = None
        self._probability: np.ndarray | None = None
        self._mask: np.ndarray | None = None
        self._tracks: list[_Track] = []
        self._next_number = 0
        self._index = 0

    def update(self, rgb: np.ndarray, result) -> VideoFrame:
        from handseg_core.session import SegmentationResult

        grey = self._meter.grey(rgb)
        shape = result.mask.shape
        previous = self._probability is not None and self._probability.shape == shape and self._grey.shape == grey.shape
        motion = self._meter.motion(grey, self._grey, shape) if previous else None
        probability = result.probability
        if motion is not None and self.options.strength > 0:
            probability = self._blend(probability, grey, motion)
        matches, held = self._follow(result.hands, motion)
        if held:
            probability = probability.copy()
            for track, moved in held:
                region = moved > 0
                probability[region] = np.maximum(probability[region], self.refinement.threshold)
        decided = probability
        if motion is not None and self.options.hysteresis > 0:
            margin = np.float32(self.options.hysteresis)
            decided = probability + np.where(motion.warp(self._mask, nearest=True) > 0, margin, -margin)
        if decided is result.probability:
            mask, alpha = result.mask, result.alpha
        else:
            mask, alpha = refine(decided, self.refinement)
        found, owner, tracks, was_held = self._owners(result.hands, matches, held, shape)
        hands, numbers, held_flags, said = [], [], [], []
        for hand in per_hand.split(mask, found, owner, probability):
            k = _owner_of(hand, owner)
            track = tracks[k] if k is not None else None
            said.append(hand.handedness if k is not None and not was_held[k] else None)
            if track is not None:
                track.votes.update([hand.handedness] if said[-1] else [])
                handedness = track.handedness(hand.handedness)
                if handedness != hand.handedness:
                    hand = replace(hand, handedness=handedness)
            hands.append(hand)
            numbers.append(track.number if track is not None else None)
            held_flags.append(bool(k is not None and was_held[k]))
        self._remember(hands, numbers, held_flags, said, tracks)
        self._grey, self._probability, self._mask = grey, probability, mask
        frame = VideoFrame(self._index, SegmentationResult(mask, probability, alpha, result.model, tuple(hands)),
                           tuple(track.number for track in self._tracks), tuple(held_flags), rgb)
        self._index += 1
        return frame

    def _blend(self, probability: np.ndarray, grey: np.ndarray, motion: Motion) -> np.ndarray:
        moved_grey = motion.warp(cv2.resize(self._grey, motion.shape[::-1], interpolation=cv2.INTER_LINEAR))
        here = cv2.resize(grey, motion.shape[::-1], interpolation=cv2.INTER_LINEAR)
        likeness = 1 - np.abs(here.astype(np.float32) - moved_grey.astype(np.float32)) / MISMATCH
        inside = motion.warp(np.ones(motion.shape, np.uint8), nearest=True) > 0
        weight = np.clip(likeness, 0, 1) * self.options.strength * inside
        moved = motion.warp(self._probability)
        return (probability + weight * (moved - probability)).astype(np.float32)

    def _follow(self, hands: tuple[Hand, ...], motion: Motion | None):
        """(new hand index -> track, [(track, its mask moved here)] of the tracks held)."""
        moved = []
        for track in self._tracks:
            mask = motion.warp(track.mask, nearest=True) if motion is not None else track.mask
            moved.append((track, mask, _box(mask)))
        pairs = []
        for k, hand in enumerate(hands):
            for j, (track, _, box) in enumerate(moved):
                iou = box_iou(hand.box, box)
                votes = track.handedness(None)
                if hand.handedness and votes and hand.handedness != votes:
                    iou *= 0.5
                if iou >= MATCH_IOU:
                    pairs.append((iou, k, j))
        matches: dict[int, _Track] = {}
        used: set[int] = set()
        for iou, k, j in sorted(pairs, reverse=True):
            if k not in matches and j not in used:
                matches[k] = moved[j][0]
                used.add(j)
        held = []
        for j, (track, mask, box) in enumerate(moved):
            if j in used:
                continue
            if track.seen >= 2 and track.missed < self.options.hold and box[2] > box[0] and motion is not None:
                track.landmarks = motion.move_points(track.landmarks) if track.landmarks is not None else None
                held.append((track, mask))
        return matches, held

    def _owners(self, hands, matches, held, shape):
        owner = np.full(shape, -1, np.int16)
        found, tracks, was_held = [], [], []
        for k, hand in enumerate(hands):
            owner[hand.mask > 0] = len(found)
            found.append(_Found(hand.score, hand.handedness, hand.landmarks))
            tracks.append(matches.get(k))
            was_held.append(False)
        for track, moved in held:
            owner[(moved > 0) & (owner < 0)] = len(found)
            found.append(_Found(track.score, track.handedness(None), track.landmarks))
            tracks.append(track)
            was_held.append(True)
        return found, owner, tracks, was_held

    def _remember(self, hands, numbers, held_flags, said, tracks_before) -> None:
        """The tracks after this frame, one per hand of it in its order: a hand that follows a
        track updates it (the first hand of a track where the mask split in two), any other
        starts one; tracks without a hand here end."""
        by_number = {track.number: track for track in tracks_before if track is not None}
        kept = []
        for hand, number, held, handedness in zip(hands, numbers, held_flags, said):
            track = by_number.pop(number, None) if number is not None else None
            if track is None:
                self._next_number += 1
                track = _Track(self._next_number, hand.mask, hand.box, hand.score, hand.landmarks, seen=0)
                track.votes.update([handedness] if handedness else [])
            track.mask, track.box = hand.mask, hand.box
            if held:
                track.missed += 1
            else:
                track.seen += 1
                track.missed = 0
                track.score, track.landmarks = hand.score, hand.landmarks
            kept.append(track)
        self._tracks = kept


def _owner_of(hand: Hand, owner: np.ndarray) -> int | None:
    """Which of the hands laid into `owner` this output hand is (None: a new one)."""
    values = owner[hand.mask > 0]
    values = values[values >= 0]
    return int(np.bincount(values).argmax()) if values.size else None


def segment_video(session, frames: Iterable[np.ndarray], refinement: Refinement | None = None, *,
                  stabilisation: Stabilisation | None = Stabilisation(), keep: HandChoice = "all",
                  workers: int = 1, **options) -> Iterator[VideoFrame]:
    """Segment a sequence of frames (HxWx3 uint8 RGB arrays, in order), one `VideoFrame` each.

    Args:
        session: a loaded model (`handseg_core.load_model`).
        frames: any iterable of frames: a list, or a generator reading a video as it goes (the
            frames are read only as fast as they are segmented; `workers` ahead at most).
        refinement: post-processing settings; the defaults of `Refinement` when omitted.
        stabilisation: how frames are tied together (`Stabilisation`); None segments each frame
            on its own (the hands still get track numbers, from their boxes alone).
        keep: which hands each frame keeps ("all", "largest", "left", "right" or N), chosen after
            stabilising, so that a hand's identity decides and not one frame's guess.
        workers: frames segmented at the same time (each on its own thread); the stabilising
            itself runs in order.
        options: the other keyword arguments of `HandSegmenter.segment` (input_size, flip_tta,
            adapt_size, find_hands, finder).

    Raises:
        OptionError: an option out of its range.
        ImageError: a frame is not an HxWx3 uint8 array or image.
    """
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise OptionError(f"workers must be a whole number from 1, got {workers!r}")
    parse_choice(keep)
    refinement = refinement or Refinement()
    stabiliser = Stabiliser(stabilisation or Stabilisation(strength=0, hysteresis=0, hold=0), refinement)

    def segment(frame: np.ndarray):
        return frame, session.segment(frame, refinement, keep="all", **options)

    for rgb, result in _in_order(segment, frames, workers):
        frame = stabiliser.update(rgb, result)
        yield chosen(frame, keep)


def chosen(frame: VideoFrame, keep: HandChoice) -> VideoFrame:
    """`frame` with only the hands `keep` chooses (`SegmentationResult.keep`)."""
    result = frame.result.keep(keep)
    if result is frame.result:
        return frame
    index = {id(hand): k for k, hand in enumerate(frame.result.hands)}
    kept = [index[id(hand)] for hand in result.hands]
    return VideoFrame(frame.index, result, tuple(frame.tracks[k] for k in kept), tuple(frame.held[k] for k in kept),
                      frame.image)


def _in_order(work, items: Iterable, workers: int) -> Iterator:
    """`work(item)` for each item, in order, up to `workers` running at a time."""
    if workers == 1:
        yield from map(work, items)
        return
    pending: list[Future] = []
    with ThreadPoolExecutor(workers, thread_name_prefix="handseg-video") as pool:
        try:
            for item in items:
                pending.append(pool.submit(work, item))
                if len(pending) >= workers:
                    yield pending.pop(0).result()
            while pending:
                yield pending.pop(0).result()
        finally:
            for future in pending:
                future.cancel()


def flicker(frames: Iterable[np.ndarray], masks: Iterable[np.ndarray], flow_size: int = 320) -> float:
    """The mean change of the mask between consecutive frames after motion compensation: for
    each pair, 1 - IoU of the previous mask moved along the measured motion and the new one
    (0 where both are empty), averaged over the pairs. 0 for fewer than two frames.

    The motion is measured on the frames themselves, so a mask that moves with its hand does not
    count as change; one that jumps at its edge, or is lost for a frame, does.
    """
    meter = FlowMeter(flow_size)
    changes = pair_changes(meter, frames, masks)
    return float(np.mean(changes)) if changes else 0.0


def pair_changes(meter: FlowMeter, frames: Iterable[np.ndarray], masks: Iterable[np.ndarray]) -> list[float]:
    """1 - IoU of each consecutive pair of masks, the earlier one moved along the motion."""
    changes = []
    previous_grey = previous_mask = None
    for rgb, mask in zip(frames, masks):
        grey = meter.grey(rgb)
        on = np.asarray(mask) > 127 if np.asarray(mask).dtype == np.uint8 else np.asarray(mask) > 0.5
        if previous_grey is not None and previous_grey.shape == grey.shape:
            motion = meter.motion(grey, previous_grey, on.shape)
            moved = motion.warp(previous_mask.view(np.uint8) * np.uint8(255), nearest=True) > 0
            union = np.count_nonzero(moved | on)
            changes.append(1 - np.count_nonzero(moved & on) / union if union else 0.0)
        previous_grey, previous_mask = grey, on
    return changes
