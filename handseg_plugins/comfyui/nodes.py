"""The handseg nodes. Each converts ComfyUI's tensors, calls handseg_core, and converts back."""

from __future__ import annotations

from typing import Any

import numpy as np

import handseg_core
from handseg_core import HandSegmenter, HandsegError, Refinement
from handseg_core import refine as _refine
from handseg_core.compose import parse_colour
from handseg_core.options import DEVICES, INFERENCE, REFINEMENT, HAND_MENU, Option, refinement_from

from handseg_plugins.comfyui.convert import arrays_to_images, arrays_to_masks, images_to_arrays, masks_to_arrays
from handseg_plugins.comfyui.models import model_choices, resolve_model

CATEGORY = "handseg"
MODEL_TYPE = "HANDSEG_MODEL"
_DEFAULTS = Refinement()

_MASK_CONVENTION = (
    "Masks are 1 on hands and 0 elsewhere. ComfyUI's Load Image gives 1 - alpha (1 where the "
    "picture is transparent): turn on invert to use such a mask as alpha."
)


def _widget(option: Option) -> tuple[str, dict]:
    """A ComfyUI input built from handseg's description of the option."""
    if option.kind is bool:
        return ("BOOLEAN", {"default": option.default, "tooltip": option.help})
    return ("FLOAT", {"default": option.default, "min": option.low, "max": option.top, "step": option.step,
                      "tooltip": option.help})


def _refinement_widgets(*names: str) -> dict[str, tuple[str, dict]]:
    return {name: _widget(REFINEMENT[name]) for name in names}


_SIZE = INFERENCE["input_size"]
_MAX_SIZE = ("INT", {
    "default": 0, "min": 0, "max": _SIZE.high, "step": _SIZE.step,
    "tooltip": _SIZE.help.replace("default: the model's", "0: the model's"),
})
_FLIP_TTA = _widget(INFERENCE["flip_tta"])
_HANDS = ([value for value, _, _ in HAND_MENU], {
    "default": "all",
    "tooltip": "Which hands to keep: " + "; ".join(f"{value}: {text.lower()}" for value, _, text in HAND_MENU) + ".",
})
_VIDEO = ("BOOLEAN", {"default": False, "tooltip": (
    "The batch is the frames of a video, in order: masks are steadied from frame to frame along the "
    "motion, and a hand missed for a frame or two is kept (as `handseg video` does).")})
_INVERT = ("BOOLEAN", {"default": False, "tooltip": "Use 1 - mask (for masks from Load Image, which are 1 - alpha)."})


def _background_colour(text: str) -> tuple[int, int, int]:
    colour = parse_colour(text)
    if colour is None:
        raise HandsegError(f"background {text!r} is not a colour; use a name (white, black, green) or #RRGGBB")
    return colour


# What the two model nodes take first: the loaded model and the image batch; and the inference
# options both offer.
_MODEL_AND_IMAGE = {"model": (MODEL_TYPE,), "image": ("IMAGE",)}
_SIZE_AND_HANDS = {"max_size": _MAX_SIZE, "hands": _HANDS}


class _Node:
    """What every handseg node shares: its menu category, its inputs as REQUIRED and OPTIONAL
    (ComfyUI's INPUT_TYPES), and its outputs written as one (type, name, tooltip) each in
    OUTPUTS, from which ComfyUI's RETURN_* tuples are made."""

    CATEGORY = CATEGORY
    REQUIRED: dict = {}
    OPTIONAL: dict = {}
    OUTPUTS: tuple[tuple[str, str, str], ...] = ()

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        inputs = {"required": dict(cls.REQUIRED)}
        if cls.OPTIONAL:
            inputs["optional"] = dict(cls.OPTIONAL)
        return inputs

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.RETURN_TYPES = tuple(kind for kind, _, _ in cls.OUTPUTS)
        cls.RETURN_NAMES = tuple(name for _, name, _ in cls.OUTPUTS)
        cls.OUTPUT_TOOLTIPS = tuple(tooltip for _, _, tooltip in cls.OUTPUTS)


def _match_batch(masks: list[np.ndarray], count: int) -> list[np.ndarray]:
    if len(masks) == count:
        return masks
    if len(masks) == 1:
        return masks * count
    raise HandsegError(f"the mask batch has {len(masks)} masks but the image batch has {count} images")


class HandsegLoadModel(_Node):
    DESCRIPTION = (
        "Load a handseg hand-segmentation model, once, for the other Handseg nodes. Offers the models "
        "packaged with handseg and the .onnx files in ComfyUI's models/handseg folder."
    )
    FUNCTION = "load"
    OUTPUTS = (
        (MODEL_TYPE, "model", "The loaded model; connect it to Handseg: Hand mask or Handseg: Remove background."),
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "model": (model_choices(), {"tooltip": "A packaged model, or an .onnx file in models/handseg."}),
                "device": (list(DEVICES), {"default": INFERENCE["device"].default, "tooltip": INFERENCE["device"].help}),
            }
        }

    def load(self, model: str, device: str) -> tuple[HandSegmenter]:
        return (handseg_core.load_model(resolve_model(model), device=device),)


