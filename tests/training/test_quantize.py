"""int8 quantisation (handseg_training.quantize): what stays float, the calibration pick, the checks."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

onnx = pytest.importorskip("onnx")
pytest.importorskip("torch")

from handseg_core import Refinement, load_model, registry  # noqa: E402
from handseg_core.metrics import hand_iou  # noqa: E402
from handseg_training import quantize as Q  # noqa: E402
from tiny_model import (  # noqa: E402
    LAYERED_CONVS, SPEC, expected_probability, hand_picture, layered_model_bytes, write_layered_model,
)


@pytest.fixture
def layered(tmp_path):
    return write_layered_model(tmp_path / "models")


@pytest.fixture
def calibration(tmp_path):
    """Two folders of red hands on noisy backgrounds, and a third of hand-free scenes."""
    folder = tmp_path / "calibration"
    for i in range(12):
        sub = ["hands_a", "hands_b", "scenes"][i % 3]
        rgb, _ = hand_picture(160 + 16 * i, 120 + 8 * i, seed=i)
        if sub == "scenes":
            rgb = rgb.copy()
            rgb[..., 0] = 40
        (folder / sub).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb).save(folder / sub / f"{i:02d}.png")
    return folder


def test_kept_in_float_are_the_stem_the_encoder_depthwise_and_the_head():
    model = onnx.load_from_string(layered_model_bytes())

    kept = Q.kept_in_float(model)

    assert kept == sorted(name for name, float_kept in LAYERED_CONVS.items() if float_kept)


def test_without_encoder_names_every_depthwise_convolution_stays_float():
    names = dict(zip(["first", "dw_a", "pointwise", "dw_b", "last"], [True, True, False, True, True]))
    model = onnx.load_from_string(layered_model_bytes(names=names))

    assert Q.kept_in_float(model) == sorted(name for name, kept in names.items() if kept)


def test_even_pick_takes_every_folder_in_turn(tmp_path):
    photos = [tmp_path / folder / f"{i}.jpg" for folder, n in (("a", 5), ("b", 1), ("c", 3)) for i in range(n)]

    order = Q.even_pick(photos, seed=3)

    assert sorted(order) == sorted(photos)
    assert {p.parent.name for p in order[:3]} == {"a", "b", "c"}
    assert {p.parent.name for p in order[3:5]} == {"a", "c"}
    assert Q.even_pick(photos, seed=3) == order
    assert Q.even_pick(photos, seed=4) != order  # random within each folder


def test_cover_crop_cuts_the_centre_and_never_stretches():
    tall = np.zeros((300, 100, 3), np.uint8)
    tall[:100] = (0, 0, 255)
    tall[100:200] = (255, 0, 0)
    tall[200:] = (0, 255, 0)

    crop = Q.cover_crop(tall, 64, 128)

    assert crop.shape == (64, 128, 3)
    assert (crop == (255, 0, 0)).all()  # only the middle band: a stretch would show all three


def test_calibration_shape_is_wide_and_on_the_stride():
    assert Q.calibration_shape(registry.ModelSpec(name="m", file="m.onnx", input_size=512, stride=32)) == (288, 512)
    height, width = Q.calibration_shape(SPEC)
    assert width == SPEC.input_size and height % SPEC.stride == 0 and 0 < height < width


def test_gather_photos_searches_folders_and_keeps_files(calibration, tmp_path):
    (calibration / "notes.txt").write_text("not a photo")
    single = tmp_path / "one.png"
    Image.new("RGB", (8, 8)).save(single)

    found = Q.gather_photos([calibration, single])

    assert len(found) == 13 and found[-1] == single
    assert all(p.suffix == ".png" for p in found)


def test_quantize_writes_a_checked_int8_model(layered, calibration, tmp_path):
    (calibration / "scenes" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    out = tmp_path / "out" / "layered-int8.onnx"

    result = Q.quantize(layered, Q.gather_photos([calibration]), out, count=12)

    assert result.photos == 12 and len(result.skipped) == 1 and "broken.jpg" in result.skipped[0]
    assert result.agreement >= Q.MIN_AGREEMENT
    assert out.with_name(out.name + ".sha256").read_text().split()[0] == result.spec.sha256
    model = onnx.load(out)
    quantized_convs = {node.name for node in model.graph.node
                       if node.op_type == "Conv" and any("DequantizeLinear" in i or "_dequantized" in i
                                                          for i in node.input[1:2])}
    assert quantized_convs == {name for name, kept in LAYERED_CONVS.items() if not kept}
    assert any(node.op_type == "QuantizeLinear" for node in model.graph.node)

    segmenter = load_model(out, device="cpu")
    spec = segmenter.spec
    assert spec.name == "layered-int8" and "int8" in spec.description and spec.metrics == {}
    assert (spec.input_size, spec.stride, spec.mean) == (SPEC.input_size, SPEC.stride, SPEC.mean)
    rgb, truth = hand_picture(200, 150, seed=42)
    mask = segmenter.segment(rgb, Refinement(snap_edges=False)).mask > 0  # the network's own edge
    assert hand_iou(mask, expected_probability(rgb) >= 0.5) > 0.97
    assert hand_iou(mask, truth) > 0.95


def test_too_few_photos_are_refused_and_nothing_is_written(layered, calibration, tmp_path):
    out = tmp_path / "int8.onnx"

    with pytest.raises(ValueError, match="at least 8"):
        Q.quantize(layered, Q.gather_photos([calibration / "hands_a"]), out)

    assert not out.exists()


def test_an_int8_model_that_strays_from_the_float_one_is_not_written(layered, calibration, tmp_path):
    out = tmp_path / "int8.onnx"

    with pytest.raises(ValueError, match=r"agree with the float model's by [01]\.\d+ IoU \(< 1.01\)"):
        Q.quantize(layered, Q.gather_photos([calibration]), out, min_agreement=1.01)

    assert not out.exists() and not list(tmp_path.glob("*.sha256"))


def test_mask_agreement_pools_over_photos():
    a = np.zeros((4, 4), np.float32)
    b = a.copy()
    a[0, :2] = 1  # 2 hand pixels here
    b[0, :1] = 1  # 1 of them there
    empty = np.zeros((4, 4), np.float32)

    assert Q.mask_agreement([(a, b)]) == 0.5
    assert Q.mask_agreement([(a, b), (a, a)]) == 3 / 4
    assert Q.mask_agreement([(empty, empty)]) == 1.0
    assert Q.mask_agreement([(empty, empty), (a, empty)]) == 0.0


def test_an_int8_model_that_fails_on_another_size_is_not_written(layered, calibration, tmp_path, monkeypatch):
    """As ONNX Runtime's quantised Concat did when every operator of lite2 was quantised."""
    opened = []
    real = Q._one_thread_session

    class OneShapeOnly:
        def __init__(self, session):
            self.session = session

        def run(self, outputs, feeds):
            if feeds["image"].shape[2:] != Q.calibration_shape(SPEC):
                raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : QLinearConcat: input shapes differ\nmore")
            return self.session.run(outputs, feeds)

    def open_session(model_bytes):
        opened.append(model_bytes)
        session = real(model_bytes)
        return OneShapeOnly(session) if len(opened) == 2 else session  # the second is the int8 model

    monkeypatch.setattr(Q, "_one_thread_session", open_session)
    out = tmp_path / "int8.onnx"

    with pytest.raises(ValueError, match=r"fails on another input size \(\[ONNXRuntimeError\].*differ\); not written"):
        Q.quantize(layered, Q.gather_photos([calibration]), out)

    assert not out.exists()


