"""`bench/pair.py` times two models in turn on one tensor: each gets every run, in its own session.

Speeds are not asserted beyond order of magnitude: a benchmark is not a timed test.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))  # as `python bench/pair.py` has it, for bench/measure.py
from tiny_model import write_red_model  # noqa: E402

_spec = importlib.util.spec_from_file_location("handseg_bench_pair", ROOT / "bench" / "pair.py")
pair = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pair)
LITE0 = ROOT / "handseg_core" / "models" / "handseg-lite0.onnx"


def test_both_models_are_timed_each_run_and_a_real_network_is_slower_than_one_pixel_op(tmp_path):
    tiny = write_red_model(tmp_path)
    times = pair.time_pair(str(tiny), str(LITE0), runs=3, width=128, height=96, warmup=1)
    assert len(times["a"]) == len(times["b"]) == 3
    assert all(t > 0 for t in times["a"] + times["b"])
    assert min(times["b"]) > 3 * max(times["a"])  # 3.3 M parameters against a per-pixel formula


def test_command_line_prints_both_and_the_ratio(tmp_path):
    tiny = write_red_model(tmp_path)
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "pair.py"), str(tiny), str(tiny), "--runs", "2",
                          "--size", "64x48"], capture_output=True, text=True, check=True).stdout
    assert "A " in out and "B " in out and "B / A (medians): " in out