class HandsegHandMask(_Node):
    DESCRIPTION = "Find the hands in each image: a MASK (1 on hands) and the network's hand probability. " + _MASK_CONVENTION
    FUNCTION = "find_hands"
    REQUIRED = {**_MODEL_AND_IMAGE, **_refinement_widgets("threshold")}
    OPTIONAL = {
        **_refinement_widgets("open_size", "close_size", "dilate", "erode", "min_area", "fill_holes", "feather"),
        "flip_tta": _FLIP_TTA,
        **_SIZE_AND_HANDS,
        "treat_as_video": _VIDEO,
    }
    OUTPUTS = (
        ("MASK", "mask", "1 on hands, 0 elsewhere (soft edge when feathered)."),
        ("MASK", "probability", "The hand probability, 0..1, before refinement."),
    )

    def find_hands(
        self,
        model: HandSegmenter,
        image: Any,
        threshold: float,
        open_size: float = _DEFAULTS.open_size,
        close_size: float = _DEFAULTS.close_size,
        dilate: float = _DEFAULTS.dilate,
        erode: float = _DEFAULTS.erode,
        min_area: float = _DEFAULTS.min_area,
        fill_holes: float = _DEFAULTS.fill_holes,
        feather: float = _DEFAULTS.feather,
        flip_tta: bool = False,
        max_size: int = 0,
        hands: str = "all",
        treat_as_video: bool = False,
    ) -> tuple[Any, Any]:
        settings = refinement_from(locals())
        options = {"input_size": max_size or None, "flip_tta": flip_tta, "keep": hands}
        if treat_as_video:
            results = [frame.result for frame in model.segment_video(images_to_arrays(image), settings, **options)]
        else:
            results = [model.segment(rgb, settings, **options) for rgb in images_to_arrays(image)]
        return arrays_to_masks([r.alpha for r in results]), arrays_to_masks([r.probability for r in results])


class HandsegRemoveBackground(_Node):
    DESCRIPTION = (
        "Keep only the hands. By default the image is RGBA with a transparent background (4 channels: "
        "Save Image writes a transparent PNG, but some nodes expect 3 channels); with transparent off it "
        "is RGB with the hands on the background colour. The MASK output is the alpha used (1 on hands). "
        "Connect a mask to use it instead of running the model. " + _MASK_CONVENTION
    )
    FUNCTION = "remove_background"
    REQUIRED = {
        **_MODEL_AND_IMAGE,
        "transparent": ("BOOLEAN", {"default": True, "tooltip": "Output RGBA with a transparent background; off: RGB on the background colour."}),
        "background": ("STRING", {"default": "white", "tooltip": "Background colour when transparent is off: a name or #RRGGBB."}),
        **_refinement_widgets("threshold", "feather"),
    }
    OPTIONAL = {
        "mask": ("MASK", {"tooltip": "Cut out with this mask (1 = keep) instead of the model's."}),
        "invert_mask": _INVERT,
        **_SIZE_AND_HANDS,
    }
    OUTPUTS = (
        ("IMAGE", "image", "The cut-out: RGBA (transparent), or RGB on the background colour."),
        ("MASK", "mask", "The alpha used, 1 on hands."),
    )

    def remove_background(
        self,
        model: HandSegmenter,
        image: Any,
        transparent: bool,
        background: str,
        threshold: float,
        feather: float,
        mask: Any = None,
        invert_mask: bool = False,
        max_size: int = 0,
        hands: str = "all",
    ) -> tuple[Any, Any]:
        colour = None if transparent else _background_colour(background)
        rgbs = images_to_arrays(image)
        if mask is None:
            refinement = Refinement(threshold=threshold, feather=feather)
            alphas = [model.segment(rgb, refinement, input_size=max_size or None, keep=hands).alpha for rgb in rgbs]
        else:
            alphas = _match_batch(masks_to_arrays(mask, np.float32), len(rgbs))
            if invert_mask:
                alphas = [1.0 - a for a in alphas]
        cutouts = [np.asarray(handseg_core.cutout(rgb, alpha, colour)) for rgb, alpha in zip(rgbs, alphas)]
        return arrays_to_images(cutouts), arrays_to_masks(alphas)


class HandsegRefineMask(_Node):
    DESCRIPTION = (
        "Grow, shrink or feather a mask with handseg's post-processing. The mask is first cut at 0.5 "
        "(hand where mask >= 0.5). " + _MASK_CONVENTION
    )
    FUNCTION = "refine"
    REQUIRED = {"mask": ("MASK",), **_refinement_widgets("dilate", "erode", "feather"), "invert": _INVERT}
    OUTPUTS = (
        ("MASK", "mask", "The refined mask, 1 on hands."),
    )

    def refine(self, mask: Any, dilate: float, erode: float, feather: float, invert: bool = False) -> tuple[Any]:
        refinement = Refinement(threshold=0.5, dilate=dilate, erode=erode, feather=feather, min_area=0.0, fill_holes=0.0)
        masks = masks_to_arrays(mask, np.float32)
        if invert:
            masks = [1.0 - m for m in masks]
        return (arrays_to_masks([_refine(m, refinement)[1] for m in masks]),)


NODE_CLASS_MAPPINGS = {
    "HandsegLoadModel": HandsegLoadModel,
    "HandsegHandMask": HandsegHandMask,
    "HandsegRemoveBackground": HandsegRemoveBackground,
    "HandsegRefineMask": HandsegRefineMask,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "HandsegLoadModel": "Handseg: Load model",
    "HandsegHandMask": "Handseg: Hand mask",
    "HandsegRemoveBackground": "Handseg: Remove background",
    "HandsegRefineMask": "Handseg: Refine mask",
}
