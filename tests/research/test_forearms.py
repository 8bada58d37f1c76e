"""Hand photos given a forearm labelled background, and training's use of such labels."""

from __future__ import annotations

import json

import numpy as np
import torch
from PIL import Image

from handseg_training import data as D
from handseg_training.augment import AugmentConfig, composites
from research.forearms import SIZE, main, with_forearm
from tests.training import fake_data
from tests.training.fake_data import _hand

SKIN = np.array([180, 120, 90])


def _photo(size: int = 100):
    """An upright hand of one colour on white, its wrist at 90% of the height, the mask running
    on to the bottom edge; landmarks as MediaPipe gives them (0: wrist, 9: middle knuckle)."""
    image, mask = _hand(np.random.default_rng(0), size)
    image[mask > 0] = SKIN
    hand = [[size / 2, 0.9 * size]] + [[size / 2, 0.6 * size]] * 8 + [[size / 2, 0.45 * size]]
    return image, mask > 0, hand


def test_the_arm_is_pasted_below_the_wrist_and_labelled_background():
    image, mask, hand = _photo()
    out, pasted, label = with_forearm(image, mask, hand, None, np.random.default_rng(0))
    assert out.shape == (SIZE, SIZE, 3) and pasted.shape == label.shape == (SIZE, SIZE)
    assert not (label & ~pasted).any()
    rows = np.nonzero(label.any(1))[0]
    arm = pasted & ~label
    arm_rows = np.nonzero(arm.any(1))[0]
    assert arm_rows.min() > rows.min() and arm_rows.max() == SIZE - 1  # from the wrist off the bottom
    assert arm.sum() > 0.3 * label.sum()
    # the arm takes the wrist's colour
    assert np.abs(out[arm].astype(float).mean(0) - SKIN).max() < 25
    # padded on the arm's side only: the hand keeps its place at the top
    assert label[: SIZE // 10].sum() == 0 and label[: SIZE // 2].any()


def test_a_sleeve_covers_the_arm_some_way_up_it():
    image, mask, hand = _photo()
    cloth = np.zeros((40, 40, 3), np.uint8)
    cloth[..., 2] = 255  # blue cloth
    sleeves = 0
    for seed in range(6):  # the cuff is drawn 0.25-1.6 palm lengths up the arm: sometimes past its end
        out, pasted, label = with_forearm(image, mask, hand, cloth, np.random.default_rng(seed))
        arm = pasted & ~label
        blue = arm & (out[..., 2] > 150) & (out[..., 0] < 120)
        assert not (label & (out[..., 2] > 150) & (out[..., 0] < 120)).any()  # never on the hand
        if blue.any():
            sleeves += 1
            assert blue[-3:].any()  # it runs on to the arm's far end
            assert np.nonzero(blue.any(1))[0].min() > np.nonzero(arm.any(1))[0].min()  # skin above the cuff
    assert sleeves >= 3


def test_a_photo_showing_its_own_forearm_or_no_palm_is_left_out():
    image, mask, hand = _photo()
    high_wrist = [[50.0, 50.0]] + hand[1:9] + [[50.0, 30.0]]  # the mask runs far past this wrist
    assert with_forearm(image, mask, high_wrist, None, np.random.default_rng(0)) is None
    no_palm = [[50.0, 90.0]] * 10
    assert with_forearm(image, mask, no_palm, None, np.random.default_rng(0)) is None


def test_a_set_is_written_without_the_held_out_subjects(tmp_path):
    root = fake_data.make(tmp_path / "data")
    folder = root / "hands11k_subset"
    size = 60
    hand = [[size / 2, 0.9 * size]] + [[size / 2, 0.6 * size]] * 8 + [[size / 2, 0.45 * size]]
    stems = [p.stem for p, _ in D.PairFolder(folder).pairs()]
    landmarks = {stem: [hand] for stem in stems}
    landmarks[stems[0]] = []  # no hand found
    (tmp_path / "hands.json").write_text(json.dumps(landmarks))
    main([str(folder), str(tmp_path / "hands.json"), "--out", str(tmp_path / "arms"),
          "--backgrounds", str(root / "backgrounds")])
    written = sorted(p.stem for p in (tmp_path / "arms" / "images").iterdir())
    _, held = D.split_by_subject(D.PairFolder(folder).pairs(), D.hands11k_subjects(folder), 0.2, 0)
    assert written and not set(written) & {p.stem for p, _ in held} and stems[0] not in written
    for sub in ("masks", "labels"):
        assert sorted(p.stem for p in (tmp_path / "arms" / sub).iterdir()) == written


def test_training_pastes_the_mask_but_learns_the_label(tmp_path):
    image, mask, hand = _photo(64)
    out, pasted, label = with_forearm(image, mask, hand, None, np.random.default_rng(0))
    for sub, array in (("images", out), ("masks", pasted), ("labels", label)):
        (tmp_path / sub).mkdir()
        Image.fromarray(array if array.dtype == np.uint8 else array.astype(np.uint8) * 255).save(
            tmp_path / sub / ("a.jpg" if sub == "images" else "a.png"))
    pairs = D.PairFolder(tmp_path).pairs()
    hands = D.load_pairs(pairs, (96, 96), None, [tmp_path / "labels" / "a.png"])
    assert hands.shape == (1, 5, 96, 96) and not (hands[0, 4] & ~hands[0, 3]).any()
    backgrounds = torch.zeros((2, 3, 64, 64), dtype=torch.uint8)  # black scenes
    cfg = AugmentConfig(no_hand=0.0, own_background=0.0, quarter_turns=0.0)
    images, masks = composites(hands, backgrounds, (96, 96), 6, cfg, torch.Generator().manual_seed(0))
    shown = images.amax(1, keepdim=True) > 0.02  # what was pasted: hand and arm
    assert (masks.bool() & ~shown).sum() <= 0.01 * masks.sum()  # the target is what was pasted ...
    assert (shown & (masks == 0)).sum() > 0.2 * shown.sum()  # ... less the arm
    four = D.load_pairs(pairs, (96, 96))  # without labels: the mask is the target
    images, masks = composites(four, backgrounds, (96, 96), 6, cfg, torch.Generator().manual_seed(0))
    assert ((images.amax(1, keepdim=True) > 0.02) & (masks == 0)).sum() < 0.1 * masks.sum()  # soft edges only
