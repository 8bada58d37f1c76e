"""`handseg video`: a tiny clip of a red hand (the tiny red model finds it) to masks and cut-outs."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest

pytest.importorskip("av")

from handseg_core.videofile import VideoReader, VideoWriter, read_frames  # noqa: E402
from tiny_model import hand_picture  # noqa: E402

from .helpers import leftovers  # noqa: E402

WIDTH, HEIGHT, COUNT = 96, 64, 6


@pytest.fixture
def clip(tmp_path):
    """An MP4 of a red hand moving right, 6 frames at 24 fps."""
    rgb, truth = hand_picture(WIDTH, HEIGHT, seed=1)
    path = tmp_path / "in" / "clip.mp4"
    with VideoWriter(path, (WIDTH, HEIGHT), Fraction(24)) as writer:
        for t in range(COUNT):
            writer.write(np.roll(rgb, 2 * t, axis=1))
    return path


def test_a_mask_video_keeps_count_size_and_rate(handseg, red_model, clip, tmp_path):
    out = tmp_path / "out" / "mask.mp4"
    run = handseg("video", clip, "-o", out, "-m", red_model, "--json")
    assert run.exit_code == 0, run.stderr
    with VideoReader(out) as reader:
        assert (reader.info.width, reader.info.height, reader.info.rate) == (WIDTH, HEIGHT, Fraction(24))
        masks = list(reader)
    assert len(masks) == COUNT
    assert 0.05 < np.mean(masks[0][..., 0] > 127) < 0.6
    sidecar = json.loads((tmp_path / "out" / "mask.mp4.json").read_text())
    assert [f["frame"] for f in sidecar["frames"]] == list(range(COUNT))
    assert {frame["hands"][0]["track"] for frame in sidecar["frames"]} == {1}  # the hand, followed
    assert not leftovers(tmp_path / "out")


def test_a_cutout_keeps_alpha(handseg, red_model, clip, tmp_path):
    out = tmp_path / "cut.webm"
    run = handseg("video", clip, "-o", out, "-m", red_model, "--cutout", "-q")
    assert run.exit_code == 0, run.stderr
    frames = list(read_frames(out, alpha=True))
    assert len(frames) == COUNT and frames[0].shape == (HEIGHT, WIDTH, 4)
    alpha = frames[0][..., 3]
    assert (alpha < 30).mean() > 0.3 and (alpha > 220).mean() > 0.05


def test_a_cutout_on_a_colour_and_png_frames(handseg, red_model, clip, tmp_path):
    run = handseg("video", clip, "-o", tmp_path / "on-white.mp4", "-m", red_model, "--cutout", "-b", "white")
    assert run.exit_code == 0, run.stderr
    assert len(list(read_frames(tmp_path / "on-white.mp4"))) == COUNT
    run = handseg("video", clip, "-o", tmp_path / "frames", "-m", red_model, "--cutout", "--no-stabilise")
    assert run.exit_code == 0, run.stderr
    assert len(list((tmp_path / "frames").glob("frame_*.png"))) == COUNT


def test_alpha_in_mp4_is_refused_before_any_work(handseg, red_model, clip, tmp_path):
    run = handseg("video", clip, "-o", tmp_path / "cut.mp4", "-m", red_model, "--cutout")
    assert run.exit_code == 1
    assert run.error_lines == [run.stderr.strip()] and "transparency" in run.stderr
    assert not (tmp_path / "cut.mp4").exists()


def test_a_corrupt_file_is_one_line(handseg, red_model, tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    run = handseg("video", bad, "-o", tmp_path / "mask.mp4", "-m", red_model)
    assert run.exit_code == 1
    assert len(run.stderr.strip().splitlines()) == 1 and str(bad) in run.stderr
    assert list(tmp_path.iterdir()) == [bad]


def test_ctrl_c_leaves_no_half_written_file(handseg, red_model, clip, tmp_path, monkeypatch):
    written = []

    def interrupted(self, frame):
        written.append(frame)
        if len(written) == 3:
            raise KeyboardInterrupt
        original(self, frame)

    original = VideoWriter.write
    monkeypatch.setattr(VideoWriter, "write", interrupted)
    out = tmp_path / "out"
    out.mkdir()
    run = handseg("video", clip, "-o", out / "mask.webm", "-m", red_model, "--json")
    assert run.exit_code == 130
    assert list(out.iterdir()) == []


def test_an_existing_output_is_kept_without_overwrite(handseg, red_model, clip, tmp_path):
    out = tmp_path / "mask.mp4"
    out.write_bytes(b"old")
    run = handseg("video", clip, "-o", out, "-m", red_model)
    assert run.exit_code == 1 and "--overwrite" in run.stderr
    assert out.read_bytes() == b"old"
    assert handseg("video", clip, "-o", out, "-m", red_model, "--overwrite").exit_code == 0
    assert len(list(read_frames(out))) == COUNT


def test_stabilisation_options_reach_the_engine(handseg, red_model, clip, tmp_path, monkeypatch):
    import handseg_core.video as motion

    seen = []
    original = motion.Stabiliser.__init__

    def spy(self, options=None, refinement=None):
        seen.append(options)
        original(self, options, refinement)

    monkeypatch.setattr(motion.Stabiliser, "__init__", spy)
    run = handseg("video", clip, "-o", tmp_path / "m.mp4", "-m", red_model, "--strength", "0.6",
                  "--hysteresis", "0", "--hold", "1")
    assert run.exit_code == 0, run.stderr
    assert seen == [motion.Stabilisation(strength=0.6, hysteresis=0, hold=1)]
    assert handseg("video", clip, "-o", tmp_path / "n.mp4", "--strength", "2").exit_code == 2
