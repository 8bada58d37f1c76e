"""The `handseg` command line: masks and cut-outs for batches of images, evaluation, training,
export, the model list and the plug-in installers.

The engine (OpenCV, ONNX Runtime) and torch are imported inside the commands, so that
`handseg --help` and `handseg --version` answer at once. This module is the only place where
exceptions become messages and exit codes.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import importlib
import json
import logging
import math
import os
import sys
import warnings
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterable, Iterator, TypeVar

import click

from handseg_core.options import DEVICES, INFERENCE, REFINEMENT, Option

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from handseg_core import HandSegmenter, Refinement, SegmentationResult

EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
AHEAD = 2  # images in flight beyond one per core, and results waiting to be written
FOLDER_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC})
# zlib level 1 encodes photo cut-outs about 4x faster than PIL's default 6, for files ~15% larger.
PNG_COMPRESS_LEVEL = 1

T = TypeVar("T")
J = TypeVar("J")


class Failure(click.ClickException):
    """A one-line error that ends the command with exit code 1."""

    exit_code = EXIT_FAILED

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class Interrupted(click.exceptions.Exit):
    """Ctrl-C: the command stops with exit code 130 once its line is printed."""

    def __init__(self) -> None:
        super().__init__(EXIT_INTERRUPTED)


class Group(click.Group):
    """Ctrl-C anywhere ends with one line and exit code 130 (click's default would be 1)."""

    def invoke(self, ctx: click.Context) -> Any:
        with warnings.catch_warnings():
            warnings.showwarning = show_warning
            try:
                return super().invoke(ctx)
            except KeyboardInterrupt:
                click.echo("interrupted", err=True)
                raise Interrupted() from None


_show_warning = warnings.showwarning


def show_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    """handseg's own warnings (a model without a checksum) as one line on stderr; others as Python shows them."""
    if category.__module__.startswith("handseg"):
        click.echo(f"warning: {message}", err=True)
    else:
        _show_warning(message, category, *args, **kwargs)


class OutputFailed(Exception):
    """One output could not be written; the message names its input."""


class OutputUnwritable(Exception):
    """The output folder refuses writes, so no later output can be written either."""


@contextlib.contextmanager
def engine_errors() -> Iterator[None]:
    """Turn the engine's own errors into one-line failures."""
    from handseg_core.errors import HandsegError

    try:
        yield
    except HandsegError as exc:
        raise Failure(str(exc)) from None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --- reporting


def stderr_is_terminal() -> bool:
    return bool(getattr(sys.stderr, "isatty", None) and sys.stderr.isatty())


class Reporter:
    """A progress bar and messages on stderr; the bar only on a terminal and without -q."""

    def __init__(self, total: int, label: str, quiet: bool, show_item: Callable[[Any], str | None] | None = None):
        self.quiet = quiet
        self._bar = None
        if not quiet and stderr_is_terminal() and total > 0:
            self._bar = click.progressbar(
                length=total, label=label, file=sys.stderr, item_show_func=show_item, show_pos=True
            )

    def __enter__(self) -> "Reporter":
        if self._bar is not None:
            self._bar.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc_info)

    @property
    def shows_bar(self) -> bool:
        return self._bar is not None

    def advance(self, steps: int = 1, item: Any = None) -> None:
        if self._bar is not None:
            self._bar.update(steps, item)

    def move_to(self, position: int, item: Any = None) -> None:
        if self._bar is not None:
            self._bar.update(max(0, position - self._bar.pos), item)

    def error(self, message: str) -> None:
        """One line on stderr, always (also with -q)."""
        self._clear_bar_line()
        click.echo(f"error: {message}", err=True)

    def note(self, message: str) -> None:
        """One line on stderr, unless -q."""
        if not self.quiet:
            self._clear_bar_line()
            click.echo(message, err=True)

    def _clear_bar_line(self) -> None:
        if self._bar is not None:
            click.echo("\r\033[K", nl=False, err=True)


