"""Measure an exported model on every development set, as users run it (ONNX Runtime, engine).

    python -m handseg_training.devsets MODEL.onnx --data-root ../shared/data [--json OUT]

Sets: egohands_cross14 (cross-video test), egohands_400 (training frames), the 11k Hands
subjects held out of training (per skin-colour group too), massey_asl and sign_digits (training
photos). Protocol: mean per-image hand IoU with the default refinement, as `handseg eval`
(`measure` takes another segmenter too: research/rembg_devsets.py scores the rembg export
through rembg itself). The JSON keeps each photo's IoU, so two models' runs can be compared
photo by photo (research.paired).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from handseg_core import Refinement, load_model
from handseg_core.metrics import MaskStats
from handseg_training import data as D

# Real photos first: real hands over real faces, then EgoHands frames of unseen videos, ...
SETS = ["faces_utk_hands", "faces_utk_free", "egohands_cross14", "egohands_400", "hands11k_holdout", "massey_asl",
        "sign_digits"]
SOURCE = {"hands11k_holdout": "hands11k_subset", "faces_utk_free": "faces_utk"}  # sets drawn from another's folder
FOUND_IOU = 0.3  # a photo's hand counts as found where the mask reaches this IoU with the truth
# A hand-free photo has a false hand where the mask covers more than this fraction of it.
FALSE_AREA = 0.001
# faces_utk_free: the face crops no training recipe sees (crops.py and the configs exclude them),
# less those that show a hand (faces_utk/hands.txt)
FREE_FACES = "*0.jpg"


def sets_under(root: Path) -> list[str]:
    """The sets of SETS whose folders `root` holds."""
    return [name for name in SETS if (root / SOURCE.get(name, name)).is_dir()]


def set_folder(name: str, root: Path) -> Path:
    """The folder of set `name`: under `root`, else `name` itself as a path (absolute or from here).

    Raises:
        SystemExit: neither is a folder.
    """
    for folder in (root / name, Path(name)):
        if folder.is_dir():
            return folder
    raise SystemExit(f"devsets: no set {name!r}: neither {root / name} nor {Path(name).resolve()} is a folder")


def pairs_of(name: str, root: Path, holdout_fraction: float = 0.2, seed: int = 0):
    """[(image, mask or None for a hand-free photo)] and the photos' groups (or None)."""
    if name == "faces_utk_free":
        folder = set_folder(SOURCE[name], root)
        listed = folder / "hands.txt"
        with_hands = set(listed.read_text().split()) if listed.is_file() else set()
        images = sorted(p for p in (folder / "images").glob(FREE_FACES) if p.stem not in with_hands)
        return [(image, None) for image in images], None
    if name == "hands11k_holdout":
        folder = set_folder(SOURCE[name], root)
        info = D.hands11k_subjects(folder)
        _, held = D.split_by_subject(D.PairFolder(folder).pairs(), info, holdout_fraction, seed)
        return held, {stem: row["skinColor"] for stem, row in info.items()}
    return D.PairFolder(set_folder(name, root)).pairs(), None


