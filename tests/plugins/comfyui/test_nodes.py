from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import handseg_core
from handseg_core import HandsegError, Refinement
from handseg_plugins.comfyui import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from handseg_plugins.comfyui.nodes import (
    MODEL_TYPE,
    HandsegHandMask,
    HandsegLoadModel,
    HandsegRefineMask,
    HandsegRemoveBackground,
)

from .conftest import comfy_images

CONNECTION_TYPES = {"IMAGE", "MASK", MODEL_TYPE}


def widget_defaults(node: type) -> dict:
    """The values ComfyUI's widgets start with: each widget's default, or a dropdown's first entry."""
    values = {}
    spec = node.INPUT_TYPES()
    for section in ("required", "optional"):
        for name, (kind, *options) in spec.get(section, {}).items():
            if isinstance(kind, list):
                values[name] = kind[0]
            elif kind not in CONNECTION_TYPES:
                values[name] = options[0]["default"]
    return values


def iou(mask: np.ndarray, truth: np.ndarray) -> float:
    return float((mask & truth).sum() / max(1, (mask | truth).sum()))


@pytest.mark.parametrize("key", list(NODE_CLASS_MAPPINGS))
def test_node_contract(key):
    node = NODE_CLASS_MAPPINGS[key]
    assert key.startswith("Handseg") and NODE_DISPLAY_NAME_MAPPINGS[key].startswith("Handseg: ")
    assert node.CATEGORY == "handseg" and node.DESCRIPTION
    assert len(node.RETURN_TYPES) == len(node.RETURN_NAMES) == len(node.OUTPUT_TOOLTIPS)
    parameters = inspect.signature(getattr(node, node.FUNCTION)).parameters
    spec = node.INPUT_TYPES()
    for name in spec["required"]:
        assert parameters[name].default is inspect.Parameter.empty or name in ("invert",)
    for name in spec.get("optional", {}):
        assert parameters[name].default is not inspect.Parameter.empty
    assert set(spec["required"]) | set(spec.get("optional", {})) == set(parameters) - {"self"}
    for section in spec.values():
        for kind, *options in section.values():
            if options and "min" in options[0]:
                assert options[0]["min"] <= options[0]["default"] <= options[0]["max"]


def test_every_node_with_a_mask_input_offers_invert():
    for node in NODE_CLASS_MAPPINGS.values():
        spec = node.INPUT_TYPES()
        inputs = {**spec["required"], **spec.get("optional", {})}
        if any(kind == "MASK" for kind, *_ in inputs.values()):
            assert any(name.startswith("invert") and kind == "BOOLEAN" for name, (kind, *_) in inputs.items())
            assert "1 - alpha" in node.DESCRIPTION


def test_widget_defaults_are_a_valid_refinement():
    values = widget_defaults(HandsegHandMask)
    values.pop("flip_tta")
    assert values.pop("max_size") == 0  # 0: the model's own input size
    assert values.pop("hands") == "all"
    assert values.pop("treat_as_video") is False  # each image on its own unless asked
    assert Refinement(**values) == Refinement()


@pytest.mark.parametrize("batch", [1, 3])
def test_hand_mask_matches_the_engine(red_model, batch):
    images, truth = comfy_images(batch)
    mask, probability = HandsegHandMask().find_hands(red_model, images, **widget_defaults(HandsegHandMask))
    for out in (mask, probability):
        assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
        assert tuple(out.shape) == (batch, 37, 53)
        assert 0.0 <= out.min() and out.max() <= 1.0
    assert set(np.unique(mask.numpy())) <= {0.0, 1.0}
    for i in range(batch):
        rgb = (images[i].numpy() * 255).round().astype(np.uint8)
        expected = red_model.segment(rgb, Refinement())
        np.testing.assert_array_equal(mask[i].numpy(), expected.alpha / 255.0)
        np.testing.assert_allclose(probability[i].numpy(), expected.probability, atol=1e-6)
        assert iou(mask[i].numpy() > 0.5, truth[i]) > 0.8


