"""Peak memory of a real `handseg` process on a large photo, measured from outside the engine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from tiny_model import HAND_RGB, hand_shape

ROOT = Path(__file__).parents[2]
# The handseg CLI, reporting its own high-water mark (VmHWM: since its exec, so not the pytest
# process it was started from) on stderr as it exits.
RUN_MEASURED = (
    "import atexit, sys; sys.path.insert(0, sys.argv.pop(1)); "
    "atexit.register(lambda: print('peak_kib', [l.split()[1] for l in open('/proc/self/status') "
    "if l.startswith('VmHWM')][0], file=sys.stderr)); "
    "from handseg_cli import main; main()"
)
WIDTH, HEIGHT = 6000, 4500  # 27 Mpx: before the engine worked large photos reduced, its cut-out peaked at 1,130 MiB
BOUNDS_MIB = {"cutout": 700, "mask": 450}  # measured 410 and 280 MiB


@pytest.fixture(scope="module")
def large_photo(tmp_path_factory) -> Path:
    """A red hand on a smooth background (a small file, quick to write), WIDTH x HEIGHT."""
    path = tmp_path_factory.mktemp("large") / "large.png"
    y = np.linspace(0, 1, HEIGHT, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, WIDTH, dtype=np.float32)[None, :]
    rgb = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    rgb[..., 0] = 40 + 60 * x * y
    rgb[..., 1] = 150 + 80 * y
    rgb[..., 2] = 160 + 60 * x
    rgb[hand_shape(WIDTH, HEIGHT)] = HAND_RGB
    cv2.imwrite(str(path), rgb[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1])
    return path


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak from /proc (Linux)")
@pytest.mark.parametrize("command", ["cutout", "mask"])
def test_a_large_photo_stays_within_its_memory_bound(red_model, large_photo, tmp_path, command):
    photo = large_photo
    out = tmp_path / "out"

    run = subprocess.run([sys.executable, "-c", RUN_MEASURED, str(ROOT), command, str(photo), "-o", str(out), "-q",
                          "-m", str(red_model)], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})

    assert run.returncode == 0, run.stderr
    peak_mib = int(run.stderr.split("peak_kib")[-1].split()[0]) / 1024
    assert peak_mib <= BOUNDS_MIB[command], f"{command} peaked at {peak_mib:.0f} MiB"
    with Image.open(out / "large.png") as result:
        assert result.size == (WIDTH, HEIGHT)
        alpha = np.asarray(result.getchannel("A" if command == "cutout" else "L"))
    truth = hand_shape(WIDTH, HEIGHT)
    assert np.count_nonzero((alpha > 127) & truth) / np.count_nonzero((alpha > 127) | truth) > 0.97
