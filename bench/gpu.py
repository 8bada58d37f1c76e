"""GPU speed of the packaged networks in torch, side by side with the seed's ResNet-101 recipe.

    python bench/gpu.py [--out results-gpu.json] [--repeats 50] [--device cuda]

The network alone (no decoding or refinement), built from each shipped float ONNX file's own
weights, channels-last, in fp32 and under bf16 autocast: one 1280x720 photo as the engine feeds
it (288x512), and batches of 32 at 512x512 (images/s). The ResNet-101 model has random weights:
it is here for its speed, as the reference. CUDA events time the GPU work; on a CPU (`--device
cpu`, for a quick check of this script) wall time is used.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from handseg_training.model import build_model, load_fitting
from handseg_training.train import read_onnx_weights

MODELS = Path(__file__).parents[1] / "handseg_core" / "models"


def packaged(name: str) -> torch.nn.Module:
    path = MODELS / f"{name}.onnx"
    state, meta = read_onnx_weights(path)
    channels = state["decoder.aspp.0.convs.0.0.weight"].shape[0]
    model = build_model(meta["encoder"], channels, None)
    load_fitting(model, state, f"{path}: its weights do not fit", ignore_missing=("num_batches_tracked",))
    return model


def timed_ms(fn, device: torch.device, warmup: int, repeats: int) -> float:
    with torch.inference_mode():
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeats):
            if device.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                torch.cuda.synchronize()
                times.append(start.elapsed_time(end))
            else:
                begin = time.perf_counter()
                fn()
                times.append((time.perf_counter() - begin) * 1000)
    return statistics.median(times)


def measure(model: torch.nn.Module, device: torch.device, repeats: int, batch: int) -> dict:
    model = model.to(device).eval().to(memory_format=torch.channels_last)
    row = {"parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2)}
    for precision in ("fp32", "bf16"):
        amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
        photo = torch.rand(1, 3, 288, 512, device=device).to(memory_format=torch.channels_last)
        crops = torch.rand(batch, 3, 512, 512, device=device).to(memory_format=torch.channels_last)

        def one():
            with amp:
                model(photo)

        def many():
            with amp:
                model(crops)

        row[f"{precision}_photo_ms"] = round(timed_ms(one, device, 10, repeats), 3)
        batch_ms = timed_ms(many, device, 3, max(3, repeats // 5))
        row[f"{precision}_batch{batch}_images_per_s"] = round(batch * 1000 / batch_ms, 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    machine = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    rows = {}
    for name in ("handseg-lite0", "handseg-lite2"):
        rows[name] = measure(packaged(name), device, args.repeats, args.batch)
        print(name, rows[name], flush=True)
    seed = build_model("resnet101", 256, None)
    rows["resnet101 (seed recipe, reference)"] = measure(seed, device, args.repeats, args.batch)
    print("resnet101", rows["resnet101 (seed recipe, reference)"], flush=True)
    result = {"machine": machine, "torch": torch.__version__, "batch": args.batch, "models": rows}
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
