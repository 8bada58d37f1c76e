"""Public hand-segmentation datasets, read in the layouts their authors publish.

Each reader turns a dataset into a list of `Sample`s: an image path, a way to get its binary hand
mask (uint8, H x W, 0/255, at the image's size) and a group id (the video or subject) that
validation splits hold out whole. A `frames` entry of a training config names a dataset as
`FORMAT:PATH`, e.g. ``"egohands:/data/egohands_data"``; a plain name keeps meaning an `images/` +
`masks/` folder, and other layouts are recognised from the folder's contents where that is
unambiguous. Options follow the path after `?`, e.g.
``"coco:/data/hands.json?images=/data/hands/train&categories=hand"``. Relative paths are under
`data.root`.

Formats (`FORMATS` is the registry):

``folder``
    `images/` and `masks/` paired by file stem; hand where the grey mask is >= 128; group = the
    EgoHands video in names like ``VIDEO_frame_0001`` (else the stem). The layout of our own data.
``egohands`` -- EgoHands (Bambach, Lee, Crandall, Yu, ICCV 2015; vision.soic.indiana.edu).
    `egohands_data/_LABELLED_SAMPLES/<VIDEO>/frame_NNNN.jpg` (720 x 1280) and, per video,
    `polygons.mat`: a MATLAB struct array `polygons`, one element per labelled frame in the order
    of the frames sorted by name, with fields `myleft`, `myright`, `yourleft`, `yourright`, each
    an N x 2 array of (x, y) outline points in MATLAB's 1-based pixel coordinates, empty where that
    hand is not in view. The four outlines are filled into one mask. Group = the video folder.
    Terms: research use; cite the paper.
``eyth`` -- EgoYouTubeHands (Urooj & Borji, "Analysis of Hand Segmentation in the Wild", CVPR 2018).
    `eyth_dataset/images/<vidN>/<frame>.jpg`, `masks/<vidN>/<frame>.png` (white hands on black;
    in the published archive the masks of vid4 and vid9 have no file extension, which is
    accepted) and `train-val-test-split/{train,val,test}.txt` listing ``vidN/<frame>.jpg``.
    Option ``split=train|val|test`` keeps one list. Group = the video folder. Terms: research use;
    cite the paper.
``handoverface`` (alias ``hof``) -- HandOverFace (Urooj & Borji, CVPR 2018).
    `hand_over_face/images_resized/<n>.jpg` with `masks/<n>.png` at the same size (hands
    non-black); `images_original_size/` and the LabelMe `annotations/` are not used. Group = the
    image (each photo is its own). Terms: research use; cite the paper.
``gtea`` -- GTEA / GTEA Gaze+ hand masks (Li, Ye, Rehg, CVPR 2015; `hand2K_dataset.zip`) and the
    EGTEA Gaze+ hand masks (Li, Liu, Rehg, ECCV 2018; `hand14k.zip`), from the Georgia Tech FPV
    pages. `Images/<name>.jpg` with `Masks/<name>.png`, either directly in PATH (hand14k, or the
    `GTEA/` subset) or in its subsets (`hand2K_dataset/GTEA/`, `hand2K_dataset/GTEA_GAZE_PLUS/`),
    possibly one folder deeper per recording. Masks may colour left and right hands differently;
    any non-black pixel is hand. Group = the recording folder where there is one, else the name
    without its trailing frame number. Terms: research use; cite the papers.
``coco`` -- any COCO-format annotation file (cocodataset.org/#format-data), e.g. an export of a
    hand-annotation tool. `images`, `annotations` with `segmentation` as polygons, uncompressed RLE
    (a `counts` list) or compressed RLE (the COCO string), and `categories`; the categories whose
    name contains ``hand`` are kept (option ``categories=a,b``), and images with at least one
    such annotation are used; polygons are filled at rounded vertices, edge pixels included.
    `file_name` is relative to option ``images=DIR``, else to the JSON's
    folder, its `images/` or its parent (for `annotations/x.json`). Group = the image's
    `video_id` when present, else the folder in `file_name`, else the stem as for ``folder``.
    Terms: those of the dataset the file comes from (COCO's own annotations are CC BY 4.0, its
    images the Flickr terms of each photo).

Models trained on these data inherit their terms; most allow research use only.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch

from handseg_training import data as D

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sample:
    """One labelled image: `mask()` returns uint8 H x W, 0/255, at the image's size."""

    image: Path
    group: str
    mask: Callable[[], np.ndarray] = field(compare=False, repr=False)
    mask_key: str = ""  # identifies the mask's source for caches (file and modification time)


