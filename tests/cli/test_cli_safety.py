"""Batches that meet bad files, existing outputs, failing writes and Ctrl-C."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time

import pytest
from PIL import Image

import handseg_cli
from handseg_core import atomic, batch
import handseg_core.session

from .helpers import SLOW_HANDSEG, digests, leftovers, save_picture


def test_a_bad_file_in_the_middle_gets_one_line_and_the_batch_goes_on(handseg, red_model, tmp_path):
    folder = tmp_path / "photos"
    save_picture(folder / "1.jpg")
    data = (folder / "1.jpg").read_bytes()
    (folder / "2.jpg").write_bytes(data[: len(data) // 2])
    save_picture(folder / "3.jpg")

    run = handseg("mask", folder, "-o", tmp_path / "out", "-m", red_model)

    assert run.exit_code == 1
    assert run.error_lines == run.lines_naming(folder / "2.jpg")
    assert len(run.error_lines) == 1 and "truncated" in run.error_lines[0]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["1.png", "3.png"]
    assert "2 written" in run.stderr and "1 failed" in run.stderr


def test_inputs_are_left_byte_for_byte_unchanged(handseg, photos, red_model, tmp_path):
    before = digests(photos)

    for command in ("mask", "cutout"):
        run = handseg(command, photos, "-o", tmp_path / command, "-m", red_model, "--overwrite")
        assert run.exit_code == 0, run.stderr

    assert digests(photos) == before


def test_missing_inputs_fail_with_one_line_each(handseg, photos, red_model, tmp_path):
    run = handseg("mask", photos / "a.jpg", tmp_path / "nope.jpg", str(tmp_path / "*.gif"), tmp_path / "photos",
                  "-o", tmp_path / "out", "-m", red_model)

    assert run.exit_code == 1
    assert run.error_lines == [f"error: {tmp_path / 'nope.jpg'}: no such file or folder",
                               f"error: {tmp_path / '*.gif'}: matches no files"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png", "c.png"]


def test_existing_outputs_are_kept_and_a_rerun_resumes(handseg, photos, red_model, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "b.png").write_bytes(b"someone else's file")
    first = handseg("mask", photos / "a.jpg", "-o", out, "-m", red_model)
    a_bytes = (out / "a.png").read_bytes()

    second = handseg("mask", photos, "-o", out, "-m", red_model)

    assert first.exit_code == 0 and second.exit_code == 0, second.stderr
    assert (out / "b.png").read_bytes() == b"someone else's file"
    assert (out / "a.png").read_bytes() == a_bytes
    assert (out / "c.png").exists()
    assert second.stderr.strip() == f"1 written to {out}, 2 skipped (already there; --overwrite redoes them)"


def test_overwrite_redoes_existing_outputs(handseg, photos, red_model, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"stale")

    run = handseg("mask", photos / "a.jpg", "-o", out, "-m", red_model, "--overwrite")

    assert run.exit_code == 0, run.stderr
    with Image.open(out / "a.png") as mask:
        assert mask.mode == "L" and mask.size == (64, 48)


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_an_output_never_replaces_an_input(handseg, photos, red_model, overwrite):
    before = digests(photos)

    run = handseg("mask", photos, "-o", photos, "-m", red_model, *overwrite)

    assert run.exit_code == 1
    assert len(run.error_lines) == 1
    assert run.lines_naming(photos / "b.png") == [
        f"error: {photos / 'b.png'}: its output {photos / 'b.png'} would overwrite an input; choose another -o folder"
    ]
    after = digests(photos)
    assert {name: after[name] for name in before} == before
    assert sorted(set(after) - set(before)) == ["a.png", "c.png"]


def test_two_inputs_with_one_name_are_a_reported_collision(handseg, red_model, tmp_path):
    folder = tmp_path / "photos"
    save_picture(folder / "a.jpg", 40, 30)
    save_picture(folder / "a.png", 50, 20)

    run = handseg("mask", folder, "-o", tmp_path / "out", "-m", red_model)

    assert run.exit_code == 1
    assert run.error_lines == run.lines_naming(folder / "a.png")
    assert len(run.error_lines) == 1 and str(folder / "a.jpg") in run.error_lines[0]
    assert Image.open(tmp_path / "out" / "a.png").size == (40, 30)


def test_a_refusing_output_folder_gives_one_line(handseg, photos, red_model, tmp_path, monkeypatch):
    def refuse(path, mode="r", *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(atomic, "open", refuse, raising=False)  # the writer the CLI uses
    out = tmp_path / "out"

    run = handseg("mask", photos, "-o", out, "-m", red_model)

    assert run.exit_code == 1
    assert run.stderr.strip().splitlines() == [
        f"error: cannot write into {out} (Permission denied); choose a writable -o folder"
    ]
    assert list(out.iterdir()) == []


def test_a_read_only_output_folder_gives_one_line(handseg, photos, red_model, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    try:
        if os.access(out, os.W_OK):
            pytest.skip("this user can write into read-only folders (root); see the monkeypatched test")
        run = handseg("mask", photos, "-o", out, "-m", red_model)
    finally:
        out.chmod(0o755)

    assert run.exit_code == 1
    assert run.stderr.strip().splitlines() == [
        f"error: cannot write into {out} (Permission denied); choose a writable -o folder"
    ]
    assert list(out.iterdir()) == []


def test_a_write_failing_midway_leaves_no_partial_file(handseg, photos, red_model, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "c.png").write_bytes(b"the old c")
    encode = batch.encode_png

    def fail_on_b_and_c(image, stream):
        if image.size in ((40, 56), (50, 50)):
            stream.write(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
            stream.flush()
            raise OSError(errno.EIO, "Input/output error")
        encode(image, stream)

    monkeypatch.setattr(batch, "encode_png", fail_on_b_and_c)

    run = handseg("mask", photos, "-o", out, "-m", red_model, "--overwrite")

    assert run.exit_code == 1
    assert run.error_lines == [
        f"error: {photos / 'b.png'}: cannot write {out / 'b.png'} (Input/output error)",
        f"error: {photos / 'c.webp'}: cannot write {out / 'c.png'} (Input/output error)",
    ]
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "c.png"]
    assert (out / "c.png").read_bytes() == b"the old c"
    assert Image.open(out / "a.png").size == (64, 48)


def test_interrupt_during_a_write_removes_the_temporary_file(tmp_path, monkeypatch):
    def interrupted(image, stream):
        stream.write(b"\x89PNG")
        raise KeyboardInterrupt

    monkeypatch.setattr(batch, "encode_png", interrupted)

    with pytest.raises(KeyboardInterrupt):
        batch.write_png(Image.new("L", (4, 4)), tmp_path / "x.png")

    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_mid_batch_stops_cleanly_and_a_rerun_finishes(handseg, photos, red_model, tmp_path, monkeypatch):
    calls = []
    segment = handseg_core.session.HandSegmenter.segment

    def interrupt_second(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return segment(self, *args, **kwargs)

    monkeypatch.setattr(handseg_core.session.HandSegmenter, "segment", interrupt_second)
    out = tmp_path / "out"

    run = handseg("cutout", photos, "-o", out, "-m", red_model)

    assert run.exit_code == 130
    written = sorted(p.name for p in out.iterdir())  # a.png, unless Ctrl-C came before its write began
    assert written in ([], ["a.png"])
    assert run.stderr.strip().splitlines() == [
        f"interrupted: {len(written)} of 3 written; run the same command again to do the rest"
    ]
    assert leftovers(tmp_path) == []
    if written:
        assert Image.open(out / "a.png").mode == "RGBA"

    monkeypatch.undo()
    rerun = handseg("cutout", photos, "-o", out, "-m", red_model)

    assert rerun.exit_code == 0, rerun.stderr
    skipped = f", {len(written)} skipped (already there; --overwrite redoes them)" if written else ""
    assert rerun.stderr.strip() == f"{3 - len(written)} written to {out}{skipped}"
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.png"]




def test_sigint_to_a_running_batch_exits_130_without_temporary_files(red_model, tmp_path):
    folder = tmp_path / "photos"
    for i in range(40):
        save_picture(folder / f"{i:02d}.png", 48, 32, seed=i)
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-c", SLOW_HANDSEG, "cutout", str(folder), "-o", str(out), "-m", str(red_model)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # As in a terminal: a test run started in the background (nohup, `&` without job control)
        # hands its children SIGINT ignored, and Python then never raises KeyboardInterrupt.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while not (out.is_dir() and any(out.glob("*.png"))) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1 and stderr.startswith("interrupted: ")
    assert leftovers(tmp_path) == []
    written = sorted(out.glob("*.png"))
    assert 1 <= len(written) < 40
    for path in written:
        with Image.open(path) as cut:
            cut.load()
            assert cut.mode == "RGBA" and cut.size == (48, 32)


def handseg_in_terminal(*args: str) -> tuple[int, str]:
    """Run `handseg` with stderr on a pseudo-terminal; returns (exit code, what the terminal got)."""
    import pty

    controller, terminal = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "handseg_cli", *args], stdout=subprocess.DEVNULL,
                               stderr=terminal, close_fds=True)
    os.close(terminal)
    received = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the terminal closes with the process
            break
        if not chunk:
            break
        received += chunk
    os.close(controller)
    return process.wait(timeout=60), received.decode(errors="replace")


def test_progress_bar_shows_on_a_terminal_only(handseg, photos, red_model, tmp_path):
    code, terminal = handseg_in_terminal("mask", str(photos), "-o", str(tmp_path / "tty"), "-m", str(red_model))
    piped = handseg("mask", photos, "-o", tmp_path / "piped", "-m", red_model)
    quiet = handseg("mask", photos, "-o", tmp_path / "quiet", "-m", red_model, "-q")

    assert code == 0
    assert "[####" in terminal and "3/3" in terminal
    assert piped.stderr == f"3 written to {tmp_path / 'piped'}\n"
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_quiet_still_reports_failures(handseg, photos, red_model, tmp_path):
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff")

    run = handseg("mask", photos, "-o", tmp_path / "out", "-m", red_model, "-q")

    assert run.exit_code == 1
    assert run.stderr.splitlines() == run.lines_naming(photos / "broken.jpg")
    assert len(run.stderr.splitlines()) == 1
