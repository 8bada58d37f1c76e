"""Which models the Load model node offers, and what a chosen value may resolve to.

The choices are the names in handseg's model registry, then the .onnx files found in the folders
ComfyUI registers under the name "handseg" (by default `ComfyUI/models/handseg/`; more can be
added in extra_model_paths.yaml). Outside ComfyUI only the registry is offered.

A workflow can carry any string, so a value is only accepted when it is one of these choices:
never an absolute path, never a path that leaves the models folder. The listing itself does not
follow symlinks out of the folders (a linked file or folder that resolves elsewhere is left out)
and offers only files whose checksum is recorded beside them (`<file>.sha256`, as `handseg
export` writes it, itself inside the folder), so no file outside the folders is ever opened.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath
from types import ModuleType

from handseg_core import ModelError
from handseg_core import registry

FOLDER_NAME = "handseg"
EXTENSION = ".onnx"


def _folder_paths() -> ModuleType | None:
    try:
        import folder_paths
    except ImportError:
        return None
    return folder_paths


def register_models_folder() -> Path | None:
    """Register `models/handseg/` with ComfyUI's folder_paths (a no-op outside ComfyUI)."""
    fp = _folder_paths()
    if fp is None:
        return None
    default = os.path.join(fp.models_dir, FOLDER_NAME)
    try:
        fp.add_model_folder_path(FOLDER_NAME, default, is_default=True)
    except TypeError:
        fp.add_model_folder_path(FOLDER_NAME, default)
    paths, extensions = fp.folder_names_and_paths[FOLDER_NAME]
    fp.folder_names_and_paths[FOLDER_NAME] = (paths, {*extensions, EXTENSION})
    return Path(default)


def model_folders() -> list[Path]:
    """The folders ComfyUI registers for handseg models; empty outside ComfyUI."""
    fp = _folder_paths()
    if fp is None:
        return []
    try:
        return [Path(p) for p in fp.get_folder_paths(FOLDER_NAME)]
    except KeyError:
        return []


def model_files() -> dict[str, Path]:
    """Relative POSIX path -> file, for every verified .onnx file in the registered folders
    (first wins): inside its folder with symlinks resolved, its checksum recorded beside it."""
    found: dict[str, Path] = {}
    for folder in model_folders():
        if not folder.is_dir():
            continue
        for directory, subdirs, files in os.walk(folder):
            subdirs[:] = [d for d in subdirs if registry.is_inside(Path(directory) / d, folder)]
            for name in sorted(files):
                path = Path(directory) / name
                if name.lower().endswith(EXTENSION) and is_offered(path, folder):
                    found.setdefault(path.relative_to(folder).as_posix(), path)
    return dict(sorted(found.items()))


def is_offered(path: Path, folder: Path) -> bool:
    """Whether the dropdown may offer `path`: it and its checksum file resolve inside `folder`,
    and the checksum is well formed."""
    sidecar = registry.sidecar_of(path)
    if not (registry.is_inside(path, folder) and registry.is_inside(sidecar, folder)):
        return False
    return path.is_file() and registry.has_checksum(registry.ModelSpec(name=path.stem, file=path.name,
                                                                       folder=str(path.parent)))


def model_choices() -> list[str]:
    """The dropdown: registry names (the default model first), then files of the models folder."""
    names = [spec.name for spec in registry.models_for_menu()[0]]
    return names + [f for f in model_files() if f not in names]


def _is_path_escape(value: str) -> bool:
    posix = PurePosixPath(value.replace("\\", "/"))
    windows = PureWindowsPath(value)
    return posix.is_absolute() or bool(windows.drive) or windows.is_absolute() or ".." in posix.parts


def resolve_model(choice: str) -> str:
    """The registry name, or the full path of the models-folder file, that `choice` names.

    Raises:
        ModelError: `choice` is neither; absolute paths and paths with '..' are always refused.
    """
    if not isinstance(choice, str):
        raise ModelError(f"model {choice!r} refused: choose a model name from the list")
    if choice in registry.available_models():
        return choice
    if _is_path_escape(choice):
        raise ModelError(
            f"model {choice!r} refused: choose a model name or an .onnx file inside ComfyUI's "
            f"models/{FOLDER_NAME} folder (absolute paths and '..' are not allowed)"
        )
    files = model_files()
    if choice in files:
        path = files[choice]
        if not any(registry.is_inside(path, folder) for folder in model_folders()):  # changed since listed
            raise ModelError(f"model {choice!r} refused: it no longer lies inside ComfyUI's models/{FOLDER_NAME} folder")
        return os.path.realpath(path)
    available = ", ".join(model_choices()) or "none"
    raise ModelError(
        f"unknown model {choice!r}; available: {available} "
        f"(put .onnx files exported by `handseg export` in ComfyUI's models/{FOLDER_NAME} folder)"
    )
