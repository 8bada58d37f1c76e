"""handseg nodes for ComfyUI: load a model, find hands, remove the background, refine masks.

ComfyUI reads NODE_CLASS_MAPPINGS and NODE_DISPLAY_NAME_MAPPINGS. Install the nodes into a
ComfyUI folder with `handseg install comfyui COMFYUI_DIR` (or `install(path)` from here); ComfyUI
must run with a Python in which handseg is installed.
"""

from handseg_plugins.comfyui.install import install
from handseg_plugins.comfyui.models import register_models_folder
from handseg_plugins.comfyui.nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

register_models_folder()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "install"]
