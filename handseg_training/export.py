"""Export a trained checkpoint to one self-describing ONNX file, checked against torch."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from handseg_core.registry import ModelSpec
from handseg_training.config import TrainConfig
# Writing and listing ONNX files needs no torch (`handseg quantize` uses them alone); kept
# importable from here for the trainers.
from handseg_training.onnx_files import add_metadata, index_entry, register, write_model  # noqa: F401

OPSET = 17


class WithSigmoid(nn.Module):
    """The network as shipped: normalised image in, hand probability out."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model(image))


def spec_for(cfg: TrainConfig, name: str | None = None, metrics: dict | None = None) -> ModelSpec:
    return ModelSpec(
        name=name or cfg.name,
        file=f"{name or cfg.name}.onnx",
        architecture="DeepLabV3+",
        encoder=cfg.encoder,
        input_size=cfg.input_size,
        min_input_size=cfg.min_input_size,
        hand_limit=cfg.hand_limit,
        hand_extent=cfg.hand_extent,
        mean=tuple(cfg.mean),
        std=tuple(cfg.std),
        stride=32,
        training_data=", ".join([*cfg.data.frames, *cfg.data.hand_photos, *cfg.data.backgrounds]),
        metrics=metrics or {},
    )


def to_onnx_bytes(model: nn.Module, example_hw: tuple[int, int] = (288, 512), fold: bool = True,
                  channels: int = 3) -> bytes:
    """Trace the model (fp32, eval mode) into ONNX with dynamic batch and size, in one file.

    fold=False keeps batch norms as their own nodes (ONNX Runtime fuses them when it loads the
    model), so every weight in the file is one of the checkpoint's own values.
    """
    wrapped = WithSigmoid(model).eval().float().to(memory_format=torch.contiguous_format)
    example = torch.randn(1, channels, *example_hw)
    buffer = io.BytesIO()
    torch.onnx.export(
        wrapped,
        (example,),
        buffer,
        input_names=["image"],
        output_names=["probability"],
        dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}, "probability": {0: "batch", 2: "height", 3: "width"}},
        opset_version=OPSET,
        dynamo=False,
        do_constant_folding=fold,
    )
    return buffer.getvalue()


def half_weights(onnx_bytes: bytes, min_elements: int = 256) -> bytes:
    """Store the float32 weights as float16, each behind a Cast back to float32.

    Halves the file. ONNX Runtime folds the Casts when it loads the model, so inference still
    runs in float32 at the same speed; the weights lose what float16 cannot hold (the shipped
    models were trained in bf16 and travelled as fp16 checkpoints, so little is left to lose).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    proto = onnx.load_from_string(onnx_bytes)
    graph = proto.graph
    kept, casts = [], []
    for tensor in graph.initializer:
        values = numpy_helper.to_array(tensor)
        if tensor.data_type != TensorProto.FLOAT or values.size < min_elements:
            kept.append(tensor)
            continue
        half = numpy_helper.from_array(values.astype(np.float16), f"{tensor.name}__fp16")
        kept.append(half)
        casts.append(helper.make_node("Cast", [half.name], [tensor.name], to=TensorProto.FLOAT,
                                      name=f"{tensor.name}__to_fp32"))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def check_against_torch(model: nn.Module, onnx_bytes: bytes, sizes=((288, 512), (320, 224)), channels: int = 3) -> float:
    """Largest absolute probability difference between torch and ONNX Runtime on random inputs."""
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    wrapped = WithSigmoid(model).eval().float()
    worst = 0.0
    generator = torch.Generator().manual_seed(0)
    for h, w in sizes:
        x = torch.randn(2, channels, h, w, generator=generator)
        with torch.no_grad():
            expected = wrapped(x).numpy()
        got = session.run(None, {"image": x.numpy()})[0]
        worst = max(worst, float(np.abs(expected - got).max()))
    return worst


def export(
    model: nn.Module, cfg: TrainConfig, out_path: Path, name: str | None = None, metrics: dict | None = None,
    tolerance: float | None = None, half: bool = False,
) -> ModelSpec:
    """Write `out_path` (.onnx) and its `.sha256` sidecar; returns the registry spec for it.

    half: store the weights as float16 (`half_weights`): half the size, the same speed. The
    check against torch then allows 1e-2 instead of 1e-3 (probabilities in 0..1; the shipped
    models differ by 1e-7, their weights having come through an fp16 checkpoint).

    Raises:
        RuntimeError: ONNX Runtime disagrees with torch by more than `tolerance`.
    """
    model = model.cpu().eval().float().to(memory_format=torch.contiguous_format)
    spec = spec_for(cfg, name or out_path.stem, metrics)
    spec = replace(spec, file=out_path.name)
    if half:  # unfolded: the checkpoint's values, which an fp16 checkpoint holds exactly
        data = half_weights(to_onnx_bytes(model, fold=False))
    else:
        data = to_onnx_bytes(model)
    data = add_metadata(data, spec.to_metadata())
    if tolerance is None:
        tolerance = 1e-2 if half else 1e-3
    difference = check_against_torch(model, data)
    if difference > tolerance:
        raise RuntimeError(f"ONNX export differs from torch by {difference:.2e} (> {tolerance:.0e}); not written")
    digest = write_model(data, out_path)
    return replace(spec, sha256=digest, folder=str(out_path.parent))
