"""Batches of image files: which inputs, which outputs, and the pipeline that writes them.

The command line's `mask` and `cutout` run on it, and any front that writes files can:

    >>> from handseg_core import batch, load_model
    >>> sources, problems = batch.expand_inputs(["photos/"], recursive=True, out_dir=Path("masks"))
    >>> plan = batch.plan_outputs(sources, Path("masks"), overwrite=False)
    >>> session = load_model()
    >>> counts = batch.Batch(session.segment, batch.decode_in_engine,
    ...                      lambda decoded, result: Image.fromarray(result.alpha)).run(plan.jobs)

Inputs are files, folders and glob patterns, each image taken once; outputs never replace an
input or each other, and outputs that exist are kept unless asked (so a rerun resumes). Every
file is written atomically (`handseg_core.atomic`).
"""

from __future__ import annotations

import errno
import io
import json
import os
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterable, Iterator, Protocol, TypeVar

from handseg_core import atomic
from handseg_core.errors import HandsegError, ImageError, first_line
from handseg_core.images import open_image
# Which inputs and outputs (planning) live in plan.py; they are part of this module's API.
from handseg_core.plan import (  # noqa: F401
    Job, Plan, Source, Wording, expand_inputs, file_identity, glob_root, is_image_name, path_key, plan_outputs,
    unique_stems,
)

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from handseg_core.session import SegmentationResult

AHEAD = 2  # images in flight beyond one per core, and results waiting to be written
# Pixels of the images in flight at once (decoded, segmented, being written): five photos of the
# engine's working size (session.WORK_PIXELS) as before; a photo larger than that goes alone.
BATCH_PIXELS = 80_000_000
FOLDER_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC})
# zlib level 1 encodes photo cut-outs about 4x faster than PIL's default 6, for files ~15% larger.
PNG_COMPRESS_LEVEL = 1

T = TypeVar("T")
J = TypeVar("J")


class OutputFailed(HandsegError):
    """One output could not be written; the message names its input."""


class OutputUnwritable(HandsegError):
    """The output folder refuses writes, so no later output can be written either."""

    def __init__(self, folder: Path, reason: str):
        self.folder, self.reason = folder, reason
        super().__init__(f"cannot write into {folder} ({reason})")


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 2


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
    atomic.write_atomically(target, lambda stream: encode_png(image, stream))


def png_bytes(image: Image.Image) -> bytes:
    """`image` as PNG bytes, encoded as the batch writes its files."""
    buffer = io.BytesIO()
    encode_png(image, buffer)
    return buffer.getvalue()


def sidecar_path(target: Path) -> Path:
    """Where a result's JSON description goes: beside its PNG."""
    return target.with_suffix(".json")


def save_result(render: Renderer, job: Job, decoded: Decoded, result: SegmentationResult, sidecar: bool) -> None:
    """Render and write one result (its JSON sidecar first, so that a PNG on disk has its JSON).

    Raises:
        OutputUnwritable: the folder refuses writes (the batch stops).
        OutputFailed: this one output could not be written.
    """
    try:
        if sidecar:
            text = json.dumps({"source": str(job.source), **result.describe()})
            atomic.write_text(sidecar_path(job.target), text + "\n")
        write_png(render(decoded, result), job.target)
    except OSError as exc:
        reason = exc.strerror or first_line(exc)
        if exc.errno in FOLDER_ERRNOS:
            raise OutputUnwritable(job.target.parent, reason) from None
        raise OutputFailed(f"{job.source}: cannot write {job.target} ({reason})") from None


# --- the pipeline


class Budget:
    """How many pixels of images a batch holds at once (decoded, segmented, being written): a
    folder of 150-megapixel photos is then worked one photo at a time, however many cores."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0
        self._changed = threading.Condition()

    def fits(self, amount: int) -> bool:
        """Whether `amount` more fits now (always, when nothing is held)."""
        with self._changed:
            return self.used == 0 or self.used + amount <= self.limit

    def take(self, amount: int) -> None:
        """Hold `amount`, once it fits: waits for what others give back (writes under way)."""
        with self._changed:
            self._changed.wait_for(lambda: self.used == 0 or self.used + amount <= self.limit)
            self.used += amount

    def give(self, amount: int) -> None:
        with self._changed:
            self.used -= amount
            self._changed.notify_all()


def read_ahead(items: Iterable[J], load: Callable[[J], T], pool: ThreadPoolExecutor, depth: int = AHEAD,
               weight: Callable[[J], int] | None = None,
               budget: Budget | None = None) -> Iterator[tuple[J, Future[T]]]:
    """Each item with the future of `load(item)`, keeping `depth` loads running ahead; with a
    `budget`, only as many as their `weight`s fit in it (the consumer gives each weight back
    when it is done with the item; the first item in flight always goes)."""
    pending: deque[tuple[J, Future[T]]] = deque()
    for item in items:
        if budget is not None and weight is not None:
            amount = weight(item)
            while pending and not budget.fits(amount):
                yield pending.popleft()
            budget.take(amount)  # nothing pending here: waits only for writes under way
        pending.append((item, pool.submit(load, item)))
        if len(pending) > depth:
            yield pending.popleft()
    while pending:
        yield pending.popleft()


def image_pixels(path: Path) -> int:
    """Width x height from the file's header (0 where it cannot be read: the decoder will say why)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.width * image.height
    except Exception:  # noqa: BLE001  (any unreadable file: its own decode reports it)
        return 0


