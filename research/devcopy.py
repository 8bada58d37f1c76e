"""A small, downscaled copy of the training data, for a machine that cannot read ../shared/data.
Found: a downscaled copy trains the same configs end to end on a machine without ../shared/data
(for checking the path, not for shipping models).

    python -m research.devcopy OUT_DIR [--data-root ../shared/data] [--ood OOD_DIR]
        [--encoder-weights tf_efficientnet_lite0 ...]

Each set keeps its layout (`images/` + `masks/`, `HandInfo.csv`), so a config trains on the copy
with `--data-root OUT_DIR`. Images are stored at the size training decodes them to anyway
(frames 512x288, hand photos at most 192 px, backgrounds and faces 192 px centre crops), as JPEG;
masks stay lossless PNG. Large sets are thinned to an even spread, and paths that configs
exclude (the out-of-domain set's sources) are left out. Evaluation sets are copied unchanged.
`--encoder-weights` also writes OUT_DIR/weights/ENCODER.safetensors: the ImageNet encoder
weights in fp16, for `candidates --encoder-weights-dir` where the lite packages are missing.
"""

from __future__ import annotations

import argparse
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2

from handseg_training import data as D
from handseg_training.data import EXCLUDE, excluded


@dataclass(frozen=True)
class Plan:
    size: tuple[int, int] | None  # (width, height) to fit into; None keeps the size
    crop: bool = False  # centre-crop to the aspect of `size` first
    keep: int | None = None  # at most this many, evenly spread
    quality: int = 85


PLANS = {
    "egohands_400": Plan((512, 288), quality=72),
    "hands11k_subset": Plan(None, quality=85),
    "massey_asl": Plan((192, 192), keep=600, quality=80),
    "sign_digits": Plan(None, keep=800, quality=85),
    "backgrounds": Plan((192, 192), crop=True, quality=70),
    "faces_utk": Plan((160, 160), keep=900, quality=75),
}
UNCHANGED = ["egohands_cross14"]


def _resize(image, plan: Plan, interpolation):
    if plan.size is None:
        return image
    w, h = plan.size
    if plan.crop:
        image = D.centre_crop(image, (h, w))
    if image.shape[1] <= w and image.shape[0] <= h:
        return image
    return cv2.resize(image, (w, h), interpolation=interpolation)


def _spread(items: list, keep: int | None) -> list:
    if keep is None or len(items) <= keep:
        return items
    return [items[round(i * len(items) / keep)] for i in range(keep)]


def copy_set(name: str, root: Path, out: Path, plan: Plan) -> int:
    src = root / name
    has_masks = (src / "masks").is_dir()
    if has_masks:
        items = [p for p in D.PairFolder(src).pairs() if not excluded(p[0], root, EXCLUDE)]
    else:
        items = [(p, None) for p in D.list_images(src) if not excluded(p, root, EXCLUDE)]
    items = _spread(items, plan.keep)
    for image_path, mask_path in items:
        relative = image_path.relative_to(src).with_suffix(".jpg")
        target = out / name / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        image = _resize(cv2.imread(str(image_path), cv2.IMREAD_COLOR), plan, cv2.INTER_AREA)
        cv2.imwrite(str(target), image, [cv2.IMWRITE_JPEG_QUALITY, plan.quality])
        if mask_path is not None:
            mask = _resize(cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE), plan, cv2.INTER_LINEAR)
            mask_target = out / name / "masks" / f"{mask_path.stem}.png"
            mask_target.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(mask_target), (mask >= 128).astype("uint8") * 255)
    for extra in src.glob("*.csv"):
        shutil.copy2(extra, out / name / extra.name)
    return len(items)


def build(root: Path, out: Path, ood: Path | None = None) -> dict[str, int]:
    counts = {name: copy_set(name, root, out, plan) for name, plan in PLANS.items()}
    for name in UNCHANGED:
        shutil.copytree(root / name, out / name, dirs_exist_ok=True)
        counts[name] = len(D.PairFolder(out / name).pairs())
    if ood is not None:
        shutil.copytree(ood, out / "ood", dirs_exist_ok=True)
    return counts


def encoder_weights(encoder: str, out: Path) -> Path:
    """The packaged ImageNet weights of a lite encoder, in timm's layout, as fp16 safetensors."""
    from safetensors.torch import save_file

    from handseg_training.model import build_model

    model = build_model(encoder, 32, "package")
    state = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in model.encoder.state_dict().items()}
    path = out / "weights" / f"{encoder}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m research.devcopy", description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--ood", help="an out-of-domain set (python -m research.oodset) to copy as ood/")
    parser.add_argument("--encoder-weights", nargs="*", default=[], metavar="ENCODER",
                        help="also write these encoders' ImageNet weights (fp16) to OUT/weights/")
    args = parser.parse_args()
    out = Path(args.out)
    counts = build(Path(args.data_root), out, Path(args.ood) if args.ood else None)
    for encoder in args.encoder_weights:
        print(f"wrote {encoder_weights(encoder, out)}")
    for name, n in counts.items():
        print(f"{name:18s} {n:5d}")
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"{out}: {total / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
