from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

import handseg_core
from corpus import expected_size
from handseg_core import HandSegmenter, HandsegError, ImageError, ModelError, Refinement, SegmentationResult, load_model
from handseg_core.errors import OptionError
from handseg_core.metrics import hand_iou
from tiny_model import HAND_RGB, expected_probability, hand_picture, write_red_model

FAST = 64  # network input size for contract tests with the packaged model (its contents are provisional)
PIL_MODES = ["1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "HSV",
             "I", "I;16", "I;16B", "F"]


def check_contract(result: SegmentationResult, width: int, height: int) -> None:
    assert isinstance(result, SegmentationResult)
    assert result.mask.shape == (height, width) and result.mask.dtype == np.uint8
    assert set(np.unique(result.mask)) <= {0, 255}
    assert result.probability.shape == (height, width) and result.probability.dtype == np.float32
    assert 0.0 <= result.probability.min() and result.probability.max() <= 1.0
    assert result.alpha.shape == (height, width) and result.alpha.dtype == np.uint8
    assert result.size == (width, height)
    assert 0.0 <= result.hand_fraction <= 1.0


@pytest.fixture(scope="module")
def packaged() -> HandSegmenter:
    return load_model()


@pytest.fixture(scope="module")
def red(red_model) -> HandSegmenter:
    return load_model(red_model)


# The API contract, with the packaged model


def test_segment_path_pil_and_array(packaged, tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (45, 70, 3), dtype=np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(rgb).save(path)
    results = [packaged.segment(x, input_size=FAST) for x in (path, str(path), Image.fromarray(rgb), rgb)]
    for result in results:
        check_contract(result, 70, 45)
        assert result.model == "handseg-lite2-int8"
    for result in results[1:]:  # one image, however given, gives one answer
        assert np.array_equal(result.mask, results[0].mask)
        assert np.allclose(result.probability, results[0].probability, atol=1e-6)


def test_segment_at_the_models_own_size(packaged):
    rgb = np.random.default_rng(1).integers(0, 256, (30, 41, 3), dtype=np.uint8)
    check_contract(packaged.segment(rgb), 41, 30)


def test_segment_is_deterministic(packaged):
    rgb = np.random.default_rng(2).integers(0, 256, (50, 40, 3), dtype=np.uint8)
    a, b = packaged.segment(rgb, input_size=FAST), packaged.segment(rgb, input_size=FAST)
    assert np.array_equal(a.mask, b.mask) and np.array_equal(a.probability, b.probability)


@pytest.mark.parametrize("name", ["grey16_png", "cmyk_jpeg", "palette_gif", "animated_gif", "webp", "rgba_png",
                                  "exif_rotated_jpeg", "one_pixel_png", "wide_png", "la_png",
                                  "spaces_accent_jpeg", "cjk_png"])
def test_every_good_corpus_file(packaged, corpus, name):
    path, _ = corpus[name]
    before = path.read_bytes()
    width, height = expected_size(path)
    check_contract(packaged.segment(path, input_size=FAST), width, height)
    assert path.read_bytes() == before


def test_exif_rotated_input_gives_a_mask_of_the_displayed_size(packaged, corpus):
    result = packaged.segment(corpus["exif_rotated_jpeg"][0], input_size=FAST)
    assert result.mask.shape == (40, 20)  # stored 40x20, displayed 20x40


@pytest.mark.parametrize("name", ["zero_bytes", "truncated_jpeg", "truncated_png", "text_as_jpeg", "random_as_png",
                                  "bomb_png"])
def test_bad_corpus_files_raise_image_error(packaged, corpus, name):
    path, _ = corpus[name]
    with pytest.raises(ImageError) as caught:
        packaged.segment(path)
    assert path.name in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("mode", PIL_MODES)
def test_every_pil_mode(packaged, mode):
    image = Image.new(mode, (23, 17))
    check_contract(packaged.segment(image, input_size=FAST), 23, 17)


def test_array_input_is_not_changed(packaged):
    rgb = np.random.default_rng(3).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    before = rgb.copy()
    packaged.segment(rgb, input_size=FAST, flip_tta=True)
    assert np.array_equal(rgb, before)


def test_wrong_array_is_an_image_error(packaged):
    with pytest.raises(ImageError, match="uint8"):
        packaged.segment(np.zeros((10, 10, 3), np.float64))


def test_load_model_is_cached(packaged):
    assert load_model() is packaged
    assert load_model("handseg-lite2-int8") is packaged
    assert load_model(packaged.spec.path) is packaged


def test_two_names_for_one_file_keep_their_own_settings(tmp_path, monkeypatch):
    """A models folder may list one file twice with other settings; each name gets its own
    session, and asking again for either returns the same one."""
    import json

    from handseg_core import registry

    path = write_red_model(tmp_path, "shared", input_size=128)
    entries = [{"name": name, "file": path.name, "encoder": "tiny", "input_size": 128, "hand_limit": limit}
               for name, limit in (("wide-limit", 400), ("narrow-limit", 100))]
    (tmp_path / "index.json").write_text(json.dumps({"models": entries}))
    monkeypatch.setenv(registry.ENV_FOLDERS, str(tmp_path))

    wide, narrow = load_model("wide-limit"), load_model("narrow-limit")

    assert (wide.spec.name, wide.spec.hand_limit) == ("wide-limit", 400)
    assert (narrow.spec.name, narrow.spec.hand_limit) == ("narrow-limit", 100)
    assert load_model("wide-limit") is wide and load_model("narrow-limit") is narrow


def test_unknown_device():
    with pytest.raises(ModelError, match="'auto', 'cpu' or 'cuda'"):
        load_model(device="gpu")


@pytest.mark.filterwarnings("ignore::handseg_core.registry.UnverifiedModelWarning")  # a file without checksum, by path
def test_not_an_onnx_file(tmp_path):
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"definitely not protobuf" * 10)
    with pytest.raises(ModelError) as caught:
        load_model(path)
    assert "junk.onnx" in str(caught.value) and "\n" not in str(caught.value)


