"""Where a model's errors on a set lie: its IoU, and what it would be without each kind of error.

    python -m handseg_training.errors handseg-lite2-int8 --sets egohands_cross14 egohands_400 [--band 2]

Each wrong pixel (against the truth) is put in one kind, the first that fits:

- `outline`: within --band px of the true outline (how precisely the labels and the mask follow
  the hand's edge);
- `frame_edge`: in a false region that touches the photo's border (in EgoHands frames: the
  forearms that enter the frame, which its masks leave out);
- `rest`: missed parts of hands and false regions inside the photo.

"without X" is the mean IoU with the pixels of kind X set right: an upper bound on what fixing
that kind alone could gain, not a method. Mean per-photo IoU as in `devsets`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from handseg_core.metrics import hand_iou as iou
from handseg_training import data as D
from handseg_training.devsets import pairs_of, spread

KINDS = ("outline", "frame_edge", "rest")


def kinds_of_errors(predicted: np.ndarray, truth: np.ndarray, band: int = 2,
                    min_region: float = 5e-4) -> dict[str, np.ndarray]:
    """The wrong pixels of `predicted` (bool, HxW) split into KINDS (bool masks, disjoint).

    `band`: px either side of the true outline; `min_region`: the smallest false region, as a
    share of the photo, that counts as `frame_edge` (specks at the border stay in `rest`).
    """
    wrong = predicted != truth
    if band > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
        outline = cv2.morphologyEx(truth.astype(np.uint8), cv2.MORPH_GRADIENT, kernel) > 0
    else:
        outline = np.zeros_like(truth)
    near = wrong & outline
    false = (predicted & ~truth & ~near).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(false, connectivity=8)
    height, width = truth.shape
    at_edge = np.zeros_like(truth)
    for i in range(1, count):
        x, y, w, h, area = stats[i]
        touches = x == 0 or y == 0 or x + w == width or y + h == height
        if touches and area >= min_region * height * width:
            at_edge |= labels == i
    return {"outline": near, "frame_edge": at_edge, "rest": wrong & ~near & ~at_edge}


def decompose(predicted: np.ndarray, truth: np.ndarray, band: int = 2) -> dict[str, float]:
    """The photo's IoU, and its IoU with each kind of error set right (`without_<kind>`)."""
    result = {"iou": iou(predicted, truth)}
    for kind, pixels in kinds_of_errors(predicted, truth, band).items():
        result[f"without_{kind}"] = iou(np.where(pixels, truth, predicted), truth)
    return result


def measure(model: str, root: Path, sets: list[str], band: int = 2, limit: int | None = None) -> dict:
    from handseg_core import load_model

    session = load_model(model, device="cpu")
    results = {}
    for name in sets:
        pairs, _ = pairs_of(name, root)
        rows = []
        for image_path, mask_path in spread(pairs, limit):
            truth = D.read_mask(mask_path) >= 128
            rows.append(decompose(session.segment(image_path).mask > 0, truth, band))
        results[name] = {"images": len(rows), **{k: float(np.mean([r[k] for r in rows])) for k in rows[0]}}
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m handseg_training.errors", description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--sets", nargs="+", default=["egohands_cross14"])
    parser.add_argument("--band", type=int, default=2, help="px either side of the true outline [default: 2]")
    parser.add_argument("--limit", type=int, help="photos a set at most, spread evenly [default: all]")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    results = measure(args.model, Path(args.data_root), args.sets, args.band, args.limit)
    print("| set | photos | IoU | " + " | ".join(f"without {k.replace('_', ' ')}" for k in KINDS) + " |")
    print("|---|---|---|" + "---|" * len(KINDS))
    for name, r in results.items():
        print(f"| {name} | {r['images']} | {r['iou']:.3f} | " + " | ".join(f"{r['without_' + k]:.3f}" for k in KINDS) + " |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