@dataclass(frozen=True)
class DatasetEntry:
    """A `frames` entry resolved to a format, a path and the format's options."""

    format: str
    path: Path
    options: dict[str, str] = field(default_factory=dict)


def _mtime(path: Path) -> int:
    return path.stat().st_mtime_ns


# ---------------------------------------------------------------------------------------------
# Masks


def _hand_pixels(mask: np.ndarray) -> np.ndarray:
    """Hand where a mask image is not black: any colour channel at least half-bright, or, in a
    label map whose values all stay dark (0/1/2...), any non-zero value."""
    if mask.ndim == 3:
        mask = mask[..., :3].max(axis=2)
    half = (np.iinfo(mask.dtype).max + 1) // 2 if mask.dtype.kind in "ui" else 0.5
    if mask.max(initial=0) < half:
        return mask > 0
    return mask >= half


def _read_mask_image(path: Path) -> np.ndarray:
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise ValueError(f"{path}: cannot be decoded as a mask image")
    return np.where(_hand_pixels(mask), 255, 0).astype(np.uint8)


def _read_grey_mask(path: Path) -> np.ndarray:
    return np.where(D.read_mask(path) >= 128, 255, 0).astype(np.uint8)


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(path) as image:
            width, height = image.size
    except OSError:
        raise ValueError(f"{path}: cannot be decoded as an image") from None
    return height, width


