"""The one list of models that the API, the CLI, the plug-ins and the docs all read.

Packaged models live in `handseg_core/models/` and are described by `models/index.json`. More
folders can be added with the HANDSEG_MODELS environment variable (paths separated by the
system's path separator); each may hold its own `index.json` and ONNX files exported by
`handseg export`, which carry their settings in the ONNX metadata and their checksum in a
`<file>.sha256` sidecar. HANDSEG_DEFAULT_MODEL names the model used when none is given (the
CLI, the API and the plug-ins all ask `default_model_name`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from handseg_core.errors import ChecksumError, ModelError

PACKAGED_DIR = Path(__file__).parent / "models"
ENV_FOLDERS = "HANDSEG_MODELS"
ENV_DEFAULT = "HANDSEG_DEFAULT_MODEL"
METADATA_PREFIX = "handseg."
SEGMENTER = "segmenter"
# The hand finder's two models (handseg_core.finder), listed in the index as kinds of their own:
# they are not segmenters, so no menu or --model choice offers them.
PALM_MODEL = "mediapipe-palm-detection-full"
LANDMARK_MODEL = "mediapipe-hand-landmark-full"
FINDER_KINDS = ("palm_detector", "hand_landmarks")
HANDS_KIND = "hand_crop_segmenter"  # a per-hand network (handseg_core.hands), named by a segmenter's hands_model
KINDS = (SEGMENTER, *FINDER_KINDS, HANDS_KIND)


@dataclass(frozen=True)
class ModelSpec:
    """Everything handseg knows about one model."""

    name: str
    file: str
    sha256: str = ""
    kind: str = SEGMENTER  # or one of FINDER_KINDS
    architecture: str = "DeepLabV3+"
    encoder: str = ""
    input_size: int = 512
    min_input_size: int = 0  # smaller images are enlarged to this long side (0: never enlarged)
    # Adapting the input size to the hands (`HandSegmenter.fitted_size`): where the largest hand
    # would span more than `hand_limit` network pixels, the network sees the photo at the size
    # where it spans `hand_extent`. How large a hand a model still finds depends on its training
    # (README, The input size adapts), so each model records its own.
    hand_limit: int = 280
    hand_extent: int = 200
    hands_model: str = ""  # the per-hand network it works with (a registry name; handseg_core.hands)
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    stride: int = 32
    training_data: str = ""
    terms: str = ""
    description: str = ""
    metrics: dict = field(default_factory=dict, hash=False, compare=False)
    folder: str = ""  # where the file lives; filled in when the registry is read

    @property
    def path(self) -> Path:
        return Path(self.folder) / self.file

    def to_metadata(self) -> dict[str, str]:
        """The settings an exported ONNX file carries, so that it loads by path alone."""
        values = asdict(self)
        values.pop("folder")
        values.pop("sha256")
        return {METADATA_PREFIX + k: json.dumps(v) for k, v in values.items()}

    @classmethod
    def from_metadata(cls, metadata: dict[str, str], path: Path) -> "ModelSpec":
        values = {k[len(METADATA_PREFIX):]: json.loads(v) for k, v in metadata.items() if k.startswith(METADATA_PREFIX)}
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        known.setdefault("name", path.stem)
        known["file"] = path.name
        known["folder"] = str(path.parent)
        for key in ("mean", "std"):
            if key in known:
                known[key] = tuple(known[key])
        return cls(**known)


def read_index(folder: Path) -> list[ModelSpec]:
    """The models listed in `folder`/index.json (none where it has no index).

    Raises:
        ModelError: the index cannot be read or an entry is not a model entry.
    """
    index = folder / "index.json"
    if not index.exists():
        return []
    try:
        entries = json.loads(index.read_text())["models"]
    except (ValueError, KeyError) as exc:
        raise ModelError(f"{index}: not a valid model index ({exc}); expected {{\"models\": [...]}}") from None
    specs = []
    for entry in entries:
        entry = dict(entry)
        entry.pop("default", None)
        for key in ("mean", "std"):
            if key in entry:
                entry[key] = tuple(entry[key])
        try:
            specs.append(ModelSpec(folder=str(folder), **entry))
        except TypeError as exc:
            raise ModelError(f"{index}: entry {entry.get('name', '?')!r} is not a valid model entry ({exc})") from None
    return specs


def model_folders() -> list[Path]:
    """The packaged folder, then those named in HANDSEG_MODELS."""
    extra = [Path(p).expanduser() for p in os.environ.get(ENV_FOLDERS, "").split(os.pathsep) if p.strip()]
    return [PACKAGED_DIR, *extra]


def available_models(kinds: tuple[str, ...] = (SEGMENTER,)) -> dict[str, ModelSpec]:
    """Name -> spec of every model of these kinds handseg can load by name (segmenters unless
    asked), packaged ones first."""
    models: dict[str, ModelSpec] = {}
    for folder in model_folders():
        if not folder.is_dir():
            continue
        listed = read_index(folder)
        for spec in listed:
            if spec.kind in kinds:
                models.setdefault(spec.name, spec)
        indexed_files = {s.file for s in listed}
        for onnx_file in sorted(folder.glob("*.onnx")) if SEGMENTER in kinds else []:
            if onnx_file.name not in indexed_files and onnx_file.stem not in models:
                models[onnx_file.stem] = ModelSpec(name=onnx_file.stem, file=onnx_file.name, folder=str(folder))
    return models


def default_model_name() -> str:
    """The model used when none is named: HANDSEG_DEFAULT_MODEL (a registry name) when set, else
    the packaged index's default.

    Raises:
        ModelError: HANDSEG_DEFAULT_MODEL names no known model, or no default is packaged.
    """
    chosen = os.environ.get(ENV_DEFAULT, "").strip()
    if chosen:
        names = available_models()
        if chosen not in names:
            raise ModelError(
                f"{ENV_DEFAULT}={chosen!r} is not a known model; available: {', '.join(names) or 'none'} "
                f"(add its folder to {ENV_FOLDERS}, or unset {ENV_DEFAULT})"
            )
        return chosen
    index = PACKAGED_DIR / "index.json"
    if index.exists():
        for entry in json.loads(index.read_text())["models"]:
            if entry.get("default"):
                return entry["name"]
    raise ModelError("no default model is packaged; pass a model name or the path of an .onnx file")


def models_for_menu() -> tuple[list[ModelSpec], str | None]:
    """The segmenters for a menu or a dropdown, the default model first, and the default's name
    (None where it cannot be told: HANDSEG_DEFAULT_MODEL names no model, or none is packaged).

    Raises:
        ModelError: an index cannot be read.
    """
    specs = list(available_models().values())
    try:
        default = default_model_name()
    except ModelError:
        default = None
    specs.sort(key=lambda spec: spec.name != default)  # stable: the others keep their order
    return specs, default if any(spec.name == default for spec in specs) else None


def find(name_or_path: str | os.PathLike | None) -> ModelSpec:
    """Resolve a model name (see `available_models`) or the path of an ONNX file.

    Raises:
        ModelError: no such model.
    """
    if name_or_path is None:
        name_or_path = default_model_name()
    text = os.fspath(name_or_path)
    models = available_models()
    if text in models:
        return models[text]
    path = Path(text).expanduser()
    if path.suffix.lower() == ".onnx" or path.exists():
        if not path.is_file():
            raise ModelError(f"{path}: no such model file")
        for spec in models.values():  # a registered model given by path keeps its recorded checksum
            if spec.path.is_file() and spec.path.resolve() == path.resolve():
                return spec
        return ModelSpec(name=path.stem, file=path.name, folder=str(path.parent.resolve()))
    names = ", ".join(models) or "none"
    raise ModelError(f"unknown model {text!r}; available: {names} (or give the path of an .onnx file)")


def find_kind(name: str, *kinds: str) -> ModelSpec:
    """A model of one of these kinds (not a segmenter: the finder's, a per-hand network) by its
    registry name.

    Raises:
        ModelError: no such model is installed.
    """
    models = available_models(kinds)
    if name not in models:
        raise ModelError(f"model {name!r} ({' or '.join(kinds)}) is not installed; reinstall handseg or add its "
                         f"folder to {ENV_FOLDERS} (have: {', '.join(models) or 'none'})")
    return models[name]


def find_finder(name: str) -> ModelSpec:
    """A hand finder model by its registry name (PALM_MODEL, LANDMARK_MODEL)."""
    return find_kind(name, *FINDER_KINDS)


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def expected_checksum(spec: ModelSpec) -> str:
    """The recorded checksum: from the index, else from a `<file>.sha256` sidecar, else ''."""
    if spec.sha256:
        return spec.sha256.lower()
    sidecar = spec.path.with_name(spec.path.name + ".sha256")
    if sidecar.exists():
        return sidecar.read_text().split()[0].lower()
    return ""


def read_verified(spec: ModelSpec) -> bytes:
    """The model file's bytes, after checking them against the recorded checksum.

    Raises:
        ModelError: the file is missing.
        ChecksumError: the bytes do not match the recorded checksum.
    """
    try:
        data = spec.path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"{spec.path}: model file missing; reinstall handseg or export the model again") from None
    expected = expected_checksum(spec)
    if expected and sha256_of(data) != expected:
        raise ChecksumError(
            f"{spec.path}: checksum mismatch (expected sha256 {expected[:12]}..., got {sha256_of(data)[:12]}...); "
            "the file is damaged or was replaced; refusing to load it"
        )
    return data