def decode_failure(exc: Exception, path: Path) -> str:
    """The line that says why `path` could not be decoded."""
    if isinstance(exc, ImageError):
        return str(exc)
    return f"{path}: cannot decode ({type(exc).__name__}: {first_line(exc)})"


@dataclass
class Counts:
    """How many outputs a batch wrote, and how many inputs failed."""

    written: int = 0
    failed: int = 0


@dataclass(frozen=True)
class Outcome:
    """What decoding and segmenting one job gave: a result, or the line saying why not."""

    decoded: Decoded | None = None
    result: SegmentationResult | None = None
    failure: str | None = None


class Progress(Protocol):
    """What a batch tells its front: one line for each input that fails, a step for each done."""

    def error(self, message: str) -> None: ...

    def advance(self, steps: int = 1, item: Any = None) -> None: ...


class Silent:
    """Progress that shows nothing (the failures are still counted)."""

    def error(self, message: str) -> None:
        pass

    def advance(self, steps: int = 1, item: Any = None) -> None:
        pass


class Batch:
    """Runs jobs through decode and model (a pool, one image per core) -> render and write (the
    same pool), a few images ahead: the pipeline every front that writes files shares.

    segment: an image (a path where `decode` gives no pixels, else RGB) -> its result, e.g. a
        session's `segment` with the front's settings.
    decode: a job's source -> `Decoded` (`decode_in_engine` or `decode_with_image`).
    render: (decoded, result) -> the image to write.
    sidecar: also write each result's JSON description beside it (`sidecar_path`).
    """

    def __init__(self, segment: Callable[[Any], SegmentationResult], decode: Callable[[Path], Decoded],
                 render: Renderer, progress: Progress = Silent(), sidecar: bool = False):
        self.segment = segment
        self.decode = decode
        self.render = render
        self.reporter = progress
        self.sidecar = sidecar
        self.counts = Counts()
        self._lock = threading.Lock()
        self._writing: deque[tuple[Job, Future[None]]] = deque()

    def run(self, jobs: list[Job]) -> Counts:
        """Process `jobs`; each failure is one line to the progress and the batch goes on.

        Raises:
            OutputUnwritable: the output folder refuses writes (what was written stays).
            KeyboardInterrupt: after the outputs being written are complete or removed.
        """
        pool = ThreadPoolExecutor(cores() + AHEAD, thread_name_prefix="handseg")
        budget = Budget(BATCH_PIXELS)
        held: dict[Job, int] = {}

        def weigh(job: Job) -> int:
            held[job] = image_pixels(job.source)
            return held[job]

        try:
            for job, working in read_ahead(jobs, self._work, pool, cores() + AHEAD - 1, weigh, budget):
                self._write(pool, job, working.result(), lambda amount=held.pop(job, 0): budget.give(amount))
                working = None  # its image goes once written, not once the next one is read
                while len(self._writing) > AHEAD:
                    self._finish(*self._writing.popleft())
            while self._writing:
                self._finish(*self._writing.popleft())
        finally:
            # Writes under way finish (or remove their temporary file) before this returns, also
            # on Ctrl-C; `counts.written` has counted each file as it landed.
            pool.shutdown(wait=True, cancel_futures=True)
        return self.counts

    def _write(self, pool: ThreadPoolExecutor, job: Job, outcome: Outcome, release: Callable[[], None]) -> None:
        """Start writing one outcome (or report its failure); `release` once it is let go."""
        if outcome.failure is not None:
            release()
            self._failed(outcome.failure)
            return
        writing = pool.submit(save_result, self.render, job, outcome.decoded, outcome.result, self.sidecar)
        writing.add_done_callback(self._count_written)
        writing.add_done_callback(lambda _: release())
        self._writing.append((job, writing))

    def _count_written(self, writing: Future[None]) -> None:
        """Count a write where it ends (a pool thread), so that Ctrl-C in the loop cannot lose
        one that landed meanwhile."""
        if not writing.cancelled() and writing.exception() is None:
            with self._lock:
                self.counts.written += 1

    def _work(self, job: Job) -> Outcome:
        try:
            decoded = self.decode(job.source)
        except Exception as exc:  # decoders raise many kinds; each bad file is one line
            return Outcome(failure=decode_failure(exc, job.source))
        if decoded.rgb is None:  # the engine reads the file: its errors are the file's
            try:
                return Outcome(decoded, self.segment(job.source))
            except Exception as exc:  # decoders raise many kinds; each bad file is one line
                return Outcome(failure=decode_failure(exc, job.source))
        try:
            return Outcome(decoded, self.segment(decoded.rgb))
        except (HandsegError, MemoryError) as exc:
            return Outcome(failure=f"{job.source}: {first_line(exc)}")

    def _finish(self, job: Job, writing: Future[None]) -> None:
        try:
            writing.result()
        except OutputUnwritable:
            raise
        except (OutputFailed, HandsegError) as exc:
            self._failed(first_line(exc))
            return
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
    """The image itself, for the engine and for the cut-out (its own transparency, its full
    size): no array copy of a large photo (the engine reduces one over its working size without
    one)."""
    image = open_image(path)
    return Decoded(image, image)
