"""Where a model's errors on a set lie: its IoU, and what it would be without each kind of error.
Found: on egohands_cross14 (0.797) most of the loss lies within 2 px of the true outline (0.845
without it) and in false regions at the frame's border (0.823); 0.034 lies past the wrists.

    python -m research.errors handseg-lite2-int8 --sets egohands_cross14 egohands_400 [--band 2]
        [--wrists LANDMARKS.json]

Each wrong pixel (against the truth) is put in one kind, the first that fits:

- `outline`: within --band px of the true outline (how precisely the labels and the mask follow
  the hand's edge);
- `past_wrist` (with --wrists, hand landmarks from `research/landmarks.py`): past a
  hand's wrist, on the side away from its fingers, within 1.5 palm lengths of the wrist (where
  a mask's wrist convention shows: EgoHands' polygons stop near the wrist);
- `frame_edge`: in a false region that touches the photo's border (in EgoHands frames: the
  forearms that enter the frame, which its masks leave out);
- `rest`: missed parts of hands and false regions inside the photo.

"without X" is the mean IoU with the pixels of kind X set right: an upper bound on what fixing
that kind alone could gain, not a method. With --wrists, `cut_at_wrist` is a method: the IoU
of the prediction with everything past the wrist line (moved --wrist-margin palm lengths towards
the arm) taken away. Mean per-photo IoU as in `devsets`.
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

KINDS = ("outline", "past_wrist", "frame_edge", "rest")
WRIST, MIDDLE_BASE = 0, 9  # MediaPipe's hand landmarks: the wrist, the middle finger's knuckle
REACH = 1.5  # how far past the wrist (in palm lengths, wrist to middle knuckle) the zone goes


def past_wrists(hands: list, shape: tuple[int, int], margin: float = 0.0) -> np.ndarray:
    """Bool HxW: the pixels past each hand's wrist, on the side away from its fingers, within
    REACH palm lengths of the wrist. `hands`: per hand, its landmarks as [x, y] pixels (at least
    up to MIDDLE_BASE, in MediaPipe's order); `margin`: the wrist line moved that many palm
    lengths towards the arm."""
    zone = np.zeros(shape, bool)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    for landmarks in hands:
        wrist, knuckle = np.asarray(landmarks[WRIST], np.float32), np.asarray(landmarks[MIDDLE_BASE], np.float32)
        palm = float(np.linalg.norm(knuckle - wrist))
        if palm < 1.0:
            continue
        axis = (knuckle - wrist) / palm
        line = wrist - margin * palm * axis
        along = (xx - line[0]) * axis[0] + (yy - line[1]) * axis[1]
        zone |= (along < 0) & ((xx - wrist[0]) ** 2 + (yy - wrist[1]) ** 2 < (REACH * palm) ** 2)
    return zone


def kinds_of_errors(predicted: np.ndarray, truth: np.ndarray, band: int = 2,
                    min_region: float = 5e-4, wrist_zone: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The wrong pixels of `predicted` (bool, HxW) split into KINDS (bool masks, disjoint).

    `band`: px either side of the true outline; `min_region`: the smallest false region, as a
    share of the photo, that counts as `frame_edge` (specks at the border stay in `rest`);
    `wrist_zone`: the pixels past the hands' wrists (`past_wrists`); without it `past_wrist`
    is empty.
    """
    wrong = predicted != truth
    if band > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
        outline = cv2.morphologyEx(truth.astype(np.uint8), cv2.MORPH_GRADIENT, kernel) > 0
    else:
        outline = np.zeros_like(truth)
    near = wrong & outline
    wrist = wrong & ~near & (wrist_zone if wrist_zone is not None else np.zeros_like(truth))
    false = (predicted & ~truth & ~near & ~wrist).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(false, connectivity=8)
    height, width = truth.shape
    at_edge = np.zeros_like(truth)
    for i in range(1, count):
        x, y, w, h, area = stats[i]
        touches = x == 0 or y == 0 or x + w == width or y + h == height
        if touches and area >= min_region * height * width:
            at_edge |= labels == i
    return {"outline": near, "past_wrist": wrist, "frame_edge": at_edge, "rest": wrong & ~near & ~wrist & ~at_edge}


def decompose(predicted: np.ndarray, truth: np.ndarray, band: int = 2, hands: list | None = None,
              margin: float = 0.0) -> dict[str, float]:
    """The photo's IoU, and its IoU with each kind of error set right (`without_<kind>`); given
    the hands' landmarks, also `cut_at_wrist` (see the module's text)."""
    zone = past_wrists(hands, truth.shape) if hands is not None else None
    result = {"iou": iou(predicted, truth)}
    for kind, pixels in kinds_of_errors(predicted, truth, band, wrist_zone=zone).items():
        if kind != "past_wrist" or zone is not None:
            result[f"without_{kind}"] = iou(np.where(pixels, truth, predicted), truth)
    if hands is not None:
        cut = zone if margin == 0 else past_wrists(hands, truth.shape, margin)
        result["cut_at_wrist"] = iou(predicted & ~cut, truth)
    return result


def read_landmarks(path: Path) -> dict[str, list]:
    """{photo stem: [hand landmarks]} from `research/landmarks.py`'s JSON.

    Raises:
        SystemExit: the file is missing or is not such a JSON.
    """
    try:
        landmarks = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise SystemExit(f"errors: cannot read landmarks {path}: {e}") from None
    if not isinstance(landmarks, dict):
        raise SystemExit(f"errors: {path} is not a landmarks file (a JSON object of photo stem -> hands)")
    return landmarks


def measure(model: str, root: Path, sets: list[str], band: int = 2, limit: int | None = None,
            landmarks: dict[str, list] | None = None, margin: float = 0.0) -> dict:
    from handseg_core import load_model

    session = load_model(model, device="cpu")
    results = {}
    for name in sets:
        pairs, _ = pairs_of(name, root)
        rows, missing = [], 0
        for image_path, mask_path in spread(pairs, limit):
            truth = D.read_mask(mask_path) >= 128
            hands = None if landmarks is None else landmarks.get(image_path.stem)
            if landmarks is not None and hands is None:
                missing += 1
                hands = []  # no landmarks for this photo: nothing is past a wrist
            rows.append(decompose(session.segment(image_path).mask > 0, truth, band, hands, margin))
        results[name] = {"images": len(rows), **{k: float(np.mean([r[k] for r in rows])) for k in rows[0]}}
        if landmarks is not None:
            results[name]["without_landmarks"] = missing
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m research.errors", description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--sets", nargs="+", default=["egohands_cross14"])
    parser.add_argument("--band", type=int, default=2, help="px either side of the true outline [default: 2]")
    parser.add_argument("--limit", type=int, help="photos a set at most, spread evenly [default: all]")
    parser.add_argument("--wrists", type=Path, metavar="LANDMARKS.json",
                        help="hand landmarks of the sets' photos (research/landmarks.py): adds "
                             "the errors past the wrists, and the prediction cut at them")
    parser.add_argument("--wrist-margin", type=float, default=0.0,
                        help="for cut_at_wrist: move the cut this many palm lengths towards the arm [default: 0]")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    landmarks = read_landmarks(args.wrists) if args.wrists else None
    results = measure(args.model, Path(args.data_root), args.sets, args.band, args.limit, landmarks, args.wrist_margin)
    kinds = [k for k in KINDS if landmarks is not None or k != "past_wrist"]
    extra = ["cut_at_wrist"] if landmarks is not None else []
    print("| set | photos | IoU | " + " | ".join([f"without {k.replace('_', ' ')}" for k in kinds]
                                                 + [k.replace("_", " ") for k in extra]) + " |")
    print("|---|---|---|" + "---|" * (len(kinds) + len(extra)))
    for name, r in results.items():
        figures = [r["without_" + k] for k in kinds] + [r[k] for k in extra]
        print(f"| {name} | {r['images']} | {r['iou']:.3f} | " + " | ".join(f"{v:.3f}" for v in figures) + " |")
        if r.get("without_landmarks"):
            print(f"  ({name}: {r['without_landmarks']} photos have no landmarks; nothing counted past a wrist there)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
