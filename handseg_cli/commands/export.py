"""`handseg export` and `handseg quantize`: trained checkpoints to ONNX files, float models to
int8, and a model handed to rembg."""

from __future__ import annotations

import json
from pathlib import Path

import click

from handseg_cli.common import Failure, engine_errors, first_line, plugin_call
from handseg_cli.commands.train import import_training
from handseg_cli.options import ModelParam


def report_metrics(checkpoint: Path) -> dict:
    """The evaluation in the training report next to a checkpoint, if there is one."""
    report = checkpoint.with_name("report.json")
    try:
        return json.loads(report.read_text()).get("eval", {})
    except (OSError, ValueError, AttributeError):
        return {}


def export_onnx(checkpoint: Path, output: Path, name: str | None, register_folder: Path | None, default: bool,
                half: bool = False) -> None:
    import_training()
    from handseg_training.export import export, register
    from handseg_training.train import load_checkpoint

    try:
        model, cfg = load_checkpoint(checkpoint)
    except Exception as exc:  # safetensors and torch raise their own types for unreadable files
        raise Failure(f"{checkpoint}: not a loadable handseg checkpoint ({first_line(exc)})") from None
    try:
        spec = export(model, cfg, output, name=name, metrics=report_metrics(checkpoint), half=half)
    except (OSError, RuntimeError) as exc:
        raise Failure(first_line(exc)) from None
    click.echo(f"wrote {output} (sha256 {spec.sha256[:12]}...)")
    if register_folder is not None:
        with engine_errors():
            index = register(spec, register_folder, default)
        click.echo(f"registered {spec.name} in {index}")
        if not is_model_folder(register_folder):
            click.echo(f"to use it by name: export HANDSEG_MODELS={register_folder}")


def is_model_folder(folder: Path) -> bool:
    from handseg_core import registry
    from handseg_core.plan import path_key

    return any(path_key(folder) == path_key(f) for f in registry.model_folders())


def export_rembg(model: str | None, rembg_home: Path | None) -> None:
    path, command = plugin_call("rembg", "the rembg export", lambda module: module.export_for_rembg(model, rembg_home))
    click.echo(f"wrote {path}")
    click.echo(f"use it with: {command}")


@click.command()
@click.argument("checkpoint", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="The .onnx file to write.")
@click.option("--name", help="Model name recorded in the file  [default: the output's file name]")
@click.option("--register", "register_folder", type=click.Path(file_okay=False, path_type=Path),
              help="Also add the model to this folder's index.json (copying the file there).")
@click.option("--default", "make_default", is_flag=True, help="With --register: make it that folder's default.")
@click.option("--half", "half", is_flag=True,
              help="Store the weights as float16: half the file, the same speed (ONNX Runtime casts them back on load).")
@click.option("--format", "output_format", type=click.Choice(["onnx", "rembg"]), default="onnx", show_default=True,
              help="onnx: a checkpoint to one self-describing ONNX file; rembg: a handseg model for rembg.")
@click.option("-m", "--model", type=ModelParam(),
              help="With --format rembg: the model to hand over  [default: the default model]")
@click.option("--rembg-home", type=click.Path(file_okay=False, path_type=Path),
              help="With --format rembg: rembg's model folder  [default: U2NET_HOME, REMBG_HOME or ~/.u2net]")
def export(checkpoint: Path | None, output: Path | None, name: str | None, register_folder: Path | None,
           make_default: bool, half: bool, output_format: str, model: str | None, rembg_home: Path | None) -> None:
    """Export a trained CHECKPOINT (.safetensors) to one ONNX file, checked against torch.

    `handseg export runs/latest/model.safetensors -o hands.onnx --register ~/handseg-models`
    writes hands.onnx and its .sha256, and lists it in the folder's index.json.
    `handseg export --format rembg [-m MODEL]` puts a handseg model where rembg finds it and
    prints the rembg command that uses it.
    """
    if output_format == "rembg":
        given = [flag for flag, value in (("CHECKPOINT", checkpoint), ("--output", output), ("--name", name),
                                          ("--register", register_folder), ("--default", make_default),
                                          ("--half", half)) if value]
        if given:
            raise click.UsageError(f"--format rembg takes a model (-m), not {', '.join(given)}")
        export_rembg(model, rembg_home)
        return
    if checkpoint is None or output is None:
        raise click.UsageError("give a CHECKPOINT and -o OUT.onnx (or --format rembg)")
    if model or rembg_home:
        raise click.UsageError("-m and --rembg-home go with --format rembg")
    if make_default and register_folder is None:
        raise click.UsageError("--default goes with --register FOLDER")
    export_onnx(checkpoint, output, name, register_folder, make_default, half)


@click.command()
@click.argument("model", type=ModelParam())
@click.argument("photos", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The int8 .onnx file to write.")
@click.option("--name", help="Model name recorded in the file  [default: the output's file name]")
@click.option("--count", default=64, show_default=True, type=click.IntRange(8, 1000),
              help="Calibration photos to use, taken from every folder in turn.")
@click.option("--register", "register_folder", type=click.Path(file_okay=False, path_type=Path),
              help="Also add the model to this folder's index.json (copying the file there).")
@click.option("--default", "make_default", is_flag=True, help="With --register: make it that folder's default.")
def quantize(model: str, photos: tuple[Path, ...], output: Path, name: str | None, count: int,
             register_folder: Path | None, make_default: bool) -> None:
    """Write an int8 copy of MODEL for faster CPU inference, calibrated on PHOTOS (files or folders).

    `handseg quantize handseg-lite2 calib/hands calib/faces calib/backgrounds -o lite2-int8.onnx`
    quantises the convolutions (not the stem, the encoder's depthwise ones or the head), checks that its
    masks agree with MODEL's on the photos, and writes the file with its .sha256. Give photos like
    the ones the model will see: hands, faces, backgrounds.
    """
    if make_default and register_folder is None:
        raise click.UsageError("--default goes with --register FOLDER")
    from handseg_core import registry
    from handseg_core.plan import path_key

    inputs = {path_key(Path(p)) for p in photos} | {path_key(registry.find(model).path)}
    if path_key(output) in inputs or (output.exists() and output.suffix != ".onnx"):
        raise Failure(f"{output}: will not overwrite an input or a file that is not .onnx; choose another -o")
    try:
        import onnx  # noqa: F401

        from handseg_training.quantize import gather_photos, quantize as quantize_model
    except ImportError as exc:
        raise Failure(f"quantising needs the onnx package ({exc}): pip install 'handseg[quantize]'") from None
    found = gather_photos(list(photos))
    click.echo(f"calibrating on up to {count} of {len(found)} photos (a few minutes)...", err=True)
    with engine_errors():
        try:
            result = quantize_model(model, found, output, name=name, count=count)
        except (OSError, ValueError) as exc:
            raise Failure(first_line(exc)) from None
    for line in result.skipped:
        click.echo(f"skipped {line}", err=True)
    click.echo(f"wrote {output} (sha256 {result.spec.sha256[:12]}...), calibrated on {result.photos} photos")
    click.echo(f"masks agree with {model}'s at {result.agreement:.3f} IoU; one network pass, one thread: "
               f"{result.int8_ms:.0f} ms (float {result.float_ms:.0f} ms)")
    if register_folder is not None:
        from handseg_training.onnx_files import register

        with engine_errors():
            index = register(result.spec, register_folder, make_default)
        click.echo(f"registered {result.spec.name} in {index}")
        if not is_model_folder(register_folder):
            click.echo(f"to use it by name: export HANDSEG_MODELS={register_folder}")
