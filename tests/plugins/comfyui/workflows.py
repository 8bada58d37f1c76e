"""Reading the example workflows as ComfyUI does: the UI format the frontend opens (nodes with
widget values in input order, links as [id, from node, from slot, to node, to slot, type]) and
the API format /prompt takes, made from it as the frontend's "Export (API)" does."""

from __future__ import annotations

import json
from pathlib import Path

import handseg_plugins.comfyui as pack
from handseg_plugins.comfyui import NODE_CLASS_MAPPINGS

PACKAGE = Path(pack.__file__).parent
REPO = PACKAGE.parents[1]
UI_FOLDERS = (REPO / "example_workflows", PACKAGE / "example_workflows")
API_FOLDER = PACKAGE / "workflows"
NAMES = ("remove_background", "hand_mask_for_inpainting")

# ComfyUI's own nodes the examples use (0.17): widgets in order (None: a frontend-only widget, as
# Load Image's upload button, not sent to /prompt), connection inputs, outputs.
BUILTINS = {
    "LoadImage": {"widgets": ["image", None], "inputs": {}, "outputs": ("IMAGE", "MASK")},
    "SaveImage": {"widgets": ["filename_prefix"], "inputs": {"images": "IMAGE"}, "outputs": ()},
    "MaskToImage": {"widgets": [], "inputs": {"mask": "MASK"}, "outputs": ("IMAGE",)},
}
# Nodes that live in the frontend only (never sent to /prompt).
FRONTEND_ONLY = {"Note", "MarkdownNote"}
WIDGET_KINDS = {"INT", "FLOAT", "BOOLEAN", "STRING"}


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def node_spec(class_type: str) -> dict:
    """widgets (names in order), inputs (connection name -> type), outputs (types) of a node."""
    if class_type in BUILTINS:
        return BUILTINS[class_type]
    spec = NODE_CLASS_MAPPINGS[class_type].INPUT_TYPES()
    widgets, inputs = [], {}
    for section in ("required", "optional"):
        for name, (kind, *_) in spec.get(section, {}).items():
            if isinstance(kind, list) or kind in WIDGET_KINDS:
                widgets.append(name)
            else:
                inputs[name] = kind
    return {"widgets": widgets, "inputs": inputs, "outputs": NODE_CLASS_MAPPINGS[class_type].RETURN_TYPES}


def ui_to_api(workflow: dict) -> dict:
    """The API-format prompt of a UI-format workflow."""
    links = {link[0]: link for link in workflow["links"]}
    prompt = {}
    for node in sorted(workflow["nodes"], key=lambda n: n["id"]):
        if node["type"] in FRONTEND_ONLY or node.get("mode", 0) != 0:
            continue
        spec = node_spec(node["type"])
        inputs = {name: value for name, value in zip(spec["widgets"], node.get("widgets_values", [])) if name}
        for slot in node.get("inputs", []):
            if slot.get("link") is not None:
                _, origin, origin_slot, *_ = links[slot["link"]]
                inputs[slot["name"]] = [str(origin), origin_slot]
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs,
                                   "_meta": {"title": node.get("title", node["type"])}}
    return prompt
