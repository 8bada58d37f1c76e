"""Hand landmarks of a folder of photos, from MediaPipe Hands, for `errors --wrists`.
Found: gave the wrists that `errors --wrists` measures against (0.034 of cross14's IoU lies past
them).

    /path/to/mediapipe-venv/bin/python research/landmarks.py FOLDER --out LANDMARKS.json

A development tool, run as a plain script in a virtual environment of its own: mediapipe
(0.10.21, which carries its palm and landmark models) needs numpy < 2, which the engine's
environment does not keep. It imports nothing from handseg.

Writes {photo stem: [hand, ...]}, each hand its 21 landmarks as [x, y] in the photo's pixels,
in MediaPipe's order (0: the wrist, 9: the middle finger's knuckle). A photo where no hand is
found has an empty list; a photo that cannot be read is named on stderr and left out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
MIN_SIDE = 256  # smaller photos (thumbnails of 100-180 px) are enlarged to this first: found more often


def photos_in(folder: Path) -> list[Path]:
    """The photos of `folder`, or of its `images/` where it has one (a data set's layout)."""
    if (folder / "images").is_dir():
        folder = folder / "images"
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="landmarks.py", description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a folder of photos, or a data set's folder (its images/)")
    parser.add_argument("--out", type=Path, required=True, help="the JSON to write")
    parser.add_argument("--max-hands", type=int, default=4, help="hands a photo at most [default: 4]")
    parser.add_argument("--confidence", type=float, default=0.3, help="MediaPipe's detection threshold [default: 0.3]")
    args = parser.parse_args(argv)
    try:
        import cv2
        import mediapipe as mp
    except ImportError as e:
        sys.exit(f"landmarks.py needs mediapipe and opencv ({e}): python -m venv mp && mp/bin/pip install "
                 "mediapipe==0.10.21, then run this script with mp/bin/python")
    if not args.folder.is_dir():
        sys.exit(f"landmarks.py: {args.folder} is not a folder")
    photos = photos_in(args.folder)
    found: dict[str, list] = {}
    with mp.solutions.hands.Hands(static_image_mode=True, max_num_hands=args.max_hands, model_complexity=1,
                                  min_detection_confidence=args.confidence) as hands:
        for i, path in enumerate(photos):
            bgr = cv2.imread(str(path))
            if bgr is None:
                print(f"{path}: cannot read it as an image; left out", file=sys.stderr)
                continue
            height, width = bgr.shape[:2]
            scale = max(1.0, MIN_SIDE / min(height, width))
            if scale > 1.0:
                bgr = cv2.resize(bgr, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_CUBIC)
            result = hands.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            found[path.stem] = [[[round(p.x * width, 1), round(p.y * height, 1)] for p in hand.landmark]
                                for hand in result.multi_hand_landmarks or []]
            if (i + 1) % 100 == 0 or i + 1 == len(photos):
                print(f"{i + 1}/{len(photos)} photos", file=sys.stderr)
    args.out.write_text(json.dumps(found) + "\n")
    print(f"{args.out}: {sum(len(h) for h in found.values())} hands in {sum(1 for h in found.values() if h)} "
          f"of {len(found)} photos")


if __name__ == "__main__":
    main()
