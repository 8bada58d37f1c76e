"""Atomic writes: the target is its old self or the complete new one; no temporary file stays."""

from __future__ import annotations

import pytest

from handseg_core import atomic


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.suffix == ".tmp")


def test_write_bytes_text_and_copy(tmp_path):
    atomic.write_bytes(tmp_path / "sub" / "a.bin", b"abc")
    atomic.write_text(tmp_path / "b.txt", "héllo")
    atomic.copy_file(tmp_path / "sub" / "a.bin", tmp_path / "c.bin")
    assert (tmp_path / "sub" / "a.bin").read_bytes() == b"abc"
    assert (tmp_path / "b.txt").read_text(encoding="utf-8") == "héllo"
    assert (tmp_path / "c.bin").read_bytes() == b"abc"
    assert leftovers(tmp_path) == [] and leftovers(tmp_path / "sub") == []


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_a_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path, error):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old")

    def fail(stream):
        stream.write(b"half")
        raise error

    with pytest.raises(type(error)):
        atomic.write_atomically(target, fail)
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_replacing_gives_a_path_and_cleans_up(tmp_path):
    target = tmp_path / "part.safetensors"
    with pytest.raises(RuntimeError):
        with atomic.replacing(target) as temporary:
            temporary.write_bytes(b"x")
            raise RuntimeError("writer failed")
    assert not target.exists() and leftovers(tmp_path) == []
    with atomic.replacing(target) as temporary:
        temporary.write_bytes(b"done")
    assert target.read_bytes() == b"done" and leftovers(tmp_path) == []


def test_copying_a_missing_file_leaves_nothing(tmp_path):
    with pytest.raises(FileNotFoundError):
        atomic.copy_file(tmp_path / "missing", tmp_path / "copy")
    assert list(tmp_path.iterdir()) == []


def test_a_temporary_name_carries_its_writer(tmp_path):
    import os

    name = atomic.temporary_name(tmp_path / "a.png")
    assert name.parent == tmp_path and name.name.startswith(".a.png.") and name.name.endswith(f"-{os.getpid()}.tmp")
    assert atomic.temporary_name(tmp_path / "a.png", pid=12).name.endswith("-12.tmp")
    assert atomic.temporary_name(tmp_path / "a.png") != name


def ended_pid() -> int:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_only_leftovers_of_ended_writers_are_stale(tmp_path):
    import os
    import time

    stale = [tmp_path / ".a.png.a8b99370.tmp", atomic.temporary_name(tmp_path / "b.png", pid=ended_pid())]
    old = atomic.temporary_name(tmp_path / "c.png")  # a live pid, but two hours old: no write takes that long
    live = atomic.temporary_name(tmp_path / "d.png")
    others = [tmp_path / n for n in (".notes.tmp", "a.png.a8b99370.tmp", ".a.png.A8B99370.tmp", ".a.png.a8b9937.tmp",
                                     ".a.png.a8b99370.tmp.x", ".a.png.a8b99370-x.tmp", "photo.png")]
    for path in stale + others + [old, live]:
        path.write_bytes(b"")
    hours_ago = time.time() - 7200
    os.utime(old, (hours_ago, hours_ago))
    link = tmp_path / ".e.png.0123abcd.tmp"
    link.symlink_to(tmp_path / "photo.png")
    (tmp_path / ".f.png.0123abcd.tmp").mkdir()

    removed = atomic.remove_stale([tmp_path, tmp_path / "missing"])

    assert sorted(removed) == sorted(stale + [old])
    assert all(p.exists() for p in others + [live]) and link.is_symlink() and (tmp_path / ".f.png.0123abcd.tmp").is_dir()
