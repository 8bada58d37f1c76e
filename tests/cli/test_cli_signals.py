"""Real signals to a real `handseg` process mid-batch, leftovers of a killed run, and reruns."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from .helpers import SLOW_HANDSEG, leftovers, save_picture

COUNT = 40


def default_signals() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def start_slow_batch(red_model: Path, folder: Path, out: Path) -> subprocess.Popen:
    for i in range(COUNT):
        save_picture(folder / f"{i:02d}.png", 48, 32, seed=i)
    return subprocess.Popen(
        [sys.executable, "-c", SLOW_HANDSEG, "cutout", str(folder), "-o", str(out), "-m", str(red_model)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # as in a terminal: a background test run (nohup, `&`) hands its children SIGINT and SIGHUP ignored
        preexec_fn=default_signals,
    )


def wait_for_outputs(out: Path, count: int = 1) -> None:
    deadline = time.monotonic() + 60
    while not (out.is_dir() and len(list(out.glob("*.png"))) >= count) and time.monotonic() < deadline:
        time.sleep(0.02)


def complete_outputs(out: Path) -> list[Path]:
    written = sorted(out.glob("*.png"))
    for path in written:
        with Image.open(path) as cut:
            cut.load()
            assert cut.mode == "RGBA" and cut.size == (48, 32)
    return written


@pytest.mark.parametrize("signum, code, word", [(signal.SIGTERM, 143, "terminated"), (signal.SIGHUP, 129, "hung up"),
                                               (signal.SIGINT, 130, "interrupted")])
def test_a_signal_mid_batch_cleans_up_and_counts_what_is_on_disk(red_model, tmp_path, signum, code, word):
    out = tmp_path / "out"
    process = start_slow_batch(red_model, tmp_path / "photos", out)
    wait_for_outputs(out, 3)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == code, stderr
    assert "Traceback" not in stderr
    written = complete_outputs(out)
    assert 3 <= len(written) < COUNT
    assert stderr.strip().splitlines() == [
        f"{word}: {len(written)} of {COUNT} written; run the same command again to do the rest"]
    assert leftovers(tmp_path) == []


def test_after_sigkill_a_rerun_removes_the_leftovers_and_finishes(red_model, tmp_path):
    out = tmp_path / "out"
    process = start_slow_batch(red_model, tmp_path / "photos", out)
    wait_for_outputs(out, 2)
    process.kill()
    process.communicate(timeout=60)
    (out / ".05.png.a8b99370.tmp").write_bytes(b"")  # what a kill mid-write leaves (as an older handseg named it)
    done = len(complete_outputs(out))

    rerun = subprocess.run([sys.executable, "-m", "handseg_cli", "cutout", str(tmp_path / "photos"), "-o", str(out),
                            "-m", str(red_model)], capture_output=True, text=True, timeout=120)

    assert rerun.returncode == 0, rerun.stderr
    assert leftovers(tmp_path) == []
    assert len(complete_outputs(out)) == COUNT
    assert rerun.stderr.strip() == (f"{COUNT - done} written to {out}, {done} skipped "
                                    "(already there; --overwrite redoes them)")


def test_a_rerun_removes_only_its_own_stale_temporary_files(handseg, photos, red_model, tmp_path):
    from handseg_core import atomic

    save_picture(photos / "sub" / "d.png")  # with -r: out/sub is an output folder too
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "elsewhere").mkdir()
    ours = [out / ".a.png.a8b99370.tmp", out / "sub" / ".x.png.0123abcd.tmp",
            atomic.temporary_name(out / "b.png", pid=dead_pid())]
    theirs = [out / "elsewhere" / ".y.png.0123abcd.tmp",  # not a folder this run writes to
              out / ".notes.tmp", out / "keep.tmp", out / ".a.png.zzzzzzzz.tmp", out / "a.png.a8b99370.tmp",
              out / ".a.png.a8b99370.tmp.bak", atomic.temporary_name(out / "c.png", pid=os.getpid())]  # a live writer's
    for path in ours + theirs:
        path.write_bytes(b"partial")

    run = handseg("cutout", photos, "-o", out, "-m", red_model, "-r")

    assert run.exit_code == 0, run.stderr
    assert [p for p in ours if p.exists()] == []
    assert [p for p in theirs if not p.exists()] == []


def dead_pid() -> int:
    """The id of a process that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_glob_that_matches_the_output_folder_never_takes_outputs_as_inputs(handseg, red_model, tmp_path):
    folder = tmp_path / "IN"
    save_picture(folder / "a.jpg")
    save_picture(folder / "deeper" / "b.png")
    pattern = str(folder / "**" / "*")

    first = handseg("cutout", pattern, "-o", folder / "cutouts", "-m", red_model)
    again = handseg("cutout", pattern, "-o", folder / "cutouts", "-m", red_model)

    assert first.exit_code == 0, first.stderr
    assert again.exit_code == 0, again.stderr
    assert again.stderr.strip() == f"0 written to {folder / 'cutouts'}, 2 skipped (already there; --overwrite redoes them)"
    assert sorted(p.name for p in (folder / "cutouts").iterdir()) == ["a.png", "b.png"]
