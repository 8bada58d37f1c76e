"""Install the handseg nodes into a ComfyUI folder.

What is installed is a small shim package, `custom_nodes/handseg/`, that imports the nodes from
the handseg package. ComfyUI must therefore run with a Python in which handseg is installed
(`<ComfyUI's python> -m pip install handseg`); the shim says so when it is not.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from handseg_core import HandsegError

PACK_NAME = "handseg"
WORKFLOWS = Path(__file__).parent / "workflows"

SHIM = '''"""handseg hand-segmentation nodes, installed by `handseg install comfyui`.

The nodes live in the handseg package: run ComfyUI with a Python in which handseg is installed.
"""

import sys

try:
    from handseg_plugins.comfyui import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
except ImportError as exc:
    raise ImportError(
        f"the handseg nodes need the handseg package in the Python that runs ComfyUI ({sys.executable}): "
        f"run `{sys.executable} -m pip install handseg` ({exc})"
    ) from exc

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
'''

_SHIM_SIGNATURE = "from handseg_plugins.comfyui import NODE_CLASS_MAPPINGS"


class InstallError(HandsegError):
    """The handseg nodes cannot be installed into the given folder."""


def _check_comfyui(root: Path) -> None:
    if not root.is_dir():
        raise InstallError(f"{root}: no such folder; give the ComfyUI folder (the one with main.py and custom_nodes/)")
    missing = [name for name in ("main.py", "custom_nodes") if not (root / name).exists()]
    if missing or not (root / "custom_nodes").is_dir():
        raise InstallError(
            f"{root} does not look like ComfyUI (no {' or '.join(missing) or 'custom_nodes/ folder'}); "
            "give the folder that holds main.py and custom_nodes/"
        )


def _check_target(target: Path) -> None:
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise InstallError(f"{target} exists and is not a folder handseg made; move it away and install again")
    shim = target / "__init__.py"
    if target.exists() and any(target.iterdir()):
        if not shim.is_file() or _SHIM_SIGNATURE not in shim.read_text(errors="replace"):
            raise InstallError(f"{target} exists and was not made by handseg; move it away and install again")


def install(comfyui_dir: Path) -> Path:
    """Install the handseg nodes into ComfyUI; returns the installed folder.

    Writes `COMFYUI_DIR/custom_nodes/handseg/` (a shim that imports the nodes from the installed
    handseg package, plus example workflows) and creates `COMFYUI_DIR/models/handseg/` for extra
    .onnx models. Installing again updates the shim. ComfyUI must run with a Python in which
    handseg is installed.

    Raises:
        InstallError: COMFYUI_DIR is not a ComfyUI folder (no main.py or custom_nodes/), or
            custom_nodes/handseg exists and was not made by handseg.
    """
    root = Path(comfyui_dir).expanduser().resolve()
    _check_comfyui(root)
    target = root / "custom_nodes" / PACK_NAME
    _check_target(target)
    target.mkdir(exist_ok=True)
    (target / "__init__.py").write_text(SHIM)
    examples = target / "example_workflows"
    examples.mkdir(exist_ok=True)
    for workflow in sorted(WORKFLOWS.glob("*.json")):
        shutil.copyfile(workflow, examples / workflow.name)
    (root / "models" / PACK_NAME).mkdir(parents=True, exist_ok=True)
    return target
