"""Atomic writes: a file is either its old self or the complete new one, never half written.

Each writer writes a temporary file beside the target (same folder, so the rename cannot cross
file systems), then renames it over the target with `os.replace`. On any failure, Ctrl-C
included, the temporary file is removed and the exception goes on.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path
from typing import BinaryIO, Callable, Iterator


def temporary_name(target: Path) -> Path:
    """A hidden name beside `target`, unique to this write (runs side by side do not collide)."""
    return target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")


@contextlib.contextmanager
def replacing(target: str | os.PathLike) -> Iterator[Path]:
    """A temporary path to write `target` through: renamed onto `target` when the block ends
    without error, removed when it raises. For writers that want a path (torch.save,
    safetensors); the folder is created when missing.

        with replacing(path) as temporary:
            save_file(tensors, str(temporary))
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_name(target)
    try:
        yield temporary
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def write_atomically(target: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Write `target` atomically with `write(stream)`, a binary stream of a new temporary file.

    Raises:
        OSError: the folder refuses the write (the target is left as it was).
    """
    with replacing(target) as temporary:
        with open(temporary, "xb") as stream:
            write(stream)


def write_bytes(target: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `target` atomically."""
    write_atomically(target, lambda stream: stream.write(data))


def write_text(target: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write `text` to `target` atomically."""
    write_bytes(target, text.encode(encoding))


def copy_file(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Copy `source` to `target` atomically (the bytes, not the permissions)."""
    with replacing(target) as temporary:
        shutil.copyfile(source, temporary)