# --- options shared by the commands that run a model


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
    """How to load and run the model, from the shared options."""

    model: str | None
    device: str
    input_size: int | None
    flip_tta: bool
    refinement: Refinement
    quiet: bool
    adapt_size: bool = True
    find_hands: bool = True
    keep: str | int = "all"
    sidecar: bool = False

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> "ModelSettings":
        return cls(
            model=options["model"],
            device=options["device"],
            input_size=options["input_size"],
            flip_tta=options["flip_tta"],
            refinement=refinement_from(options),
            quiet=options["quiet"],
            adapt_size=options["adapt_size"] is not False,
            find_hands=options["find_hands"] is not False,
            keep=options["keep"],
            sidecar=options.get("sidecar", False),
        )

    def load(self) -> HandSegmenter:
        from handseg_core import load_model

        with engine_errors():
            return load_model(self.model, device=self.device, threads=inference_threads())

    def segment(self, session: HandSegmenter, image: np.ndarray | Path) -> SegmentationResult:
        return session.segment(image, self.refinement, input_size=self.input_size, flip_tta=self.flip_tta,
                               adapt_size=self.adapt_size, find_hands=self.find_hands, keep=self.keep)


def inference_threads() -> int:
    """One ONNX Runtime thread per image, with one image in flight per core (bench/RESULTS.md:
    19.7 images/s on 2 cores, against 11 with one image at a time on all cores but one)."""
    return 1


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 2


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


# --- inputs and outputs of a batch


@dataclass(frozen=True)
class Source:
    """An input image and the subfolder (of the output folder) its result goes into."""

    path: Path
    subfolder: Path = Path()


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path


@dataclass
class Plan:
    jobs: list[Job] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    skipped: int = 0


def is_image_name(path: Path) -> bool:
    from handseg_core.images import IMAGE_SUFFIXES

    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def is_within(path: Path, folder: Path) -> bool:
    """Whether `path` is `folder` or lies inside it (both resolved)."""
    return path == folder or folder in path.parents


def images_in(folder: Path, recursive: bool, exclude: Path | None) -> list[Source]:
    """Images in `folder` (and its subfolders when recursive, except the `exclude` tree)."""
    if not recursive:
        return [Source(p) for p in sorted(folder.iterdir()) if p.is_file() and is_image_name(p)]
    found = []
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and not (exclude and is_within((here / d).resolve(), exclude)))
        found += [Source(here / f, here.relative_to(folder)) for f in sorted(files) if is_image_name(Path(f))]
    return found


def expand_inputs(patterns: Iterable[str], recursive: bool, out_dir: Path) -> tuple[list[Source], list[str]]:
    """Files, folders and glob patterns -> the input images (each once), and one message per
    pattern that names no image. Outputs kept inside an input folder are not taken as inputs."""
    sources: list[Source] = []
    problems: list[str] = []
    for pattern in patterns:
        try:
            found, problem = expand_one(pattern, recursive, out_dir)
        except OSError as exc:
            found, problem = [], f"{pattern}: cannot be read ({exc.strerror or first_line(exc)})"
        sources += found
        if problem:
            problems.append(problem)
    return unique(sources), problems


def expand_one(pattern: str, recursive: bool, out_dir: Path) -> tuple[list[Source], str | None]:
    path = Path(pattern).expanduser()
    if path.is_file():
        return [Source(path)], None
    if path.is_dir():
        found = images_in(path, recursive, output_tree_inside(path, out_dir))
        hint = "" if recursive else "; --recursive looks in subfolders"
        return found, None if found else f"{pattern}: no images in this folder{hint}"
    if glob.has_magic(pattern):
        matches = [Path(m) for m in sorted(glob.glob(os.path.expanduser(pattern), recursive=True))]
        files = [Source(m) for m in matches if m.is_file()]
        return files, None if files else f"{pattern}: matches no files"
    return [], f"{pattern}: no such file or folder"


def output_tree_inside(folder: Path, out_dir: Path) -> Path | None:
    """The output folder when it lies strictly inside `folder`, else None."""
    folder, out_dir = folder.resolve(), out_dir.resolve()
    return out_dir if out_dir != folder and is_within(out_dir, folder) else None


def unique(sources: list[Source]) -> list[Source]:
    seen: set[str] = set()
    kept = []
    for source in sources:
        key = path_key(source.path)
        if key not in seen:
            seen.add(key)
            kept.append(source)
    return kept


def path_key(path: Path) -> str:
    return os.path.normcase(os.path.realpath(path))


