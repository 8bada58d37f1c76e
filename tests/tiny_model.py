"""A tiny ONNX model with known behaviour, for golden tests: red pixels are hands.

probability = sigmoid(GAIN * (r - (g + b) / 2) + BIAS) on the normalised channels (mean 0.5,
std 0.5, so each lies in -1..1): pure red gives 1, greys, greens and blues give about 0. The model
is pointwise, so the mask of an image is known exactly from its colours.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from handseg_core.registry import ModelSpec, sha256_of

GAIN = 10.0
BIAS = -5.0
HAND_RGB = (230, 30, 40)

SPEC = ModelSpec(
    name="tiny-red",
    file="tiny-red.onnx",
    architecture="1x1 convolution (test)",
    encoder="none (test)",
    input_size=128,
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
    stride=16,
    description="red pixels are hands; for tests only",
)


def red_model_bytes(spec: ModelSpec = SPEC, gain: float = GAIN, bias: float = BIAS) -> bytes:
    """The ONNX bytes: image [N,3,H,W] -> probability [N,1,H,W], with handseg metadata."""
    from onnx import helper, numpy_helper

    weight = numpy_helper.from_array(np.array([gain, -gain / 2, -gain / 2], np.float32).reshape(1, 3, 1, 1), "w")
    offset = numpy_helper.from_array(np.array([bias], np.float32), "b")
    nodes = [helper.make_node("Conv", ["image", "w", "b"], ["logit"])]
    return _model_bytes("tiny_red", nodes, [weight, offset], spec)


def _model_bytes(graph_name: str, nodes: list, initializers: list, spec: ModelSpec) -> bytes:
    """A checked model: image [N,3,H,W] through `nodes` to "logit", then a sigmoid to
    probability [N,1,H,W], with `spec` as handseg metadata."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [*nodes, helper.make_node("Sigmoid", ["logit"], ["probability"])],
        graph_name,
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["batch", 1, "height", "width"])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    for key, value in sorted(spec.to_metadata().items()):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    return model.SerializeToString()


def write_red_model(folder: Path, name: str = "tiny-red", sidecar: bool = True, **spec_changes) -> Path:
    """Write `<folder>/<name>.onnx` (and its `.sha256` sidecar, as `handseg export` does)."""
    return _write(folder, name, red_model_bytes, sidecar, **spec_changes)


def _write(folder: Path, name: str, make_bytes, sidecar: bool = True, **spec_changes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.onnx"
    data = make_bytes(replace(SPEC, name=name, file=path.name, **spec_changes))
    path.write_bytes(data)
    if sidecar:
        path.with_name(path.name + ".sha256").write_text(f"{sha256_of(data)}  {path.name}\n")
    return path


def expected_probability(rgb: np.ndarray) -> np.ndarray:
    """What the model computes for each pixel of a uint8 RGB image (float64 HxW)."""
    x = rgb.astype(np.float64) / 255 * 2 - 1
    return 1 / (1 + np.exp(-(GAIN * (x[..., 0] - (x[..., 1] + x[..., 2]) / 2) + BIAS)))


def hand_shape(width: int, height: int) -> np.ndarray:
    """A bool HxW hand: a palm and five fingers, asymmetric (thumb on the left), sized to the image."""
    import cv2

    s = min(width, height)
    mask = np.zeros((height, width), np.uint8)
    cx, cy = width // 2, int(height * 0.62)
    cv2.ellipse(mask, (cx, cy), (int(s * 0.2), int(s * 0.22)), 0, 0, 360, 1, -1)
    finger_w = max(2, int(s * 0.07))
    for i, length in enumerate((0.30, 0.36, 0.33, 0.26)):
        x = cx - int(s * 0.165) + i * int(s * 0.11)
        top = cy - int(s * 0.12) - int(s * length)
        cv2.rectangle(mask, (x - finger_w // 2, top), (x + finger_w // 2, cy - int(s * 0.1)), 1, -1)
    thumb = np.array([[cx - int(s * 0.15), cy], [cx - int(s * 0.38), cy - int(s * 0.14)],
                      [cx - int(s * 0.34), cy - int(s * 0.2)], [cx - int(s * 0.12), cy - int(s * 0.1)]], np.int32)
    cv2.fillPoly(mask, [thumb], 1)
    return mask.astype(bool)


def hand_picture(width: int = 320, height: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 RGB image, bool truth): a red hand on a noisy non-red background."""
    rng = np.random.default_rng(seed)
    rgb = np.empty((height, width, 3), np.uint8)
    rgb[..., 0] = rng.integers(0, 120, (height, width))
    rgb[..., 1:] = rng.integers(100, 256, (height, width, 2))
    truth = hand_shape(width, height)
    rgb[truth] = HAND_RGB
    return rgb, truth


LAYERED_CONVS = {  # node name -> kept in float by handseg_training.quantize
    "/model/encoder/conv_stem/Conv": True,  # the first
    "/model/encoder/conv_dw/Conv": True,  # depthwise, in the encoder
    "/model/encoder/conv_pw/Conv": False,
    "/model/decoder/separable/Conv": False,  # depthwise, in the decoder
    "/model/segmentation_head/Conv": True,  # the last
}


def layered_model_bytes(spec: ModelSpec = SPEC, names: dict[str, bool] = LAYERED_CONVS) -> bytes:
    """The red model spread over five convolutions named as in an exported DeepLabV3+ (stem,
    depthwise and pointwise, a decoder depthwise, head), for quantisation: the same function as
    `red_model_bytes` (probability = sigmoid(GAIN * (r - (g + b) / 2) + BIAS)) up to the borders."""
    from onnx import helper, numpy_helper

    stem_name, dw_name, pw_name, sep_name, head_name = names
    share = np.array([0.5, 1.0, 1.5, 2.0], np.float32)  # channel i carries share[i] * (r - (g + b) / 2)
    identity_3x3 = np.zeros((4, 1, 3, 3), np.float32)
    identity_3x3[:, 0, 1, 1] = 1
    weights = {
        "stem_w": (share[:, None] * np.array([1, -0.5, -0.5], np.float32)).reshape(4, 3, 1, 1),
        "dw_w": identity_3x3,
        "pw_w": np.eye(4, dtype=np.float32).reshape(4, 4, 1, 1),
        "sep_w": identity_3x3.copy(),
        "head_w": np.full((1, 4, 1, 1), GAIN / share.sum(), np.float32),
        "head_b": np.array([BIAS], np.float32),
    }
    depthwise = {"group": 4, "pads": [1, 1, 1, 1]}
    nodes = [
        helper.make_node("Conv", ["image", "stem_w"], ["stem"], name=stem_name),
        helper.make_node("Conv", ["stem", "dw_w"], ["dw"], name=dw_name, **depthwise),
        helper.make_node("Conv", ["dw", "pw_w"], ["pw"], name=pw_name),
        helper.make_node("Conv", ["pw", "sep_w"], ["sep"], name=sep_name, **depthwise),
        helper.make_node("Conv", ["sep", "head_w", "head_b"], ["logit"], name=head_name),
    ]
    return _model_bytes("tiny_red_layered", nodes, [numpy_helper.from_array(v, k) for k, v in weights.items()], spec)


def write_layered_model(folder: Path, name: str = "tiny-layered") -> Path:
    """Write `<folder>/<name>.onnx` (the layered red model) and its `.sha256` sidecar."""
    return _write(folder, name, layered_model_bytes)
