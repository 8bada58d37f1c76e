"""The training recipe: DeepLabV3+, Adam, BCE-with-logits (+ Dice), augmentation on the device.

`run(config)` trains, checkpoints (safetensors), evaluates and exports one ONNX file. It runs on
a GPU when there is one and on the CPU otherwise; the schedule spans whichever of `max_steps` and
`time_budget_minutes` ends first, so the same config finishes on either.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from handseg_core import atomic
from handseg_core.metrics import MaskStats
from handseg_core.preprocess import default_long_side, prepare, restore
from handseg_training import data as D
from handseg_training import datasets as DS
from handseg_training.augment import composites, photometric, random_crops
from handseg_training.config import TrainConfig, to_dict
from handseg_training.model import build_model, load_fitting
from handseg_training.data import excluded

log = logging.getLogger(__name__)
STRIDE = 32


@dataclass
class TrainingData:
    frames: torch.Tensor | None  # uint8 [N, 4, H, W]
    hands: torch.Tensor | None  # uint8 [N, 4, S, S]
    backgrounds: torch.Tensor | None  # uint8 [M, 3, H, W]
    val_pairs: list[tuple[Path, Path]]
    holdout_hands: list[tuple[Path, Path]]


def pick_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def prepare_data(cfg: TrainConfig, cache_dir: Path | None) -> TrainingData:
    root = Path(cfg.data.root)

    def kept(paths):  # data.exclude: what the out-of-domain set (oodset.py) holds back
        return [p for p in paths if not excluded(p[0] if isinstance(p, tuple) else p, root, cfg.data.exclude)]

    frame_pairs, val_pairs = [], []
    frame_samples = []  # public datasets in their own layouts (datasets.py); plain folders stay pairs
    for name in cfg.data.frames:
        entry = DS.resolve(name, root)
        if entry.format != "folder":
            train, held = DS.split_by_group(DS.read(entry), cfg.data.val_groups)
            frame_samples += train
            val_pairs += DS.mask_files(held, None if cache_dir is None else cache_dir / "val_masks")
            continue
        for pair in D.PairFolder(entry.path).pairs():
            (val_pairs if D.video_of(pair[0]) in cfg.data.val_groups else frame_pairs).append(pair)
    hand_pairs, holdout = [], []
    for name in cfg.data.hand_photos:
        folder = root / name
        pairs = kept(D.PairFolder(folder).pairs())
        info = D.hands11k_subjects(folder)
        if info and cfg.data.holdout_subjects > 0:
            pairs, held = D.split_by_subject(pairs, info, cfg.data.holdout_subjects, cfg.seed)
            holdout += held
        hand_pairs += pairs
    background_paths = kept([p for name in cfg.data.backgrounds for p in D.list_images(root / name)])
    log.info(
        "data: %d frames (%d held out for validation), %d hand photos (%d held out), %d backgrounds",
        len(frame_pairs) + len(frame_samples), len(val_pairs), len(hand_pairs), len(holdout), len(background_paths),
    )
    frames = D.load_pairs(frame_pairs, cfg.data.frame_size, cache_dir) if frame_pairs else None
    if frame_samples:
        more = DS.load_samples(frame_samples, cfg.data.frame_size, cache_dir)
        frames = more if frames is None else torch.cat([frames, more])
    s = cfg.data.hand_photo_size
    labels = None
    if cfg.data.hand_labels:  # each pair's label beside its mask, else the mask itself
        labels = [m.parent.parent / cfg.data.hand_labels / m.name for _, m in hand_pairs]
        labels = [b if b.is_file() else m for b, (_, m) in zip(labels, hand_pairs)]
        log.info("data: %d hand photos labelled from %s/", sum(b != m for b, (_, m) in zip(labels, hand_pairs)),
                 cfg.data.hand_labels)
    return TrainingData(
        frames=frames,
        hands=D.load_pairs(hand_pairs, (s, s), cache_dir, labels) if hand_pairs else None,
        backgrounds=D.load_images(background_paths, cfg.data.background_size, cache_dir) if background_paths else None,
        val_pairs=val_pairs,
        holdout_hands=holdout,
    )


def training_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, amp, x: torch.Tensor, y: torch.Tensor,
                  loss: str) -> torch.Tensor:
    """One optimiser step on the batch (x, y), the forward pass under `amp` (autocast or not);
    returns the loss, still on the device."""
    with amp:
        logits = model(x)
    value = loss_fn(logits.float(), y, loss)
    optimizer.zero_grad(set_to_none=True)
    value.backward()
    optimizer.step()
    return value


def loss_fn(logits: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    loss = F.binary_cross_entropy_with_logits(logits, target)
    if kind == "bce+dice":
        p = torch.sigmoid(logits)
        inter = (p * target).sum(dim=(1, 2, 3))
        total = p.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3))
        loss = loss + (1 - (2 * inter + 1) / (total + 1)).mean()
    return loss


def learning_rate(cfg: TrainConfig, step: int, progress: float, restart_step: int | None = None) -> float:
    """Warm-up, then a cosine to zero; with `restart_at`, a second warm-up and cosine from there.

    `progress` is the fraction of the schedule done (steps or time, whichever ends first);
    `restart_step` the step at which the restart began, None before it.
    """
    first = cfg.restart_at if 0 < cfg.restart_at < 1 else 1.0
    if restart_step is None:
        warm = min(1.0, (step + 1) / max(1, cfg.warmup_steps))
        return cfg.lr * warm * 0.5 * (1 + math.cos(math.pi * min(progress / first, 1.0)))
    warm = min(1.0, (step - restart_step + 1) / max(1, cfg.warmup_steps))
    rest = min(max((progress - first) / (1 - first), 0.0), 1.0)
    return cfg.restart_lr * warm * 0.5 * (1 + math.cos(math.pi * rest))


def make_batch(cfg: TrainConfig, data: TrainingData, gen: torch.Generator, device: torch.device):
    n_comp = 0
    if data.hands is not None and data.backgrounds is not None:
        n_comp = round(cfg.batch * cfg.data.composite_fraction)
    if data.frames is None:
        n_comp = cfg.batch
    n_frames = cfg.batch - n_comp
    images, masks = [], []
    out = (cfg.crop, cfg.crop)
    if n_frames:
        index = torch.randint(0, data.frames.shape[0], (n_frames,), generator=gen, device=device)
        i, m = random_crops(data.frames, index, out, cfg.augment, gen)
        images.append(i)
        masks.append(m)
    if n_comp:
        i, m = composites(data.hands, data.backgrounds, out, n_comp, cfg.augment, gen)
        images.append(i)
        masks.append(m)
    x = photometric(torch.cat(images), cfg.augment, gen)
    mean = torch.tensor(cfg.mean, device=device)[None, :, None, None]
    std = torch.tensor(cfg.std, device=device)[None, :, None, None]
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last), torch.cat(masks)


@torch.no_grad()
def predict(model: torch.nn.Module, image: np.ndarray, cfg: TrainConfig, device: torch.device) -> np.ndarray:
    """Hand probability for one RGB image, with the same pre- and post-processing as the engine."""
    size = default_long_side(image.shape, cfg.input_size, cfg.min_input_size)
    prepared = prepare(image, size, cfg.mean, cfg.std, STRIDE)
    x = torch.from_numpy(prepared.tensor).to(device)
    p = torch.sigmoid(model(x).float())[0, 0].cpu().numpy()
    return restore(p, prepared)


def evaluate(model, pairs, cfg: TrainConfig, device, groups: dict[str, str] | None = None) -> dict:
    """Mean per-image hand IoU (and accuracy, precision, recall); per group when groups are given."""
    model.eval()
    overall = MaskStats()
    by_group: dict[str, MaskStats] = {}
    for image_path, mask_path in pairs:
        truth = D.read_mask(mask_path) >= 128
        predicted = predict(model, D.read_rgb(image_path), cfg, device) >= 0.5
        overall.add(predicted, truth)
        if groups is not None:
            by_group.setdefault(groups.get(image_path.stem, "unknown"), MaskStats()).add(predicted, truth)
    result = overall.summary()
    if groups is not None:
        result["groups"] = {k: v.summary() for k, v in sorted(by_group.items())}
    return result


PART_BYTES = 16 * 2**20  # checkpoint files stay under 16 MiB, so they travel and upload anywhere


def part_path(path: Path, index: int) -> Path:
    return path if index == 0 else path.with_name(f"{path.stem}.part{index + 1}{path.suffix}")


def data_generator(cfg: TrainConfig, device: torch.device) -> torch.Generator:
    """The generator of the batches' random draws: from `data_seed`, or `seed` where it is -1."""
    return torch.Generator(device=device).manual_seed(cfg.seed if cfg.data_seed < 0 else cfg.data_seed)