def file_identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def plan_outputs(sources: list[Source], out_dir: Path, overwrite: bool) -> Plan:
    """One job per input; refuses outputs that would replace an input or another job's output,
    and skips outputs that exist already unless `overwrite`."""
    plan = Plan()
    inputs = {file_identity(s.path) for s in sources} - {None}
    claimed: dict[str, Path] = {}
    for source in sources:
        target = out_dir / source.subfolder / (source.path.stem + ".png")
        key = path_key(target)
        identity = file_identity(target)
        if identity is not None and identity in inputs:
            plan.problems.append(f"{source.path}: its output {target} would overwrite an input; "
                                 "choose another -o folder")
        elif key in claimed:
            plan.problems.append(f"{source.path}: not processed, {claimed[key]} also becomes {target}; "
                                 "rename one of them")
        else:
            claimed[key] = source.path
            if identity is not None and not overwrite:
                plan.skipped += 1
            else:
                plan.jobs.append(Job(source.path, target))
    return plan


# --- writing


@dataclass(frozen=True)
class Decoded:
    """A decoded input: its pixels for the model and, for cut-outs, the image itself."""

    rgb: np.ndarray | Image.Image | None  # None: the engine decodes the file itself (a large JPEG at reduced scale)
    image: Image.Image | None = None


Renderer = Callable[[Decoded, "SegmentationResult"], "Image.Image"]


def encode_png(image: Image.Image, stream: BinaryIO) -> None:
    image.save(stream, format="PNG", compress_level=PNG_COMPRESS_LEVEL)


def write_png(image: Image.Image, target: Path) -> None:
    """Write `image` to `target` atomically (handseg_core.atomic): the old file or the complete
    new one, the temporary file removed on any failure (Ctrl-C included)."""
    from handseg_core.atomic import write_atomically

    write_atomically(target, lambda stream: encode_png(image, stream))


def sidecar_path(target: Path) -> Path:
    return target.with_suffix(".json")


def save_result(render: Renderer, job: Job, decoded: Decoded, result: SegmentationResult, sidecar: bool) -> None:
    """Render and write one result (its JSON sidecar first, so that a PNG on disk has its JSON);
    a refusing folder stops the batch."""
    from handseg_core import atomic

    try:
        if sidecar:
            text = json.dumps({"source": str(job.source), **result.describe()})
            atomic.write_text(sidecar_path(job.target), text + "\n")
        write_png(render(decoded, result), job.target)
    except OSError as exc:
        reason = exc.strerror or first_line(exc)
        if exc.errno in FOLDER_ERRNOS:
            message = f"cannot write into {job.target.parent} ({reason}); choose a writable -o folder"
            raise OutputUnwritable(message) from None
        raise OutputFailed(f"{job.source}: cannot write {job.target} ({reason})") from None


# --- the batch


def read_ahead(items: Iterable[J], load: Callable[[J], T], pool: ThreadPoolExecutor,
               depth: int = AHEAD) -> Iterator[tuple[J, Future[T]]]:
    """Each item with the future of `load(item)`, keeping `depth` loads running ahead."""
    pending: deque[tuple[J, Future[T]]] = deque()
    for item in items:
        pending.append((item, pool.submit(load, item)))
        if len(pending) > depth:
            yield pending.popleft()
    while pending:
        yield pending.popleft()


def decode_failure(exc: Exception, path: Path) -> str:
    from handseg_core.errors import ImageError

    if isinstance(exc, ImageError):
        return str(exc)
    return f"{path}: cannot decode ({type(exc).__name__}: {first_line(exc)})"


@dataclass
class Counts:
    written: int = 0
    failed: int = 0


@dataclass(frozen=True)
class Outcome:
    """What decoding and segmenting one job gave: a result, or the line saying why not."""

    decoded: Decoded | None = None
    result: SegmentationResult | None = None
    failure: str | None = None


