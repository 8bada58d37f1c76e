from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import torch

import handseg_plugins.comfyui as pack
from handseg_plugins.comfyui import NODE_CLASS_MAPPINGS
from handseg_plugins.comfyui.models import model_choices

from .conftest import comfy_images

WORKFLOW = Path(pack.__file__).parent / "workflows" / "remove_background.json"
PYPROJECT = Path(__file__).parents[3] / "pyproject.toml"
BUILTIN_OUTPUTS = {"LoadImage": ("IMAGE", "MASK")}
BUILTIN_INPUTS = {"LoadImage": {"image"}, "SaveImage": {"images", "filename_prefix"}}


def _workflow() -> dict:
    return json.loads(WORKFLOW.read_text())


def _output_types(class_type: str) -> tuple[str, ...]:
    return BUILTIN_OUTPUTS.get(class_type) or NODE_CLASS_MAPPINGS[class_type].RETURN_TYPES


def test_the_example_is_load_image_to_save_image_through_handseg():
    classes = [node["class_type"] for node in _workflow().values()]
    assert classes == ["LoadImage", "HandsegLoadModel", "HandsegRemoveBackground", "SaveImage"]


def test_the_example_is_a_valid_api_prompt():
    workflow = _workflow()
    for node in workflow.values():
        class_type, inputs = node["class_type"], node["inputs"]
        if class_type in BUILTIN_INPUTS:
            assert set(inputs) == BUILTIN_INPUTS[class_type]
            continue
        spec = NODE_CLASS_MAPPINGS[class_type].INPUT_TYPES()
        assert set(spec["required"]) <= set(inputs) <= set(spec["required"]) | set(spec.get("optional", {}))
        for name, value in inputs.items():
            kind, *options = {**spec["required"], **spec.get("optional", {})}[name]
            if isinstance(value, list):
                source, index = value
                assert _output_types(workflow[source]["class_type"])[index] == kind
            elif isinstance(kind, list):
                assert value in kind
            elif kind == "FLOAT":
                assert options[0]["min"] <= value <= options[0]["max"]
            else:
                assert {"BOOLEAN": bool, "STRING": str}[kind] is type(value)
    assert workflow["2"]["inputs"]["model"] in model_choices()


def test_the_example_runs():
    images, _ = comfy_images(2)
    saved = []
    results = {}

    def run(node_id: str):
        if node_id in results:
            return results[node_id]
        node = _workflow()[node_id]
        inputs = {k: run(v[0])[v[1]] if isinstance(v, list) else v for k, v in node["inputs"].items()}
        if node["class_type"] == "LoadImage":
            out = (images, torch.zeros(2, 37, 53))
        elif node["class_type"] == "SaveImage":
            saved.append(inputs["images"])
            out = ()
        else:
            cls = NODE_CLASS_MAPPINGS[node["class_type"]]
            out = getattr(cls(), cls.FUNCTION)(**inputs)
        results[node_id] = out
        return out

    run("4")
    (image,) = saved
    assert tuple(image.shape) == (2, 37, 53, 4)
    alpha = image[..., 3].numpy()
    assert set(np.unique(alpha)) <= {0.0, 1.0}
    kept = alpha > 0
    np.testing.assert_allclose(image[..., :3].numpy()[kept], images.numpy()[kept], atol=1 / 255)
    assert not image[..., :3].numpy()[~kept].any()


def test_pyproject_has_the_comfy_registry_section():
    comfy = tomllib.loads(PYPROJECT.read_text())["tool"]["comfy"]
    assert {"PublisherId", "DisplayName", "Icon", "includes"} <= set(comfy)
    assert comfy["DisplayName"]
