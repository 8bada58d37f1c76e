"""What a plug-in test watches: the files Python opens."""

from __future__ import annotations

import os


def opened_files(monkeypatch) -> list[str]:
    """Record every file that Python opens from here on (builtins.open, Path.read_*, io.open)."""
    import builtins
    import io
    import pathlib

    opened: list[str] = []
    real_open = builtins.open

    def spy(file, *args, **kwargs):
        opened.append(os.fspath(file) if isinstance(file, (str, os.PathLike)) else repr(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy)
    monkeypatch.setattr(io, "open", spy)
    monkeypatch.setattr(pathlib.Path, "open", lambda self, *a, **k: spy(self, *a, **k))
    return opened
