"""`handseg cutout` over the corpus of bad and odd files (tests/corpus.py)."""

from __future__ import annotations

from PIL import Image

from corpus import expected_size, make_corpus

from .helpers import digests, leftovers


def test_cutout_over_the_corpus(handseg, red_model, tmp_path):
    folder = tmp_path / "corpus"
    corpus = make_corpus(folder)
    before = digests(folder)
    out = tmp_path / "out"

    run = handseg("cutout", folder, "-o", out, "-m", red_model)

    assert run.exit_code == 1
    bad = [path for path, good in corpus.values() if not good]
    good = [path for path, good in corpus.values() if good]
    for path in bad:
        assert len(run.lines_naming(path)) == 1, (path, run.stderr)
    assert len(run.error_lines) == len(bad)
    for path in good:
        with Image.open(out / f"{path.stem}.png") as cut:
            cut.load()
            assert (cut.mode, cut.size) == ("RGBA", expected_size(path)), path
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{p.stem}.png" for p in good)
    assert f"{len(good)} written" in run.stderr and f"{len(bad)} failed" in run.stderr
    assert digests(folder) == before
    assert leftovers(tmp_path) == []


def test_mask_keeps_the_displayed_orientation(handseg, red_model, tmp_path):
    corpus = make_corpus(tmp_path / "corpus")
    rotated, _ = corpus["exif_rotated_jpeg"]

    run = handseg("mask", rotated, "-o", tmp_path / "out", "-m", red_model)

    assert run.exit_code == 0, run.stderr
    with Image.open(tmp_path / "out" / "rotated.png") as mask:
        assert mask.size == expected_size(rotated) == (20, 40)