def save_checkpoint(model: torch.nn.Module, cfg: TrainConfig, path: Path, extra: dict) -> list[Path]:
    """Write the state dict as safetensors in files of at most 16 MiB.

    The first file is `path` and holds the config in its metadata and the number of parts;
    further parts are `model.part2.safetensors`, ... beside it (a single tensor larger than a part
    gets a part of its own; none of the configs' models has one). Returns the files written.
    """
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    parts: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key, tensor in state.items():
        nbytes = tensor.numel() * tensor.element_size()
        if parts[-1] and size + nbytes > PART_BYTES - 2**16:  # room for the header
            parts.append({})
            size = 0
        parts[-1][key] = tensor
        size += nbytes
    metadata = {"config": json.dumps(to_dict(cfg)), "parts": str(len(parts)),
                **{k: json.dumps(v) for k, v in extra.items()}}
    written = []
    for index, part in enumerate(parts):
        target = part_path(path, index)
        with atomic.replacing(target) as temporary:
            save_file(part, str(temporary), metadata=metadata if index == 0 else {"part": str(index + 1)})
        written.append(target)
    stale = len(parts)
    while part_path(path, stale).exists():  # parts of an earlier, larger save
        part_path(path, stale).unlink()
        stale += 1
    return written


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The state dict and metadata of a checkpoint written by `save_checkpoint`, all parts joined."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    state = load_file(str(path))
    for index in range(1, int(meta.get("parts", "1"))):
        part = part_path(path, index)
        if not part.exists():
            raise FileNotFoundError(f"{path}: its part {part.name} is missing; copy all {meta['parts']} parts together")
        state.update(load_file(str(part)))
    return state, meta


