"""Training settings, read from a TOML file (see configs/)."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from handseg_training.augment import AugmentConfig


@dataclass
class DataConfig:
    root: str = "../shared/data"  # relative paths below are under this folder
    frames: list[str] = field(default_factory=lambda: ["egohands_400"])  # scenes, random crops
    frame_size: tuple[int, int] = (288, 512)  # height, width the frames are stored at
    val_groups: list[str] = field(default_factory=list)  # videos held out of `frames` for validation
    hand_photos: list[str] = field(default_factory=list)  # hand photos pasted onto backgrounds
    hand_photo_size: int = 192
    # a folder beside a hand photo set's masks/ whose masks (same stems) are the training target,
    # while masks/ stays what is pasted: hand photos whose forearm is pasted but labelled
    # background (research.forearms); sets without the folder use masks/ for both
    hand_labels: str = ""
    backgrounds: list[str] = field(default_factory=list)  # folders of hand-free images (and faces)
    background_size: tuple[int, int] = (256, 256)
    composite_fraction: float = 0.0  # share of each batch made of pasted hands
    holdout_subjects: float = 0.2  # 11k Hands subjects kept out of training, for the skin-tone report
    eval: list[str] = field(default_factory=lambda: ["egohands_cross14"])  # reported after training
    exclude: list[str] = field(default_factory=list)  # glob patterns under root kept out of training


@dataclass
class TrainConfig:
    name: str = "handseg-model"
    encoder: str = "tf_efficientnet_lite0"
    decoder_channels: int = 256
    encoder_weights: str = "package"  # package | imagenet | none | PATH
    init_from: str = ""  # a checkpoint (.safetensors) or float ONNX file (`handseg export --half`) to start from
    # BatchNorm statistics held as loaded (its layers in eval mode): for fine-tuning from init_from
    # with small batches, whose statistics would otherwise replace the model's (a CPU batch of 8
    # moved the shipped lite2's 11k IoU from 0.966 to 0.934 in 38 steps at a learning rate of 4e-5)
    freeze_batchnorm: bool = False
    input_size: int = 512  # long side at inference
    min_input_size: int = 0  # smaller images are enlarged to this at inference (0: never)
    hand_limit: int = 280  # a hand spanning more network pixels than this is seen smaller ...
    hand_extent: int = 200  # ... at the size where it spans this (registry.ModelSpec)
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    crop: int = 256
    batch: int = 16
    lr: float = 5e-4
    weight_decay: float = 0.0
    warmup_steps: int = 50
    restart_at: float = 0.0  # fraction of the schedule where a second cosine starts (0: none)
    restart_lr: float = 2.5e-4  # its peak learning rate
    loss: Literal["bce", "bce+dice"] = "bce+dice"
    max_steps: int = 100_000
    time_budget_minutes: float = 10.0  # the cosine schedule runs over whichever ends first
    precision: Literal["fp32", "bf16"] = "bf16"
    log_every: int = 20
    checkpoint_every_minutes: float = 5.0
    seed: int = 0  # the initial weights (decoder) and the held-out subjects
    # The batches' draws (crops, pasted hands, augmentation); -1: `seed`. Runs meant to be averaged
    # (handseg_training.soup) keep `seed`, so they start from the same weights, and differ here.
    data_seed: int = -1
    threads: int = 0  # CPU threads for torch (0: torch's default); 1 is steadier on a busy machine
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)


def _build(cls, values: dict, where: str):
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"{where}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    kwargs = {}
    for key, value in values.items():
        default = getattr(cls(), key)
        if dataclasses.is_dataclass(default):
            kwargs[key] = _build(type(default), value, f"{where}.{key}")
        elif isinstance(default, tuple):
            kwargs[key] = tuple(value)
        else:
            kwargs[key] = value
    return cls(**kwargs)


def load_config(path: str | Path, overrides: dict | None = None) -> TrainConfig:
    """Read a TOML config; `overrides` (dotted keys, e.g. {"data.root": ...}) win over the file."""
    return _build(TrainConfig, read_values(path, overrides), str(path))


def read_values(path: str | Path, overrides: dict | None = None) -> dict:
    """A TOML config's values, `overrides` (dotted keys; None: keep the file's) applied.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not valid TOML.
    """
    path = Path(path)
    try:
        values = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from None
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        node = values
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return values


def to_dict(config: TrainConfig) -> dict:
    return dataclasses.asdict(config)