def test_hand_mask_refinement_inputs_reach_the_engine(red_model):
    images, _ = comfy_images(1, 160, 120)
    node = HandsegHandMask()
    plain, _ = node.find_hands(red_model, images, 0.5)
    grown, _ = node.find_hands(red_model, images, 0.5, dilate=0.05)
    soft, _ = node.find_hands(red_model, images, 0.5, feather=0.05)
    assert grown.sum() > plain.sum() * 1.2
    assert ((soft > 0.05) & (soft < 0.95)).sum() > 100
    nothing, _ = node.find_hands(red_model, images, 1.0)
    assert nothing.sum() == 0


def test_max_size_reaches_the_engine(red_model):
    images, _ = comfy_images(1, 160, 120)
    rgb = (images[0].numpy() * 255).round().astype(np.uint8)
    coarse, _ = HandsegHandMask().find_hands(red_model, images, 0.5, max_size=32)
    np.testing.assert_array_equal(coarse[0].numpy(), red_model.segment(rgb, Refinement(), input_size=32).alpha / 255.0)
    fine, _ = HandsegHandMask().find_hands(red_model, images, 0.5)
    assert (coarse != fine).sum() > 50
    _, cut = HandsegRemoveBackground().remove_background(red_model, images, False, "white", 0.5, 0.0, max_size=32)
    np.testing.assert_array_equal(cut.numpy(), coarse.numpy())


def test_nodes_reuse_the_loaded_session(red_model_file, monkeypatch):
    first = HandsegLoadModel().load("tiny-red.onnx", "cpu")[0]
    assert HandsegLoadModel().load("tiny-red.onnx", "cpu")[0] is first
    monkeypatch.setattr(handseg_core, "load_model", lambda *a, **k: pytest.fail("a node reloaded the model"))
    images, _ = comfy_images(3)
    HandsegHandMask().find_hands(first, images, **widget_defaults(HandsegHandMask))
    HandsegRemoveBackground().remove_background(first, images, **widget_defaults(HandsegRemoveBackground))


@pytest.mark.parametrize("batch", [1, 3])
def test_remove_background_rgb_on_colour(red_model, batch):
    images, truth = comfy_images(batch)
    values = widget_defaults(HandsegRemoveBackground) | {"transparent": False, "background": "#00FF00"}
    out, mask = HandsegRemoveBackground().remove_background(red_model, images, **values)
    assert out.dtype == torch.float32 and tuple(out.shape) == (batch, 37, 53, 3)
    assert tuple(mask.shape) == (batch, 37, 53) and mask.dtype == torch.float32
    hand = mask.numpy() == 1.0
    background = mask.numpy() == 0.0
    assert hand.any() and background.any()
    np.testing.assert_allclose(out.numpy()[hand], images.numpy()[hand], atol=1 / 255)
    np.testing.assert_array_equal(out.numpy()[background], np.broadcast_to([0.0, 1.0, 0.0], out.numpy()[background].shape))
    assert all(iou(hand[i], truth[i]) > 0.8 for i in range(batch))


def test_remove_background_is_transparent_by_default(red_model):
    images, _ = comfy_images(1)
    out, mask = HandsegRemoveBackground().remove_background(red_model, images, **widget_defaults(HandsegRemoveBackground))
    assert tuple(out.shape) == (1, 37, 53, 4)
    np.testing.assert_allclose(out[..., 3].numpy(), mask.numpy())


def test_remove_background_transparent_is_rgba_with_the_mask_as_alpha(red_model):
    images, _ = comfy_images(3)
    values = widget_defaults(HandsegRemoveBackground) | {"transparent": True, "background": "not a colour"}
    out, mask = HandsegRemoveBackground().remove_background(red_model, images, **values)
    assert tuple(out.shape) == (3, 37, 53, 4)
    np.testing.assert_array_equal(out[..., 3].numpy(), mask.numpy())
    kept = mask.numpy() > 0
    np.testing.assert_allclose(out[..., :3].numpy()[kept], images.numpy()[kept], atol=1 / 255)
    assert not out[..., :3].numpy()[~kept].any()  # nothing of the background left under alpha 0


def test_remove_background_feather_gives_a_soft_alpha(red_model):
    images, _ = comfy_images(1, 160, 120)
    values = widget_defaults(HandsegRemoveBackground) | {"transparent": True, "feather": 0.05}
    out, mask = HandsegRemoveBackground().remove_background(red_model, images, **values)
    soft = (mask > 0.05) & (mask < 0.95)
    assert soft.sum() > 100
    np.testing.assert_array_equal(out[..., 3].numpy(), mask.numpy())


