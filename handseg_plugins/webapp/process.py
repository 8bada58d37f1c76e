"""What the web app does with each upload, apart from Streamlit so that it can be tested alone."""

from __future__ import annotations

import io
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image

import handseg_core
from handseg_core import HandSegmenter, ImageError, Refinement, batch
from handseg_core.images import IMAGE_SUFFIXES

PREVIEW_SIZE = 1024
CHECKER = 12
UPLOAD_TYPES = tuple(suffix.lstrip(".") for suffix in IMAGE_SUFFIXES)

# None (transparent), a colour ("white", "#RRGGBB") or the bytes of an uploaded image.
AppBackground = Union[None, str, bytes]


@dataclass(frozen=True)
class Processed:
    """One photo's results: previews to show and full-size PNGs to download."""

    name: str
    original: Image.Image
    mask: Image.Image
    cutout: Image.Image
    mask_png: bytes
    cutout_png: bytes
    hand_fraction: float

    @property
    def stem(self) -> str:
        return Path(self.name).stem or "photo"


def _preview(image: Image.Image) -> Image.Image:
    """A copy at most PREVIEW_SIZE wide and high; transparency shown as a checkerboard."""
    small = image.copy()
    small.thumbnail((PREVIEW_SIZE, PREVIEW_SIZE))
    if small.mode != "RGBA":
        return small
    y, x = np.indices((small.height, small.width))
    squares = np.where((x // CHECKER + y // CHECKER) % 2 == 0, 255, 204).astype(np.uint8)
    board = Image.fromarray(squares, "L").convert("RGBA")
    board.alpha_composite(small)
    return board.convert("RGB")


def _save_upload(folder: Path, name: str, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (Path(name).name or "upload")
    path.write_bytes(data)
    return path


def process(
    session: HandSegmenter, name: str, data: bytes, refinement: Refinement, background: AppBackground = None,
    input_size: int | None = None,
) -> Processed:
    """Segment one uploaded photo and cut its hands out onto `background`; `input_size` as in
    `HandSegmenter.segment` (the largest long side the network sees).

    Raises:
        ImageError: the photo (named by `name`) or the background image cannot be read.
        HandsegError: the background is not understood.
    """
    with tempfile.TemporaryDirectory(prefix="handseg-app-") as tmp:
        folder = Path(tmp)
        photo = _save_upload(folder, name, data)
        backdrop = _save_upload(folder / "background", "image", background) if isinstance(background, bytes) else None
        try:
            result = session.segment(photo, refinement, input_size=input_size)
            cutout = handseg_core.cutout(photo, result.alpha, backdrop or background)
            original = handseg_core.cutout(photo, np.full(result.mask.shape, 255, np.uint8))
        except ImageError as exc:
            source = name if exc.source == str(photo) else "background image"
            raise ImageError(source, exc.reason) from None
    mask = Image.fromarray(result.mask, "L")
    return Processed(
        name=name,
        original=_preview(original),
        mask=_preview(mask),
        cutout=_preview(cutout),
        mask_png=batch.png_bytes(mask),
        cutout_png=batch.png_bytes(cutout),
        hand_fraction=result.hand_fraction,
    )


def download_names(stem: str) -> tuple[str, str]:
    """File names of the mask and cut-out downloads of a photo."""
    return f"{stem}-mask.png", f"{stem}-cutout.png"


def zip_results(items: list[Processed]) -> bytes:
    """One zip with the mask and cut-out of every photo; photos of the same name get -2, -3..."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for item, stem in zip(items, batch.unique_stems(item.stem for item in items)):
            mask_name, cutout_name = download_names(stem)
            archive.writestr(mask_name, item.mask_png)
            archive.writestr(cutout_name, item.cutout_png)
    return buffer.getvalue()
