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