class Batch:
    """Runs jobs through decode and model (pool, one image per core) -> render and write (pool)."""

    def __init__(self, settings: ModelSettings, session: HandSegmenter, decode: Callable[[Path], Decoded],
                 render: Renderer, reporter: Reporter):
        self.settings = settings
        self.session = session
        self.decode = decode
        self.render = render
        self.reporter = reporter
        self.counts = Counts()
        self._writing: deque[tuple[Job, Future[None]]] = deque()

    def run(self, jobs: list[Job]) -> Counts:
        pool = ThreadPoolExecutor(cores() + AHEAD, thread_name_prefix="handseg")
        try:
            for job, working in read_ahead(jobs, self._work, pool, depth=cores() + AHEAD - 1):
                outcome = working.result()
                if outcome.failure is not None:
                    self._failed(outcome.failure)
                    continue
                self._writing.append((job, pool.submit(save_result, self.render, job, outcome.decoded, outcome.result,
                                                           self.settings.sidecar)))
                while len(self._writing) > AHEAD:
                    self._finish(*self._writing.popleft())
            while self._writing:
                self._finish(*self._writing.popleft())
        except KeyboardInterrupt:
            pool.shutdown(wait=True, cancel_futures=True)
            self.counts.written += sum(1 for _, w in self._writing if not w.cancelled() and w.exception() is None)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return self.counts

    def _work(self, job: Job) -> Outcome:
        from handseg_core.errors import HandsegError

        try:
            decoded = self.decode(job.source)
        except Exception as exc:  # decoders raise many kinds; each bad file is one line
            return Outcome(failure=decode_failure(exc, job.source))
        if decoded.rgb is None:  # the engine reads the file: its errors are the file's
            try:
                return Outcome(decoded, self.settings.segment(self.session, job.source))
            except Exception as exc:  # decoders raise many kinds; each bad file is one line
                return Outcome(failure=decode_failure(exc, job.source))
        try:
            return Outcome(decoded, self.settings.segment(self.session, decoded.rgb))
        except (HandsegError, MemoryError) as exc:
            return Outcome(failure=f"{job.source}: {first_line(exc)}")

    def _finish(self, job: Job, writing: Future[None]) -> None:
        from handseg_core.errors import HandsegError

        try:
            writing.result()
        except (OutputFailed, HandsegError) as exc:
            self._failed(first_line(exc))
            return
        self.counts.written += 1
        self.reporter.advance()

    def _failed(self, message: str) -> None:
        self.counts.failed += 1
        self.reporter.error(message)
        self.reporter.advance()


def decode_in_engine(path: Path) -> Decoded:
    """Masks need no pixels of their own: the engine decodes the file, a large JPEG only at the
    scale the network needs (a 12-megapixel photo at half scale)."""
    return Decoded(None)


def decode_with_image(path: Path) -> Decoded:
    """The image itself, for the engine and for the cut-out: no array copy of a large photo (the
    engine reduces one over its working size without one)."""
    from handseg_core.images import open_image

    image = open_image(path)
    return Decoded(image, image)


def summary(counts: Counts, plan: Plan, out_dir: Path) -> str:
    parts = [f"{counts.written} written to {out_dir}"]
    if plan.skipped:
        parts.append(f"{plan.skipped} skipped (already there; --overwrite redoes them)")
    failed = counts.failed + len(plan.problems)
    if failed:
        parts.append(f"{failed} failed")
    return ", ".join(parts)


def run_batch(inputs: tuple[str, ...], out_dir: Path, recursive: bool, overwrite: bool, settings: ModelSettings,
              label: str, decode: Callable[[Path], Decoded], render: Renderer) -> None:
    """Plan, load the model once, process, report; ends with exit code 0, 1 or 130."""
    sources, problems = expand_inputs(inputs, recursive, out_dir)
    plan = plan_outputs(sources, out_dir, overwrite)
    plan.problems[:0] = problems
    reporter = Reporter(len(plan.jobs), label, settings.quiet)
    for message in plan.problems:
        reporter.error(message)
    counts = Counts()
    if plan.jobs:
        make_folder(out_dir)
        batch = Batch(settings, settings.load(), decode, render, reporter)
        counts = batch.counts
        try:
            with reporter:
                batch.run(plan.jobs)
        except KeyboardInterrupt:
            click.echo(f"interrupted: {counts.written} of {len(plan.jobs)} written; run the same command again "
                       "to do the rest", err=True)
            raise Interrupted() from None
        except OutputUnwritable as exc:
            raise Failure(str(exc)) from None
    reporter.note(summary(counts, plan, out_dir))
    if counts.failed or plan.problems:
        raise click.exceptions.Exit(EXIT_FAILED)


