"""Video files through PyAV: tiny clips written and decoded back, failures that leave nothing."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

av = pytest.importorskip("av")

from handseg_core.videofile import VideoError, VideoReader, VideoWriter, check_target, read_frames  # noqa: E402

WIDTH, HEIGHT, COUNT = 64, 48, 5


def rgba_frames():
    for t in range(COUNT):
        frame = np.zeros((HEIGHT, WIDTH, 4), np.uint8)
        frame[..., :3] = (200, 120, 90)
        frame[10:30, 10 + 2 * t:40 + 2 * t, 3] = 255
        yield frame


def write(target, frames, **options):
    with VideoWriter(target, (WIDTH, HEIGHT), Fraction(30000, 1001), **options) as writer:
        for frame in frames:
            writer.write(frame)
    return writer


@pytest.mark.parametrize("name", ["cut.webm", "cut.mov", "frames"])
def test_a_cutout_round_trip_keeps_count_size_rate_and_alpha(tmp_path, name):
    target = tmp_path / name
    write(target, rgba_frames(), alpha=True)
    decoded = list(read_frames(target, alpha=True))
    assert len(decoded) == COUNT
    assert decoded[0].shape == (HEIGHT, WIDTH, 4)
    alpha = decoded[2][..., 3]
    assert alpha[20, 25] > 200 and alpha[5, 5] < 50  # transparent where there is no hand
    if name != "frames":
        with VideoReader(target) as reader:
            assert reader.info.rate == Fraction(30000, 1001)
            assert (reader.info.width, reader.info.height) == (WIDTH, HEIGHT)
            assert sum(1 for _ in reader) == COUNT
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary left


@pytest.mark.parametrize("name", ["mask.mp4", "mask.webm"])
def test_a_mask_video_round_trip(tmp_path, name):
    target = tmp_path / name
    write(target, (frame[..., 3] for frame in rgba_frames()))
    decoded = list(read_frames(target))
    assert len(decoded) == COUNT and decoded[0].shape == (HEIGHT, WIDTH, 3)
    assert decoded[0][20, 15, 0] > 200 and decoded[0][5, 5, 0] < 50


def test_a_failed_write_leaves_no_file(tmp_path):
    target = tmp_path / "cut.webm"

    def frames():
        yield from list(rgba_frames())[:2]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write(target, frames(), alpha=True)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_sequence_leaves_no_folder(tmp_path):
    def frames():
        yield next(rgba_frames())
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write(tmp_path / "frames", frames(), alpha=True)
    assert list(tmp_path.iterdir()) == []


def test_a_corrupt_file_is_one_line(tmp_path):
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    with pytest.raises(VideoError) as caught:
        with VideoReader(bad) as reader:
            list(reader)
    assert str(bad) in str(caught.value) and "\n" not in str(caught.value)


def test_a_text_file_is_not_a_video(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("hello")
    with pytest.raises(VideoError, match="not a video"):
        VideoReader(text)


def test_targets_that_cannot_hold_the_frames_say_what_can(tmp_path):
    with pytest.raises(VideoError, match="holds no transparency"):
        check_target(tmp_path / "cut.mp4", alpha=True)
    with pytest.raises(VideoError, match="cannot write .gif"):
        check_target(tmp_path / "cut.gif", alpha=False)


def clip_with_audio(path):
    """12 frames at 24 fps and half a second of AAC."""
    container = av.open(str(path), "w")
    video = container.add_stream("libx264", rate=24)
    video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    audio = container.add_stream("aac", rate=44100)
    samples = (0.3 * np.sin(2 * np.pi * 440 * np.arange(22050) / 44100)).astype(np.float32)[None]
    for t in range(12):
        frame = av.VideoFrame.from_ndarray(np.full((HEIGHT, WIDTH, 3), 20 * t, np.uint8), format="rgb24")
        frame.pts = t
        for packet in video.encode(frame):
            container.mux(packet)
    sound = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
    sound.sample_rate, sound.pts = 44100, 0
    for packet in [*audio.encode(sound), *audio.encode(None), *video.encode(None)]:
        container.mux(packet)
    container.close()


@pytest.mark.parametrize("name, copied", [("mask.mp4", True), ("mask.webm", False)])
def test_audio_is_copied_where_the_container_takes_it(tmp_path, name, copied):
    clip_with_audio(tmp_path / "in.mp4")
    with VideoReader(tmp_path / "in.mp4") as reader, \
            VideoWriter(tmp_path / name, (WIDTH, HEIGHT), reader.info.rate, audio_from=reader) as writer:
        assert reader.info.audio == "aac"
        for frame in reader:
            writer.write(frame[..., 0])
            writer.copy_audio(reader.take_audio())
        writer.copy_audio(reader.take_audio())
    assert writer.copies_audio is copied
    with av.open(str(tmp_path / name)) as container:
        assert bool(container.streams.audio) is copied
        assert sum(1 for _ in container.decode(container.streams.video[0])) == 12


def test_without_pyav_the_error_says_what_to_install(tmp_path, monkeypatch):
    import sys

    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"anything")
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(VideoError, match=r'pip install "handseg\[video\]"'):
        VideoReader(clip)