def _fill(polygons: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(size, np.uint8)
    points = [np.rint(p).astype(np.int32).reshape(-1, 1, 2) for p in polygons if len(p) >= 3]
    if points:
        cv2.fillPoly(mask, points, 255)
    return mask


def _egohands_mask(image: Path, polygons: list[np.ndarray]) -> np.ndarray:
    return _fill(polygons, _image_size(image))


# ---------------------------------------------------------------------------------------------
# COCO run-length encoding


def decode_rle_string(counts: str) -> list[int]:
    """Decode COCO's compressed RLE string into run lengths.

    Each run is written as 5-bit groups in characters offset by 48, least significant first; bit
    0x20 says another group follows and bit 0x10 of the last group is the sign. From the fourth
    run on, a run is stored as its difference to the run two places before it.
    """
    runs: list[int] = []
    position = 0
    while position < len(counts):
        value, shift, more = 0, 0, True
        while more:
            if position >= len(counts):
                raise ValueError(f"compressed RLE {counts[:20]!r}...: ends inside a number")
            group = ord(counts[position]) - 48
            if not 0 <= group < 64:
                raise ValueError(f"compressed RLE: character {counts[position]!r} is out of range")
            value |= (group & 0x1F) << shift
            more = bool(group & 0x20)
            position += 1
            shift += 5
            if not more and group & 0x10:
                value -= 1 << shift
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs


def decode_rle(counts: list[int] | str, size: tuple[int, int]) -> np.ndarray:
    """COCO RLE (run lengths of 0s and 1s alternating, starting with 0s, in column-major order)
    to a uint8 0/255 mask of `size` (height, width)."""
    height, width = size
    runs = decode_rle_string(counts) if isinstance(counts, str) else [int(c) for c in counts]
    if any(r < 0 for r in runs) or sum(runs) != height * width:
        raise ValueError(f"RLE runs add up to {sum(runs)} pixels, not {height} x {width}")
    values = np.zeros(len(runs), np.uint8)
    values[1::2] = 255
    return np.repeat(values, runs).reshape(width, height).T.copy()


def _coco_mask(segmentations: list, size: tuple[int, int], where: str) -> np.ndarray:
    mask = np.zeros(size, np.uint8)
    for segmentation in segmentations:
        if isinstance(segmentation, list):
            polygons = [np.asarray(p, np.float64).reshape(-1, 2) for p in segmentation if len(p) >= 6]
            mask |= _fill(polygons, size)
        elif isinstance(segmentation, dict) and "counts" in segmentation:
            rle_size = tuple(segmentation.get("size") or size)
            if rle_size != size:
                raise ValueError(f"{where}: RLE size {list(rle_size)} differs from the image's {list(size)}")
            counts = segmentation["counts"]
            if isinstance(counts, bytes):
                counts = counts.decode("ascii")
            mask |= decode_rle(counts, size)
        else:
            raise ValueError(f"{where}: segmentation is neither polygons nor RLE")
    return mask


# ---------------------------------------------------------------------------------------------
# Readers


def read_folder(path: Path) -> list[Sample]:
    """`images/` + `masks/` paired by file stem (see `data.PairFolder`)."""
    return [
        Sample(image, D.video_of(image), partial(_read_grey_mask, mask), f"{mask}:{_mtime(mask)}")
        for image, mask in D.PairFolder(path).pairs()
    ]


def read_egohands(path: Path) -> list[Sample]:
    """EgoHands: `_LABELLED_SAMPLES/<VIDEO>/frame_NNNN.jpg` with `polygons.mat` per video."""
    videos_root = path / "_LABELLED_SAMPLES" if (path / "_LABELLED_SAMPLES").is_dir() else path
    if (videos_root / "polygons.mat").is_file():
        videos = [videos_root]
    elif videos_root.is_dir():
        videos = sorted(d for d in videos_root.iterdir() if (d / "polygons.mat").is_file())
    else:
        videos = []
    if not videos:
        raise FileNotFoundError(
            f"{path}: expected the EgoHands layout, _LABELLED_SAMPLES/<VIDEO>/frame_NNNN.jpg with polygons.mat"
        )
    samples = []
    for video in videos:
        mat = video / "polygons.mat"
        frames = sorted(p for p in video.iterdir() if p.suffix.lower() == ".jpg")
        outlines = _egohands_polygons(mat)
        if len(outlines) != len(frames):
            raise ValueError(f"{mat}: {len(outlines)} labelled frames but {len(frames)} .jpg frames beside it")
        key = f"{mat}:{_mtime(mat)}"
        for index, (frame, polygons) in enumerate(zip(frames, outlines)):
            samples.append(Sample(frame, video.name, partial(_egohands_mask, frame, polygons), f"{key}#{index}"))
    return samples


EGOHANDS_FIELDS = ("myleft", "myright", "yourleft", "yourright")


def _egohands_polygons(mat: Path) -> list[list[np.ndarray]]:
    """Per labelled frame, the hand outlines as (x, y) arrays in 0-based pixel coordinates."""
    from scipy.io import loadmat

    try:
        struct = loadmat(str(mat)).get("polygons")
    except Exception as exc:  # scipy raises several types for files that are not MATLAB files
        raise ValueError(f"{mat}: cannot be read as a MATLAB file ({exc})") from None
    names = getattr(getattr(struct, "dtype", None), "names", None) or ()
    if struct is None or not set(EGOHANDS_FIELDS) <= set(names):
        raise ValueError(f"{mat}: expected a struct array 'polygons' with fields {', '.join(EGOHANDS_FIELDS)}")
    frames = []
    for record in struct.ravel():
        outlines = []
        for name in EGOHANDS_FIELDS:
            points = np.asarray(record[name], dtype=np.float64)
            if points.size >= 6:
                outlines.append(points.reshape(-1, 2) - 1.0)  # MATLAB pixel centres are 1-based
        frames.append(outlines)
    return frames


def _pair_by_stem(images: Path, masks: Path, recursive: bool) -> list[tuple[Path, Path]]:
    """Images under `images` and the mask with the same relative path and stem under `masks`
    (any image suffix, or none)."""
    found = []
    listing = images.rglob("*") if recursive else images.iterdir()
    for image in sorted(p for p in listing if p.suffix.lower() in D.IMAGE_SUFFIXES and p.is_file()):
        relative = image.relative_to(images).with_suffix("")
        for suffix in (".png", ".PNG", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ""):
            mask = masks / f"{relative}{suffix}"
            if mask.is_file():
                found.append((image, mask))
                break
    return found


def _split_list(path: Path, split: str) -> set[str]:
    table = path / "train-val-test-split" / f"{split}.txt"
    if not table.is_file():
        raise FileNotFoundError(f"{table}: no such split list (expected train, val or test)")
    return {line.strip().replace("\\", "/") for line in table.read_text().splitlines() if line.strip()}


def read_eyth(path: Path, split: str = "") -> list[Sample]:
    """EgoYouTubeHands: `images/<vid>/<frame>.jpg` and `masks/<vid>/<frame>[.png]`."""
    images, masks = path / "images", path / "masks"
    if not images.is_dir() or not masks.is_dir():
        raise FileNotFoundError(f"{path}: expected the EgoYouTubeHands layout, images/<vid>/ and masks/<vid>/")
    pairs = _pair_by_stem(images, masks, recursive=True)
    if split:
        keep = _split_list(path, split)
        pairs = [(i, m) for i, m in pairs if i.relative_to(images).as_posix() in keep]
    if not pairs:
        raise FileNotFoundError(f"{path}: no image/mask pairs under images/<vid>/ and masks/<vid>/")
    return [_file_sample(i, m, _folder_group(i, images)) for i, m in pairs]


def read_handoverface(path: Path) -> list[Sample]:
    """HandOverFace: `images_resized/<n>.jpg` and `masks/<n>.png`."""
    images, masks = path / "images_resized", path / "masks"
    if not images.is_dir() or not masks.is_dir():
        raise FileNotFoundError(f"{path}: expected the HandOverFace layout, images_resized/ and masks/")
    pairs = _pair_by_stem(images, masks, recursive=False)
    if not pairs:
        raise FileNotFoundError(f"{path}: no image/mask pairs in images_resized/ and masks/")
    return [_file_sample(i, m, i.stem) for i, m in pairs]


def _gtea_subsets(path: Path) -> list[Path]:
    if _has(path, "Images", "Masks"):
        return [path]
    if not path.is_dir():
        return []
    return sorted(d for d in path.iterdir() if d.is_dir() and _has(d, "Images", "Masks"))


def read_gtea(path: Path) -> list[Sample]:
    """GTEA / EGTEA Gaze+ hand masks: `Images/` and `Masks/`, in PATH or in its subsets."""
    subsets = _gtea_subsets(path)
    if not subsets:
        raise FileNotFoundError(
            f"{path}: expected the GTEA hand-mask layout, Images/ and Masks/ (or subsets holding them)"
        )
    samples = []
    for subset in subsets:
        images = subset / "Images"
        for image, mask in _pair_by_stem(images, subset / "Masks", recursive=True):
            samples.append(_file_sample(image, mask, _folder_group(image, images)))
    if not samples:
        raise FileNotFoundError(f"{path}: no image/mask pairs in Images/ and Masks/")
    return samples


def _file_sample(image: Path, mask: Path, group: str) -> Sample:
    return Sample(image, group, partial(_read_mask_image, mask), f"{mask}:{_mtime(mask)}")


def _folder_group(image: Path, images: Path) -> str:
    """The recording folder under `images`, else the name without its trailing frame number."""
    parent = image.parent.relative_to(images)
    if parent.parts:
        return parent.as_posix()
    return re.sub(r"[_-]?\d+$", "", image.stem) or image.stem


def read_coco(path: Path, images: str = "", categories: str = "hand") -> list[Sample]:
    """A COCO-format annotation file; the categories whose name contains one of `categories`."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: expected a COCO annotation file (.json)")
    try:
        coco = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    lists = ("images", "annotations", "categories")
    if not isinstance(coco, dict) or not all(isinstance(coco.get(k), list) for k in lists):
        raise ValueError(f"{path}: expected a COCO file with lists images, annotations and categories")
    wanted = [w.strip().lower() for w in categories.split(",") if w.strip()]
    category_ids = {c["id"] for c in coco["categories"] if any(w in str(c.get("name", "")).lower() for w in wanted)}
    if not category_ids:
        names = ", ".join(sorted(str(c.get("name")) for c in coco["categories"])[:20])
        raise ValueError(f"{path}: no category name contains {' or '.join(wanted)}; categories: {names}")
    by_image: dict = {}
    for annotation in coco["annotations"]:
        if annotation.get("category_id") in category_ids and "segmentation" in annotation:
            by_image.setdefault(annotation["image_id"], []).append(annotation["segmentation"])
    records = [im for im in coco["images"] if im.get("id") in by_image]
    if not records:
        raise ValueError(f"{path}: no segmentation annotations of the hand categories")
    if not all(isinstance(r.get("file_name"), str) for r in records):
        raise ValueError(f"{path}: every image needs a file_name")
    image_dir = _coco_image_dir(path, images, records[0]["file_name"])
    key = f"{path}:{_mtime(path)}"
    samples = []
    for record in records:
        image = image_dir / record["file_name"]
        if not image.is_file():
            raise FileNotFoundError(f"{image}: listed in {path} but missing")
        if "height" in record and "width" in record:
            size = (int(record["height"]), int(record["width"]))
        else:
            size = _image_size(image)
        mask = partial(_coco_mask, by_image[record["id"]], size, f"{path} image {record['id']}")
        samples.append(Sample(image, _coco_group(record), mask, f"{key}#{record['id']}"))
    return samples


def _coco_image_dir(path: Path, images: str, first: str) -> Path:
    if images:
        candidates = [Path(images).expanduser()]
        if not candidates[0].is_absolute():
            candidates = [path.parent / candidates[0]]
    else:
        candidates = [path.parent, path.parent / "images", path.parent.parent]
    for candidate in candidates:
        if (candidate / first).is_file():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"{path}: image {first!r} not found under {tried}; name the folder with ?images=DIR")


def _coco_group(record: dict) -> str:
    if record.get("video_id") is not None:
        return str(record["video_id"])
    name = Path(record["file_name"])
    return name.parent.as_posix() if name.parent.parts else D.video_of(name)


FORMATS: dict[str, Callable[..., list[Sample]]] = {
    "folder": read_folder,
    "egohands": read_egohands,
    "eyth": read_eyth,
    "handoverface": read_handoverface,
    "gtea": read_gtea,
    "coco": read_coco,
}
OPTIONS = {"eyth": {"split"}, "coco": {"images", "categories"}}
ALIASES = {"hof": "handoverface", "egoyoutubehands": "eyth", "egtea": "gtea"}


# ---------------------------------------------------------------------------------------------
# Config entries


def _has(path: Path, *names: str) -> bool:
    """Whether `path` holds folders with exactly these names (case-sensitive on any file system)."""
    try:
        present = set(os.listdir(path))
    except OSError:
        return False
    return all(n in present and (path / n).is_dir() for n in names)


def detect_format(path: Path) -> str:
    """The format of a dataset folder (or COCO file) from its contents.

    Raises:
        FileNotFoundError: nothing at `path`, or no known layout, or several (name one then).
    """
    if path.is_file():
        if path.suffix.lower() == ".json":
            return "coco"
        raise FileNotFoundError(f"{path}: a file, but only a COCO .json file can be a dataset")
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such dataset folder")
    if _has(path, "images", "masks"):
        images = path / "images"
        only_folders = not any(p.suffix.lower() in D.IMAGE_SUFFIXES for p in images.iterdir())
        if (path / "train-val-test-split").is_dir() or (only_folders and any(p.is_dir() for p in images.iterdir())):
            return "eyth"
        return "folder"
    found = []
    if (path / "_LABELLED_SAMPLES").is_dir() or (path / "polygons.mat").is_file() or any(path.glob("*/polygons.mat")):
        found.append("egohands")
    if _has(path, "images_resized", "masks"):
        found.append("handoverface")
    if _gtea_subsets(path):
        found.append("gtea")
    if not found and len(list(path.glob("*.json"))) == 1:
        return "coco"
    if len(found) == 1:
        return found[0]
    if found:
        raise FileNotFoundError(
            f"{path}: looks like several layouts ({', '.join(found)}); name one, e.g. {found[0]}:{path}"
        )
    raise FileNotFoundError(
        f"{path}: no known dataset layout (images/+masks/, EgoHands _LABELLED_SAMPLES/, EgoYouTubeHands, "
        f"HandOverFace images_resized/+masks/, GTEA Images/+Masks/, a COCO .json); or name it as FORMAT:PATH"
    )


def resolve(entry: str, root: Path) -> DatasetEntry:
    """Turn a `frames` entry (`NAME`, `PATH` or `FORMAT:PATH[?option=value&...]`) into a DatasetEntry.

    Raises:
        ValueError: an unknown format or option.
        FileNotFoundError: a plain name whose folder has no known layout.
    """
    head, sep, rest = entry.partition(":")
    if sep and len(head) > 1 and re.fullmatch(r"[A-Za-z_]+", head):
        fmt = ALIASES.get(head.lower(), head.lower())
        if fmt not in FORMATS:
            raise ValueError(f"{entry!r}: unknown dataset format {head!r}; known: {', '.join(FORMATS)}")
        location, _, query = rest.partition("?")
        options = {}
        for item in filter(None, query.split("&")):
            key, _, value = item.partition("=")
            if key not in OPTIONS.get(fmt, set()):
                allowed = ", ".join(sorted(OPTIONS.get(fmt, ()))) or "none"
                raise ValueError(f"{entry!r}: unknown option {key!r} for {fmt}; allowed: {allowed}")
            options[key] = value
        return DatasetEntry(fmt, root / Path(location).expanduser(), options)
    path = root / Path(entry).expanduser()
    fmt = detect_format(path)
    if fmt == "coco" and path.is_dir():
        path = next(path.glob("*.json"))
    return DatasetEntry(fmt, path)


def read(entry: DatasetEntry) -> list[Sample]:
    """The samples of a resolved entry."""
    return FORMATS[entry.format](entry.path, **entry.options)


# ---------------------------------------------------------------------------------------------
# Loading


def load_samples(samples: list[Sample], size: tuple[int, int], cache_dir: Path | None = None) -> torch.Tensor:
    """Decode samples into one uint8 tensor [N, 4, H, W] as `data.load_pairs` does for pairs."""
    key = f"samples|{size}|" + "|".join(f"{s.image}:{_mtime(s.image)}:{s.mask_key}" for s in samples)
    cached = D._cache_path(cache_dir, key)
    if cached is not None and cached.exists():
        return torch.load(cached, weights_only=True)
    out = torch.empty((len(samples), 4, *size), dtype=torch.uint8)
    for i, sample in enumerate(samples):
        image = D.read_rgb(sample.image)
        mask = sample.mask()
        if mask.shape != image.shape[:2]:
            log.warning("%s: mask %s differs from the image's %s; both are resized", sample.image, mask.shape,
                        image.shape[:2])
        out[i, :3] = torch.from_numpy(D.fit_into(image, size, cv2.INTER_AREA)).permute(2, 0, 1)
        mask = D.fit_into(mask, size, cv2.INTER_LINEAR)
        out[i, 3] = torch.from_numpy(np.where(mask >= 128, 255, 0).astype(np.uint8))
    D._save_cache(out, cached)
    return out


def split_by_group(samples: list[Sample], held_groups: list[str]) -> tuple[list[Sample], list[Sample]]:
    """(training, held out): samples whose group is in `held_groups` are held out."""
    held = set(held_groups)
    return [s for s in samples if s.group not in held], [s for s in samples if s.group in held]


def _temporary_folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="handseg-masks-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def mask_files(samples: list[Sample], folder: Path | None) -> list[tuple[Path, Path]]:
    """Write the samples' masks as PNG files (under `folder`, else a temporary folder removed at
    exit) and return (image, mask file) pairs, for code that reads masks from files."""
    if not samples:
        return []
    folder = folder if folder is not None else _temporary_folder()
    folder.mkdir(parents=True, exist_ok=True)
    pairs = []
    for sample in samples:
        name = hashlib.sha1(f"{sample.image}|{sample.mask_key}".encode()).hexdigest()[:16]
        target = folder / f"{name}_{sample.image.stem}.png"
        if not cv2.imwrite(str(target), sample.mask()):
            raise OSError(f"{target}: cannot be written")
        pairs.append((sample.image, target))
    return pairs
