"""Writing ONNX model files and listing them in a models folder: what `export` and `quantize`
share, without torch (so `handseg quantize` needs only onnx and ONNX Runtime)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from handseg_core import atomic
from handseg_core.errors import ModelError
from handseg_core.registry import ModelSpec, sha256_of


def add_metadata(onnx_bytes: bytes, metadata: dict[str, str]) -> bytes:
    import onnx

    proto = onnx.load_from_string(onnx_bytes)
    del proto.metadata_props[:]
    for key, value in sorted(metadata.items()):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto.SerializeToString()


def write_model(data: bytes, out_path: Path) -> str:
    """Write an ONNX file (through a temporary name) and its `.sha256` sidecar; returns the digest."""
    atomic.write_bytes(out_path, data)
    digest = sha256_of(data)
    atomic.write_text(out_path.with_name(out_path.name + ".sha256"), f"{digest}  {out_path.name}\n")
    return digest


def index_entry(spec: ModelSpec, default: bool = False) -> dict:
    """The spec as an entry of a models folder's index.json."""
    entry = {k: v for k, v in spec.__dict__.items() if k != "folder"}
    entry["mean"], entry["std"] = list(spec.mean), list(spec.std)
    if default:
        entry["default"] = True
    return json.loads(json.dumps(entry))


def register(spec: ModelSpec, folder: Path, default: bool = False) -> Path:
    """List `spec` in `folder`/index.json (replacing an entry of the same name or file), copying
    its ONNX file and `.sha256` sidecar into `folder` when they live elsewhere. Returns the index.

    With `default`, the entry carries the default mark and no other entry keeps it.

    Raises:
        ModelError: the folder's index.json exists but cannot be read.
        OSError: the folder or its files cannot be written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / spec.file
    if spec.path.resolve() != target.resolve():
        atomic.copy_file(spec.path, target)
        sidecar = spec.path.with_name(spec.path.name + ".sha256")
        if sidecar.exists():
            atomic.copy_file(sidecar, target.with_name(target.name + ".sha256"))
    index = folder / "index.json"
    entries = _index_entries(index)
    entry = index_entry(replace(spec, folder=str(folder)), default)
    if default:
        for other in entries:
            other.pop("default", None)
    same = [i for i, other in enumerate(entries) if other.get("name") == spec.name or other.get("file") == spec.file]
    if same:
        entries[same[0]] = entry
        entries = [other for i, other in enumerate(entries) if i not in same[1:]]
    else:
        entries.append(entry)
    atomic.write_text(index, json.dumps({"models": entries}, indent=2) + "\n")
    return index


def _index_entries(index: Path) -> list[dict]:
    if not index.exists():
        return []
    try:
        entries = json.loads(index.read_text())["models"]
        return [dict(entry) for entry in entries]
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{index}: not a valid model index ({exc}); fix it or move it away") from None
