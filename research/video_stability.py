"""Flicker and per-frame IoU of `handseg_core.video`'s stabiliser on real consecutive frames.
Found (docs/python.md, "Video"): see the table this prints.

    python -m research.video_stability                  # egohands_400's runs of near frames
    python -m research.video_stability --configs 0.5:0 0.3:0.05 --json out.json   # strength:hysteresis

There is no annotated video clip in shared/data; egohands_400 holds 100 annotated frames from
each of 4 EgoHands videos, and among them 36 runs of frames 1 or 2 apart (34 pairs, 2 triples;
the videos run at 30 fps). Each run is a short real clip with true masks: every frame is
segmented on its own once, then fed through the stabiliser at each strength. Figures:
- flicker: `handseg_core.video.flicker` over each run's consecutive pairs (the true masks' own
  figure is given too: real hands change shape, so it is not 0);
- IoU: the hand IoU of every frame after the first of its run (the first is the same either way),
  and of all frames.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "egohands_400"


def runs(folder: Path, gap: int = 2) -> list[list[Path]]:
    """Runs of frames of one video at most `gap` frames apart, each of two frames or more."""
    by_video = defaultdict(list)
    for path in (folder / "images").glob("*.jpg"):
        video, number = re.match(r"(.+)_frame_(\d+)$", path.stem).groups()
        by_video[video].append((int(number), path))
    found = []
    for frames in by_video.values():
        frames.sort()
        run = [frames[0]]
        for number, path in frames[1:]:
            if number - run[-1][0] <= gap:
                run.append((number, path))
                continue
            if len(run) > 1:
                found.append([p for _, p in run])
            run = [(number, path)]
        if len(run) > 1:
            found.append([p for _, p in run])
    return sorted(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--configs", nargs="+", default=["0.3:0", "0.5:0", "0.7:0", "0.3:0.05", "0.3:0.1", "0.5:0.05"],
                        help="strength:hysteresis pairs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from handseg_core import Refinement, load_model
    from handseg_core.metrics import hand_iou
    from handseg_core.video import FlowMeter, Stabilisation, Stabiliser, pair_changes

    session = load_model(threads=args.threads)
    clips = runs(args.data)
    print(f"{len(clips)} runs, {sum(map(len, clips))} frames")
    frames, truths, raws = [], [], []
    for clip in clips:
        frames.append([np.asarray(Image.open(p).convert("RGB")) for p in clip])
        truths.append([np.asarray(Image.open(args.data / "masks" / f"{p.stem}.png")) > 127 for p in clip])
        raws.append([session.segment(rgb, keep="all") for rgb in frames[-1]])
    meter = FlowMeter(Stabilisation().flow_size)

    def figures(masks_by_clip) -> dict:
        changes, later, every = [], [], []
        for rgbs, masks, truth in zip(frames, masks_by_clip, truths):
            changes += pair_changes(meter, rgbs, masks)
            scores = [hand_iou(m > 0, t) for m, t in zip(masks, truth)]
            later += scores[1:]
            every += scores
        return {"flicker": float(np.mean(changes)), "iou_later": float(np.mean(later)),
                "iou_all": float(np.mean(every)), "pairs": len(changes)}

    table = {"truth": figures([[t.astype(np.uint8) * 255 for t in truth] for truth in truths]),
             "each frame alone": figures([[r.mask for r in raw] for raw in raws])}
    for config in args.configs:
        strength, hysteresis = (float(v) for v in config.split(":"))
        steady = []
        for rgbs, raw in zip(frames, raws):
            stabiliser = Stabiliser(Stabilisation(strength=strength, hysteresis=hysteresis), Refinement())
            steady.append([stabiliser.update(rgb, r).result.mask for rgb, r in zip(rgbs, raw)])
        table[f"strength {strength:g}, hysteresis {hysteresis:g}"] = figures(steady)
    print(f"{'':32} {'flicker':>8} {'IoU later':>10} {'IoU all':>8}")
    for name, row in table.items():
        print(f"{name:32} {row['flicker']:8.4f} {row['iou_later']:10.4f} {row['iou_all']:8.4f}")
    if args.json:
        args.json.write_text(json.dumps(table, indent=1) + "\n")


if __name__ == "__main__":
    main()
