"""Which files a batch reads and which it writes (`handseg_core.batch` runs them).

Inputs are files, folders and glob patterns, each image taken once; outputs never replace an
input or each other, and outputs that exist are kept unless asked, so a rerun resumes.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from handseg_core.errors import first_line
from handseg_core.images import IMAGE_SUFFIXES


@dataclass(frozen=True)
class Source:
    """An input image and the subfolder (of the output folder) its result goes into."""

    path: Path
    subfolder: Path = Path()


@dataclass(frozen=True)
class Job:
    """One image to process and the file its result goes to."""

    source: Path
    target: Path


@dataclass
class Plan:
    """What a batch will do: its jobs, one line for each input it refuses, and how many outputs
    exist already and are kept."""

    jobs: list[Job] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    skipped: int = 0
    folders: set[Path] = field(default_factory=set)  # every folder an output of the batch lies in


@dataclass(frozen=True)
class Wording:
    """How messages name a front's own controls (the CLI says -o and --recursive)."""

    output_folder: str = "output folder"
    recursive: str = "subfolders are read only when asked"


def is_image_name(path: Path) -> bool:
    """Whether `path` names an image handseg reads (by its suffix; hidden files are not)."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def is_within(path: Path, folder: Path) -> bool:
    """Whether `path` is `folder` or lies inside it (both resolved)."""
    return path == folder or folder in path.parents


def images_in(folder: Path, recursive: bool, exclude: Path | None) -> list[Source]:
    """Images in `folder` (and its subfolders when recursive, except the `exclude` tree)."""
    if not recursive:
        return [Source(p) for p in sorted(folder.iterdir()) if p.is_file() and is_image_name(p)]
    found = []
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and not (exclude and is_within((here / d).resolve(), exclude)))
        found += [Source(here / f, here.relative_to(folder)) for f in sorted(files) if is_image_name(Path(f))]
    return found


def expand_inputs(patterns: Iterable[str], recursive: bool, out_dir: Path,
                  wording: Wording = Wording()) -> tuple[list[Source], list[str]]:
    """Files, folders and glob patterns -> the input images (each once), and one message per
    pattern that names no image. Outputs kept inside an input folder, or inside the folder a glob
    searches (`IN/**/*` with the output folder `IN/cutouts`), are not taken as inputs;
    with `recursive`, a folder's subfolders are read too (their tree kept in `Source.subfolder`)."""
    sources: list[Source] = []
    problems: list[str] = []
    for pattern in patterns:
        try:
            found, problem = expand_one(pattern, recursive, out_dir, wording)
        except OSError as exc:
            found, problem = [], f"{pattern}: cannot be read ({exc.strerror or first_line(exc)})"
        sources += found
        if problem:
            problems.append(problem)
    return unique(sources), problems


def expand_one(pattern: str, recursive: bool, out_dir: Path, wording: Wording = Wording()) -> tuple[list[Source], str | None]:
    path = Path(pattern).expanduser()
    if path.is_file():
        return [Source(path)], None
    if path.is_dir():
        found = images_in(path, recursive, output_tree_inside(path, out_dir))
        hint = "" if recursive else f"; {wording.recursive}"
        return found, None if found else f"{pattern}: no images in this folder{hint}"
    if glob.has_magic(pattern):
        matches = [Path(m) for m in sorted(glob.glob(os.path.expanduser(pattern), recursive=True))]
        outputs = output_tree_inside(glob_root(pattern), out_dir)
        files = [Source(m) for m in matches if m.is_file() and not (outputs and is_within(m.resolve(), outputs))]
        return files, None if files else f"{pattern}: matches no files"
    return [], f"{pattern}: no such file or folder"


def glob_root(pattern: str) -> Path:
    """The folder a glob pattern searches from: its leading parts without wildcards."""
    parts = Path(os.path.expanduser(pattern)).parts
    plain = []
    for part in parts[:-1]:
        if glob.has_magic(part):
            break
        plain.append(part)
    return Path(*plain) if plain else Path(".")


def output_tree_inside(folder: Path, out_dir: Path) -> Path | None:
    """The output folder when it lies strictly inside `folder`, else None."""
    folder, out_dir = folder.resolve(), out_dir.resolve()
    return out_dir if out_dir != folder and is_within(out_dir, folder) else None


def unique(sources: list[Source]) -> list[Source]:
    """`sources` without repeats of the same file (by its real path), the first kept."""
    seen: set[str] = set()
    kept = []
    for source in sources:
        key = path_key(source.path)
        if key not in seen:
            seen.add(key)
            kept.append(source)
    return kept


def path_key(path: Path) -> str:
    """A key that is the same for every name of one file (real path, case folded where the
    system folds it)."""
    return os.path.normcase(os.path.realpath(path))


def file_identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def plan_outputs(sources: list[Source], out_dir: Path, overwrite: bool, wording: Wording = Wording(),
                 suffix: str = ".png") -> Plan:
    """One job per input (`out_dir`/subfolder/<stem><suffix>); refuses outputs that would replace
    an input or another job's output, and skips outputs that exist already unless `overwrite`."""
    plan = Plan()
    inputs = {file_identity(s.path) for s in sources} - {None}
    claimed: dict[str, Path] = {}
    for source in sources:
        target = out_dir / source.subfolder / (source.path.stem + suffix)
        key = path_key(target)
        identity = file_identity(target)
        if identity is not None and identity in inputs:
            plan.problems.append(f"{source.path}: its output {target} would overwrite an input; "
                                 f"choose another {wording.output_folder}")
        elif key in claimed:
            plan.problems.append(f"{source.path}: not processed, {claimed[key]} also becomes {target}; "
                                 "rename one of them")
        else:
            claimed[key] = source.path
            plan.folders.add(target.parent)
            if identity is not None and not overwrite:
                plan.skipped += 1
            else:
                plan.jobs.append(Job(source.path, target))
    return plan


def unique_stems(stems: Iterable[str]) -> list[str]:
    """`stems` made distinct in order: a repeat of "photo" becomes "photo-2", then "photo-3"
    (for outputs that must all be kept side by side, as in one download)."""
    used: set[str] = set()
    out = []
    for stem in stems:
        name, count = stem, 1
        while name in used:
            count += 1
            name = f"{stem}-{count}"
        used.add(name)
        out.append(name)
    return out
