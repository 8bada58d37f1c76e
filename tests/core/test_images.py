from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from corpus import expected_size, make_corpus
from handseg_core import ImageError
from handseg_core import images
from handseg_core.images import load_rgb, load_rgb_reduced, load_rgba, open_image

GOOD = ["grey16_png", "cmyk_jpeg", "palette_gif", "animated_gif", "webp", "rgba_png", "exif_rotated_jpeg",
        "one_pixel_png", "wide_png", "la_png", "spaces_accent_jpeg", "cjk_png"]
BAD = ["zero_bytes", "truncated_jpeg", "truncated_png", "text_as_jpeg", "random_as_png", "bomb_png"]

PIL_MODES = ["1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV",
             "I", "I;16", "I;16B", "I;16L", "I;16N", "F"]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_one_line_naming(error: ImageError, path: Path) -> None:
    text = str(error)
    assert "\n" not in text and "\r" not in text
    assert path.name in text


def test_corpus_lists_every_case(corpus):
    assert sorted(n for n, (_, good) in corpus.items() if good) == sorted(GOOD)
    assert sorted(n for n, (_, good) in corpus.items() if not good) == sorted(BAD)


@pytest.mark.parametrize("name", GOOD)
def test_good_files_load_as_rgb_at_displayed_size(corpus, name):
    path, _ = corpus[name]
    before = digest(path)
    rgb = load_rgb(path)
    assert rgb.dtype == np.uint8
    assert rgb.ndim == 3 and rgb.shape[2] == 3
    assert (rgb.shape[1], rgb.shape[0]) == expected_size(path)
    assert digest(path) == before


@pytest.mark.parametrize("name", GOOD)
def test_good_files_load_as_rgba_at_displayed_size(corpus, name):
    path, _ = corpus[name]
    before = digest(path)
    rgba = load_rgba(path)
    assert rgba.mode == "RGBA"
    assert rgba.size == expected_size(path)
    assert digest(path) == before


