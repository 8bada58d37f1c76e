"""Install the handseg nodes into a ComfyUI folder.

What is installed is a small shim package, `custom_nodes/handseg/`, that imports the nodes from
the handseg package. ComfyUI must therefore run with a Python in which handseg is installed
(`<ComfyUI's python> -m pip install <a handseg checkout>`); the shim says so when it is not.

A handseg repository cloned into custom_nodes/ (or the Registry's zip unpacked there) is a pack
of its own: its root __init__.py loads the nodes. Installing then writes no shim (ComfyUI would
list every node twice); it only makes models/handseg/.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from handseg_core import HandsegError

PACK_NAME = "handseg"
# UI-format workflows and their thumbnails, for the frontend's template browser.
EXAMPLE_WORKFLOWS = Path(__file__).parent / "example_workflows"

SHIM = '''"""handseg hand-segmentation nodes, installed by `handseg install comfyui`.

The nodes live in the handseg package: run ComfyUI with a Python in which handseg is installed.
"""

import sys

try:
    from handseg_plugins.comfyui import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
except ImportError as exc:
    raise ImportError(
        f"the handseg nodes need the handseg package in the Python that runs ComfyUI ({sys.executable}): "
        f"run `{sys.executable} -m pip install /path/to/handseg` with a checkout of handseg, or clone handseg "
        f"into custom_nodes/ instead of this folder and run `pip install -r requirements.txt` there ({exc})"
    ) from exc

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
'''

_SHIM_SIGNATURE = "from handseg_plugins.comfyui import NODE_CLASS_MAPPINGS"
# What a clone of the handseg repository (or the Registry's zip) has at its root.
_CLONE_FILES = ("__init__.py", "requirements.txt", "handseg_plugins/comfyui/nodes.py", "handseg_core/__init__.py")


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


def is_clone(folder: Path) -> bool:
    """Whether `folder` is a handseg repository (a git clone, or the Registry's zip unpacked)."""
    return folder.is_dir() and not folder.is_symlink() and all((folder / name).is_file() for name in _CLONE_FILES)


def find_clone(custom_nodes: Path) -> Path | None:
    """The handseg clone among the packs in `custom_nodes`, whatever it is called; None if none."""
    candidates = [custom_nodes / PACK_NAME, *sorted(p for p in custom_nodes.iterdir() if p.name != PACK_NAME)]
    return next((folder for folder in candidates if is_clone(folder)), None)


def _check_target(target: Path) -> None:
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise InstallError(f"{target} exists and is not a folder handseg made; move it away and install again")
    shim = target / "__init__.py"
    if target.exists() and any(target.iterdir()):
        if not shim.is_file() or _SHIM_SIGNATURE not in shim.read_text(errors="replace"):
            raise InstallError(
                f"{target} exists and was not made by handseg (neither its shim nor a clone of handseg); "
                "move it away and install again"
            )


def install(comfyui_dir: Path) -> Path:
    """Install the handseg nodes into ComfyUI; returns the installed folder.

    Writes `COMFYUI_DIR/custom_nodes/handseg/` (a shim that imports the nodes from the installed
    handseg package, plus the example workflows the template browser lists) and creates
    `COMFYUI_DIR/models/handseg/` for extra .onnx models. Installing again updates the shim.
    ComfyUI must run with a Python in which handseg is installed. Where custom_nodes/ already
    holds a clone of the handseg repository (under any name), that clone is the pack: nothing is
    written to it, and its folder is returned.

    Raises:
        InstallError: COMFYUI_DIR is not a ComfyUI folder (no main.py or custom_nodes/), or
            custom_nodes/handseg exists and is neither a shim handseg wrote nor a clone of handseg.
    """
    root = Path(comfyui_dir).expanduser().resolve()
    _check_comfyui(root)
    clone = find_clone(root / "custom_nodes")
    if clone is not None:
        (root / "models" / PACK_NAME).mkdir(parents=True, exist_ok=True)
        return clone
    target = root / "custom_nodes" / PACK_NAME
    _check_target(target)
    target.mkdir(exist_ok=True)
    (target / "__init__.py").write_text(SHIM)
    examples = target / "example_workflows"
    examples.mkdir(exist_ok=True)
    for example in sorted([*EXAMPLE_WORKFLOWS.glob("*.json"), *EXAMPLE_WORKFLOWS.glob("*.jpg")]):
        shutil.copyfile(example, examples / example.name)
    (root / "models" / PACK_NAME).mkdir(parents=True, exist_ok=True)
    return target
