"""The sizing rule: at what long side the network sees an image.

The network sees the image at its own long side, within the model's range (`inference_size`).
Where the hands are large, a quick pass at FIND_SIZE measures the largest one; where it would
span more than the model's `hand_limit` network pixels, the network sees the image at the side
where it spans `hand_extent` (`FitRule`). The packaged models were trained on crops of 384:
handseg-lite0 misses most of a hand that spans more than about 300 of its input pixels (11k Hands
photos enlarged 5x, 900 px, scored 0.19 IoU at 512 with the first lite2), and the default, which
saw hands on their own background too, finds larger ones and is measured best with larger limits
(docs/models.md, The input size adapts).

The session runs this rule on arrays; the rembg export (`handseg_plugins.rembg`) builds the same
rule into ONNX nodes from a `FitRule`'s numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from handseg_core.preprocess import default_long_side
from handseg_core.registry import ModelSpec

FIND_SIZE = 192
FIT_STEP = 32  # the fitted size is a multiple of this (the packaged models' stride)


def fit_floor(spec: ModelSpec) -> int:
    """The smallest long side the rule gives: FIND_SIZE, or the model's `min_input_size`
    where larger."""
    return max(FIND_SIZE, spec.min_input_size)


def adapts_at(spec: ModelSpec, size: int) -> bool:
    """Whether the quick pass can change `size`: only where a hand could span more than the
    model's `hand_limit` pixels and a smaller size is allowed."""
    return size > max(fit_floor(spec), spec.hand_limit)


def inference_size(spec: ModelSpec, shape: tuple[int, int], input_size: int | None = None) -> int:
    """The long side the network sees: the image's own, within the model's range.

    Images larger than `input_size` (default: the model's) are reduced to it. Smaller ones keep
    their size unless the model records a `min_input_size`: models trained on large hands (GPU
    crops of 384) miss hands in 100-pixel thumbnails and are measured better with those enlarged.
    A larger `input_size` never enlarges a small image: enlarged past their own size, close-ups
    lose most of their IoU (0.92 to 0.75 at 640 for the default model).
    """
    return default_long_side(shape, input_size or spec.input_size, spec.min_input_size)


@dataclass(frozen=True)
class FitRule:
    """The quick pass's rule at one size: where the largest hand spans `extent` of the long side
    (0..1) and `extent * size` exceeds `limit`, the side is `target / extent` rounded down to a
    multiple of `step`, within [floor, size]."""

    size: int
    limit: int
    target: int
    step: int = FIT_STEP
    floor: int = FIND_SIZE

    def side(self, extent: float) -> int:
        if extent * self.size <= self.limit:
            return self.size
        return max(self.floor, min(self.size, int(self.target / extent) // self.step * self.step))


def fit_rule(spec: ModelSpec, size: int) -> FitRule | None:
    """The rule for `spec` at long side `size`; None where the quick pass cannot change it."""
    if not adapts_at(spec, size):
        return None
    return FitRule(size, spec.hand_limit, spec.hand_extent, FIT_STEP, fit_floor(spec))