def read_onnx_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The state dict inside a float ONNX file that `handseg export --half` (unfolded) wrote, and
    its handseg metadata: the shipped float models can be trained on from the package alone.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not an ONNX model.
    """
    import onnx
    from onnx import numpy_helper

    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: no such model")
    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError and others for a file that is not a model
        raise ValueError(f"{path}: not an ONNX model ({exc})") from exc
    meta = {p.key.removeprefix("handseg."): json.loads(p.value) for p in proto.metadata_props
            if p.key.startswith("handseg.")}
    state = {}
    for tensor in proto.graph.initializer:
        name = tensor.name.removesuffix("__fp16")
        if name.startswith("model."):
            values = numpy_helper.to_array(tensor)
            if values.dtype == np.float16:
                values = values.astype(np.float32)
            state[name.removeprefix("model.")] = torch.from_numpy(values.copy())
    return state, meta


def load_initial_weights(model: torch.nn.Module, path: Path, encoder: str) -> None:
    """Start from a handseg checkpoint (.safetensors) or a float handseg ONNX file."""
    if path.suffix.lower() == ".onnx":
        state, meta = read_onnx_weights(path)
        if meta.get("encoder", encoder) != encoder:
            raise ValueError(f"{path}: a {meta['encoder']} model; this config trains {encoder}")
    else:
        state, _ = read_checkpoint(path)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    load_fitting(model, state, f"{path}: its weights do not fit this model",
                 "; start from a checkpoint or a float export of the same encoder and decoder (an int8 file "
                 "or one with folded batch norms cannot be trained)", ignore_missing=("num_batches_tracked",))


def load_checkpoint(path: Path) -> tuple[torch.nn.Module, TrainConfig]:
    from handseg_training.config import _build

    state, meta = read_checkpoint(Path(path))
    if "config" not in meta:
        raise ValueError(f"{path}: not a handseg checkpoint (no config in its metadata)")
    cfg = _build(TrainConfig, json.loads(meta["config"]), str(path))
    model = build_model(cfg.encoder, cfg.decoder_channels, encoder_weights=None)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return model.eval(), cfg


def hold_batchnorm(model: torch.nn.Module) -> int:
    """Put every BatchNorm layer of a model in training into eval mode: it normalises with its
    running statistics and no longer updates them (its scale and shift still learn). Returns
    how many layers were held."""
    held = 0
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()
            held += 1
    return held


def run(cfg: TrainConfig, out_dir: Path, device: str = "auto", cache_dir: Path | None = None, progress=None) -> dict:
    """Train, checkpoint, evaluate and export. Returns the report also written to report.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    dev = pick_device(device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # crops have one size: let cuDNN pick its fastest kernels
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    gen = data_generator(cfg, dev)
    (out_dir / "config.json").write_text(json.dumps(to_dict(cfg), indent=2))

    # the model first: a wrong init_from or encoder file fails before the data is decoded
    model = build_model(cfg.encoder, cfg.decoder_channels, cfg.encoder_weights)
    if cfg.init_from:
        load_initial_weights(model, Path(cfg.init_from), cfg.encoder)
        log.info("starting from %s", cfg.init_from)
    data = prepare_data(cfg, cache_dir)
    data = TrainingData(
        frames=None if data.frames is None else data.frames.to(dev),
        hands=None if data.hands is None else data.hands.to(dev),
        backgrounds=None if data.backgrounds is None else data.backgrounds.to(dev),
        val_pairs=data.val_pairs,
        holdout_hands=data.holdout_hands,
    )
    model = model.to(dev)
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    amp = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16")

    budget = cfg.time_budget_minutes * 60
    start = last_ckpt = time.monotonic()
    history = []
    step = 0
    seen = 0
    running = None
    restart_step = None
    checkpoint = out_dir / "model.safetensors"
    model.train()
    if cfg.freeze_batchnorm:
        hold_batchnorm(model)
    while step < cfg.max_steps:
        elapsed = time.monotonic() - start
        fraction = max(step / cfg.max_steps, elapsed / budget)
        if fraction >= 1:
            break
        if 0 < cfg.restart_at < 1 and restart_step is None and fraction >= cfg.restart_at:
            restart_step = step  # a warm restart: fresh Adam moments, a second cosine
            optimizer = torch.optim.Adam(model.parameters(), lr=cfg.restart_lr, weight_decay=cfg.weight_decay)
            log.info("step %d: restarting the schedule at lr %.2e", step, cfg.restart_lr)
        lr = learning_rate(cfg, step, fraction, restart_step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = make_batch(cfg, data, gen, dev)
        loss = training_step(model, optimizer, amp, x, y, cfg.loss)
        step += 1
        seen += x.shape[0]
        if step % cfg.log_every == 0 or step == 1:  # reading the loss waits for the GPU: only when logging
            value = float(loss.detach())
            running = value if running is None else 0.8 * running + 0.2 * value
            elapsed = time.monotonic() - start
            history.append({"step": step, "loss": value, "smoothed": running, "lr": lr, "seconds": elapsed})
            log.info("step %d loss %.4f (smoothed %.4f) lr %.2e %.1f img/s", step, value, running, lr, seen / elapsed)
            if progress is not None:
                progress(min(1.0, max(step / cfg.max_steps, elapsed / budget)), running)
        if time.monotonic() - last_ckpt > cfg.checkpoint_every_minutes * 60:
            save_checkpoint(model, cfg, checkpoint, {"step": step})
            last_ckpt = time.monotonic()
    train_seconds = time.monotonic() - start
    save_checkpoint(model, cfg, checkpoint, {"step": step})
    log.info("trained %d steps, %d images in %.0f s on %s", step, seen, train_seconds, dev)

    report = {
        "name": cfg.name,
        "device": str(dev),
        "steps": step,
        "images_seen": seen,
        "train_seconds": round(train_seconds, 1),
        "history": history,
        "eval": {},
    }
    model.eval()
    if data.val_pairs:
        report["eval"]["validation"] = evaluate(model, data.val_pairs, cfg, dev)
    if data.holdout_hands:
        info = {}
        for name in cfg.data.hand_photos:
            info.update(D.hands11k_subjects(Path(cfg.data.root) / name))
        groups = {stem: row["skinColor"] for stem, row in info.items()}
        report["eval"]["hands11k_holdout"] = evaluate(model, data.holdout_hands, cfg, dev, groups)
    for name in cfg.data.eval:
        folder = Path(cfg.data.root) / name
        if folder.exists():
            report["eval"][name] = evaluate(model, D.PairFolder(folder).pairs(), cfg, dev)
    for name, result in report["eval"].items():
        log.info("eval %s: IoU %.4f", name, result["iou"])
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))  # kept if the export fails
    from handseg_training.export import export

    spec = export(model, cfg, out_dir / f"{cfg.name}.onnx", metrics=report["eval"])
    report["onnx"] = {"file": str(out_dir / spec.file), "sha256": spec.sha256}
    log.info("exported %s", out_dir / spec.file)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    return report
