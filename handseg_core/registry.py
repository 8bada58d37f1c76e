"""The one list of models that the API, the CLI, the plug-ins and the docs all read.

Packaged models live in `handseg_core/models/` and are described by `models/index.json`. More
folders can be added with the HANDSEG_MODELS environment variable (paths separated by the
system's path separator); each may hold its own `index.json` and ONNX files exported by
`handseg export`, which carry their settings in the ONNX metadata and their checksum in a
`<file>.sha256` sidecar. HANDSEG_DEFAULT_MODEL names the model used when none is given (the
CLI, the API and the plug-ins all ask `default_model_name`).

Only models with a recorded checksum (in an index or a sidecar) are listed, so a file dropped
into a models folder is never offered by name; one without a checksum loads only when named by
its path, with an `UnverifiedModelWarning` that says how to record one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
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
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class UnverifiedModelWarning(UserWarning):
    """A model with no recorded checksum is loaded (named by its path): nothing can tell whether
    the file was damaged or replaced."""


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
    # (docs/models.md, The input size adapts), so each model records its own.
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
            if spec.kind in kinds and has_checksum(spec):
                models.setdefault(spec.name, spec)
        indexed_files = {s.file for s in listed}
        for onnx_file in sorted(folder.glob("*.onnx")) if SEGMENTER in kinds else []:
            spec = ModelSpec(name=onnx_file.stem, file=onnx_file.name, folder=str(folder))
            if onnx_file.name not in indexed_files and onnx_file.stem not in models and has_checksum(spec):
                models[onnx_file.stem] = spec
    return models


def has_checksum(spec: ModelSpec) -> bool:
    """Whether a well-formed checksum is recorded for the model (its index entry or sidecar)."""
    try:
        return bool(expected_checksum(spec))
    except ModelError:
        return False


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
    for folder in model_folders():
        unlisted = folder / f"{text}.onnx"
        if "/" not in text and os.sep not in text and unlisted.is_file():
            raise ModelError(f"model {text!r} is not offered by name: {unlisted} has no recorded checksum; record one "
                             f"with `handseg export` (it writes {sidecar_of(unlisted).name}), or give its path to "
                             "load it unverified")
    names = ", ".join(models) or "none"
    raise ModelError(f"unknown model {text!r}; available: {names} (or give the path of an .onnx file)")


def find_listed(name: str) -> ModelSpec:
    """A segmenter by its registry name only, never a path: for model values that come from
    outside (a workflow, a menu, a web request), so that nothing but a listed model is opened.

    Raises:
        ModelError: `name` is not a listed model's name.
    """
    models = available_models()
    if not isinstance(name, str) or name not in models:
        raise ModelError(f"model {name!r} refused: not one of the installed models ({', '.join(models) or 'none'})")
    return models[name]


def is_inside(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """Whether `path`, with every symlink and '..' resolved, lies inside `folder` (also resolved).
    Nothing is opened: only the names are followed."""
    real, root = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([real, root]) == root and real != root


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


def sidecar_of(path: Path) -> Path:
    """Where a model's checksum is recorded beside it (`handseg export` writes it)."""
    return path.with_name(path.name + ".sha256")


def expected_checksum(spec: ModelSpec) -> str:
    """The recorded checksum: from the index, else from a `<file>.sha256` sidecar, else ''.

    Raises:
        ChecksumError: the recorded value is not a sha256 (a damaged index entry or sidecar).
    """
    if spec.sha256:
        recorded, where = spec.sha256, "its index entry"
    else:
        sidecar = sidecar_of(spec.path)
        if not sidecar.is_file():
            return ""
        try:
            recorded, where = (sidecar.read_text(errors="replace").split() or [""])[0], str(sidecar)
        except OSError as exc:
            raise ChecksumError(f"{sidecar}: cannot be read ({exc.strerror or exc}); refusing the model") from None
    recorded = recorded.lower()
    if not _SHA256.match(recorded):
        raise ChecksumError(f"{spec.path}: the checksum in {where} is not a sha256; refusing to load the model "
                            "(export it again with `handseg export`)")
    return recorded


def unverified_message(path: Path) -> str:
    return (f"{path}: no checksum is recorded for this model, so damage or tampering cannot be detected; "
            f"record one with `handseg export` (it writes {sidecar_of(path).name}) "
            f"or `sha256sum {path.name} > {sidecar_of(path).name}` in its folder")


def read_verified(spec: ModelSpec) -> bytes:
    """The model file's bytes, after checking them against the recorded checksum (a model
    without one, which only `find` by path gives, is read with an `UnverifiedModelWarning`).

    Raises:
        ModelError: the file is missing.
        ChecksumError: the bytes do not match the recorded checksum.
    """
    try:
        data = spec.path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"{spec.path}: model file missing; reinstall handseg or export the model again") from None
    expected = expected_checksum(spec)
    if not expected:
        warnings.warn(unverified_message(spec.path), UnverifiedModelWarning, stacklevel=3)
    elif sha256_of(data) != expected:
        raise ChecksumError(
            f"{spec.path}: checksum mismatch (expected sha256 {expected[:12]}..., got {sha256_of(data)[:12]}...); "
            "the file is damaged or was replaced; refusing to load it"
        )
    return data
