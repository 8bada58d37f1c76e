"""The per-hand network's recipe: samples around found hands, the widened stem, a tiny run."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from handseg_core.finder import FoundHand
from handseg_training import crops as C
from handseg_training.hand_landmarks import instance_of
from handseg_training.train_crops import CropTrainConfig, build_crop_model, load_crop_config, run, widen_stem
from tests.training import fake_data

CONFIGS = sorted((Path(__file__).parents[2] / "handseg_training" / "configs").glob("hands-*.toml"))


def hand_landmarks(size: int) -> list:
    """Landmarks of the fake hand (fake_data._hand): wrist at the bottom, fingers up."""
    s = size
    points = [(0.5 * s, 0.98 * s)] + [(0.3 * s, (0.8 - 0.1 * j) * s) for j in range(4)]
    for k in range(4):
        x = s * (0.33 + 0.11 * k)
        points += [(x, 0.45 * s), (x, 0.35 * s), (x, 0.25 * s), (x, (0.16 + 0.03 * k) * s)]
    return [[x, y, 0.0] for x, y in points]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = fake_data.make(tmp_path_factory.mktemp("data"))
    marks = root / "landmarks"
    marks.mkdir()
    sizes = {"hands11k_subset": 60, "massey_asl": 80, "sign_digits": 40}
    for name, size in sizes.items():
        stems = [p.stem for p in (root / name / "images").iterdir()]
        found = {stem: [{"landmarks": hand_landmarks(size), "score": 0.9, "handedness": "left", "instance": 255}]
                 for stem in stems}
        (marks / f"{name}.json").write_text(json.dumps(found))
    (marks / "egohands_400.json").write_text(json.dumps({}))  # no hand found on its noise frames
    (root / "faces_utk" / "hands.txt").write_text("20_1_1_20170110220111081\n")
    return root


def sampler_for(root: Path, **augment) -> C.CropSampler:
    cfg = C.CropData(root=str(root), landmarks=str(root / "landmarks"), frames=[])
    return C.build_sampler(cfg, C.CropAugment(**augment), size=64, seed=0)


def test_samples_are_crops_with_the_drawing_and_the_hands_mask(data):
    sampler = sampler_for(data, jpeg=0.0)
    x, y = sampler.batch(6)
    assert x.shape == (6, 5, 64, 64) and y.shape == (6, 1, 64, 64)
    assert x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert set(np.unique(y)) <= {0.0, 1.0}
    for k in range(6):
        if y[k].any():  # the drawn hand lies on the target
            assert (x[k, 3:].max(0) * y[k, 0]).sum() > 0.3 * (x[k, 3:].max(0)).sum()


def test_held_out_subjects_and_faces_with_hands_are_left_out(data):
    sampler = sampler_for(data)
    assert len(sampler.hands.samples) == 16 + 6 + 6  # 11k: 20 photos, 4 of them (2 subjects) held out
    assert len(sampler.faces) == 4  # 6 faces, minus the out-of-domain one (ends in 0) and the listed one


def test_distractors_have_an_empty_target(data):
    sampler = sampler_for(data, distractor=1.0, face_share=0.0, own_background=0.0)
    _, y = sampler.batch(4)
    assert not y.any()


def test_harmonise_moves_the_hand_towards_the_faces_skin():
    rgb = np.full((20, 20, 3), (200, 150, 120), np.uint8)
    alpha = np.ones((20, 20), np.float32)
    dark = np.array([[60.0, 150.0, 110.0], [5.0, 3.0, 3.0]], np.float32)  # YCrCb mean, spread
    moved = C.harmonise(rgb, alpha, dark, 1.0)
    assert moved.mean() < rgb.mean() - 40
    assert np.abs(C.harmonise(rgb, alpha, dark, 0.0).astype(int) - rgb).max() <= 1  # the colour conversion only


def test_a_found_hand_is_matched_to_the_instance_it_lies_on():
    instances = np.zeros((100, 100), np.uint8)
    instances[10:50, 10:50] = 1
    instances[60:95, 60:95] = 3
    landmarks = np.zeros((21, 3), np.float32)
    landmarks[:, :2] = np.linspace(15, 45, 21)[:, None]
    hand = FoundHand((15, 15, 45, 45), 0.9, "left", 0.9, landmarks)
    assert instance_of(hand, instances) == 1
    landmarks[:, :2] = np.linspace(52, 58, 21)[:, None]  # between the two
    assert instance_of(FoundHand((52, 52, 58, 58), 0.9, "left", 0.9, landmarks), instances) == -1


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_configs_load(path):
    cfg = load_crop_config(path)
    assert cfg.crop % 32 == 0 and cfg.freeze_batchnorm == (cfg.batch < 16)  # small batches hold BatchNorm


def test_the_widened_stem_starts_blind_to_the_landmarks():
    from handseg_training.model import build_model

    base = build_model("tf_efficientnet_lite0", 32, None).eval()
    wide = build_model("tf_efficientnet_lite0", 32, None).eval()
    wide.load_state_dict(base.state_dict())
    widen_stem(wide)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        same = wide(torch.cat([x, torch.rand(1, 2, 64, 64)], 1))
        assert torch.allclose(same, base(x), atol=1e-5)


def test_a_tiny_run_trains_and_exports(data, tmp_path):
    import onnxruntime as ort

    cfg = CropTrainConfig(name="tiny-hands", encoder="tf_efficientnet_lite0", decoder_channels=32, init_from="",
                          crop=64, batch=2, max_steps=2, log_every=1,
                          data=C.CropData(root=str(data), landmarks=str(data / "landmarks"), frames=[]))
    report = run(cfg, tmp_path)
    assert report["steps"] == 2 and len(report["history"]) == 2
    session = ort.InferenceSession(str(tmp_path / "tiny-hands.onnx"))
    out = session.run(None, {"image": np.zeros((3, 5, 64, 64), np.float32)})[0]
    assert out.shape == (3, 1, 64, 64) and 0 <= out.min() and out.max() <= 1
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["handseg.kind"]) == "hand_crop_segmenter"
    # a checkpoint of this recipe starts a second leg as it is (5 input channels)
    leg2 = build_crop_model(CropTrainConfig(encoder="tf_efficientnet_lite0", decoder_channels=32,
                                            init_from=str(tmp_path / "model.safetensors")))
    assert leg2.encoder.model.conv_stem.weight.shape[1] == 5


def test_worker_processes_draw_batches_of_their_own(data):
    from handseg_training.train_crops import batches

    cfg = CropTrainConfig(batch=2, workers=2, seed=3, crop=64)
    draws = batches(sampler_for(data), cfg)
    first, second = next(draws), next(draws)
    assert first[0].shape == (2, 5, 64, 64) and first[1].shape == (2, 1, 64, 64)
    assert not np.array_equal(first[0], second[0])  # the two workers' seeds differ