def test_module_level_segment_uses_the_default_model(packaged):
    rgb = np.random.default_rng(4).integers(0, 256, (26, 34, 3), dtype=np.uint8)
    result = handseg_core.segment(rgb, input_size=FAST)
    check_contract(result, 34, 26)
    assert np.array_equal(result.mask, packaged.segment(rgb, input_size=FAST).mask)
    loose = handseg_core.segment(rgb, Refinement(threshold=0.0), input_size=FAST)
    assert (loose.mask == 255).all()


def test_module_level_cutout_without_a_mask(tmp_path):
    rgb = np.random.default_rng(5).integers(0, 256, (28, 36, 3), dtype=np.uint8)
    out = handseg_core.cutout(rgb)
    assert out.mode == "RGBA" and out.size == (36, 28)
    alpha = handseg_core.segment(rgb).alpha
    assert np.array_equal(np.asarray(out)[..., 3], alpha)
    assert np.array_equal(np.asarray(out)[..., :3], np.where(alpha[..., None] > 0, rgb, 0))
    on_white = handseg_core.cutout(rgb, background="white")
    assert on_white.mode == "RGB" and on_white.size == (36, 28)


def test_public_api_is_small():
    assert set(handseg_core.__all__) == {
        "ChecksumError", "HandSegmenter", "HandsegError", "ImageError", "Inference", "ModelError", "Refinement",
        "SegmentationResult", "__version__", "cutout", "load_model", "refine", "segment"}
    assert all(hasattr(handseg_core, name) for name in handseg_core.__all__)


# Session life cycle


def test_close_and_reload(tmp_path):
    path = write_red_model(tmp_path, "closable")
    session = load_model(path)
    session.close()
    with pytest.raises(ModelError, match="closed") as caught:
        session.segment(np.zeros((8, 8, 3), np.uint8))
    assert "load_model" in str(caught.value)
    again = load_model(path)
    assert again is not session
    check_contract(again.segment(np.zeros((8, 8, 3), np.uint8)), 8, 8)


