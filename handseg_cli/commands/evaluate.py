"""`handseg eval`: a model measured on a folder of images and their masks."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from handseg_cli.common import EXIT_FAILED, Failure, Reporter, first_line
from handseg_cli.options import ModelSettings, model_options, refinement_options

if TYPE_CHECKING:
    import numpy as np

    from handseg_core import HandSegmenter


def mask_pairs(folder: Path) -> tuple[list[tuple[Path, Path]], int]:
    """(image, mask) pairs of FOLDER/images and FOLDER/masks by file stem, and how many images
    have no mask."""
    from handseg_core.batch import is_image_name

    images, masks = folder / "images", folder / "masks"
    if not images.is_dir() or not masks.is_dir():
        raise click.BadParameter(f"{folder} must hold images/ and masks/ folders, paired by file stem",
                                 param_hint="FOLDER")
    mask_by_stem = {p.stem: p for p in sorted(masks.iterdir()) if p.is_file() and is_image_name(p)}
    image_files = [p for p in sorted(images.iterdir()) if p.is_file() and is_image_name(p)]
    pairs = [(p, mask_by_stem[p.stem]) for p in image_files if p.stem in mask_by_stem]
    return pairs, len(image_files) - len(pairs)


def load_pair(pair: tuple[Path, Path]) -> tuple[np.ndarray, np.ndarray]:
    """The image as RGB and its mask as bool (hand where the mask is 128 or more)."""
    import numpy as np

    from handseg_core.errors import ImageError
    from handseg_core.images import load_rgb, open_image

    image_path, mask_path = pair
    rgb = load_rgb(image_path)
    truth = np.asarray(open_image(mask_path).convert("L")) >= 128
    if truth.shape != rgb.shape[:2]:
        raise ImageError(str(mask_path), f"mask is {truth.shape[1]}x{truth.shape[0]} but its image is "
                                         f"{rgb.shape[1]}x{rgb.shape[0]}")
    return rgb, truth


def json_number(value: float) -> float | None:
    return None if isinstance(value, float) and math.isnan(value) else value


def evaluate_pairs(settings: ModelSettings, session: HandSegmenter, pairs: list[tuple[Path, Path]],
                   reporter: Reporter) -> tuple[dict, list[str]]:
    """MaskStats summary over the pairs, and the images that failed (each reported on one line)."""
    from concurrent.futures import ThreadPoolExecutor

    from handseg_core.batch import AHEAD, cores, decode_failure, read_ahead
    from handseg_core.errors import HandsegError
    from handseg_core.metrics import MaskStats

    stats = MaskStats()
    failed = []

    def work(pair: tuple[Path, Path]) -> tuple[np.ndarray, np.ndarray] | str:
        try:
            rgb, truth = load_pair(pair)
        except Exception as exc:  # decoders raise many kinds; each bad file is one line
            return decode_failure(exc, pair[0])
        try:
            return settings.segment(session, rgb).mask, truth
        except HandsegError as exc:
            return f"{pair[0]}: {first_line(exc)}"

    pool = ThreadPoolExecutor(cores() + AHEAD, thread_name_prefix="handseg")
    try:
        for pair, working in read_ahead(pairs, work, pool, depth=cores() + AHEAD - 1):
            outcome = working.result()
            if isinstance(outcome, str):
                reporter.error(outcome)
                failed.append(str(pair[0]))
            else:
                stats.add(*outcome)
            reporter.advance()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return stats.summary(), failed


@click.command("eval")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@model_options
@refinement_options
@click.option("--json", "as_json", is_flag=True, help="Print the numbers as JSON.")
def evaluate(folder: Path, as_json: bool, **options: Any) -> None:
    """Measure a model on FOLDER/images and FOLDER/masks (paired by file stem).

    Prints the mean per-image hand IoU (an image where both masks are empty counts 1, one where
    only one is empty counts 0), and pixel accuracy, precision and recall over all pixels. Masks
    are hand where they are 128 or more. Refinement options apply as in `handseg mask`;
    --no-refine measures the raw network (the numbers in `handseg models` are with the default
    refinement).
    """
    settings = ModelSettings.from_options(options)
    pairs, unpaired = mask_pairs(folder)
    if not pairs:
        raise Failure(f"{folder}: no image in images/ has a mask of the same name in masks/")
    session = settings.load()
    reporter = Reporter(len(pairs), "eval", settings.quiet)
    if unpaired:
        reporter.note(f"{unpaired} image(s) in {folder / 'images'} have no mask and are left out")
    with reporter:
        numbers, failed = evaluate_pairs(settings, session, pairs, reporter)
    report = {"model": session.spec.name, "folder": str(folder), **numbers, "failed": failed}
    click.echo(json.dumps({k: json_number(v) for k, v in report.items()}, indent=2) if as_json else eval_table(report))
    if failed:
        raise click.exceptions.Exit(EXIT_FAILED)


def eval_table(report: dict) -> str:
    def number(value: float) -> str:
        return "n/a" if math.isnan(value) else f"{value:.4f}"

    rows = [
        ("model", report["model"]),
        ("images", str(report["images"])),
        ("IoU (mean per image)", number(report["iou"])),
        ("pixel accuracy", number(report["accuracy"])),
        ("precision", number(report["precision"])),
        ("recall", number(report["recall"])),
    ]
    if report["failed"]:
        rows.append(("failed", str(len(report["failed"]))))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
