"""Hands as Impact Pack's SEGS, for its detailers (DetailerForEach, ...), and as a box list.

Impact Pack defines SEGS as `((height, width), [SEG, ...])`, SEG being a namedtuple of
cropped_image, cropped_mask, confidence, crop_region, bbox, label, control_net_wrapper (the last
defaulting to None). Its nodes read the fields by name and are strict about them: crop_region
and bbox are (x1, y1, x2, y2) inside the image, cropped_mask is a float32 numpy array the size of
the crop region. `SEG` here has the same fields in the same order, so Impact's nodes take it
without this pack importing Impact (which need not be installed).
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import cv2
import numpy as np

from handseg_core import HandSegmenter, HandsegError, Refinement
from handseg_core.hands import Hand, chosen

from handseg_plugins.comfyui import nodes
from handseg_plugins.comfyui.convert import images_to_arrays

SEG = namedtuple("SEG", ["cropped_image", "cropped_mask", "confidence", "crop_region", "bbox", "label",
                         "control_net_wrapper"], defaults=[None])
LABEL = "hand"
SORT_KEYS = ("area", "score")


def crop_region(box: tuple[int, int, int, int], shape: tuple[int, int], factor: float) -> tuple[int, int, int, int]:
    """(x1, y1, x2, y2): `box` grown about its centre by `factor` (each side), moved back inside
    an image of `shape` (H, W) rather than cut where it can be, cut where it is larger."""
    height, width = shape
    x0, y0, x1, y1 = box
    out = []
    for low, high, size in ((x0, x1, width), (y0, y1, height)):
        span = min(size, max(1, int(round((high - low) * factor))))
        start = int(round((low + high - span) / 2))
        start = min(max(0, start), size - span)
        out.append((start, start + span))
    (cx0, cx1), (cy0, cy1) = out
    return cx0, cy0, cx1, cy1


def _grown(mask: np.ndarray, pixels: int) -> np.ndarray:
    if pixels == 0:
        return mask
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(pixels) + 1, 2 * abs(pixels) + 1))
    return (cv2.dilate if pixels > 0 else cv2.erode)(mask, kernel)


def _as_image(crop: np.ndarray) -> Any:
    """An HxWx3 uint8 crop as a ComfyUI IMAGE [1, h, w, 3] (as Impact's detectors crop)."""
    from handseg_plugins.comfyui.convert import arrays_to_images

    return arrays_to_images([np.ascontiguousarray(crop)])


def hands_to_segs(rgb: np.ndarray, hands: list[Hand], crop_factor: float = 3.0, dilation: int = 0,
                  drop_size: int = 10) -> tuple[tuple[int, int], list]:
    """One image's hands as SEGS, one SEG per hand in the order given; hands whose box is narrower
    or lower than `drop_size` pixels, or whose mask `dilation` erodes away, are left out."""
    shape = rgb.shape[:2]
    segs = []
    for hand in hands:
        x0, y0, x1, y1 = hand.box
        if x1 - x0 < drop_size or y1 - y0 < drop_size:
            continue
        mask = _grown(hand.mask, dilation)
        points = cv2.findNonZero(mask)
        if points is None:
            continue
        bx, by, bw, bh = cv2.boundingRect(points)
        cx0, cy0, cx1, cy1 = crop_region((bx, by, bx + bw, by + bh), shape, crop_factor)
        cropped_mask = (mask[cy0:cy1, cx0:cx1].astype(np.float32) / 255.0)
        segs.append(SEG(
            cropped_image=_as_image(rgb[cy0:cy1, cx0:cx1]),
            cropped_mask=cropped_mask,
            confidence=np.float32(hand.score),
            crop_region=(cx0, cy0, cx1, cy1),
            bbox=(x0, y0, x1, y1),
            label=LABEL,
        ))
    return shape, segs


def pick(hands: tuple[Hand, ...], choice: str, sort_by: str = "area", max_hands: int = 0) -> list[Hand]:
    """The hands `choice` keeps, ordered by `sort_by` (largest area or highest score first), at
    most `max_hands` of them (0: no limit)."""
    if sort_by not in SORT_KEYS:
        raise HandsegError(f"sort_by {sort_by!r}: choose {' or '.join(SORT_KEYS)}")
    kept = [hands[k] for k in chosen(hands, choice)]
    kept.sort(key=(lambda hand: -hand.area) if sort_by == "area" else (lambda hand: -hand.score))
    return kept[:max_hands] if max_hands > 0 else kept


class HandsegHandSegs:
    DESCRIPTION = (
        "Find the hands in each image as Impact Pack SEGS, one SEG per hand (even where two hands touch), "
        "labelled 'hand', with a mask that follows the fingers: plug it into Impact's DetailerForEach instead of a "
        "box detector. Also a BBOX list ([x1, y1, x2, y2] per hand, per image). An image batch gives one SEGS per "
        "image (a list): Impact's detailers take one image at a time, so turn the batch into an image list first. "
        "No hands give an empty SEGS."
    )
    CATEGORY = nodes.CATEGORY
    FUNCTION = "find_hands"
    RETURN_TYPES = ("SEGS", "BBOX")
    RETURN_NAMES = ("segs", "bboxes")
    OUTPUT_IS_LIST = (True, False)
    OUTPUT_TOOLTIPS = (
        "((height, width), [SEG, ...]) per image, as Impact Pack's detectors give.",
        "Per image, the hands' boxes [x1, y1, x2, y2] (x2, y2 exclusive), in the SEGS' order.",
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        mask_inputs = nodes.HandsegHandMask.INPUT_TYPES()
        return {
            "required": {
                "model": (nodes.MODEL_TYPE,),
                "image": ("IMAGE",),
                "threshold": mask_inputs["required"]["threshold"],
                "dilation": ("INT", {"default": 0, "min": -512, "max": 512, "step": 1,
                                     "tooltip": "Grow (or, negative, shrink) each hand's mask by this many pixels."}),
                "crop_factor": ("FLOAT", {"default": 3.0, "min": 1.0, "max": 100.0, "step": 0.1,
                                          "tooltip": "The crop region is the hand's box times this, about its centre "
                                                     "(the context the detailer sees)."}),
                "drop_size": ("INT", {"default": 10, "min": 1, "max": 16384, "step": 1,
                                      "tooltip": "Leave out hands whose box is narrower or lower than this (pixels)."}),
                "hands": nodes._HANDS,
            },
            "optional": {
                "sort_by": (list(SORT_KEYS), {"default": "area",
                                              "tooltip": "Order of the SEGs: largest area or highest score first."}),
                "max_hands": ("INT", {"default": 0, "min": 0, "max": 64, "step": 1,
                                      "tooltip": "Keep at most this many hands, in that order; 0 = no limit."}),
                "max_size": nodes._MAX_SIZE,
            },
        }

    def find_hands(self, model: HandSegmenter, image: Any, threshold: float, dilation: int, crop_factor: float,
                   drop_size: int, hands: str, sort_by: str = "area", max_hands: int = 0,
                   max_size: int = 0) -> tuple[list, list]:
        refinement = Refinement(threshold=threshold)
        segs, boxes = [], []
        for rgb in images_to_arrays(image):
            result = model.segment(rgb, refinement, input_size=max_size or None)
            found = hands_to_segs(rgb, pick(result.hands, hands, sort_by, max_hands), crop_factor, dilation, drop_size)
            segs.append(found)
            boxes.append([list(seg.bbox) for seg in found[1]])
        return segs, boxes


NODE_CLASS_MAPPINGS = {"HandsegHandSegs": HandsegHandSegs}
NODE_DISPLAY_NAME_MAPPINGS = {"HandsegHandSegs": "Handseg: Hand SEGS"}
