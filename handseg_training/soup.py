"""Average the weights of two models of one architecture: a checkpoint to export like any other.

    python -m handseg_training.soup A B --weight 0.5 -o runs/soup/model.safetensors [--name NAME]
    handseg export runs/soup/model.safetensors -o soup.onnx --half

A and B are handseg checkpoints (.safetensors) or float ONNX files that `handseg export --half`
wrote, such as the packaged handseg-lite2.onnx. The result holds (1 - weight) * A + weight * B,
batch-norm statistics included. Averaging works for models that started from the same weights,
as all handseg runs of one encoder do (the same ImageNet encoder, the decoder drawn from the same
seed); two runs of different recipes then land close enough that their mean is a model too,
often better than either on what one of them is weak at (docs/experiments.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from handseg_training.config import TrainConfig, _build
from handseg_training.model import build_model
from handseg_training.train import read_checkpoint, read_onnx_weights, save_checkpoint


def read_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict | None]:
    """(float state dict, training config or None for an ONNX file) of a checkpoint or float ONNX file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a handseg checkpoint or ONNX model.
    """
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        state, _ = read_onnx_weights(path)
        if not state:
            raise ValueError(f"{path}: holds no trainable weights (an int8 file or one with folded batch "
                             "norms cannot be averaged; use the float export)")
        return state, None
    state, meta = read_checkpoint(path)
    if "config" not in meta:
        raise ValueError(f"{path}: not a handseg checkpoint (no config in its metadata)")
    return state, json.loads(meta["config"])


def average(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], weight: float) -> dict[str, torch.Tensor]:
    """(1 - weight) * a + weight * b for every floating tensor both hold; counters (integers) from b.

    Raises:
        ValueError: the two differ in a tensor's name or shape (other architectures), or weight is
            outside 0..1.
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight {weight} is outside 0..1 (the share of the second model)")
    counters = {k for k, v in {**a, **b}.items() if not v.is_floating_point()}
    names_a, names_b = set(a) - counters, set(b) - counters
    if names_a != names_b:
        only = sorted(names_a ^ names_b)
        raise ValueError(f"the two models differ in {len(only)} tensors (first: {only[0]}): "
                         "only models of one encoder and decoder can be averaged")
    mixed = {}
    for name in sorted(names_a):
        if a[name].shape != b[name].shape:
            raise ValueError(f"{name}: shape {tuple(a[name].shape)} against {tuple(b[name].shape)}: "
                             "only models of one encoder and decoder can be averaged")
        mixed[name] = (1.0 - weight) * a[name].float() + weight * b[name].float()
    mixed.update({k: b[k] for k in counters if k in b})
    return mixed


def soup(path_a: Path, path_b: Path, weight: float, out: Path, name: str | None = None) -> list[Path]:
    """Write the average of A and B as a checkpoint at `out` (with the config of B, else of A, named
    `name` or after `out`'s folder). Returns the files written.

    Raises:
        FileNotFoundError, ValueError: as `read_weights` and `average`; ValueError also when neither
            is a checkpoint (the result's config comes from one).
    """
    state_a, config_a = read_weights(path_a)
    state_b, config_b = read_weights(path_b)
    config = config_b or config_a
    if config is None:
        raise ValueError("neither model is a checkpoint (.safetensors): the result takes its training "
                         "config, so at least one must be")
    config = {**config, "name": name or out.parent.name or out.stem}
    cfg = _build(TrainConfig, config, str(path_b if config_b else path_a))
    mixed = average(state_a, state_b, weight)
    model = build_model(cfg.encoder, cfg.decoder_channels, encoder_weights=None)
    missing, unexpected = model.load_state_dict(mixed, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"the averaged weights do not fit {cfg.encoder} with {cfg.decoder_channels} decoder "
                         f"channels: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return save_checkpoint(model, cfg, out, {"soup": {"a": str(path_a), "b": str(path_b), "weight": weight}})


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m handseg_training.soup",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path, help="checkpoint or float ONNX file")
    parser.add_argument("b", type=Path, help="checkpoint or float ONNX file")
    parser.add_argument("--weight", type=float, default=0.5, help="the share of B [default: 0.5]")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the checkpoint to write (.safetensors)")
    parser.add_argument("--name", help="the model's name [default: the output's folder]")
    args = parser.parse_args()
    try:
        written = soup(args.a, args.b, args.weight, args.output, args.name)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"soup: {error}") from None
    print(f"wrote {written[0]} ({len(written)} file{'s' if len(written) > 1 else ''}): "
          f"{1 - args.weight:g} x {args.a.name} + {args.weight:g} x {args.b.name}")


if __name__ == "__main__":
    main()