def make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise Failure(f"cannot create the output folder {folder} ({exc.strerror or exc}); choose another -o") from None


# --- commands


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="handseg", prog_name="handseg", message="%(prog)s %(version)s")
def main() -> None:
    """Cut hands out of photos: masks, cut-outs, evaluation, training and export.

    Try `handseg mask photos/ -o masks/` or `handseg cutout "*.jpg" -o hands/`.
    """


def batch_command(function: Callable) -> Callable:
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
    function = model_options(refinement_options(function))
    for option in reversed(options):
        function = option(function)
    return function


@main.command()
@batch_command
def mask(inputs: tuple[str, ...], out_dir: Path, recursive: bool, overwrite: bool, **options: Any) -> None:
    """Write a hand mask for each INPUT: OUTPUT/<name>.png, 8-bit, 255 = hand, 0 = not
    (with grey levels at the edge with --feather).

    INPUT may be image files, folders (their images) or glob patterns such as "shots/*.jpg".
    Existing outputs are kept unless --overwrite; an input that fails is reported on one line and
    the others go on. Exit code 0: all done; 1: some input failed; 2: wrong usage; 130: Ctrl-C.
    """
    from PIL import Image

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


@main.command()
@click.option("-b", "--background", callback=parse_background, metavar="transparent|COLOUR|IMAGE",
              help="What shows where there is no hand: transparent (RGBA), a colour such as white or "
                   "#RRGGBB, or an image file (RGB)  [default: transparent]")
@batch_command
def cutout(inputs: tuple[str, ...], out_dir: Path, recursive: bool, overwrite: bool, background: Any,
           **options: Any) -> None:
    """Cut the hands out of each INPUT: OUTPUT/<name>.png, RGBA (RGB with --background).

    INPUT may be image files, folders (their images) or glob patterns such as "shots/*.jpg".
    Existing outputs are kept unless --overwrite; an input that fails is reported on one line and
    the others go on. Exit code 0: all done; 1: some input failed; 2: wrong usage; 130: Ctrl-C.
    """
    from handseg_core.compose import cutout_image

    settings = ModelSettings.from_options(options)
    run_batch(inputs, out_dir, recursive, overwrite, settings, "cutout", decode_with_image,
              lambda decoded, result: cutout_image(decoded.image, result.alpha, background, reuse=True))


# --- eval


def mask_pairs(folder: Path) -> tuple[list[tuple[Path, Path]], int]:
    """(image, mask) pairs of FOLDER/images and FOLDER/masks by file stem, and how many images
    have no mask."""
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


