"""`handseg mask` and `handseg cutout`: a batch of images to PNG files, run by the engine's
batch machinery (`handseg_core.batch`: inputs, outputs, the pipelined loop, atomic writes)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import click

from handseg_cli.common import EXIT_FAILED, Failure, Interrupted, Reporter, stop_word
from handseg_cli.options import ModelSettings, model_options, refinement_options, with_options

if TYPE_CHECKING:
    from handseg_core.batch import Counts, Decoded, Plan, Renderer

# How the engine's messages name this front's controls.
OUTPUT_FOLDER = "-o folder"
RECURSIVE = "--recursive looks in subfolders"


def summary(counts: Counts, plan: Plan, out_dir: Path) -> str:
    """The last line of a batch: written, skipped and failed."""
    parts = [f"{counts.written} written to {out_dir}"]
    if plan.skipped:
        parts.append(f"{plan.skipped} skipped (already there; --overwrite redoes them)")
    failed = counts.failed + len(plan.problems)
    if failed:
        parts.append(f"{failed} failed")
    return ", ".join(parts)


def run_batch(inputs: tuple[str, ...], out_dir: Path, recursive: bool, overwrite: bool, settings: ModelSettings,
              label: str, decode: Callable[[Path], Decoded], render: Renderer) -> None:
    """Plan, load the model once, process, report; ends with exit code 0, 1, or 128 + the signal
    that stopped it (130: Ctrl-C, 143: SIGTERM, 129: SIGHUP)."""
    from handseg_core import atomic
    from handseg_core.batch import Batch, Counts, OutputUnwritable, Wording, expand_inputs, plan_outputs

    wording = Wording(output_folder=OUTPUT_FOLDER, recursive=RECURSIVE)
    sources, problems = expand_inputs(inputs, recursive, out_dir, wording)
    plan = plan_outputs(sources, out_dir, overwrite, wording)
    plan.problems[:0] = problems
    reporter = Reporter(len(plan.jobs), label, settings.quiet)
    for message in plan.problems:
        reporter.error(message)
    counts = Counts()
    atomic.remove_stale(plan.folders)  # what a killed run left: its temporary files, nothing else
    if plan.jobs:
        make_folder(out_dir)
        session = settings.load()
        batch = Batch(lambda image: settings.segment(session, image), decode, render, reporter, settings.sidecar)
        counts = batch.counts
        try:
            with reporter:
                batch.run(plan.jobs)
        except KeyboardInterrupt as exc:
            click.echo(f"{stop_word(exc)}: {counts.written} of {len(plan.jobs)} written; run the same command "
                       "again to do the rest", err=True)
            raise Interrupted(exc) from None
        except OutputUnwritable as exc:
            raise Failure(f"{exc}; choose a writable {OUTPUT_FOLDER}") from None
    reporter.note(summary(counts, plan, out_dir))
    if counts.failed or plan.problems:
        raise click.exceptions.Exit(EXIT_FAILED)


def make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise Failure(f"cannot create the output folder {folder} ({exc.strerror or exc}); choose another -o") from None


def batch_command(function: Callable) -> Callable:
    """The arguments and options of a batch command, then the model's and the refinement's."""
    options = [
        click.argument("inputs", nargs=-1, required=True, metavar="INPUT..."),
        click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
                     help="Folder the PNG files go to (created if missing)."),
        click.option("-r", "--recursive", is_flag=True, help="Also take images in subfolders (the tree is kept)."),
        click.option("--overwrite", is_flag=True,
                     help="Redo outputs that exist already (default: keep them, so a rerun resumes)."),
        click.option("--json", "sidecar", is_flag=True,
                     help="Also write OUTPUT/<name>.json: each hand's box, area, score, handedness "
                          "and 21 landmarks, in the image's pixels."),
    ]
    return with_options(model_options(refinement_options(function)), options)


@click.command()
@batch_command
def mask(inputs: tuple[str, ...], out_dir: Path, recursive: bool, overwrite: bool, **options: Any) -> None:
    """Write a hand mask for each INPUT: OUTPUT/<name>.png, 8-bit, 255 = hand, 0 = not
    (with grey levels at the edge with --feather).

    INPUT may be image files, folders (their images) or glob patterns such as "shots/*.jpg".
    Existing outputs are kept unless --overwrite; an input that fails is reported on one line and
    the others go on. Exit code 0: all done; 1: some input failed; 2: wrong usage; 130: Ctrl-C;
    143: SIGTERM (129: SIGHUP), after removing its temporary files.
    """
    from PIL import Image

    from handseg_core.batch import decode_in_engine

    settings = ModelSettings.from_options(options)
    run_batch(inputs, out_dir, recursive, overwrite, settings, "mask", decode_in_engine,
              lambda decoded, result: Image.fromarray(result.alpha))


def parse_background(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """'transparent', a colour (white, #RRGGBB) or an image file -> what cutout_image takes."""
    if value is None or value.strip().lower() in ("", "transparent", "none"):
        return None
    from handseg_core.compose import parse_colour
    from handseg_core.errors import ImageError
    from handseg_core.images import load_rgba

    colour = parse_colour(value)
    if colour is not None:
        return colour
    if not os.path.isfile(value):
        raise click.BadParameter(f"{value!r} is neither a colour (white, #RRGGBB) nor an image file")
    try:
        return load_rgba(value)
    except ImageError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command()
@click.option("-b", "--background", callback=parse_background, metavar="transparent|COLOUR|IMAGE",
              help="What shows where there is no hand: transparent (RGBA), a colour such as white or "
                   "#RRGGBB, or an image file (RGB)  [default: transparent]")
@batch_command
def cutout(inputs: tuple[str, ...], out_dir: Path, recursive: bool, overwrite: bool, background: Any,
           **options: Any) -> None:
    """Cut the hands out of each INPUT: OUTPUT/<name>.png, RGBA (RGB with --background).

    INPUT may be image files, folders (their images) or glob patterns such as "shots/*.jpg".
    Existing outputs are kept unless --overwrite; an input that fails is reported on one line and
    the others go on. Exit code 0: all done; 1: some input failed; 2: wrong usage; 130: Ctrl-C;
    143: SIGTERM (129: SIGHUP), after removing its temporary files.
    """
    from handseg_core.batch import decode_with_image
    from handseg_core.compose import cutout_image

    settings = ModelSettings.from_options(options)
    run_batch(inputs, out_dir, recursive, overwrite, settings, "cutout", decode_with_image,
              lambda decoded, result: cutout_image(decoded.image, result.alpha, background, reuse=True))
