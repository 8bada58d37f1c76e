"""The options of the commands that run a model, built from the engine's descriptions
(`handseg_core.options`): flags, ranges, defaults and help are written there once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import click

from handseg_core.options import DEVICES, INFERENCE, REFINEMENT, Option
from handseg_cli.common import engine_errors

if TYPE_CHECKING:
    import numpy as np
    from pathlib import Path

    from handseg_core import HandSegmenter, Inference, Refinement, SegmentationResult


class ModelParam(click.ParamType):
    """A registry name (completed from `handseg models`) or the path of an .onnx file."""

    name = "model"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from handseg_core import registry
        from handseg_core.errors import ModelError

        try:
            registry.find(value)
        except ModelError as exc:
            self.fail(str(exc), param, ctx)
        return str(value)

    def shell_complete(self, ctx: click.Context, param: click.Parameter, incomplete: str) -> list:
        from click.shell_completion import CompletionItem

        from handseg_core import registry

        names = [CompletionItem(n) for n in registry.available_models() if n.startswith(incomplete)]
        return names or [CompletionItem(incomplete, type="file")]


def flag(option: Option, **settings: Any) -> Callable[[Callable], Callable]:
    """The click option of an engine option, from its description (handseg_core.options).

    A bool option on by default becomes its `negative` flag (--no-snap); every value that is not
    given stays None, so that a command can tell what was asked for.
    """
    help = option.help
    if option.kind is bool:
        if option.default:
            return click.option(option.negative, option.name, flag_value=False, default=None,
                                help=option.negative_help)
        return click.option(option.cli_flag, option.name, is_flag=True, help=help)
    if option.low is None:
        kind: Any = None
    elif option.kind is int:
        kind = click.IntRange(int(option.low), int(option.high))
    else:
        kind = click.FloatRange(option.low, option.high, max_open=option.high_open)
    if option.default is not None and "default" not in settings:
        help = f"{help}  [default: {option.default:g}]"
    return click.option(option.cli_flag, option.name, type=kind, help=help, **settings)


def with_options(command: Callable, options: list[Callable[[Callable], Callable]]) -> Callable:
    for option in reversed(options):
        command = option(command)
    return command


def model_options(command: Callable) -> Callable:
    return with_options(command, [
        click.option("-m", "--model", type=ModelParam(), default=None, help=INFERENCE["model"].help),
        click.option("--device", type=click.Choice(DEVICES), default=INFERENCE["device"].default, show_default=True,
                     help=INFERENCE["device"].help),
        flag(INFERENCE["input_size"]),
        flag(INFERENCE["flip_tta"]),
        flag(INFERENCE["adapt_size"]),
        flag(INFERENCE["find_hands"]),
        click.option("--hands", "keep", type=HandsParam(), default=INFERENCE["keep"].default, show_default=True,
                     help=INFERENCE["keep"].help),
        click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary; errors still show."),
    ])


class HandsParam(click.ParamType):
    """--hands: all, largest, left, right or N."""

    name = "all|largest|left|right|N"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from handseg_core.errors import HandsegError
        from handseg_core.options import parse_choice

        try:
            return parse_choice(value)
        except HandsegError as exc:
            self.fail(str(exc).removeprefix(f"hands {value!r}: "), param, ctx)


def refinement_options(command: Callable) -> Callable:
    return with_options(command, [
        *(flag(option) for option in REFINEMENT.values()),
        click.option("--no-refine", is_flag=True,
                     help="Only threshold the network's probability: no edge snapping, no cleanup."),
    ])


@dataclass(frozen=True)
class ModelSettings:
    """How to load and run the model (the engine's typed `Inference`) and refine its masks,
    from the shared options."""

    inference: Inference
    refinement: Refinement
    quiet: bool
    sidecar: bool = False

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> "ModelSettings":
        from handseg_core.options import Inference

        given = {name: options[name] for name in INFERENCE if options.get(name) is not None}
        with engine_errors():
            inference = Inference(**given, threads=inference_threads())
        return cls(inference, refinement_from(options), options["quiet"], options.get("sidecar", False))

    def load(self) -> HandSegmenter:
        with engine_errors():
            return self.inference.load()

    def segment(self, session: HandSegmenter, image: np.ndarray | Path) -> SegmentationResult:
        return session.segment(image, self.refinement, **self.inference.segment_options())


def inference_threads() -> int:
    """One ONNX Runtime thread per image, with one image in flight per core (bench/RESULTS.md:
    19.7 images/s on 2 cores, against 11 with one image at a time on all cores but one)."""
    return 1


def refinement_from(options: dict[str, Any]) -> Refinement:
    from handseg_core.options import NO_REFINEMENT
    from handseg_core.options import refinement_from as refinement_of

    if not options.get("no_refine"):
        return refinement_of(options)
    cleanup = sorted(name for name in REFINEMENT if name not in ("threshold", "snap_edges")
                     and options.get(name) is not None)  # --no-snap agrees
    if cleanup:
        raise click.UsageError(f"--no-refine turns cleanup off; drop it or drop {', '.join(REFINEMENT[n].cli_flag for n in cleanup)}")
    return refinement_of(options, NO_REFINEMENT)
