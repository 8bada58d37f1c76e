"""Golden-mask regression of the shipped default model on a few real photos.

Each photo in tests/data/golden has its ground truth (`.truth.png`) and the mask the shipped
model gave when it was packaged (`.golden.png`). A change to the model, the pre- or the
post-processing that moves a mask by more than the tolerance fails here; when the change is
meant, rewrite the goldens with `python tests/core/test_golden.py --update` and say why in the
commit.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import handseg_core
from handseg_core.metrics import hand_iou

GOLDEN = Path(__file__).parents[1] / "data" / "golden"
PHOTOS = sorted(GOLDEN.glob("*.jpg"))

# Agreement with the mask recorded at packaging time (same model, other CPUs and ORT builds).
GOLDEN_IOU = 0.97
# Agreement with the ground truth: floors a little under what the shipped model reached.
TRUTH_IOU = {"egohands": 0.70, "hands11k": 0.82}
# Hard negative: hardly any hand on a face photo.
MAX_HAND_FRACTION_ON_FACE = 0.02


def golden_path(photo: Path) -> Path:
    return photo.with_suffix(".golden.png")


def read_mask(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L")) >= 128


@pytest.fixture(scope="module")
def session():
    return handseg_core.load_model(device="cpu")


@pytest.mark.parametrize("photo", PHOTOS, ids=[p.stem for p in PHOTOS])
def test_matches_golden_mask(session, photo):
    result = session.segment(photo)
    golden = read_mask(golden_path(photo))
    assert result.mask.shape == golden.shape
    assert hand_iou(result.mask > 0, golden) >= GOLDEN_IOU


@pytest.mark.parametrize("photo", [p for p in PHOTOS if p.with_suffix(".truth.png").exists()],
                         ids=lambda p: p.stem)
def test_close_to_ground_truth(session, photo):
    result = session.segment(photo)
    truth = read_mask(photo.with_suffix(".truth.png"))
    floor = next(v for k, v in TRUTH_IOU.items() if photo.stem.startswith(k))
    assert hand_iou(result.mask > 0, truth) >= floor


@pytest.mark.parametrize("photo", [p for p in PHOTOS if p.stem.startswith("hands11k")], ids=lambda p: p.stem)
def test_a_hand_filling_a_large_photo_is_found(session, photo):
    """The same close-up enlarged 5x (900 px, as a phone would take it), adapted to the hand's size
    (the default) and in one pass: the first packaged lite2 missed such a hand in one pass (0.19
    IoU on 11k close-ups at 5x); the default since its soup with a run that saw hands on their own
    background finds it either way (docs/models.md)."""
    import cv2

    rgb = np.asarray(Image.open(photo).convert("RGB"))
    truth = read_mask(photo.with_suffix(".truth.png"))
    big = cv2.resize(rgb, (900, 900), interpolation=cv2.INTER_CUBIC)
    big_truth = cv2.resize(truth.astype(np.uint8), (900, 900), interpolation=cv2.INTER_NEAREST) > 0
    assert hand_iou(session.segment(big).mask > 0, big_truth) >= TRUTH_IOU["hands11k"]
    assert hand_iou(session.segment(big, adapt_size=False).mask > 0, big_truth) >= TRUTH_IOU["hands11k"]


def test_face_is_not_a_hand(session):
    result = session.segment(GOLDEN / "face_no_hand.jpg")
    assert result.hand_fraction <= MAX_HAND_FRACTION_ON_FACE


def test_goldens_are_complete():
    assert len(PHOTOS) >= 5
    assert all(golden_path(p).exists() for p in PHOTOS)


def update() -> None:
    session = handseg_core.load_model(device="cpu")
    for photo in PHOTOS:
        Image.fromarray(session.segment(photo).mask).save(golden_path(photo))
        print("wrote", golden_path(photo))


if __name__ == "__main__" and "--update" in sys.argv:
    update()
