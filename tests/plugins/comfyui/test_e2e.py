from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("e2e_comfyui.py")


@pytest.mark.slow
def test_the_nodes_run_in_a_real_comfyui():
    if not os.environ.get("COMFYUI_DIR"):
        pytest.skip("set COMFYUI_DIR (and COMFYUI_PYTHON) to run the nodes in a real ComfyUI")
    result = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0 and "PASSED" in result.stdout, result.stdout[-5000:] + result.stderr[-3000:]