def test_remove_background_refuses_non_colours_and_never_reads_files(red_model, tmp_path):
    picture = tmp_path / "secret.png"
    Image.new("RGB", (53, 37), "red").save(picture)
    images, _ = comfy_images(1)
    node = HandsegRemoveBackground()
    for background in ("no such colour", str(picture)):
        values = widget_defaults(HandsegRemoveBackground) | {"transparent": False, "background": background}
        with pytest.raises(HandsegError, match="not a colour"):
            node.remove_background(red_model, images, **values)
    for background in ("fff", "#123456", "black"):
        values = widget_defaults(HandsegRemoveBackground) | {"transparent": False, "background": background}
        node.remove_background(red_model, images, **values)


def load_image_like_comfyui(rgba: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """IMAGE and MASK as ComfyUI's Load Image makes them from an RGBA picture: mask = 1 - alpha."""
    image = torch.from_numpy(rgba[..., :3].astype(np.float32) / 255.0)[None]
    mask = 1.0 - torch.from_numpy(rgba[..., 3].astype(np.float32) / 255.0)[None]
    return image, mask


def _rgba_picture(width=53, height=37, soft=True) -> np.ndarray:
    rng = np.random.default_rng(3)
    rgba = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
    alpha = np.zeros((height, width), np.uint8)
    alpha[5:30, 10:40] = 255
    if soft:
        alpha[5:30, 10] = 128
    rgba[..., 3] = alpha
    return rgba


def test_remove_background_with_a_load_image_mask_and_invert_gives_the_alpha_back(red_model):
    rgba = _rgba_picture()
    image, mask = load_image_like_comfyui(rgba)
    values = widget_defaults(HandsegRemoveBackground) | {"transparent": True}
    out, used = HandsegRemoveBackground().remove_background(red_model, image, **values | {"mask": mask, "invert_mask": True})
    np.testing.assert_allclose(out[0, ..., 3].numpy() * 255, rgba[..., 3], atol=0.51)
    np.testing.assert_allclose(used[0].numpy() * 255, rgba[..., 3], atol=0.51)
    out, used = HandsegRemoveBackground().remove_background(red_model, image, **values | {"mask": mask, "invert_mask": False})
    np.testing.assert_allclose(out[0, ..., 3].numpy() * 255, 255 - rgba[..., 3].astype(int), atol=0.51)


def test_remove_background_broadcasts_one_mask_and_refuses_mismatched_batches(red_model):
    images, _ = comfy_images(3)
    values = widget_defaults(HandsegRemoveBackground) | {"transparent": True}
    one = torch.zeros(1, 37, 53)
    one[0, :10] = 1.0
    out, used = HandsegRemoveBackground().remove_background(red_model, images, **values, mask=one)
    assert tuple(used.shape) == (3, 37, 53) and all((used[i] == one[0]).all() for i in range(3))
    with pytest.raises(HandsegError, match="2 masks .* 3 images"):
        HandsegRemoveBackground().remove_background(red_model, images, **values, mask=torch.zeros(2, 37, 53))
    with pytest.raises(HandsegError, match="mask is"):
        HandsegRemoveBackground().remove_background(red_model, images, **values, mask=torch.zeros(1, 36, 53))


def test_refine_mask_invert_turns_a_load_image_mask_into_the_alpha():
    rgba = _rgba_picture(soft=False)
    _, mask = load_image_like_comfyui(rgba)
    (inverted,) = HandsegRefineMask().refine(mask, dilate=0.0, erode=0.0, feather=0.0, invert=True)
    np.testing.assert_array_equal(inverted[0].numpy(), rgba[..., 3] / 255.0)
    (kept,) = HandsegRefineMask().refine(mask, dilate=0.0, erode=0.0, feather=0.0, invert=False)
    np.testing.assert_array_equal(kept[0].numpy(), 1.0 - rgba[..., 3] / 255.0)


def test_refine_mask_thresholds_at_one_half():
    mask = torch.tensor([[[0.0, 0.49, 0.5, 0.51, 1.0]]])
    (out,) = HandsegRefineMask().refine(mask, 0.0, 0.0, 0.0)
    np.testing.assert_array_equal(out.numpy(), [[[0.0, 0.0, 1.0, 1.0, 1.0]]])


@pytest.mark.parametrize("shape", [(37, 53), (1, 37, 53), (3, 37, 53)])
def test_refine_mask_dilate_erode_feather(shape):
    mask = torch.zeros(shape)
    mask[..., 10:27, 15:38] = 0.9
    node = HandsegRefineMask()
    (plain,) = node.refine(mask, 0.0, 0.0, 0.0)
    (grown,) = node.refine(mask, 0.1, 0.0, 0.0)
    (shrunk,) = node.refine(mask, 0.0, 0.1, 0.0)
    (soft,) = node.refine(mask, 0.0, 0.0, 0.1)
    batch = shape[0] if len(shape) == 3 else 1
    for out in (plain, grown, shrunk, soft):
        assert out.dtype == torch.float32 and tuple(out.shape) == (batch, 37, 53)
        assert 0.0 <= out.min() and out.max() <= 1.0
    assert plain.sum() == batch * 17 * 23
    assert grown.sum() > plain.sum() > shrunk.sum() > 0
    assert ((soft > 0) & (soft < 1)).any() and set(np.unique(plain.numpy())) == {0.0, 1.0}


TWO_HANDS = Path(__file__).parents[2] / "data" / "hands" / "utk_4_1_1_20170109194538070.jpg"


@pytest.mark.parametrize("node", [HandsegHandMask, HandsegRemoveBackground])
def test_hands_choice_reaches_the_engine(node):
    session = handseg_core.load_model(device="cpu")
    rgb = np.asarray(Image.open(TWO_HANDS).convert("RGB"))
    images = torch.from_numpy(rgb[None].astype(np.float32) / 255)
    values = widget_defaults(node)
    assert values["hands"] == "all"

    def mask_of(hands: str) -> np.ndarray:
        outputs = getattr(node(), node.FUNCTION)(session, images, **{**values, "hands": hands})
        return (outputs[0] if node is HandsegHandMask else outputs[1])[0].numpy()

    every, left = mask_of("all"), mask_of("left")
    refinement = Refinement(threshold=values["threshold"], feather=values["feather"])
    expected = session.segment(rgb, refinement, keep="left").alpha / 255.0
    np.testing.assert_allclose(left, expected, atol=1e-6)
    assert 0 < (left > 0.5).sum() < (every > 0.5).sum()


def test_fraction_widgets_keep_the_range_saved_workflows_use():
    # workflows saved before the options were described once may hold sizes up to 0.5
    spec = HandsegHandMask.INPUT_TYPES()
    inputs = {**spec["required"], **spec.get("optional", {})}
    for name in ("open_size", "close_size", "dilate", "erode", "feather", "min_area", "fill_holes"):
        assert inputs[name][1]["max"] >= 0.5, name


def test_treat_as_video_gives_the_masks_of_segment_video(red_model):
    """A batch of moving frames: the node's video path is the engine's (and so the CLI's)."""
    images, _ = comfy_images(1, 64, 48)
    frames = torch.stack([torch.roll(images[0], 2 * t, dims=1) for t in range(4)])
    options = {**widget_defaults(HandsegHandMask), "treat_as_video": True}
    mask, probability = HandsegHandMask().find_hands(red_model, frames, **options)
    rgbs = [(frame.numpy() * 255).round().astype(np.uint8) for frame in frames]
    expected = list(red_model.segment_video(rgbs, Refinement()))
    assert tuple(mask.shape) == (4, 48, 64)
    for k, frame in enumerate(expected):
        np.testing.assert_array_equal(mask[k].numpy(), frame.result.alpha / 255.0)
        np.testing.assert_allclose(probability[k].numpy(), frame.result.probability, atol=1e-6)
    alone, _ = HandsegHandMask().find_hands(red_model, frames, **widget_defaults(HandsegHandMask))
    np.testing.assert_array_equal(alone[0].numpy(), mask[0].numpy())  # the first frame has nothing before it
