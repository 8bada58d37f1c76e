from __future__ import annotations

import copy
import tomllib

import numpy as np
import pytest
import torch
from PIL import Image

from handseg_plugins.comfyui import NODE_CLASS_MAPPINGS
from handseg_plugins.comfyui.models import model_choices

from .conftest import comfy_images
from .workflows import API_FOLDER, BUILTINS, FRONTEND_ONLY, NAMES, REPO, UI_FOLDERS, load, node_spec, ui_to_api

PYPROJECT = REPO / "pyproject.toml"
UI = {name: load(UI_FOLDERS[0] / f"{name}.json") for name in NAMES}
API = {name: load(API_FOLDER / f"{name}.json") for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_the_ui_workflow_parses_into_node_types_the_pack_registers(name):
    workflow = UI[name]
    assert {"nodes", "links", "version"} <= set(workflow) and workflow["version"] >= 0.4
    types = {node["type"] for node in workflow["nodes"]}
    assert types <= set(NODE_CLASS_MAPPINGS) | set(BUILTINS) | FRONTEND_ONLY
    assert any(t in NODE_CLASS_MAPPINGS for t in types)
    nodes = {node["id"]: node for node in workflow["nodes"]}
    assert workflow["last_node_id"] == max(nodes) and workflow["last_link_id"] == max(l[0] for l in workflow["links"])
    for link_id, origin, origin_slot, target, target_slot, kind in workflow["links"]:
        assert node_spec(nodes[origin]["type"])["outputs"][origin_slot] == kind
        assert nodes[origin]["outputs"][origin_slot]["type"] == kind and link_id in nodes[origin]["outputs"][origin_slot]["links"]
        slot = nodes[target]["inputs"][target_slot]
        assert slot["link"] == link_id and node_spec(nodes[target]["type"])["inputs"][slot["name"]] == kind
    for node in workflow["nodes"]:
        if node["type"] in FRONTEND_ONLY:
            continue
        spec = node_spec(node["type"])
        assert len(node["widgets_values"]) == len(spec["widgets"]), node["type"]
        assert {slot["name"] for slot in node["inputs"]} <= set(spec["inputs"])


@pytest.mark.parametrize("name", NAMES)
def test_the_ui_workflows_widget_values_are_accepted(name):
    for node in UI[name]["nodes"]:
        if node["type"] not in NODE_CLASS_MAPPINGS:
            continue
        spec = NODE_CLASS_MAPPINGS[node["type"]].INPUT_TYPES()
        options = {**spec["required"], **spec.get("optional", {})}
        for widget, value in zip(node_spec(node["type"])["widgets"], node["widgets_values"]):
            kind, *extra = options[widget]
            if isinstance(kind, list):
                assert value in kind, (widget, value)
            elif kind in ("INT", "FLOAT"):
                assert extra[0]["min"] <= value <= extra[0]["max"], (widget, value)
            else:
                assert {"BOOLEAN": bool, "STRING": str}[kind] is type(value), (widget, value)


@pytest.mark.parametrize("name", NAMES)
def test_the_api_copy_is_the_ui_workflow_exported(name):
    assert API[name] == ui_to_api(UI[name])


@pytest.mark.parametrize("name", NAMES)
def test_each_template_has_a_thumbnail_and_one_copy_for_clone_and_wheel(name):
    first, second = UI_FOLDERS
    for suffix in (".json", ".jpg"):
        assert (first / f"{name}{suffix}").read_bytes() == (second / f"{name}{suffix}").read_bytes(), \
            f"example_workflows/{name}{suffix} and handseg_plugins/comfyui/example_workflows/ differ: copy one over the other"
    with Image.open(first / f"{name}.jpg") as thumbnail:
        assert thumbnail.format == "JPEG" and min(thumbnail.size) >= 256


def test_the_examples_run_as_shipped_on_a_fresh_comfyui():
    # Load Image reads ComfyUI's input folder, where a fresh ComfyUI has only example.png
    for name in NAMES:
        assert [node["inputs"]["image"] for node in API[name].values() if node["class_type"] == "LoadImage"] == ["example.png"]
        models = [node["inputs"]["model"] for node in API[name].values() if node["class_type"] == "HandsegLoadModel"]
        assert models and all(model in model_choices() for model in models)


def run_api(prompt: dict, images, nodes: dict | None = None) -> list:
    """Run an API prompt through the pack's nodes; Load Image gives `images`, Save Image collects."""
    saved, results = [], {}

    def run(node_id: str):
        if node_id in results:
            return results[node_id]
        node = prompt[node_id]
        inputs = {k: run(v[0])[v[1]] if isinstance(v, list) else v for k, v in node["inputs"].items()}
        kind = node["class_type"]
        if kind == "LoadImage":
            out = (images, torch.zeros(images.shape[:3]))
        elif kind == "SaveImage":
            saved.append(inputs["images"])
            out = ()
        elif kind == "MaskToImage":
            out = (inputs["mask"][..., None].expand(-1, -1, -1, 3),)
        else:
            cls = (nodes or NODE_CLASS_MAPPINGS)[kind]
            out = getattr(cls(), cls.FUNCTION)(**inputs)
        results[node_id] = out
        return out

    for node_id, node in prompt.items():
        if node["class_type"] == "SaveImage":
            run(node_id)
    return saved


def test_the_remove_background_example_runs(red_model_file):
    prompt = copy.deepcopy(API["remove_background"])
    prompt["2"]["inputs"]["model"] = "tiny-red.onnx"
    images, _ = comfy_images(2)
    (image,) = run_api(prompt, images)
    assert tuple(image.shape) == (2, 37, 53, 4)
    alpha = image[..., 3].numpy()
    assert set(np.unique(alpha)) <= {0.0, 1.0}
    kept = alpha > 0
    assert kept.any()
    np.testing.assert_allclose(image[..., :3].numpy()[kept], images.numpy()[kept], atol=1 / 255)
    assert not image[..., :3].numpy()[~kept].any()


def test_the_inpainting_example_grows_and_feathers_the_hand_mask(red_model_file):
    prompt = copy.deepcopy(API["hand_mask_for_inpainting"])
    prompt["2"]["inputs"]["model"] = "tiny-red.onnx"
    images, truth = comfy_images(1, width=120, height=90)
    (image,) = run_api(prompt, images)
    mask = image[0, ..., 0].numpy()
    assert (mask[truth[0]] > 0.5).mean() > 0.95  # the hand is inside
    soft = (mask > 0.02) & (mask < 0.98)
    assert soft.any() and (mask > 0.5).sum() > truth[0].sum()  # feathered, and grown


def test_pyproject_has_the_comfy_registry_section():
    comfy = tomllib.loads(PYPROJECT.read_text())["tool"]["comfy"]
    assert {"PublisherId", "DisplayName", "Icon", "includes"} <= set(comfy)
    assert comfy["DisplayName"]
