"""Training the per-hand segmenter: DeepLabV3+ on upright crops around each found hand, with the
hand's landmarks drawn as two input channels beside the RGB (`handseg_training.crops`).

    python -m handseg_training.train_crops handseg_training/configs/hands-lite2-cpu.toml --out runs/hands

It starts from a whole-image model (`init_from`, e.g. the packaged float handseg-lite2.onnx):
the stem convolution gets two more input channels, their weights zero, so that before training it
is that model on the crop, blind to the landmarks; training teaches it which skin they point at.
BatchNorm statistics are held (`freeze_batchnorm`), as small CPU batches would replace them. The
result is one ONNX file (input [N, 5, S, S]: normalised RGB, then the two drawings), its
settings in its metadata (OUT/<name>.onnx; list it in a models folder's index.json to use it,
docs/training.md, "The per-hand network").
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from handseg_core import handcrop
from handseg_core.hands import KIND
from handseg_core.registry import ModelSpec
from handseg_training.augment import AugmentConfig, photometric
from handseg_training.crops import CropAugment, CropData, build_sampler

log = logging.getLogger(__name__)


@dataclass
class CropTrainConfig:
    name: str = "handseg-hands-lite2"
    encoder: str = "tf_efficientnet_lite2"
    decoder_channels: int = 256
    init_from: str = "handseg_core/models/handseg-lite2.onnx"
    freeze_batchnorm: bool = True
    crop: int = handcrop.CROP_SIZE
    batch: int = 8
    lr: float = 2e-4
    warmup_steps: int = 30
    max_steps: int = 1500
    time_budget_minutes: float = 60.0
    loss: str = "bce+dice"
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    threads: int = 0
    # processes drawing the crops (cv2, on the CPU) while the network trains: 0 draws them in the
    # training loop, enough on a CPU; a GPU needs several (its step takes less than a batch's draw)
    workers: int = 0
    precision: str = "fp32"  # or "bf16" (autocast, on a GPU)
    seed: int = 0
    log_every: int = 25
    checkpoint_every_minutes: float = 10.0
    data: CropData = field(default_factory=CropData)
    augment: CropAugment = field(default_factory=CropAugment)
    photometric: AugmentConfig = field(default_factory=lambda: AugmentConfig(blur=0.15, noise=0.3))


def load_crop_config(path: Path, overrides: dict | None = None) -> CropTrainConfig:
    from handseg_training.config import _build, read_values

    return _build(CropTrainConfig, read_values(path, overrides), str(path))


def widen_stem(model: torch.nn.Module, extra: int = handcrop.LANDMARK_CHANNELS) -> None:
    """Give the encoder's first convolution `extra` more input channels, their weights zero."""
    stem = model.encoder.model.conv_stem
    weight = stem.weight.detach()
    zeros = torch.zeros(weight.shape[0], extra, *weight.shape[2:], dtype=weight.dtype)
    stem.weight = torch.nn.Parameter(torch.cat([weight, zeros], 1))
    stem.in_channels = weight.shape[1] + extra


def build_crop_model(cfg: CropTrainConfig, start: bool = True) -> torch.nn.Module:
    """The per-hand network, started from `init_from`: a whole-image model (widened here) or a
    per-hand checkpoint of this recipe (trained further)."""
    from handseg_training.model import build_model, load_fitting
    from handseg_training.train import load_initial_weights, read_checkpoint

    model = build_model(cfg.encoder, cfg.decoder_channels, encoder_weights=None)
    path = Path(cfg.init_from) if start and cfg.init_from else None
    if path is not None and path.suffix == ".safetensors":
        state, _ = read_checkpoint(path)
        stem = state.get("encoder.model.conv_stem.weight")
        if stem is not None and stem.shape[1] == 3 + handcrop.LANDMARK_CHANNELS:
            widen_stem(model)
            load_fitting(model, {k: v.float() if v.is_floating_point() else v for k, v in state.items()},
                         f"{path}: its weights do not fit this model")
            return model
    if path is not None:
        load_initial_weights(model, path, cfg.encoder)
    widen_stem(model)
    return model


def spec_for(cfg: CropTrainConfig, metrics: dict | None = None) -> ModelSpec:
    return ModelSpec(name=cfg.name, file=f"{cfg.name}.onnx", kind=KIND, architecture="DeepLabV3+, per hand",
                     encoder=cfg.encoder, input_size=cfg.crop, mean=tuple(cfg.mean), std=tuple(cfg.std),
                     training_data=", ".join([*cfg.data.frames, *cfg.data.hand_photos, *cfg.data.faces,
                                              *cfg.data.backgrounds]),
                     metrics=metrics or {})


def to_batch(inputs: np.ndarray, cfg: CropTrainConfig, gen: torch.Generator) -> torch.Tensor:
    x = torch.from_numpy(inputs)
    rgb = photometric(x[:, :3].contiguous(), cfg.photometric, gen)
    mean = torch.tensor(cfg.mean)[None, :, None, None]
    std = torch.tensor(cfg.std)[None, :, None, None]
    return torch.cat([(rgb - mean) / std, x[:, 3:]], 1)


class _Batches(torch.utils.data.IterableDataset):
    """Endless batches from a sampler; each worker process draws with a seed of its own."""

    def __init__(self, sampler, size: int, seed: int):
        self.sampler, self.size, self.seed = sampler, size, seed

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        if info is not None:
            self.sampler.rng = np.random.default_rng(self.seed + 1000 * (info.id + 1))
        while True:
            yield self.sampler.batch(self.size)