def test_context_manager_closes(tmp_path):
    path = write_red_model(tmp_path, "managed")
    with load_model(path) as session:
        check_contract(session.segment(np.zeros((9, 7, 3), np.uint8)), 7, 9)
    with pytest.raises(ModelError, match="closed"):
        session.segment(np.zeros((9, 7, 3), np.uint8))
    assert load_model(path) is not session


def test_threads_share_one_session(red):
    rgb, _ = hand_picture(160, 120, seed=9)
    expected = red.segment(rgb).mask
    masks, errors = [], []

    def work():
        try:
            masks.append(red.segment(rgb).mask)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(masks) == 4
    assert all(np.array_equal(m, expected) for m in masks)


# Golden behaviour, with the tiny red-hands model. Where a test checks the geometry of the
# pipeline (sizes, rotation, the exact probability), edge snapping is off: it reshapes edges on
# these noisy synthetic pictures, and is tested on its own in test_postprocess.

UNSNAPPED = Refinement(snap_edges=False)


def test_metadata_settings_are_used(red):
    assert red.spec.name == "tiny-red"
    assert (red.spec.input_size, red.spec.stride) == (128, 16)


def test_probability_matches_the_known_model(red):
    rgb = np.random.default_rng(6).integers(0, 256, (32, 128, 3), dtype=np.uint8)  # no resize at 128
    result = red.segment(rgb, UNSNAPPED)
    assert np.abs(result.probability - expected_probability(rgb)).max() < 1e-4


def test_golden_hand_mask(red):
    rgb, truth = hand_picture(320, 240)
    result = red.segment(rgb)
    assert hand_iou(result.mask, truth) > 0.95
    assert hand_iou(result.mask, truth[:, ::-1]) < 0.9  # the shape is asymmetric: left is left


def test_golden_hand_mask_through_a_file(red, tmp_path):
    rgb, truth = hand_picture(200, 300, seed=1)
    path = tmp_path / "main rouge é.png"
    Image.fromarray(rgb).save(path)
    assert hand_iou(red.segment(path).mask, truth) > 0.95


def test_golden_mask_of_an_exif_rotated_photo(red, tmp_path):
    rgb, truth = hand_picture(120, 80, seed=2)  # stored landscape
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.png"
    Image.fromarray(rgb).save(path, exif=exif.tobytes())
    result = red.segment(path, UNSNAPPED)
    displayed_truth = np.rot90(truth, k=-1)  # orientation 6: turned clockwise for display
    assert result.mask.shape == displayed_truth.shape == (120, 80)
    assert hand_iou(result.mask, displayed_truth) > 0.95


def test_flip_tta_maps_the_mirrored_pass_back(red):
    rgb, truth = hand_picture(300, 200, seed=3)  # 300 wide: resized and padded on the right
    plain = red.segment(rgb)
    flipped = red.segment(rgb, flip_tta=True)
    check_contract(flipped, 300, 200)
    assert hand_iou(flipped.mask, truth) > 0.95
    # A pointwise model sees the same pixels either way: averaging changes nothing.
    assert np.abs(flipped.probability - plain.probability).max() < 1e-4


def test_input_size_overrides_the_models(red):
    rgb, truth = hand_picture(320, 240, seed=4)
    coarse = red.segment(rgb, UNSNAPPED, input_size=24)
    fine = red.segment(rgb, UNSNAPPED, input_size=320)
    check_contract(coarse, 320, 240)
    assert hand_iou(fine.mask, truth) > 0.99
    assert hand_iou(coarse.mask, truth) < hand_iou(fine.mask, truth) - 0.02


