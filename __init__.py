"""handseg as a ComfyUI node pack, for a git clone or the Registry's zip in `custom_nodes/`.

ComfyUI loads this file and reads NODE_CLASS_MAPPINGS and NODE_DISPLAY_NAME_MAPPINGS; the nodes
are `handseg_plugins.comfyui`, imported from this folder (run `pip install -r requirements.txt`
with ComfyUI's Python for the engine's dependencies). Nothing happens until those names are asked
for, so importing this file elsewhere (pytest collecting the repository, a build backend) does
nothing. `pip install .` does not install it: the package is handseg_core and handseg_plugins.
"""

import importlib.machinery
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_PACKAGES = ("handseg_core", "handseg_plugins")
_EXPORTS = ("NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS")


class _ThisFolderFirst:
    """Finds handseg_core and handseg_plugins in this folder before any installed handseg, so the
    nodes run the code of the clone ComfyUI loaded, without putting the folder on sys.path."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name in _PACKAGES:
            return importlib.machinery.PathFinder.find_spec(name, [_HERE])
        return None


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _ThisFolderFirst not in sys.meta_path:
        sys.meta_path.insert(0, _ThisFolderFirst)
    try:
        from handseg_plugins import comfyui
    except ImportError as exc:
        raise ImportError(
            f"the handseg nodes need the engine's dependencies in the Python that runs ComfyUI ({sys.executable}): "
            f"run `{sys.executable} -m pip install -r {os.path.join(_HERE, 'requirements.txt')}` ({exc})"
        ) from exc
    values = {export: getattr(comfyui, export) for export in _EXPORTS}
    globals().update(values)
    return values[name]


__all__ = list(_EXPORTS)
