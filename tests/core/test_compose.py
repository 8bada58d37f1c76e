from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from handseg_core import HandsegError, ImageError
from handseg_core.compose import cutout_image, parse_colour

H, W = 12, 16


def picture() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (H, W, 3), dtype=np.uint8)


def left_half_mask() -> np.ndarray:
    mask = np.zeros((H, W), np.uint8)
    mask[:, : W // 2] = 255
    return mask


def test_transparent_cutout_is_rgba_with_the_mask_as_alpha():
    image, mask = picture(), left_half_mask()
    mask[3, 3] = 90  # soft values pass through
    out = cutout_image(image, mask)
    assert out.mode == "RGBA" and out.size == (W, H)
    rgba = np.asarray(out)
    assert np.array_equal(rgba[..., 3], mask)
    kept = mask > 0
    assert np.array_equal(rgba[kept][:, :3], image[kept])  # the hand's colours, soft edge included
    assert not rgba[~kept][:, :3].any()  # the removed background is not in the file under alpha 0


@pytest.mark.parametrize("background", [None, "transparent", "none", "", " Transparent "])
def test_transparent_spellings(background):
    assert cutout_image(picture(), left_half_mask(), background).mode == "RGBA"


def test_bool_float_and_pil_masks():
    image = picture()
    expected = left_half_mask()
    for mask in (expected > 0, (expected > 0).astype(np.float32), Image.fromarray(expected)):
        assert np.array_equal(np.asarray(cutout_image(image, mask))[..., 3], expected)
    soft = np.full((H, W), 0.5, np.float32)
    assert (np.asarray(cutout_image(image, soft))[..., 3] == 128).all()


@pytest.mark.parametrize("background, colour", [
    ("#1E90FF", (30, 144, 255)),
    ("1e90ff", (30, 144, 255)),
    ("#f80", (255, 136, 0)),
    ("white", (255, 255, 255)),
    ("Black", (0, 0, 0)),
    ((10, 200, 30), (10, 200, 30)),
])
def test_colour_backgrounds(background, colour):
    image = picture()
    out = cutout_image(image, left_half_mask(), background)
    assert out.mode == "RGB" and out.size == (W, H)
    rgb = np.asarray(out)
    assert np.array_equal(rgb[:, : W // 2], image[:, : W // 2])
    assert (rgb[:, W // 2:] == colour).all()


def test_soft_mask_blends_with_the_background():
    image = np.full((H, W, 3), 200, np.uint8)
    out = np.asarray(cutout_image(image, np.full((H, W), 0.5), "black")).astype(int)
    assert np.abs(out - 100).max() <= 1


def test_image_background_is_resized_to_cover(tmp_path):
    image = picture()
    # A wide background, left half red and right half blue: covering a 16x12 image centre-crops it.
    wide = np.zeros((10, 80, 3), np.uint8)
    wide[:, :40] = (255, 0, 0)
    wide[:, 40:] = (0, 0, 255)
    mask = np.zeros((H, W), np.uint8)
    for background in (wide, Image.fromarray(wide), tmp_path / "wide.png", str(tmp_path / "wide.png")):
        Image.fromarray(wide).save(tmp_path / "wide.png")
        out = np.asarray(cutout_image(image, mask, background)).astype(int)
        assert out.shape == (H, W, 3)
        # No black bars: the background fills the frame (a little resampling ringing allowed).
        assert np.abs(out[:, :6] - (255, 0, 0)).max() <= 12
        assert np.abs(out[:, -6:] - (0, 0, 255)).max() <= 12


def test_tall_background_is_cropped_vertically():
    tall = np.zeros((90, 10, 3), np.uint8)
    tall[:30] = (0, 255, 0)
    tall[30:60] = (255, 0, 255)
    tall[60:] = (0, 255, 0)
    out = np.asarray(cutout_image(picture(), np.zeros((H, W), np.uint8), tall)).astype(int)
    assert np.abs(out - (255, 0, 255)).max() <= 12  # only the middle band: cropped, not squashed


def test_the_images_own_transparency_is_kept():
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., :3] = 100
    rgba[..., 3] = 255
    rgba[:, :4, 3] = 0
    rgba[:, 4:8, 3] = 128
    before = rgba.copy()
    for image in (rgba, Image.fromarray(rgba)):
        alpha = np.asarray(cutout_image(image, np.full((H, W), 255, np.uint8)))[..., 3]
        assert (alpha[:, :4] == 0).all() and (alpha[:, 4:8] == 128).all() and (alpha[:, 8:] == 255).all()
        half = np.asarray(cutout_image(image, np.full((H, W), 64, np.uint8)))[..., 3]
        assert (half[:, :4] == 0).all() and (half[:, 4:] == 64).all()  # the lower of the two
    assert np.array_equal(rgba, before)


def test_inputs_are_not_changed(tmp_path):
    array, mask = picture(), left_half_mask()
    pil = Image.fromarray(array).convert("RGBA")
    path = tmp_path / "in.png"
    Image.fromarray(array).save(path)
    saved = path.read_bytes()
    before_array, before_mask, before_pil = array.copy(), mask.copy(), pil.tobytes()
    for image in (array, pil, path):
        cutout_image(image, mask)
        cutout_image(image, mask, "white")
    assert np.array_equal(array, before_array) and np.array_equal(mask, before_mask)
    assert pil.tobytes() == before_pil and path.read_bytes() == saved


@pytest.mark.parametrize("mask_shape", [(H + 1, W), (H, W - 1), (W, H)])
def test_mask_size_mismatch(mask_shape):
    with pytest.raises(HandsegError) as caught:
        cutout_image(picture(), np.zeros(mask_shape, np.uint8))
    assert f"{mask_shape[1]}x{mask_shape[0]}" in str(caught.value) and f"{W}x{H}" in str(caught.value)


@pytest.mark.parametrize("mask, words", [
    (np.zeros((H, W), np.int64), ["int64", "uint8"]),
    (np.zeros((H, W, 1), np.uint8), ["HxW", "(12, 16, 1)"]),
])
def test_mask_type_errors(mask, words):
    with pytest.raises(HandsegError) as caught:
        cutout_image(picture(), mask)
    for word in words:
        assert word in str(caught.value)


def test_unknown_background_says_what_is_accepted(tmp_path):
    with pytest.raises(HandsegError) as caught:
        cutout_image(picture(), left_half_mask(), "not-a-colour-or-file")
    assert "not-a-colour-or-file" in str(caught.value) and "#RRGGBB" in str(caught.value)


def test_broken_background_file_is_an_image_error(tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(ImageError) as caught:
        cutout_image(picture(), left_half_mask(), broken)
    assert "broken.png" in str(caught.value)


@pytest.mark.parametrize("text, rgb", [
    ("white", (255, 255, 255)),
    ("#FF8000", (255, 128, 0)),
    ("ff8000", (255, 128, 0)),
    ("#f80", (255, 136, 0)),
    ("  red ", (255, 0, 0)),
    ("nonsense", None),
    ("", None),
    ("#12345", None),
])
def test_parse_colour(text, rgb):
    assert parse_colour(text) == rgb