def test_refinement_is_applied(red):
    rgb, _ = hand_picture(160, 120, seed=5)
    everything = red.segment(rgb, Refinement(threshold=0.0))
    assert (everything.mask == 255).all()
    nothing = red.segment(rgb, Refinement(threshold=1.0))
    assert (nothing.mask == 0).all()
    grown = red.segment(rgb, Refinement(dilate=0.05))
    assert np.count_nonzero(grown.mask) > np.count_nonzero(red.segment(rgb).mask)


def test_feathered_alpha(red):
    rgb, _ = hand_picture(160, 120, seed=6)
    hard = red.segment(rgb)
    soft = red.segment(rgb, Refinement(feather=0.05))
    assert np.array_equal(soft.mask, hard.mask)
    assert np.array_equal(hard.alpha, hard.mask)
    assert ((soft.alpha > 0) & (soft.alpha < 255)).any()


def test_golden_cutout(red):
    rgb, truth = hand_picture(160, 120, seed=7)
    result = red.segment(rgb)
    out = np.asarray(handseg_core.cutout(rgb, result.mask, background="#00FF00"))
    hand = result.mask == 255
    assert np.array_equal(out[hand], rgb[hand])
    assert (out[~hand] == (0, 255, 0)).all()
    assert hand_iou(np.all(out == HAND_RGB, axis=2), truth) > 0.95


@pytest.mark.filterwarnings("ignore::handseg_core.registry.UnverifiedModelWarning")  # a file without checksum, by path
def test_damaged_metadata_is_a_model_error(tmp_path):
    from tiny_model import red_model_bytes

    data = red_model_bytes()
    damaged = data.replace(b'"tiny-red"', b'"tiny-\xff\xfe\xfd"')  # same length: still valid protobuf
    assert len(damaged) == len(data) and damaged != data
    path = tmp_path / "bad-metadata.onnx"
    path.write_bytes(damaged)
    with pytest.raises(ModelError) as caught:
        load_model(path)
    assert "bad-metadata.onnx" in str(caught.value)