def reduced_to_a_tenth(path):
    return load_rgb_reduced(path, lambda hw: (max(1, hw[0] // 10), max(1, hw[1] // 10)))[0]


@pytest.mark.parametrize("name", GOOD)
def test_good_files_load_reduced_at_displayed_size_or_smaller(corpus, name):
    path, _ = corpus[name]
    before = digest(path)
    full = load_rgb(path)
    rgb, displayed = load_rgb_reduced(path, lambda hw: (max(1, hw[0] // 10), max(1, hw[1] // 10)))
    assert displayed == full.shape[:2]
    assert rgb.dtype == np.uint8 and rgb.shape[2] == 3
    assert rgb.shape[0] <= full.shape[0] and rgb.shape[1] <= full.shape[1]
    assert digest(path) == before


@pytest.mark.parametrize("name", BAD)
@pytest.mark.parametrize("loader", [load_rgb, load_rgba, reduced_to_a_tenth])
def test_bad_files_raise_one_line_image_error_naming_the_file(corpus, name, loader):
    path, _ = corpus[name]
    before = digest(path)
    with pytest.raises(ImageError) as caught:
        loader(path)
    assert_one_line_naming(caught.value, path)
    assert digest(path) == before


def test_bad_file_accepted_as_str_path(corpus):
    path, _ = corpus["truncated_jpeg"]
    with pytest.raises(ImageError, match="truncated"):
        load_rgb(str(path))


def test_decompression_bomb_is_refused_fast(corpus):
    path, _ = corpus["bomb_png"]
    start = time.perf_counter()
    with pytest.raises(ImageError, match="too large") as caught:
        load_rgb(path)
    assert time.perf_counter() - start < 1.0
    assert_one_line_naming(caught.value, path)


def test_bomb_is_refused_even_with_pils_guard_switched_off(corpus, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # as some host applications do
    path, _ = corpus["bomb_png"]
    start = time.perf_counter()
    with pytest.raises(ImageError, match="too large"):
        load_rgb(path)
    assert time.perf_counter() - start < 1.0


def test_our_pixel_limit_decides_not_pils_warning(tmp_path, monkeypatch):
    # PIL warns above MAX_IMAGE_PIXELS (89 Mpx by default); handseg takes up to images.MAX_PIXELS.
    path = tmp_path / "big.png"
    Image.new("RGB", (20, 20), (10, 20, 30)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300)  # 400 pixels: warning range, below PIL's error
    assert load_rgb(path).shape == (20, 20, 3)
    monkeypatch.setattr(images, "MAX_PIXELS", 399)
    with pytest.raises(ImageError, match="too large") as caught:
        load_rgb(path)
    assert_one_line_naming(caught.value, path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError, match="no such file") as caught:
        load_rgb(tmp_path / "absent.jpg")
    assert "absent.jpg" in str(caught.value)
    with pytest.raises(ImageError, match="folder"):
        load_rgb(tmp_path)


def test_exif_rotation_is_applied(corpus):
    path, _ = corpus["exif_rotated_jpeg"]
    with Image.open(path) as stored:
        assert stored.size == (40, 20)  # the file itself is landscape
    rgb = load_rgb(path).astype(int)
    # Stored red rises left to right and green top to bottom; orientation 6 turns the picture
    # clockwise, so displayed red rises top to bottom and green right to left.
    assert rgb[-3:, :, 0].mean() - rgb[:3, :, 0].mean() > 150
    assert rgb[:, :3, 1].mean() - rgb[:, -3:, 1].mean() > 150


def test_first_frame_of_an_animation(corpus):
    rgb = load_rgb(corpus["animated_gif"][0])
    assert np.abs(rgb.astype(int) - 30).max() <= 2  # frames are 30, 200, 120 grey


def test_sixteen_bit_grey_is_scaled_not_clipped(corpus):
    rgb = load_rgb(corpus["grey16_png"][0])
    stored = (np.arange(32 * 24).reshape(24, 32) * 80) / 65535 * 255
    assert np.abs(rgb[..., 0].astype(float) - stored).max() <= 1
    assert np.array_equal(rgb[..., 0], rgb[..., 2])


def test_transparent_areas_are_matted_on_white_for_the_network(corpus):
    rgb = load_rgb(corpus["rgba_png"][0])
    assert (rgb[:, :10] == 255).all()


def test_load_rgba_keeps_the_files_transparency(corpus):
    alpha = np.asarray(load_rgba(corpus["rgba_png"][0]).getchannel("A"))
    assert (alpha[:, :10] == 0).all() and (alpha[:, 10:14] == 128).all() and (alpha[:, 14:] == 255).all()
    la_alpha = np.asarray(load_rgba(corpus["la_png"][0]).getchannel("A"))
    assert (la_alpha[:12] == 0).all() and (la_alpha[12:] == 255).all()


def test_cmyk_colours_survive(tmp_path):
    path = tmp_path / "red.jpg"
    Image.new("RGB", (16, 16), (220, 20, 30)).convert("CMYK").save(path, quality=95)
    rgb = load_rgb(path).astype(int)
    assert np.abs(rgb - [220, 20, 30]).max() < 25


# Arrays


def test_rgb_array_is_copied_and_unchanged():
    a = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    before = a.copy()
    out = load_rgb(a)
    assert np.array_equal(out, before)
    out[:] = 0
    assert np.array_equal(a, before)


def test_grey_array_becomes_three_channels():
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = load_rgb(a)
    assert out.shape == (3, 4, 3)
    assert all(np.array_equal(out[..., c], a) for c in range(3))


def test_rgba_array_is_matted_and_unchanged():
    a = np.zeros((3, 4, 4), np.uint8)
    a[..., 0] = 200
    a[:, :2, 3] = 255  # left opaque red, right transparent
    before = a.copy()
    out = load_rgb(a)
    assert (out[:, :2] == [200, 0, 0]).all() and (out[:, 2:] == 255).all()
    assert np.array_equal(a, before)


def test_non_contiguous_array_is_fine():
    a = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)[:, ::-1]
    assert np.array_equal(load_rgb(a), a)


@pytest.mark.parametrize("array, words", [
    (np.zeros((4, 5, 3), np.float32), ["float32", "uint8", "astype"]),
    (np.zeros((4, 5, 3), np.uint16), ["uint16", "uint8"]),
    (np.zeros((4, 5, 3), bool), ["bool", "uint8"]),
    (np.zeros((4, 5, 5), np.uint8), ["(4, 5, 5)", "HxWx3"]),
    (np.zeros((4, 5, 1), np.uint8), ["(4, 5, 1)", "HxWx3"]),
    (np.zeros((2, 4, 5, 3), np.uint8), ["(2, 4, 5, 3)", "HxWx3"]),
    (np.zeros(7, np.uint8), ["(7,)", "HxWx3"]),
    (np.zeros((0, 5, 3), np.uint8), ["empty"]),
    (np.zeros((0, 5), np.uint8), ["empty"]),
    (np.zeros((5, 0), np.uint8), ["empty"]),
])
def test_wrong_arrays_raise_image_error_with_advice(array, words):
    with pytest.raises(ImageError) as caught:
        load_rgb(array)
    text = str(caught.value)
    assert "\n" not in text
    for word in words:
        assert word in text


@pytest.mark.parametrize("value", [[[1, 2, 3]], 42, None, b"\x89PNG"])
def test_other_types_raise_image_error(value):
    with pytest.raises(ImageError, match="expected a path, a PIL image or a numpy array"):
        load_rgb(value)


# PIL images


@pytest.mark.parametrize("mode", PIL_MODES)
def test_pil_image_in_every_mode(mode):
    image = Image.new(mode, (7, 5))
    before = image.tobytes()
    rgb = load_rgb(image)
    assert rgb.dtype == np.uint8 and rgb.shape == (5, 7, 3)
    rgba = load_rgba(image)
    assert rgba.mode == "RGBA" and rgba.size == (7, 5)
    assert image.mode == mode and image.tobytes() == before


@pytest.mark.parametrize("mode, value, rgb", [
    ("L", 77, (77, 77, 77)),
    ("1", 1, (255, 255, 255)),
    ("I;16", 65535, (255, 255, 255)),
    ("I;16", 32768, (128, 128, 128)),
    ("I;16B", 65535, (255, 255, 255)),
    ("I;16N", 65535, (255, 255, 255)),
    ("RGBA", (10, 20, 30, 0), (255, 255, 255)),
    ("RGBA", (10, 20, 30, 255), (10, 20, 30)),
    ("LA", (40, 255), (40, 40, 40)),
    ("La", (40, 255), (40, 40, 40)),
    ("CMYK", (0, 0, 0, 0), (255, 255, 255)),
    ("RGBX", (1, 2, 3, 0), (1, 2, 3)),
])
def test_pil_mode_values(mode, value, rgb):
    out = load_rgb(Image.new(mode, (3, 2), value))
    assert (out == rgb).all(), out[0, 0]


def test_palette_transparency_is_kept_for_cutouts():
    image = Image.new("P", (4, 3), 1)
    image.putpalette([0, 0, 0, 200, 10, 10] + [0] * 762)
    image.info["transparency"] = 1
    assert (load_rgb(image) == 255).all()
    assert (np.asarray(load_rgba(image).getchannel("A")) == 0).all()


def test_rgba_pil_image_is_not_changed_by_load_rgba():
    image = Image.new("RGBA", (4, 3), (5, 6, 7, 100))
    out = load_rgba(image)
    out.putalpha(255)
    assert image.getpixel((0, 0)) == (5, 6, 7, 100)


@pytest.mark.parametrize("name", ["truncated_jpeg", "truncated_png"])
@pytest.mark.parametrize("loader", [load_rgb, load_rgba])
def test_lazily_opened_damaged_pil_image_raises_image_error(corpus, name, loader):
    path, _ = corpus[name]
    with Image.open(path) as image:
        with pytest.raises(ImageError) as caught:
            loader(image)
    assert_one_line_naming(caught.value, path)


def test_open_image_returns_decoded_image_independent_of_the_file(tmp_path):
    path = tmp_path / "x.png"
    Image.new("RGB", (6, 4), (1, 2, 3)).save(path)
    image = open_image(path)
    path.unlink()  # decoded already: no lazy read from a file that may go away
    assert image.getpixel((5, 3)) == (1, 2, 3)


def test_image_error_is_one_line_even_when_the_reason_is_not():
    error = ImageError("a.jpg", "first\nsecond")
    assert str(error) == "a.jpg: first second"


def test_corpus_builds_twice_in_other_folders(tmp_path):
    again = make_corpus(tmp_path / "again")
    assert {n: good for n, (_, good) in again.items()} == {n: g for n, (_, g) in make_corpus(tmp_path / "b").items()}


def write_big_jpeg(path: Path, orientation: int = 1) -> np.ndarray:
    """A 2048x1536 JPEG of smooth ramps (red rises to the right, green downwards), as stored."""
    y, x = np.mgrid[0:1536, 0:2048]
    stored = np.dstack([x * 255 // 2047, y * 255 // 1535, np.full_like(x, 90)]).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(path, quality=92, exif=exif.tobytes())
    return stored


def test_large_jpeg_is_decoded_at_the_smallest_scale_that_covers_the_size(tmp_path):
    path = tmp_path / "big.jpg"
    write_big_jpeg(path)
    asked = []
    rgb, displayed = load_rgb_reduced(path, lambda hw: asked.append(hw) or (384, 512))
    assert asked == [(1536, 2048)] and displayed == (1536, 2048)
    assert rgb.shape == (384, 512, 3)  # a quarter of each side covers 512x384 exactly
    assert load_rgb_reduced(path, lambda hw: (385, 512))[0].shape == (768, 1024, 3)  # a quarter would not
    full = load_rgb(path)
    small = np.asarray(Image.fromarray(full).resize((512, 384), Image.BOX)).astype(int)
    assert np.abs(rgb.astype(int) - small).mean() < 3  # the same picture, only fewer pixels


def test_reduced_decode_follows_exif_rotation(tmp_path):
    path = tmp_path / "turned.jpg"
    write_big_jpeg(path, orientation=6)  # stored landscape, displayed portrait
    asked = []
    rgb, displayed = load_rgb_reduced(path, lambda hw: asked.append(hw) or (hw[0] // 4, hw[1] // 4))
    assert asked == [(2048, 1536)] and displayed == (2048, 1536)
    assert rgb.shape == (512, 384, 3)
    full = load_rgb(path)
    assert full.shape == (2048, 1536, 3)
    small = np.asarray(Image.fromarray(full).resize((384, 512), Image.BOX)).astype(int)
    assert np.abs(rgb.astype(int) - small).mean() < 3


def test_png_and_arrays_are_not_reduced(tmp_path):
    array = np.random.default_rng(1).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    Image.fromarray(array).save(tmp_path / "a.png")
    for source in (tmp_path / "a.png", array, Image.fromarray(array)):
        rgb, displayed = load_rgb_reduced(source, lambda hw: (30, 40))
        assert displayed == (300, 400) and np.array_equal(rgb, array)


def _heic(path: Path, rgb: np.ndarray, orientation: int = 1) -> Path:
    """A HEIC file of `rgb` (pillow-heif writes it; the tests that need it skip without it)."""
    pillow_heif = pytest.importorskip("pillow_heif", reason='HEIC needs pillow-heif (pip install "handseg[heif]")')
    pillow_heif.register_heif_opener()
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(rgb).save(path, format="HEIF", quality=95, exif=exif.tobytes())
    return path


def _left_red(height: int = 60, width: int = 120) -> np.ndarray:
    rgb = np.full((height, width, 3), 40, np.uint8)
    rgb[:, : width // 4] = (230, 30, 40)
    return rgb


def test_heic_photos_load_at_their_displayed_orientation(tmp_path):
    """As iPhones store them: a HEIC file, turned by its orientation; also under a .jpg name."""
    upright = load_rgb(_heic(tmp_path / "upright.heic", _left_red()))
    assert upright.shape == (60, 120, 3)
    assert upright[:, :20, 0].mean() > 200 and upright[:, 40:, 0].mean() < 80
    turned = load_rgb(_heic(tmp_path / "turned.heic", _left_red(), orientation=6))  # shown turned right
    assert turned.shape == (120, 60, 3)
    assert turned[:20, :, 0].mean() > 200 and turned[40:, :, 0].mean() < 80  # the red left edge is on top
    renamed = tmp_path / "renamed.jpg"
    renamed.write_bytes((tmp_path / "upright.heic").read_bytes())
    assert np.abs(load_rgb(renamed).astype(int) - upright).max() == 0
    reduced, displayed = load_rgb_reduced(tmp_path / "turned.heic", lambda hw: hw)
    assert displayed == (120, 60) and reduced.shape == (120, 60, 3)


def test_heic_without_pillow_heif_says_what_to_install(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # `import pillow_heif` fails
    monkeypatch.setattr(images, "_heif_registered", False)
    photo = tmp_path / "IMG_0001.HEIC"
    photo.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64))
    before = digest(photo)
    with pytest.raises(ImageError) as caught:
        load_rgb(photo)
    assert_one_line_naming(caught.value, photo)
    assert 'pip install "handseg[heif]"' in str(caught.value)
    assert digest(photo) == before


@pytest.mark.skipif(not __import__("PIL.features").features.check("avif"), reason="this Pillow reads no AVIF")
def test_avif_photos_load(tmp_path):
    Image.fromarray(_left_red()).save(tmp_path / "photo.avif", quality=95)
    rgb = load_rgb(tmp_path / "photo.avif")
    assert rgb.shape == (60, 120, 3) and rgb[:, :20, 0].mean() > 200 and rgb[:, 40:, 0].mean() < 80
    assert ".avif" in images.IMAGE_SUFFIXES