@main.command("eval")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@model_options
@refinement_options
@click.option("--json", "as_json", is_flag=True, help="Print the numbers as JSON.")
def evaluate(folder: Path, as_json: bool, **options: Any) -> None:
    """Measure a model on FOLDER/images and FOLDER/masks (paired by file stem).

    Prints the mean per-image hand IoU (an image where both masks are empty counts 1, one where
    only one is empty counts 0), and pixel accuracy, precision and recall over all pixels. Masks
    are hand where they are 128 or more. Refinement options apply as in `handseg mask`;
    --no-refine measures the raw network, as the numbers in `handseg models` do.
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


# --- models


def model_rows() -> list[dict]:
    from handseg_core import registry
    from handseg_core.errors import ModelError

    try:
        default = registry.default_model_name()
    except ModelError:
        default = ""
    rows = []
    for name, spec in registry.available_models().items():
        path = spec.path
        rows.append({
            "name": name,
            "default": name == default,
            "architecture": spec.architecture,
            "encoder": spec.encoder,
            "input_size": spec.input_size,
            "path": str(path),
            "size_bytes": path.stat().st_size if path.is_file() else None,
            "sha256": registry.expected_checksum(spec),
            "metrics": spec.metrics,
            "description": spec.description,
            "training_data": spec.training_data,
            "terms": spec.terms,
        })
    return rows


def metric_text(metrics: dict) -> str:
    """{"set": {"iou": 0.9, ...}} or {"set": 0.9} -> "set IoU 0.900"."""
    parts = []
    for name, value in metrics.items():
        iou = value.get("iou") if isinstance(value, dict) else value
        if isinstance(iou, (int, float)):
            parts.append(f"{name} IoU {iou:.3f}")
    return ", ".join(parts) or "-"


def models_table(rows: list[dict]) -> str:
    header = ("", "name", "encoder", "input", "size", "sha256", "metrics")
    lines = [header]
    for row in rows:
        size = "missing" if row["size_bytes"] is None else f"{row['size_bytes'] / 1e6:.1f} MB"
        lines.append(("*" if row["default"] else "", row["name"], row["encoder"] or "-", str(row["input_size"]),
                      size, row["sha256"][:12] or "-", metric_text(row["metrics"])))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)) + "  " + line[-1] for line in lines]
    return "\n".join(t.rstrip() for t in text) + "\n* default model (choose another with HANDSEG_DEFAULT_MODEL); more folders of models: HANDSEG_MODELS"


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def models(as_json: bool) -> None:
    """List the models handseg can load by name (packaged ones, then HANDSEG_MODELS folders)."""
    with engine_errors():
        rows = model_rows()
    click.echo(json.dumps(rows, indent=2) if as_json else models_table(rows))


# --- train


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


@main.command()
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
    except KeyboardInterrupt:
        click.echo(f"interrupted: checkpoints saved so far are in {out}", err=True)
        raise Interrupted() from None
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


# --- export


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

    return any(path_key(folder) == path_key(f) for f in registry.model_folders())


def export_rembg(model: str | None, rembg_home: Path | None) -> None:
    module = import_plugin("rembg", "the rembg export")
    with engine_errors():
        try:
            path, command = module.export_for_rembg(model, rembg_home)
        except (OSError, ValueError) as exc:
            raise Failure(first_line(exc)) from None
    click.echo(f"wrote {path}")
    click.echo(f"use it with: {command}")


@main.command()
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


@main.command()
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


# --- plug-ins


def import_plugin(name: str, what: str) -> Any:
    module = f"handseg_plugins.{name}"
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if exc.name and not module.startswith(exc.name):
            raise Failure(f"{what} needs the Python module {exc.name!r}, which is not installed") from None
        raise Failure(f"{what} is not available in this installation ({exc}); reinstall handseg") from None


@main.group()
def install() -> None:
    """Install the handseg plug-in into another program."""


@install.command("comfyui")
@click.argument("comfyui_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
def install_comfyui(comfyui_dir: Path) -> None:
    """Install the handseg nodes into the ComfyUI at COMFYUI_DIR.

    Writes custom_nodes/handseg/, a shim that loads the nodes from this handseg, and
    models/handseg/. A clone of the handseg repository already in custom_nodes/ is the pack
    itself: it is kept as it is and no shim is written."""
    module = import_plugin("comfyui", "the ComfyUI plug-in")
    with engine_errors():
        try:
            installed = module.install(comfyui_dir)
        except (OSError, ValueError) as exc:
            raise Failure(first_line(exc)) from None
    click.echo(f"the handseg nodes are in {installed}; restart ComfyUI to load them")


@install.command("gimp")
@click.option("--plugins-dir", type=click.Path(file_okay=False, path_type=Path),
              help="GIMP's plug-ins folder  [default: found from GIMP's settings]")
def install_gimp(plugins_dir: Path | None) -> None:
    """Install the handseg filter into GIMP."""
    module = import_plugin("gimp", "the GIMP plug-in")
    with engine_errors():
        try:
            report = module.install(plugins_dir)
        except (OSError, ValueError) as exc:
            raise Failure(first_line(exc)) from None
    click.echo(report)


@main.command()
@click.option("--port", type=click.IntRange(0, 65535), default=8501, show_default=True, help="Port to serve on.")
@click.option("--no-browser", is_flag=True, help="Do not open a browser tab.")
def app(port: int, no_browser: bool) -> None:
    """Start the handseg web app on this computer."""
    module = import_plugin("webapp", "the web app")
    with engine_errors():
        try:
            code = module.launch(port, not no_browser)
        except OSError as exc:
            raise Failure(f"cannot serve on port {port} ({exc.strerror or first_line(exc)})") from None
    raise click.exceptions.Exit(code or 0)


if __name__ == "__main__":
    main()