def test_an_int8_model_is_not_quantised_again(layered, calibration, tmp_path):
    photos = Q.gather_photos([calibration])
    once = Q.quantize(layered, photos, tmp_path / "once.onnx")

    with pytest.raises(ValueError, match="once is quantised already; quantise the float model it was made from"):
        Q.quantize(once.spec.path, photos, tmp_path / "twice.onnx")

    assert not (tmp_path / "twice.onnx").exists()


def test_a_per_hand_network_is_calibrated_on_the_finders_crops():
    from pathlib import Path

    from handseg_core import handcrop
    from handseg_core.finder import load_finder

    spec = registry.find_kind("handseg-hands-lite2", registry.HANDS_KIND)
    photos = sorted((Path(__file__).parents[1] / "data" / "hands").glob("*.jpg"))
    tensors, skipped = Q.calibration_tensors(spec, photos, count=4)
    assert len(tensors) == 4 and skipped == []
    assert Q.calibration_tensors(spec, [photos[0].with_name("missing.jpg")], count=4) == ([], [
        f"{photos[0].with_name('missing.jpg')}: no such file"])
    assert all(t.shape == (1, 5, spec.input_size, spec.input_size) and t.dtype == np.float32 for t in tensors)
    # exactly what the engine feeds the network for the first photo's first hand
    first = Q.even_pick(photos)[0]
    hand = load_finder().find(np.asarray(Image.open(first).convert("RGB")))[0]
    expected = handcrop.crop_input(np.asarray(Image.open(first).convert("RGB")), hand.landmarks,
                                   handcrop.crop_square(hand.landmarks), spec.mean, spec.std, spec.input_size)
    np.testing.assert_allclose(tensors[0][0], expected, atol=1e-5)
    assert tensors[0][0, 3:].max() > 0  # the landmark channels are drawn


def test_quantize_imports_no_torch():
    """`handseg quantize` works without the training extra: onnx and ONNX Runtime are enough."""
    import subprocess
    import sys

    check = "import sys, handseg_training.quantize, handseg_training.onnx_files; assert 'torch' not in sys.modules"
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
