"""The hand finder's landmarks for the training photos, computed once and kept beside the run.

    python -m handseg_training.hand_landmarks ../shared/data --sets egohands_400 hands11k_subset \
        massey_asl sign_digits --out cache/landmarks

The per-hand segmenter learns from crops around each hand that the engine's finder
(`handseg_core.finder`) finds, with its landmarks drawn as extra input channels, so its
training needs the same finder's landmarks on every training photo. Each set gets one JSON file,
`OUT/<set>.json`: {photo stem: [hand, ...]}, each hand {"landmarks": [[x, y, z] x 21] in the
photo's pixels, "score", "handedness", "instance"}: the hand-mask value it belongs to (0/255 for
plain masks; 1-4 in EgoHands' `hands4/`, which separates the hands; -1 where it lies on no
hand: a false find).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from handseg_core import atomic
from handseg_core.finder import FinderOptions, FoundHand, load_finder

# Rich test-time variants: training photos are read once, so recall is worth the time (4 passes)
TRAINING_VARIANTS = FinderOptions(variants=((0.0, False), (0.25, False), (0.0, True), (0.25, True)),
                                  min_presence=0.5, max_hands=4)
MIN_SIDE = 256  # smaller photos (11k Hands 180 px, sign digits 100 px) are enlarged first: found more often
ON_HAND = 0.6  # the share of a hand's landmarks that must lie on one hand region of the mask


def instance_of(hand: FoundHand, instances: np.ndarray) -> int:
    """The mask value most of the hand's landmarks lie on (within 2% of the image's side of
    it), or -1 where fewer than ON_HAND of them lie on any hand."""
    reach = max(1, round(0.02 * max(instances.shape)))
    grown = cv2.dilate(instances, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1,) * 2))
    h, w = instances.shape
    xy = np.clip(hand.landmarks[:, :2].round().astype(int), 0, [w - 1, h - 1])
    values = grown[xy[:, 1], xy[:, 0]]
    values = values[values > 0]
    if values.size < ON_HAND * len(hand.landmarks):
        return -1
    kinds, counts = np.unique(values, return_counts=True)
    return int(kinds[np.argmax(counts)])


def landmarks_of_set(folder: Path, options: FinderOptions = TRAINING_VARIANTS, progress=None) -> dict:
    """{stem: [hand, ...]} for a set's images/, matched against hands4/ (EgoHands) or masks/."""
    finder = load_finder()
    images = sorted(p for p in (folder / "images").iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    instances_dir = folder / "hands4" if (folder / "hands4").is_dir() else folder / "masks"
    out = {}
    for i, path in enumerate(images):
        bgr = cv2.imread(str(path))
        mask_path = instances_dir / f"{path.stem}.png"
        if bgr is None or not mask_path.is_file():
            continue
        instances = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)
        if instances_dir.name == "masks":
            instances = np.where(instances >= 128, 255, 0).astype(np.uint8)
        h, w = bgr.shape[:2]
        scale = max(1.0, MIN_SIDE / min(h, w))
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if scale > 1:
            rgb = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_CUBIC)
        hands = []
        for hand in finder.find(rgb, options):
            landmarks = hand.landmarks.copy()
            landmarks[:, :2] /= scale
            landmarks[:, 2] /= scale
            found = FoundHand(hand.box, hand.score, hand.handedness, hand.handedness_score, landmarks)
            hands.append({"landmarks": np.round(landmarks, 2).tolist(), "score": round(hand.score, 4),
                          "handedness": hand.handedness, "instance": instance_of(found, instances)})
        out[path.stem] = hands
        if progress is not None:
            progress(i + 1, len(images))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="the data folder (../shared/data)")
    parser.add_argument("--sets", nargs="+", required=True, help="sets under ROOT with images/ and masks/")
    parser.add_argument("--out", type=Path, required=True, help="folder for <set>.json")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.sets:
        folder = args.root / name
        if not (folder / "images").is_dir():
            print(f"error: {folder}: no images/ folder", file=sys.stderr)
            return 2

        def progress(done, total, name=name):
            if done % 200 == 0 or done == total:
                print(f"{name}: {done}/{total} photos", file=sys.stderr)

        found = landmarks_of_set(folder, progress=progress)
        target = args.out / f"{name}.json"
        atomic.write_text(target, json.dumps(found))
        hands = [h for v in found.values() for h in v]
        print(f"{target}: {len(hands)} hands in {sum(1 for v in found.values() if v)} of {len(found)} photos, "
              f"{sum(h['instance'] < 0 for h in hands)} on no hand")
    return 0


if __name__ == "__main__":
    sys.exit(main())
