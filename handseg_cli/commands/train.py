"""`handseg train`: a model trained from a TOML config (the training extra)."""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path
from typing import Any, Iterator

import click

from handseg_cli.common import Failure, Interrupted, Reporter, first_line, stop_word


def import_training() -> tuple[Any, Any]:
    """handseg_training's config and train modules, or a failure that says what to install."""
    try:
        import segmentation_models_pytorch  # noqa: F401
        import torch  # noqa: F401

        from handseg_training import config, train
    except ImportError as exc:
        raise Failure(f"training needs torch and segmentation-models-pytorch ({exc}): "
                      "pip install 'handseg[train]'") from None
    return config, train


@contextlib.contextmanager
def training_log(verbose: bool) -> Iterator[None]:
    """handseg_training's progress lines on stderr (when no progress bar shows them)."""
    logger = logging.getLogger("handseg_training")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@click.command()
@click.argument("config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/latest"),
              show_default=True, help="Folder for the checkpoint, the report and the log.")
@click.option("--data-root", type=click.Path(exists=True, file_okay=False),
              help="Folder the config's data sets are in  [default: the config's data.root]")
@click.option("--minutes", type=click.FloatRange(min=0.0, min_open=True),
              help="Time budget; the schedule spans it  [default: the config's]")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or a torch device such as cuda:1.")
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path), default=Path("cache"), show_default=True,
              help="Folder for decoded training data, reused by later runs.")
@click.option("--encoder-weights", metavar="package|imagenet|none|PATH",
              help="ImageNet encoder weights: the lite packages, smp's download, none, or a state-dict file "
                   "(.safetensors/.pth)  [default: the config's]")
@click.option("--data-seed", type=click.IntRange(min=0),
              help="Seed of the batches' draws alone; runs to be averaged (python -m handseg_training.soup) "
                   "keep the config's seed and differ here  [default: the config's seed]")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no log lines.")
def train(config: Path, out: Path, data_root: str | None, minutes: float | None, device: str, cache: Path,
          encoder_weights: str | None, data_seed: int | None, quiet: bool) -> None:
    """Train a model from a TOML CONFIG (see handseg_training/configs/), then evaluate it.

    Writes OUT/model.safetensors, OUT/report.json and OUT/NAME.onnx (the exported model;
    load it with --model OUT/NAME.onnx or add it to a models folder with `handseg export --register`).
    Needs the training extra: pip install 'handseg[train]'.
    """
    config_module, train_module = import_training()
    try:
        cfg = config_module.load_config(config, {"data.root": data_root, "time_budget_minutes": minutes,
                                                 "encoder_weights": encoder_weights, "data_seed": data_seed})
    except (OSError, ValueError, TypeError) as exc:
        raise Failure(first_line(exc)) from None
    reporter = Reporter(1000, f"training {cfg.name}", quiet, show_item=loss_label)

    def progress(fraction: float, loss: float | None) -> None:
        reporter.move_to(round(fraction * 1000), loss)

    try:
        with training_log(verbose=not quiet and not reporter.shows_bar), reporter:
            report = train_module.run(cfg, out, device, cache, progress=progress)
    except KeyboardInterrupt as exc:
        click.echo(f"{stop_word(exc)}: checkpoints saved so far are in {out}", err=True)
        raise Interrupted(exc) from None
    except (OSError, ValueError, RuntimeError) as exc:
        raise Failure(first_line(exc)) from None
    click.echo(training_summary(report, out))


def loss_label(loss: float | None) -> str | None:
    return None if loss is None else f"loss {loss:.4f}"


def training_summary(report: dict, out: Path) -> str:
    lines = [f"trained {report['steps']} steps in {report['train_seconds']:.0f} s on {report['device']}",
             f"checkpoint: {out / 'model.safetensors'}", f"report:     {out / 'report.json'}"]
    lines += [f"IoU {name}: {result['iou']:.4f}" for name, result in report.get("eval", {}).items()]
    if "onnx" in report:
        lines.append(f"model:      {report['onnx']['file']}")
    return "\n".join(lines)