def batches(sampler, cfg: CropTrainConfig):
    if cfg.workers <= 0:
        while True:
            yield sampler.batch(cfg.batch)
    loader = torch.utils.data.DataLoader(_Batches(sampler, cfg.batch, cfg.seed), batch_size=None,
                                         num_workers=cfg.workers, prefetch_factor=4, persistent_workers=True)
    for inputs, targets in loader:
        yield inputs.numpy(), targets.numpy()


def run(cfg: CropTrainConfig, out_dir: Path, progress=None, device: str = "auto") -> dict:
    from handseg_training.train import hold_batchnorm, learning_rate, pick_device, save_checkpoint, training_step

    out_dir.mkdir(parents=True, exist_ok=True)
    dev = pick_device(device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model = build_crop_model(cfg).to(dev).to(memory_format=torch.channels_last)
    sampler = build_sampler(cfg.data, cfg.augment, cfg.crop, cfg.seed)
    log.info("data: %d frame hands, %d hand photos, %d faces, %d scenes",
             0 if sampler.frames is None else len(sampler.frames.samples), len(sampler.hands.samples),
             len(sampler.faces), len(sampler.scenes))
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    model.train()
    if cfg.freeze_batchnorm:
        hold_batchnorm(model)
    schedule = replace_schedule(cfg)
    budget = cfg.time_budget_minutes * 60
    start = last_ckpt = time.monotonic()
    history, running, step = [], None, 0
    checkpoint = out_dir / "model.safetensors"
    draws = batches(sampler, cfg)
    amp = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16")
    while step < cfg.max_steps:
        fraction = max(step / cfg.max_steps, (time.monotonic() - start) / budget)
        if fraction >= 1:
            break
        lr = learning_rate(schedule, step, fraction)
        for group in optimizer.param_groups:
            group["lr"] = lr
        inputs, targets = next(draws)
        x = to_batch(inputs, cfg, gen).to(dev, non_blocking=True).contiguous(memory_format=torch.channels_last)
        y = torch.from_numpy(targets).to(dev, non_blocking=True)
        loss = training_step(model, optimizer, amp, x, y, cfg.loss)
        step += 1
        if step % cfg.log_every == 0 or step == 1:
            value = float(loss.detach())
            running = value if running is None else 0.8 * running + 0.2 * value
            elapsed = time.monotonic() - start
            history.append({"step": step, "loss": value, "smoothed": running, "lr": lr, "seconds": round(elapsed, 1)})
            log.info("step %d loss %.4f (smoothed %.4f) lr %.2e %.2f s/step", step, value, running, lr, elapsed / step)
            if progress is not None:
                progress(fraction, running)
        if time.monotonic() - last_ckpt > cfg.checkpoint_every_minutes * 60:
            save_checkpoint(model, cfg, checkpoint, {"step": step})
            last_ckpt = time.monotonic()
    save_checkpoint(model, cfg, checkpoint, {"step": step})
    report = {"name": cfg.name, "steps": step, "train_seconds": round(time.monotonic() - start, 1), "history": history}
    spec = export_crop_model(model, cfg, out_dir / f"{cfg.name}.onnx")
    report["onnx"] = {"file": str(out_dir / spec.file), "sha256": spec.sha256}
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    return report


def replace_schedule(cfg: CropTrainConfig):
    """The whole-image recipe's schedule (warm-up, cosine) with this config's settings."""
    from handseg_training.config import TrainConfig

    return replace(TrainConfig(), lr=cfg.lr, warmup_steps=cfg.warmup_steps, max_steps=cfg.max_steps)


def export_crop_model(model: torch.nn.Module, cfg: CropTrainConfig, out_path: Path, metrics: dict | None = None,
                      half: bool = True) -> ModelSpec:
    """One ONNX file (weights as float16 behind Casts), checked against torch, with its sidecar."""
    from handseg_training.export import add_metadata, check_against_torch, half_weights, to_onnx_bytes, write_model

    model = model.cpu().eval().float().to(memory_format=torch.contiguous_format)
    channels = 3 + handcrop.LANDMARK_CHANNELS
    size = (cfg.crop, cfg.crop)
    data = to_onnx_bytes(model, size, fold=not half, channels=channels)
    if half:
        data = half_weights(data)
    spec = replace(spec_for(cfg, metrics), file=out_path.name)
    data = add_metadata(data, spec.to_metadata())
    difference = check_against_torch(model, data, sizes=(size, (192, 192)), channels=channels)
    if difference > (1e-2 if half else 1e-3):
        raise RuntimeError(f"ONNX export differs from torch by {difference:.2e}; not written")
    digest = write_model(data, out_path)
    return replace(spec, sha256=digest, folder=str(out_path.parent))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--landmarks", default=None, help="the folder hand_landmarks wrote")
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--minutes", type=float, default=None)
    parser.add_argument("--init-from", default=None, help="a whole-image float ONNX or a per-hand checkpoint")
    parser.add_argument("--device", default="auto", help="auto (a GPU where there is one), cpu or cuda")
    parser.add_argument("--workers", type=int, default=None, help="processes drawing the crops")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    cfg = load_crop_config(args.config, {"data.root": args.data_root, "data.landmarks": args.landmarks,
                                         "max_steps": args.max_steps, "time_budget_minutes": args.minutes,
                                         "init_from": args.init_from, "workers": args.workers})
    report = run(cfg, args.out, device=args.device)
    print(json.dumps({k: v for k, v in report.items() if k != "history"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
