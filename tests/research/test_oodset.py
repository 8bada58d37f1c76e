"""The out-of-domain set: deterministic, from held-out sources only, masks that match the pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("torch")

from handseg_training import data as D  # noqa: E402
from research.oodset import EXCLUDE, build, excluded  # noqa: E402
from tests.training import fake_data  # noqa: E402


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return fake_data.make(tmp_path_factory.mktemp("shared"))


@pytest.fixture(scope="module")
def ood(root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ood")
    assert build(root, out, count=5) == {"closeups": 5, "hands_over_faces": 5}
    return out


def test_excluded_matches_relative_paths(root):
    assert excluded(root / "backgrounds/urban100/a.jpg", root, EXCLUDE)
    assert excluded(root / "faces_utk/images/1_0_0_20170110.chip0.jpg", root, EXCLUDE)
    assert not excluded(root / "faces_utk/images/1_0_0_201701101.jpg", root, EXCLUDE)
    assert not excluded(root / "backgrounds/bsds500/a.jpg", root, EXCLUDE)


def test_sizes_and_binary_masks(ood):
    for name, size in (("closeups", (384, 288)), ("hands_over_faces", (320, 320))):
        pairs = D.PairFolder(ood / name).pairs()
        assert len(pairs) == 5
        for image_path, mask_path in pairs:
            assert Image.open(image_path).size == size
            mask = np.asarray(Image.open(mask_path))
            assert mask.shape == size[::-1]
            assert set(np.unique(mask)) <= {0, 255}
            assert 0.02 < (mask > 0).mean() < 0.9  # a hand, not an empty or full frame


def test_hand_pixels_are_the_pasted_hand(ood):
    """The fake hands are saturated colours on grey-ish scenes: masked pixels differ from the rest."""
    image_path, mask_path = D.PairFolder(ood / "closeups").pairs()[0]
    image = np.asarray(Image.open(image_path)).astype(float)
    mask = np.asarray(Image.open(mask_path)) > 0
    inner = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).filter(__import__("PIL.ImageFilter").ImageFilter.MinFilter(7))) > 0
    hand_colours = image[inner].std(axis=0)
    assert hand_colours.max() < 25  # one flat colour inside the mask (noise and JPEG aside)


def test_the_same_on_every_build(root, ood, tmp_path):
    build(root, tmp_path, count=5)
    for name in ("closeups", "hands_over_faces"):
        for first, second in zip(sorted((ood / name).rglob("*")), sorted((tmp_path / name).rglob("*"))):
            assert first.name == second.name
            if first.is_file():
                assert first.read_bytes() == second.read_bytes()


def test_training_never_sees_the_sources(root):
    from handseg_training.config import TrainConfig, DataConfig
    from handseg_training.train import prepare_data

    cfg = TrainConfig(data=DataConfig(root=str(root), frames=["egohands_400"], hand_photos=["hands11k_subset"],
                                      backgrounds=["backgrounds", "faces_utk"], exclude=EXCLUDE, eval=[]))
    data = prepare_data(cfg, None)
    all_backgrounds = D.list_images(root / "backgrounds") + D.list_images(root / "faces_utk")
    kept = [p for p in all_backgrounds if not excluded(p, root, EXCLUDE)]
    assert data.backgrounds.shape[0] == len(kept) == 4 + 5
    cfg.data.exclude = []
    assert prepare_data(cfg, None).backgrounds.shape[0] == len(all_backgrounds)