def spread(pairs: list, limit: int | None) -> list:
    """At most `limit` of `pairs`, evenly spread over the set (its videos, subjects)."""
    return pairs[:: len(pairs) // limit][:limit] if limit and len(pairs) > limit else pairs


def enlarged(image_path: Path, mask_path: Path | None, zoom: float) -> tuple[np.ndarray, np.ndarray | None]:
    """(RGB, truth) enlarged `zoom` times (bicubic; the truth nearest): a stand-in for the same
    photo taken at a higher resolution, as phones take them. No mask: the truth is None."""
    rgb = D.read_rgb(image_path)
    size = (round(rgb.shape[1] * zoom), round(rgb.shape[0] * zoom))
    big = cv2.resize(rgb, size, interpolation=cv2.INTER_CUBIC)
    if mask_path is None:
        return big, None
    truth = D.read_mask(mask_path) >= 128
    return big, cv2.resize(truth.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0


def measure(model: str, root: Path, sets=SETS, input_size: int | None = None, refinement: Refinement | None = None,
            limit: int | None = None, flip_tta: bool = False, zoom: float = 1.0, adapt_size: bool = True,
            find_hands: bool = True, segment: Callable | None = None) -> dict:
    """Each set's scores for `model` as the engine runs it with these settings, or as `segment`
    (an image path or RGB array -> a bool mask) makes its masks where given."""
    if segment is None:
        session = load_model(model, device="cpu")

        def segment(image) -> np.ndarray:
            return session.segment(image, refinement, input_size=input_size, flip_tta=flip_tta,
                                   adapt_size=adapt_size, find_hands=find_hands).mask > 0
    results = {}
    for name in sets:
        pairs, groups = pairs_of(name, root)
        pairs = spread(pairs, limit)
        overall, by_group, per_image = MaskStats(), {}, {}
        empty = found = shown = false = 0
        start = time.perf_counter()
        for image_path, mask_path in pairs:
            if zoom == 1.0:
                image = image_path
                truth = D.read_mask(mask_path) >= 128 if mask_path else None
            else:
                image, truth = enlarged(image_path, mask_path, zoom)
            predicted = segment(image)
            if truth is None:  # a hand-free photo
                truth = np.zeros(predicted.shape, bool)
            per_image[image_path.stem] = overall.add(predicted, truth)
            if truth.any():  # a photo that shows a hand: is it found at all?
                shown += 1
                empty += not predicted.any()
                found += per_image[image_path.stem] >= FOUND_IOU
            else:
                false += int(predicted.mean() > FALSE_AREA)
            if groups is not None:
                by_group.setdefault(groups.get(image_path.stem, "unknown"), MaskStats()).add(predicted, truth)
        result = overall.summary()
        result["seconds"] = round(time.perf_counter() - start, 1)
        result.update(with_hand=shown, found=found, empty=empty, hand_free=len(pairs) - shown, false=false)
        if by_group:
            result["groups"] = {k: v.summary() for k, v in sorted(by_group.items())}
        result["per_image"] = per_image  # for paired comparisons (python -m research.paired)
        results[name] = result
    return results


def parser(prog: str = "python -m handseg_training.devsets") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("model")
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--sets", nargs="*", default=SETS)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--zoom", type=float, default=1.0,
                        help="enlarge every photo this many times first (a stand-in for high-resolution photos)")
    parser.add_argument("--json")
    return parser


def report(results: dict, json_path: str | None) -> None:
    """One line a set on stdout; the whole results as JSON where a path is given."""
    for name, r in results.items():
        groups = "  ".join(f"{g} {v['iou']:.3f} ({v['images']})" for g, v in r.get("groups", {}).items())
        false = f"  false hands {r['false']}/{r['hand_free']}" if r["hand_free"] else ""
        print(f"{name:18s} IoU {r['iou']:.4f}  images {r['images']:5d}  found {r['found']}/{r['with_hand']} "
              f"(empty {r['empty']}){false}  {r['seconds']:6.1f} s  {groups}")
    if json_path:
        Path(json_path).write_text(json.dumps(results, indent=2))


def main() -> None:
    arguments = parser()
    arguments.add_argument("--size", type=int, help="largest long side the network sees (default: the model's)")
    arguments.add_argument("--flip-tta", action="store_true", help="average with the mirrored image (two passes)")
    arguments.add_argument("--fixed-size", action="store_true", help="one pass at --size, no adapting to the hands' size")
    arguments.add_argument("--whole-image", action="store_true",
                           help="without the hand finder: the whole-image network only")
    args = arguments.parse_args()
    results = measure(args.model, Path(args.data_root), args.sets, args.size, limit=args.limit, flip_tta=args.flip_tta,
                      zoom=args.zoom, adapt_size=not args.fixed_size, find_hands=not args.whole_image)
    report(results, args.json)


if __name__ == "__main__":
    main()
