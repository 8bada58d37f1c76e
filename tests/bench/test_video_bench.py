"""bench/video.py runs and prints its table (figures meaningless at this size)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not (ROOT.parent / "shared" / "data" / "egohands_cross14").is_dir(), reason="no shared data")
def test_the_video_table_comes_out():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--video", "--quick"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()[2:]]
    assert [row[:2] for row in rows] == [["1", "1"], ["2", "1"], ["1", "2"]]
    assert all(float(value) > 0 for row in rows for value in row[2:])
