"""`handseg mask` and `handseg cutout`: what they write, for which inputs, with which options."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import handseg_core.session
from handseg_core import Refinement

from .helpers import iou, save_picture


def test_mask_writes_one_binary_png_per_input(handseg, photos, red_model, tmp_path):
    truths = {
        "a": save_picture(photos / "a.jpg", 64, 48, seed=1),
        "b": save_picture(photos / "b.png", 40, 56, seed=2),
        "c": save_picture(photos / "c.webp", 50, 50, seed=3),
    }
    out = tmp_path / "out" / "nested"  # created when missing

    run = handseg("mask", photos, "-o", out, "-m", red_model)

    assert run.exit_code == 0, run.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.png"]
    for stem, truth in truths.items():
        with Image.open(out / f"{stem}.png") as written:
            assert written.format == "PNG" and written.mode == "L"
            mask = np.asarray(written)
        assert mask.dtype == np.uint8 and mask.shape == truth.shape
        assert set(np.unique(mask)) <= {0, 255}
        assert iou(mask > 0, truth) > 0.9  # the tiny model finds the red hand
    assert run.stderr.strip() == f"3 written to {out}"


def test_cutout_is_rgba_with_the_mask_as_alpha(handseg, photos, red_model, tmp_path):
    run_masks = handseg("mask", photos / "a.jpg", "-o", tmp_path / "masks", "-m", red_model)
    run = handseg("cutout", photos / "a.jpg", "-o", tmp_path / "cut", "-m", red_model)

    assert run_masks.exit_code == 0 and run.exit_code == 0, run.stderr
    with Image.open(tmp_path / "cut" / "a.png") as cut, Image.open(tmp_path / "masks" / "a.png") as mask:
        assert cut.mode == "RGBA" and cut.size == (64, 48)
        assert np.array_equal(np.asarray(cut)[..., 3], np.asarray(mask))
        original = np.asarray(Image.open(photos / "a.jpg").convert("RGB"))
        kept = np.asarray(mask) > 0
        assert kept.any() and (~kept).any()
        assert np.array_equal(np.asarray(cut)[kept][:, :3], original[kept])
        assert not np.asarray(cut)[~kept][:, :3].any()  # the background is gone from the file


@pytest.mark.parametrize("background, colour", [("white", (255, 255, 255)), ("#102030", (16, 32, 48))])
def test_cutout_on_a_colour_is_rgb(handseg, photos, red_model, tmp_path, background, colour):
    masks = handseg("mask", photos / "a.jpg", "-o", tmp_path / "masks", "-m", red_model)
    run = handseg("cutout", photos / "a.jpg", "-o", tmp_path / "cut", "-m", red_model, "--background", background)

    assert masks.exit_code == 0 and run.exit_code == 0, run.stderr
    with Image.open(tmp_path / "cut" / "a.png") as cut:
        assert cut.format == "PNG" and cut.mode == "RGB" and cut.size == (64, 48)
        pixels = np.asarray(cut)
    hand = np.asarray(Image.open(tmp_path / "masks" / "a.png")) > 0
    original = np.asarray(Image.open(photos / "a.jpg").convert("RGB"))
    assert 0 < hand.sum() < hand.size
    assert (pixels[~hand] == colour).all()
    assert np.array_equal(pixels[hand], original[hand])


def test_cutout_on_an_image_background(handseg, photos, red_model, tmp_path):
    backdrop = tmp_path / "backdrop.png"
    Image.new("RGB", (10, 10), (0, 0, 255)).save(backdrop)

    run = handseg("cutout", photos / "b.png", "-o", tmp_path / "cut", "-m", red_model, "-b", backdrop)

    assert run.exit_code == 0, run.stderr
    with Image.open(tmp_path / "cut" / "b.png") as cut:
        assert cut.mode == "RGB" and cut.size == (40, 56)
        assert tuple(np.asarray(cut)[0, -1]) == (0, 0, 255)


def test_quoted_glob_is_expanded_by_handseg(handseg, photos, red_model, tmp_path):
    run = handseg("mask", str(photos / "*.png"), str(photos / "[ac].*"), "-o", tmp_path / "out", "-m", red_model)

    assert run.exit_code == 0, run.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png", "c.png"]


def test_the_same_file_named_twice_is_done_once(handseg, photos, red_model, tmp_path):
    run = handseg("mask", photos, photos / "a.jpg", str(photos / "*.jpg"), "-o", tmp_path / "out", "-m", red_model)

    assert run.exit_code == 0, run.stderr
    assert run.stderr.strip() == f"3 written to {tmp_path / 'out'}"


def test_folder_takes_only_images_and_recursive_keeps_the_tree(handseg, photos, red_model, tmp_path):
    save_picture(photos / "sub" / "deep" / "d.jpg", seed=4)
    (photos / "notes.txt").write_text("not an image")
    (photos / ".hidden.jpg").write_bytes(b"")

    flat = handseg("mask", photos, "-o", tmp_path / "flat", "-m", red_model)
    tree = handseg("mask", photos, "-o", tmp_path / "tree", "-m", red_model, "--recursive")

    assert flat.exit_code == 0 and tree.exit_code == 0, flat.stderr + tree.stderr
    assert sorted(p.name for p in (tmp_path / "flat").iterdir()) == ["a.png", "b.png", "c.png"]
    written = sorted(str(p.relative_to(tmp_path / "tree")) for p in (tmp_path / "tree").rglob("*.png"))
    assert written == ["a.png", "b.png", "c.png", "sub/deep/d.png"]


def test_a_folder_of_iphone_heic_photos_is_masked(handseg, red_model, tmp_path):
    """HEIC files in a folder are taken as photos (with pillow-heif) and masked like the others."""
    pillow_heif = pytest.importorskip("pillow_heif", reason='HEIC needs pillow-heif (pip install "handseg[heif]")')
    pillow_heif.register_heif_opener()
    folder = tmp_path / "phone"
    truth = save_picture(folder / "IMG_0001.png", 96, 64, seed=5)
    Image.open(folder / "IMG_0001.png").save(folder / "IMG_0002.HEIC", format="HEIF", quality=95)
    (folder / "IMG_0001.png").unlink()

    run = handseg("mask", folder, "-o", tmp_path / "masks", "-m", red_model)

    assert run.exit_code == 0, run.stderr
    mask = np.asarray(Image.open(tmp_path / "masks" / "IMG_0002.png")) > 127
    assert iou(mask, truth) > 0.8


def test_recursive_run_does_not_take_its_own_outputs_as_inputs(handseg, photos, red_model):
    out = photos / "masks"
    first = handseg("mask", photos, "-o", out, "-m", red_model, "-r")
    second = handseg("mask", photos, "-o", out, "-m", red_model, "-r")

    assert first.exit_code == 0 and second.exit_code == 0, first.stderr + second.stderr
    assert sorted(p.name for p in out.rglob("*")) == ["a.png", "b.png", "c.png"]
    assert "0 written" in second.stderr and "3 skipped" in second.stderr


def test_names_with_spaces_and_non_ascii(handseg, red_model, tmp_path):
    folder = tmp_path / "mes photos à moi"
    names = ["main ouverte é.jpg", "手 の 写真.png", "Ünïcödé.webp"]
    for name in names:
        save_picture(folder / name, 30, 20)
    out = tmp_path / "sortie é"

    run = handseg("cutout", folder, "-o", out, "-m", red_model)

    assert run.exit_code == 0, run.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(name.rsplit(".", 1)[0] + ".png" for name in names)
    for path in out.iterdir():
        with Image.open(path) as cut:
            assert cut.size == (30, 20) and cut.mode == "RGBA"


def test_options_reach_the_engine(handseg, photos, red_model, tmp_path, monkeypatch):
    seen = []
    segment = handseg_core.session.HandSegmenter.segment

    def spy(self, image, refinement=None, **options):
        seen.append((refinement, options))
        return segment(self, image, refinement, **options)

    monkeypatch.setattr(handseg_core.session.HandSegmenter, "segment", spy)

    run = handseg("mask", photos / "a.jpg", "-o", tmp_path / "out", "-m", red_model, "--size", 96, "--flip-tta",
                  "--fixed-size", "--threshold", 0.3, "--open", 0.01, "--close", 0.02, "--dilate", 0.03, "--erode", 0.04,
                  "--min-area", 0.001, "--fill-holes", 0.002, "--feather", 0.05, "--hands", "largest", "--no-finder")
    plain = handseg("mask", photos / "a.jpg", "-o", tmp_path / "plain", "-m", red_model, "--no-refine")
    unsnapped = handseg("mask", photos / "a.jpg", "-o", tmp_path / "unsnapped", "-m", red_model, "--no-snap")
    both = handseg("mask", photos / "a.jpg", "-o", tmp_path / "both", "-m", red_model, "--no-snap", "--no-refine")

    assert run.exit_code == 0 and plain.exit_code == 0, run.stderr + plain.stderr
    assert unsnapped.exit_code == 0 and both.exit_code == 0, unsnapped.stderr + both.stderr
    assert seen[0] == (
        Refinement(threshold=0.3, open_size=0.01, close_size=0.02, dilate=0.03, erode=0.04, min_area=0.001,
                   fill_holes=0.002, feather=0.05),
        {"input_size": 96, "flip_tta": True, "adapt_size": False, "find_hands": False, "keep": "largest"},
    )
    default = {"input_size": None, "flip_tta": False, "adapt_size": True, "find_hands": True, "keep": "all"}
    assert seen[1] == (Refinement(min_area=0.0, fill_holes=0.0, snap_edges=False), default)
    assert seen[2] == (Refinement(snap_edges=False), default)
    assert seen[3] == seen[1]


def test_feathered_mask_has_soft_edges(handseg, photos, red_model, tmp_path):
    run = handseg("mask", photos / "a.jpg", "-o", tmp_path / "out", "-m", red_model, "--feather", 0.1)

    assert run.exit_code == 0, run.stderr
    levels = np.unique(np.asarray(Image.open(tmp_path / "out" / "a.png")))
    assert len(levels) > 2


def test_dilate_grows_the_mask(handseg, photos, red_model, tmp_path):
    plain = handseg("mask", photos / "a.jpg", "-o", tmp_path / "plain", "-m", red_model)
    grown = handseg("mask", photos / "a.jpg", "-o", tmp_path / "grown", "-m", red_model, "--dilate", 0.05)

    assert plain.exit_code == 0 and grown.exit_code == 0
    before = np.asarray(Image.open(tmp_path / "plain" / "a.png")) > 0
    after = np.asarray(Image.open(tmp_path / "grown" / "a.png")) > 0
    assert after.sum() > before.sum() and (after | before).sum() == after.sum()


def test_the_packaged_model_by_name(handseg, photos, tmp_path):
    run = handseg("mask", photos / "b.png", "-o", tmp_path / "out", "--model", "handseg-lite0", "--size", 64,
                  "--device", "cpu")

    assert run.exit_code == 0, run.stderr
    with Image.open(tmp_path / "out" / "b.png") as written:
        assert written.mode == "L" and written.size == (40, 56)


def test_mask_of_a_large_jpeg_is_the_engines_reduced_decode_at_full_size(handseg, photos, red_model, tmp_path):
    truth = save_picture(photos / "big.jpg", 2048, 1536, seed=4)
    run = handseg("mask", photos / "big.jpg", "-o", tmp_path / "out", "-m", red_model)

    assert run.exit_code == 0, run.stderr
    with Image.open(tmp_path / "out" / "big.png") as written:
        mask = np.asarray(written)
    assert mask.shape == truth.shape == (1536, 2048)
    session = handseg_core.load_model(red_model)
    decoded, _ = session._decode(photos / "big.jpg", None)
    assert decoded.shape[:2] == (192, 256)  # what the engine decodes for a 128-pixel model
    assert np.array_equal(mask, session.segment(photos / "big.jpg").alpha)  # the engine's own path, pixel for pixel
    assert iou(mask > 0, truth) > 0.9
