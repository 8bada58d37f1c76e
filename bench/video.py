"""Speed of `handseg video`'s engine: frames per second on a 1280x720 clip, 1 and 2 threads.

    python bench/video.py                 # 16 frames a configuration, after 2 of warm-up
    python bench/video.py --frames 6      # quicker
    python bench/run.py --video           # the same, from the benchmark's entry point

The clip is egohands_cross14's padova_06.jpg (1280x720, two hands) shifted 4 pixels a frame, so
that the optical flow has motion to measure and the finder finds the same hands. Decoding and
encoding the file are not counted (PyAV decodes 720p H.264 at several hundred frames a second).
Configurations: ONNX Runtime threads per frame x frames segmented at once (`workers`), each with
and without stabilisation.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT.parent / "shared" / "data" / "egohands_cross14" / "images" / "padova_06.jpg"
CONFIGS = ((1, 1), (2, 1), (1, 2))  # (threads, workers)


def clip(count: int) -> list[np.ndarray]:
    from handseg_core.images import load_rgb

    photo = load_rgb(PHOTO)
    return [np.ascontiguousarray(np.roll(photo, 4 * t, axis=1)) for t in range(count)]


def frames_per_second(threads: int, workers: int, stabilise: bool, frames: list[np.ndarray], warmup: int) -> float:
    from handseg_core import load_model
    from handseg_core.video import Stabilisation

    session = load_model(threads=threads)
    stabilisation = Stabilisation() if stabilise else None
    for _ in session.segment_video(frames[:warmup], stabilisation=stabilisation, workers=workers):
        pass
    start = time.perf_counter()
    count = sum(1 for _ in session.segment_video(frames, stabilisation=stabilisation, workers=workers))
    return count / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args(argv)
    frames = clip(args.frames)
    height, width = frames[0].shape[:2]
    print(f"{width}x{height}, {args.frames} frames")
    print(f"{'threads':>7} {'workers':>7} {'alone fps':>10} {'stabilised fps':>15}")
    for threads, workers in CONFIGS:
        alone = frames_per_second(threads, workers, False, frames, args.warmup)
        steady = frames_per_second(threads, workers, True, frames, args.warmup)
        print(f"{threads:>7} {workers:>7} {alone:>10.2f} {steady:>15.2f}")


if __name__ == "__main__":
    main()
