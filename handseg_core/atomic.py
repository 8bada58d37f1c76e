"""Atomic writes: a file is either its old self or the complete new one, never half written.

Each writer writes a temporary file beside the target (same folder, so the rename cannot cross
file systems), then renames it over the target with `os.replace`. On any failure, Ctrl-C
included, the temporary file is removed and the exception goes on. A process killed outright
(SIGKILL, a power cut) cannot remove it: its name carries the writer's process id, and
`remove_stale` removes such leftovers when their process is gone.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator


# `.<name>.<8 hex>-<pid>.tmp`, and without the pid as handseg named them before 2026-12-02.
_TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{8}(?:-(?P<pid>[0-9]+))?\.tmp$")
STALE_AGE_S = 3600  # no single write takes this long: a temporary this old is a leftover, whoever wrote it


def temporary_name(target: Path, pid: int | None = None) -> Path:
    """A hidden name beside `target`, unique to this write (runs side by side do not collide),
    naming the process that writes it (`pid`, default this one) so that a later run can tell a
    killed run's leftover from a live writer's file (`remove_stale`)."""
    return target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}-{os.getpid() if pid is None else pid}.tmp")


def is_stale(path: Path) -> bool:
    """Whether `path` is a temporary file of handseg's naming that no running writer will finish:
    its process has ended (or the name is of the older kind, without one), or it is over an hour
    old. Any other name is never stale."""
    match = _TEMPORARY.match(path.name)
    if match is None:
        return False
    try:
        if time.time() - path.lstat().st_mtime > STALE_AGE_S:
            return True
    except OSError:
        return False
    pid = match.group("pid")
    return pid is None or not _running(int(pid))


def _running(pid: int) -> bool:
    if os.name != "posix":
        return True  # no harmless way to ask (os.kill(pid, 0) ends a process on Windows): age decides
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale(folders: Iterable[str | os.PathLike]) -> list[Path]:
    """Remove the stale temporary files (`is_stale`) directly inside each folder, as a killed run
    left them; returns what was removed. Nothing else is touched: not other names, not links,
    not subfolders."""
    removed = []
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            path = Path(entry.path)
            if entry.is_file(follow_symlinks=False) and is_stale(path):
                with contextlib.suppress(OSError):
                    os.unlink(path)
                    removed.append(path)
    return removed


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
