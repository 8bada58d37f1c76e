"""The development sets scored as rembg runs a handseg model. Found: at rembg's own 320 side the
export finds hands that fill the photo that it missed enlarged to 512 (11k Hands held-out 0.227 ->
0.938) and loses a little on EgoHands frames (0.780 -> 0.736); the figures are in
handseg_plugins/rembg.py and docs/plugins/rembg.md.

    python -m research.rembg_devsets MODEL [--data-root ../shared/data] [--limit 100] [--json OUT]

The model's rembg export (`handseg export --format rembg`) is written to a temporary folder and
run by rembg itself (it must be installed); its mask is cut at half and scored with
`handseg_training.devsets.measure`.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from handseg_training import data as D
from handseg_training.devsets import measure, parser, report


@contextlib.contextmanager
def environment(name: str, value: str) -> Iterator[None]:
    """`name` set to `value` inside the block only."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def rembg_segmenter(model: str) -> Callable:
    """A function from an image (path or RGB array) to the hand mask that rembg itself makes with
    `model`'s rembg export, cut at half."""
    import rembg
    from PIL import Image

    from handseg_plugins.rembg import REMBG_SESSION, export_for_rembg

    home = Path(tempfile.mkdtemp(prefix="handseg-rembg-"))
    atexit.register(shutil.rmtree, home, True)
    path, _ = export_for_rembg(model, home)
    with environment("U2NET_HOME", str(home)):  # rembg accepts model paths only inside its folders
        session = rembg.new_session(REMBG_SESSION, model_path=str(path))

    def segment(image) -> np.ndarray:
        rgb = D.read_rgb(image) if isinstance(image, Path) else image
        return np.asarray(rembg.remove(Image.fromarray(rgb), session=session, only_mask=True)) >= 128

    return segment


def main() -> None:
    args = parser("python -m research.rembg_devsets").parse_args()
    results = measure(args.model, Path(args.data_root), args.sets, limit=args.limit, zoom=args.zoom,
                      segment=rembg_segmenter(args.model))
    report(results, args.json)


if __name__ == "__main__":
    main()
