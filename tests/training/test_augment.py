"""Composites: where the pasted hand, its mask and the background end up."""

from __future__ import annotations

import dataclasses
import math

import pytest

torch = pytest.importorskip("torch")

from handseg_training.augment import AugmentConfig, composites, photometric  # noqa: E402


def _hand_on_white(size: int = 32) -> torch.Tensor:
    """One hand photo: a red square (the hand, alpha 255) on white paper (alpha 0)."""
    photo = torch.full((1, 4, size, size), 255, dtype=torch.uint8)
    photo[:, 3] = 0
    quarter = size // 4
    photo[:, 1:3, quarter:-quarter, quarter:-quarter] = 0
    photo[:, 3, quarter:-quarter, quarter:-quarter] = 255
    return photo


STILL = AugmentConfig(hand_rotation=0.0, wrist_at_edge=0.0, skin_gain=(1.0, 1.0), quarter_turns=0.0,
                      hand_size=(0.6, 0.6))


def _run(cfg: AugmentConfig, count: int = 16):
    black = torch.zeros((3, 3, 48, 48), dtype=torch.uint8)
    gen = torch.Generator().manual_seed(0)
    return composites(_hand_on_white(), black, (48, 48), count, cfg, gen)


def test_pasted_hands_show_the_background_around_them():
    image, mask = _run(dataclasses.replace(STILL, no_hand=0.0))
    assert mask.sum(dim=(1, 2, 3)).min() > 0
    outside = image.amax(dim=1, keepdim=True)[mask == 0]
    assert (outside < 0.05).float().mean() > 0.9  # the black background, not the white paper
    red = image[:, 0:1][mask == 1]
    assert (red > 0.8).float().mean() > 0.85  # all but the blended rim


def test_own_background_keeps_the_paper_and_the_hand():
    image, mask = _run(dataclasses.replace(STILL, own_background=1.0, no_hand=1.0))
    # every composite keeps its hand (a photo of a hand is never a negative) ...
    assert mask.sum(dim=(1, 2, 3)).min() > 0
    # ... and the white paper stretches over the whole canvas: no black background shows
    outside = image[mask.expand_as(image) == 0]
    assert (outside > 0.8).float().mean() > 0.95  # all but the hand's blended rim
    hand_green = image[:, 1:2][mask == 1]
    assert (hand_green < 0.2).float().mean() > 0.85


def test_own_background_off_leaves_the_random_stream_alone():
    before = _run(dataclasses.replace(STILL, hand_size=(0.4, 1.2), hand_rotation=30.0))
    after = _run(dataclasses.replace(STILL, hand_size=(0.4, 1.2), hand_rotation=30.0, own_background=0.0))
    assert torch.equal(before[0], after[0])
    mixed = _run(dataclasses.replace(STILL, hand_size=(0.4, 1.2), hand_rotation=30.0, own_background=0.5))
    assert not torch.equal(before[0], mixed[0])


def test_motion_kernels_are_lines_of_their_length_and_angle():
    from handseg_training.augment import motion_kernels

    kernels = motion_kernels(torch.tensor([9.0, 9.0, 3.0]), torch.tensor([0.0, math.pi / 2, math.pi / 4]))
    assert torch.allclose(kernels.sum(dim=(1, 2)), torch.ones(3))
    centre = kernels.shape[-1] // 2
    across = (kernels[0] > 0).nonzero()
    assert (across[:, 0] == centre).all() and 9 <= len(across) <= 11  # a horizontal line, 9-11 px
    assert ((kernels[1] > 0).nonzero()[:, 1] == centre).all()  # a vertical one
    diagonal = (kernels[2] > 0).nonzero()
    assert (diagonal[:, 0] - centre == diagonal[:, 1] - centre).all() and len(diagonal) >= 3


def test_motion_blur_smears_along_its_direction_only():
    from handseg_training.augment import motion_blurred

    stripes = torch.zeros((2, 3, 32, 32))
    stripes[..., :, ::4] = 1.0  # vertical stripes
    out = motion_blurred(stripes, torch.tensor([7.0, 7.0]), torch.tensor([0.0, math.pi / 2]))
    assert out[0].std() < 0.5 * stripes[0].std()  # across the stripes: smeared
    assert torch.allclose(out[1], stripes[1], atol=1e-6)  # along them: unchanged
    assert torch.allclose(out.mean(), stripes.mean(), atol=0.02)  # light is kept


def test_motion_blur_is_drawn_only_when_asked_for():
    images = torch.rand((6, 3, 24, 24), generator=torch.Generator().manual_seed(0))
    plain = photometric(images.clone(), AugmentConfig(), torch.Generator().manual_seed(1))
    zero = photometric(images.clone(), AugmentConfig(motion_blur=0.0, motion_length=(1.0, 99.0)),
                       torch.Generator().manual_seed(1))
    assert torch.equal(plain, zero)  # older configs see the same random stream
    always = photometric(images.clone(), AugmentConfig(motion_blur=1.0), torch.Generator().manual_seed(1))
    assert all(not torch.allclose(always[i], plain[i]) for i in range(6))
