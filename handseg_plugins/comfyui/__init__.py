"""handseg nodes for ComfyUI: load a model, find hands, remove the background, refine masks, and
hands as Impact Pack SEGS.

ComfyUI reads NODE_CLASS_MAPPINGS and NODE_DISPLAY_NAME_MAPPINGS. Two ways in: clone the handseg
repository into custom_nodes/ (its root __init__.py loads this package), or install handseg and
run `handseg install comfyui COMFYUI_DIR` (or `install(path)` from here), which writes a shim;
ComfyUI must then run with a Python in which handseg is installed.
"""

from handseg_plugins.comfyui import nodes, segs
from handseg_plugins.comfyui.install import install
from handseg_plugins.comfyui.models import register_models_folder

register_models_folder()

NODE_CLASS_MAPPINGS = {**nodes.NODE_CLASS_MAPPINGS, **segs.NODE_CLASS_MAPPINGS}
NODE_DISPLAY_NAME_MAPPINGS = {**nodes.NODE_DISPLAY_NAME_MAPPINGS, **segs.NODE_DISPLAY_NAME_MAPPINGS}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "install"]