def test_small_images_are_not_enlarged(tmp_path, monkeypatch):
    """The network sees a small image at its own size, a large one at the model's input size or
    at the `input_size` asked for: a larger `input_size` refines large images and leaves small
    ones as they are (enlarged, close-ups lose most of their IoU)."""
    from handseg_core import session as session_module

    seen = []
    real_prepare = session_module.prepare

    def spy(image, long_side, *args):
        seen.append(long_side)
        return real_prepare(image, long_side, *args)

    monkeypatch.setattr(session_module, "prepare", spy)
    session = load_model(write_red_model(tmp_path, "sizes"))
    size = session.spec.input_size
    session.segment(np.zeros((size // 2, size // 4, 3), np.uint8))
    session.segment(np.zeros((size * 2, size, 3), np.uint8))
    session.segment(np.zeros((size // 2, size // 4, 3), np.uint8), input_size=size * 2)
    session.segment(np.zeros((size * 2, size, 3), np.uint8), input_size=size * 3 // 2)
    session.segment(np.zeros((size * 2, size, 3), np.uint8), input_size=size // 2)
    session.probability(np.zeros((size // 2, size // 4, 3), np.uint8), input_size=size * 2)
    session.probability(np.zeros((size * 2, size, 3), np.uint8), input_size=size * 3 // 2)
    assert seen == [size // 2, size, size // 2, size * 3 // 2, size // 2, size // 2, size * 3 // 2]


def red_block_picture(block: int) -> np.ndarray:
    """1024x768, a `block` x `block / 2` red "hand" on teal (0: none)."""
    rgb = np.full((768, 1024, 3), (40, 160, 160), np.uint8)
    rgb[100:100 + block // 2, 50:50 + block] = HAND_RGB
    return rgb


def test_the_size_adapts_to_a_hand_that_fills_the_photo(tmp_path, monkeypatch):
    """One quick pass at FIND_SIZE measures the largest hand; where it would span more than the
    model's `hand_limit` pixels, the network sees the photo at the size where it spans its
    `hand_extent`, never above the size asked for, never below the floor; hands within the limit,
    specks and no hand leave the size alone."""
    from handseg_core import session as session_module
    from handseg_core.session import FIND_SIZE

    seen = []
    real_prepare = session_module.prepare
    monkeypatch.setattr(session_module, "prepare", lambda image, side, *a: seen.append(side) or real_prepare(image, side, *a))
    session = load_model(write_red_model(tmp_path, "adapt", input_size=512, min_input_size=0))
    limit, extent = session.spec.hand_limit, session.spec.hand_extent
    assert (limit, extent) == (280, 200)  # a model that records none

    large = red_block_picture(800)  # 800 of 1024 px: the hand would span 400 network pixels at 512
    expected = int(extent / (800 / 1024)) // 32 * 32
    assert 192 <= expected < 512
    assert session.fitted_size(large, 512) == expected
    session.segment(large, UNSNAPPED)
    assert seen[-2:] == [FIND_SIZE, expected]
    seen.clear()
    assert session.fitted_size(large, limit) == limit  # no hand can be too large there:
    assert seen == []  # no quick pass
    assert session.fitted_size(red_block_picture(1000), 512) == FIND_SIZE  # never below the floor
    assert session.fitted_size(red_block_picture(100), 512) == 512  # small hand: already small enough
    within = int(limit * 0.9 / 512 * 1024)  # spans 90% of the limit at 512: left alone
    assert session.fitted_size(red_block_picture(within), 512) == 512
    assert session.fitted_size(red_block_picture(within), 640) < 640  # but not at 640
    assert session.fitted_size(red_block_picture(6), 512) == 512  # a speck says nothing
    assert session.fitted_size(red_block_picture(0), 512) == 512  # no hand
    seen.clear()
    session.segment(large, UNSNAPPED, adapt_size=False)
    assert seen == [512]


def test_each_model_records_its_own_hand_limits(tmp_path):
    """`hand_limit` and `hand_extent` travel in the model file's metadata and rule its quick pass:
    a model that finds larger hands is left alone where another would be fitted."""
    session = load_model(write_red_model(tmp_path, "large-hands", input_size=512, min_input_size=0,
                                         hand_limit=420, hand_extent=300))
    from handseg_core.session import adapts_at

    assert (session.spec.hand_limit, session.spec.hand_extent) == (420, 300)
    assert session.fitted_size(red_block_picture(800), 512) == 512  # 400 network pixels: within 420
    assert session.fitted_size(red_block_picture(900), 512) == int(300 / (900 / 1024)) // 32 * 32
    assert adapts_at(session.spec, 448) and not adapts_at(session.spec, 416)


def test_the_quick_pass_reduces_the_networks_view_not_the_photo(tmp_path, monkeypatch):
    """The photo is resized once to the size asked for; the quick pass reduces that view (a fifth
    of the resizing time on a 1280x720 photo) and the main pass reads it as it is. Only where the
    size adapts is the photo resized again, to the fitted size."""
    from handseg_core import session as session_module

    seen = []
    real_prepare = session_module.prepare
    monkeypatch.setattr(session_module, "prepare",
                        lambda image, side, *a: seen.append((image.shape[:2], side)) or real_prepare(image, side, *a))
    session = load_model(write_red_model(tmp_path, "view", input_size=512, min_input_size=0))
    rgb = np.full((768, 1024, 3), (40, 160, 160), np.uint8)
    rgb[100:150, 50:150] = HAND_RGB  # small: the size stays
    session.segment(rgb, UNSNAPPED)
    assert seen == [((384, 512), session_module.FIND_SIZE), ((384, 512), 512)]
    seen.clear()
    rgb[100:500, 50:850] = HAND_RGB  # large: fitted below 512
    session.segment(rgb, UNSNAPPED)
    fitted = seen[1][1]
    assert seen[0] == ((384, 512), session_module.FIND_SIZE) and fitted < 512
    assert seen[1][0] == (fitted * 3 // 4, fitted)


def test_a_models_smallest_size_enlarges_thumbnails(tmp_path, monkeypatch):
    """A model that records min_input_size sees small images enlarged to it, never past input_size."""
    from dataclasses import replace

    from handseg_core import session as session_module
    from handseg_core.session import inference_size
    from tiny_model import SPEC

    spec = replace(SPEC, input_size=128, min_input_size=96)
    assert inference_size(spec, (20, 40)) == 96  # enlarged
    assert inference_size(spec, (100, 110)) == 110  # between: its own size
    assert inference_size(spec, (300, 200)) == 128  # reduced
    assert inference_size(replace(spec, min_input_size=512), (20, 40)) == 128  # capped at input_size
    assert inference_size(replace(spec, min_input_size=0), (20, 40)) == 40

    seen = []
    real_prepare = session_module.prepare
    monkeypatch.setattr(session_module, "prepare", lambda image, side, *a: seen.append(side) or real_prepare(image, side, *a))
    session = load_model(write_red_model(tmp_path, "thumbs", input_size=128, min_input_size=96))
    result = session.segment(np.zeros((30, 20, 3), np.uint8))
    assert seen == [96] and result.mask.shape == (30, 20)


@pytest.mark.parametrize("orientation", [1, 6])
def test_large_jpeg_is_segmented_from_a_reduced_decode_at_full_size(tmp_path, red_model, orientation):
    from handseg_core.images import load_rgb

    rgb, truth = hand_picture(2048, 1536, seed=3)
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored = rgb if orientation == 1 else np.ascontiguousarray(np.rot90(rgb, 1))  # 6: displayed turned clockwise
    path = tmp_path / "big.jpg"
    Image.fromarray(stored).save(path, quality=95, exif=exif.tobytes())
    session = load_model(red_model)
    decoded, displayed = session._decode(path, None)
    assert displayed == (1536, 2048) and decoded.shape == (192, 256, 3)  # twice the network's 128x96: 1/8 scale
    small = tmp_path / "small.jpg"
    Image.fromarray(rgb[:720, :1280]).save(small, quality=95)
    assert session._decode(small, 512)[0].shape == (720, 1280, 3)  # 2x a 512 input would not fit a half-scale decode
    from_file = session.segment(path)
    from_full_decode = session.segment(load_rgb(path))
    check_contract(from_file, 2048, 1536)
    assert hand_iou(from_file.mask > 0, truth) > 0.9
    assert hand_iou(from_file.mask > 0, from_full_decode.mask > 0) > 0.98


# Options out of range: one clear line, before any work


@pytest.mark.parametrize("value", [-1, 0, 2049, 1.5, "512", True])
def test_a_bad_input_size_is_an_option_error(red, value):
    rgb, _ = hand_picture(40, 30)
    with pytest.raises(OptionError) as caught:
        red.segment(rgb, input_size=value)
    message = str(caught.value)
    assert "\n" not in message and "input_size" in message and "1 to 2048" in message and repr(value) in message
    with pytest.raises(OptionError):
        red.probability(rgb, input_size=value)


def test_a_bad_input_size_through_the_module_level_segment():
    with pytest.raises(HandsegError, match="input_size"):
        handseg_core.segment(np.zeros((10, 10, 3), np.uint8), input_size=-1)


@pytest.mark.parametrize("changes", [{"threshold": -0.1}, {"threshold": 1.5}, {"threshold": "0.5"},
                                     {"feather": -0.01}, {"dilate": 1.0}])
def test_refinement_out_of_range_is_an_option_error(changes):
    with pytest.raises(OptionError) as caught:
        Refinement(**changes)
    assert "\n" not in str(caught.value) and next(iter(changes)) in str(caught.value)
    assert isinstance(caught.value, HandsegError) and isinstance(caught.value, ValueError)


def test_a_refinement_of_another_type_is_an_option_error(red):
    with pytest.raises(OptionError, match="Refinement"):
        red.segment(np.zeros((10, 10, 3), np.uint8), {"threshold": 0.5})
