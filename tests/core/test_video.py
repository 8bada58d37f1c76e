"""The stabiliser on synthetic moving frames: a drawn hand moves over a textured background and
a noisy 'network' segments each frame on its own."""

from __future__ import annotations

import numpy as np
import cv2
import pytest

from handseg_core import hands as per_hand
from handseg_core.errors import OptionError
from handseg_core.metrics import hand_iou as iou
from handseg_core.options import Refinement
from handseg_core.session import SegmentationResult
from handseg_core.video import Stabilisation, Stabiliser, VideoFrame, chosen, flicker, segment_video

SIZE = (96, 128)  # height, width


def background(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 255, (SIZE[0] // 4, SIZE[1] // 4, 3), dtype=np.uint8)
    return cv2.resize(noise, SIZE[::-1], interpolation=cv2.INTER_CUBIC)


def hand_shape(cx: float, cy: float) -> np.ndarray:
    """A palm and four fingers, 0/255."""
    shape = np.zeros(SIZE, np.uint8)
    cv2.ellipse(shape, (round(cx), round(cy)), (14, 17), 0, 0, 360, 255, -1)
    for k in range(4):
        x = round(cx - 12 + 8 * k)
        cv2.line(shape, (x, round(cy - 10)), (x, round(cy - 30)), 255, 5)
    return shape


def clip(count: int = 12, step: float = 2.0):
    """(frames, true masks): the hand moving right over a fixed background."""
    base = background()
    skin = (background(1) // 3 + np.array((150, 100, 80), np.uint8)).astype(np.uint8)
    frames, truths = [], []
    for t in range(count):
        shift = step * t
        truth = hand_shape(40 + shift, 60)
        moved = cv2.warpAffine(skin, np.float32([[1, 0, shift], [0, 1, 0]]), SIZE[::-1], borderMode=cv2.BORDER_REFLECT)
        frame = base.copy()
        frame[truth > 0] = moved[truth > 0]
        frames.append(frame)
        truths.append(truth)
    return frames, truths


def noisy_result(truth: np.ndarray, rng: np.random.Generator, missed: bool = False) -> SegmentationResult:
    """What a network that jitters at the edges might give (and nothing where it `missed`)."""
    soft = cv2.GaussianBlur(truth.astype(np.float32) / 255, (0, 0), 2.5)
    noise = cv2.GaussianBlur(rng.normal(0, 1, truth.shape).astype(np.float32), (0, 0), 3) * 2.0
    probability = np.clip(soft + noise * (1 - np.abs(2 * soft - 1)), 0, 1).astype(np.float32)
    if missed:
        probability[:] = 0
    mask = (probability >= 0.5).astype(np.uint8) * 255
    owner = np.full(truth.shape, -1, np.int16)
    hands = per_hand.split(mask, [], owner, probability)
    return SegmentationResult(mask, probability, mask, "fake", tuple(hands))


def stabilised(frames, results, options=Stabilisation()) -> list[VideoFrame]:
    stabiliser = Stabiliser(options, Refinement(snap_edges=False))
    return [stabiliser.update(frame, result) for frame, result in zip(frames, results)]


def test_flicker_goes_down_and_iou_does_not():
    frames, truths = clip()
    rng = np.random.default_rng(1)
    raw = [noisy_result(truth, rng) for truth in truths]
    steady = stabilised(frames, raw)
    raw_flicker = flicker(frames, [r.mask for r in raw])
    steady_flicker = flicker(frames, [f.result.mask for f in steady])
    raw_iou = np.mean([iou(r.mask > 0, t > 0) for r, t in zip(raw, truths)])
    steady_iou = np.mean([iou(f.result.mask > 0, t > 0) for f, t in zip(steady, truths)])
    assert steady_flicker < 0.85 * raw_flicker
    assert steady_iou >= raw_iou - 0.01
    assert flicker(frames, truths) < 0.6 * raw_flicker  # the true masks change little once motion is out


def test_a_briefly_missed_hand_is_kept_with_its_track():
    frames, truths = clip(8)
    rng = np.random.default_rng(2)
    raw = [noisy_result(truth, rng, missed=(t == 5)) for t, truth in enumerate(truths)]
    steady = stabilised(frames, raw)
    assert not raw[5].hands
    assert len(steady[5].result.hands) == 1 and steady[5].held == (True,)
    assert iou(steady[5].result.mask > 0, truths[5] > 0) > 0.7
    assert {f.tracks for f in steady} == {(1,)}  # one hand, one number, all along


def test_a_hand_gone_for_good_is_let_go():
    frames, truths = clip(8)
    rng = np.random.default_rng(3)
    raw = [noisy_result(truth, rng, missed=(t >= 3)) for t, truth in enumerate(truths)]
    steady = stabilised(frames, raw, Stabilisation(hold=2))
    assert [len(f.result.hands) for f in steady] == [1, 1, 1, 1, 1, 0, 0, 0]


def test_handedness_is_the_tracks_majority():
    frames, truths = clip(5)
    rng = np.random.default_rng(4)
    said = ["left", "left", "right", "left", "left"]
    raw = []
    for truth, handedness in zip(truths, said):
        result = noisy_result(truth, rng)
        hand = result.hands[0]
        hand = per_hand.Hand(hand.mask, hand.box, 0.9, handedness, np.zeros((21, 3), np.float32))
        raw.append(SegmentationResult(result.mask, result.probability, result.alpha, "fake", (hand,)))
    steady = stabilised(frames, raw)
    assert [f.result.hands[0].handedness for f in steady] == ["left"] * 5
    described = steady[2].describe()
    assert described["frame"] == 2 and described["hands"][0]["track"] == 1


def test_strength_zero_changes_nothing():
    frames, truths = clip(4)
    rng = np.random.default_rng(5)
    raw = [noisy_result(truth, rng) for truth in truths]
    steady = stabilised(frames, raw, Stabilisation(strength=0, hysteresis=0, hold=0))
    for r, f in zip(raw, steady):
        assert np.array_equal(r.mask, f.result.mask)


@pytest.mark.parametrize("settings", [{"strength": 1.5}, {"hysteresis": 0.5}, {"hold": -1}, {"flow_size": 8}, {"hold": 1.5}])
def test_options_out_of_range_say_what_is_allowed(settings):
    with pytest.raises(OptionError, match="must be"):
        Stabilisation(**settings)


class FakeSession:
    """Segments a frame of `clip` as the noisy network would (its true mask found by its bytes)."""

    def __init__(self, frames, truths):
        self.truths = {frame.tobytes(): truth for frame, truth in zip(frames, truths)}

    def segment(self, frame, refinement=None, keep="all", **options):
        return noisy_result(self.truths[frame.tobytes()], np.random.default_rng(len(self.truths)))


@pytest.mark.parametrize("workers", [1, 2])
def test_segment_video_keeps_order_and_count(workers):
    frames, truths = clip(6)
    out = list(segment_video(FakeSession(frames, truths), iter(frames), Refinement(snap_edges=False), workers=workers))
    assert [f.index for f in out] == list(range(6))
    assert all(iou(f.result.mask > 0, t > 0) > 0.7 for f, t in zip(out, truths))
    assert chosen(out[0], "left").result.hands == ()



def test_the_session_follows_a_real_hand_through_a_short_clip():
    """The packaged model through `session.segment_video`: a real photo moved a few pixels a frame."""
    from pathlib import Path

    from handseg_core import load_model
    from handseg_core.images import load_rgb

    photo = load_rgb(Path(__file__).parents[1] / "data" / "hands" / "utk_26_1_4_20170117174112221.jpg")
    frames = [np.ascontiguousarray(np.roll(photo, 3 * t, axis=1)) for t in range(3)]
    out = list(load_model(threads=1).segment_video(iter(frames)))
    assert [f.result.mask.shape for f in out] == [photo.shape[:2]] * 3
    assert out[0].result.hands and len({f.tracks[0] for f in out}) == 1
    plain = list(load_model(threads=1).segment_video(frames[:1], stabilisation=None))
    assert np.array_equal(plain[0].result.mask, out[0].result.mask)  # the first frame has nothing to tie to
