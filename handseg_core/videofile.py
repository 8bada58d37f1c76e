"""Video files: frames read from a container, and masks or cut-outs written to one, through PyAV
(FFmpeg's libraries, bundled in its wheels: `pip install "handseg[video]"`).

What is written depends on the target's name (`OUTPUT_FORMATS`):

    .webm   VP9; a cut-out keeps its alpha (yuva420p, as browsers, Premiere, DaVinci Resolve and
            After Effects read it)
    .mov    ProRes 4444, alpha kept (10-bit; the editors' own format)
    .mp4    H.264 yuv420p, no alpha: a mask, or a cut-out on a colour
    a folder (a name without a suffix, or ending in /): a PNG sequence, frame_000001.png, ...

Frames keep the input's frame rate and count; the audio is copied where the target container
takes its codec. A target is written under a temporary name beside it and renamed when complete,
so an interrupted or failed write leaves nothing behind (`handseg_core.atomic`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from handseg_core.atomic import temporary_name
from handseg_core.errors import HandsegError, first_line

DEFAULT_RATE = Fraction(25)
# suffix -> (container, codec, pixel format with alpha or None, pixel format without)
OUTPUT_FORMATS = {
    ".webm": ("webm", "libvpx-vp9", "yuva420p", "yuv420p"),
    ".mov": ("mov", "prores_ks", "yuva444p10le", "yuv422p10le"),
    ".mp4": ("mp4", "libx264", None, "yuv420p"),
}
# Audio codecs each container takes as they are (copied without re-encoding).
AUDIO_CODECS = {
    "webm": {"opus", "vorbis"},
    "mov": {"aac", "mp3", "alac", "pcm_s16le", "pcm_s24le", "pcm_f32le", "opus"},
    "mp4": {"aac", "mp3", "opus", "alac", "ac3", "eac3"},
}
INSTALL = 'pip install "handseg[video]"'


class VideoError(HandsegError):
    """A video cannot be read (missing, corrupt, not a video) or written (format, folder)."""


def _av():
    try:
        import av
    except ImportError:
        raise VideoError(f"reading and writing video needs PyAV: {INSTALL}") from None
    return av


def is_sequence(target: str | os.PathLike) -> bool:
    """Whether `target` names a folder for a PNG sequence rather than a video file."""
    text = os.fspath(target)
    return text.endswith(("/", os.sep)) or not Path(text).suffix or Path(text).is_dir()


def check_target(target: str | os.PathLike, alpha: bool) -> None:
    """Raises VideoError where `target` cannot hold what is asked (unknown suffix, alpha in MP4)."""
    if is_sequence(target):
        return
    suffix = Path(target).suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        known = ", ".join(OUTPUT_FORMATS)
        raise VideoError(f"{target}: cannot write {suffix} files; name the output {known} or a folder for PNG frames")
    if alpha and OUTPUT_FORMATS[suffix][2] is None:
        raise VideoError(f"{target}: {suffix} holds no transparency; write .webm or .mov, a folder of PNG frames, "
                         "or give a background colour")


@dataclass(frozen=True)
class VideoInfo:
    """width, height: pixels; rate: frames per second (a Fraction, e.g. 30000/1001); frames:
    the count the container states, else one from its duration (None where neither is known);
    audio: the audio codec or None."""

    width: int
    height: int
    rate: Fraction
    frames: int | None
    audio: str | None


class VideoReader:
    """A video file's frames as HxWx3 uint8 RGB arrays, in order; a context manager.

    Raises:
        VideoError: the file is missing, corrupt or holds no video (one line, on opening or at
            the frame that cannot be decoded).
    """

    def __init__(self, path: str | os.PathLike):
        av = _av()
        self.path = Path(path)
        if not self.path.is_file():
            raise VideoError(f"{path}: no such file")
        try:
            self._container = av.open(str(path))
        except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
            raise VideoError(f"{path}: not a video FFmpeg can read ({_reason(exc)})") from None
        if not self._container.streams.video:
            self._container.close()
            raise VideoError(f"{path}: holds no video stream")
        self._video = self._container.streams.video[0]
        self._video.thread_type = "AUTO"
        audio = self._container.streams.audio
        self._audio = audio[0] if audio else None
        self._audio_packets: list = []
        context = self._video.codec_context
        rate = Fraction(self._video.average_rate or self._video.guessed_rate or DEFAULT_RATE)
        frames = self._video.frames or None
        if frames is None and self._container.duration:  # WebM states no count: from the duration
            frames = round(self._container.duration / 1_000_000 * rate) or None
        self.info = VideoInfo(context.width, context.height, rate, frames,
                              self._audio.codec_context.name if self._audio is not None else None)
        if not context.width or not context.height:
            self.close()
            raise VideoError(f"{path}: its video stream has no frame size; the file may be damaged")

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._container.close()

    @property
    def audio_stream(self):
        return self._audio

    def take_audio(self) -> list:
        """The audio packets read so far alongside the frames (for `VideoWriter.copy_audio`)."""
        packets, self._audio_packets = self._audio_packets, []
        return packets

    def __iter__(self) -> Iterator[np.ndarray]:
        av = _av()
        streams = [self._video] + ([self._audio] if self._audio is not None else [])
        count = 0
        try:
            for packet in self._container.demux(*streams):
                if packet.stream is self._audio:
                    if packet.dts is not None:
                        self._audio_packets.append(packet)
                    continue
                for frame in packet.decode():
                    count += 1
                    yield frame.to_ndarray(format="rgb24")
        except av.FFmpegError as exc:
            raise VideoError(f"{self.path}: frame {count + 1} cannot be decoded ({_reason(exc)})") from None
        if count == 0:
            raise VideoError(f"{self.path}: no frame could be decoded; the file may be damaged")


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or first_line(exc)
    return " ".join(str(text).split(": '")[0].split())


class VideoWriter:
    """Frames to a video file or a PNG sequence (see the module's description); a context
    manager that commits the target when the block ends without error and removes everything it
    wrote when it raises (Ctrl-C included).

    write(frame): HxW uint8 (a mask), HxWx3 RGB or HxWx4 RGBA (a cut-out with alpha).

    Raises:
        VideoError: the target's format cannot hold the frames, or cannot be written.
    """

    def __init__(self, target: str | os.PathLike, size: tuple[int, int], rate: Fraction = DEFAULT_RATE, *,
                 alpha: bool = False, audio_from=None):
        check_target(target, alpha)
        self.target = Path(target)
        self.size, self.rate, self.alpha = size, Fraction(rate), alpha
        self.count = 0
        self.sequence = is_sequence(target)
        self._temporary = temporary_name(self.target)
        self._container = self._stream = self._audio = None
        parent = self.target.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            if self.sequence:
                if self.target.is_dir() and any(self.target.iterdir()):
                    raise VideoError(f"{self.target}: the folder holds files already; name a new or empty folder")
                self._temporary.mkdir()
            else:
                self._open_container(audio_from)
        except OSError as exc:
            raise VideoError(f"cannot write {self.target} ({exc.strerror or exc})") from None

    def _open_container(self, audio_from) -> None:
        av = _av()
        container_format, codec, with_alpha, without = OUTPUT_FORMATS[self.target.suffix.lower()]
        width, height = self.size
        if codec == "libx264" and (width % 2 or height % 2):
            raise VideoError(f"{self.target}: H.264 needs an even width and height, the video is {width}x{height}; "
                             "write .webm, .mov or PNG frames")
        try:
            self._container = av.open(str(self._temporary), "w", format=container_format)
            self._stream = self._container.add_stream(codec, rate=self.rate)
            self._stream.width, self._stream.height = width, height
            self._stream.pix_fmt = with_alpha if self.alpha else without
            if codec == "libvpx-vp9":  # libvpx's defaults took 180 ms a 720p frame, as long as the segmenting
                self._stream.options = {"crf": "30", "b": "0", "row-mt": "1", "deadline": "realtime", "cpu-used": "8"}
            elif codec == "libx264":
                self._stream.options = {"crf": "18"}
            source = getattr(audio_from, "audio_stream", None)
            if source is not None and source.codec_context.name in AUDIO_CODECS[container_format]:
                self._audio = self._container.add_stream_from_template(source)
        except av.FFmpegError as exc:
            self._discard()
            raise VideoError(f"cannot write {self.target} ({_reason(exc)})") from None

    @property
    def copies_audio(self) -> bool:
        return self._audio is not None

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self._discard()

    def write(self, frame: np.ndarray) -> None:
        if self.sequence:
            self._write_png(frame)
            return
        av = _av()
        layout = "gray" if frame.ndim == 2 else "rgba" if frame.shape[2] == 4 else "rgb24"
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format=layout)
        video_frame.pts = self.count
        video_frame.time_base = 1 / self.rate
        self._encode(video_frame)
        self.count += 1

    def _write_png(self, frame: np.ndarray) -> None:
        from PIL import Image

        path = self._temporary / f"frame_{self.count + 1:06d}.png"
        try:
            Image.fromarray(frame).save(path, compress_level=1)
        except OSError as exc:
            raise VideoError(f"cannot write {self.target} ({exc.strerror or exc})") from None
        self.count += 1

    def _encode(self, frame) -> None:
        av = _av()
        try:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except (av.FFmpegError, OSError) as exc:
            raise VideoError(f"cannot write {self.target} ({_reason(exc)})") from None

    def copy_audio(self, packets: list) -> None:
        """Audio packets of the reader given as `audio_from` (`VideoReader.take_audio`)."""
        if self._audio is None:
            return
        av = _av()
        for packet in packets:
            packet.stream = self._audio
            try:
                self._container.mux(packet)
            except av.FFmpegError:  # a damaged audio packet costs that packet, not the video
                continue

    def close(self) -> None:
        """Finish the file and put it in place (the last frames are flushed, the index written)."""
        if self.sequence:
            if self.target.is_dir():
                self.target.rmdir()  # empty: checked on opening
            os.replace(self._temporary, self.target)
            return
        if self._container is None:
            return
        try:
            self._encode(None)
            self._container.close()
        except BaseException:
            self._discard()
            raise
        self._container = None
        os.replace(self._temporary, self.target)

    def _discard(self) -> None:
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.close()
            self._container = None
        if self._temporary.is_dir():
            shutil.rmtree(self._temporary, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(self._temporary)


def read_frames(path: str | os.PathLike, alpha: bool = False) -> Iterator[np.ndarray]:
    """Every frame of a video file or PNG sequence folder written by `VideoWriter`, as RGB (or
    RGBA with `alpha`: VP9's alpha is decoded with libvpx, which FFmpeg's own decoder ignores)."""
    av = _av()
    path = Path(path)
    if path.is_dir():
        from PIL import Image

        for frame in sorted(path.glob("frame_*.png")):
            with Image.open(frame) as image:
                yield np.asarray(image.convert("RGBA" if alpha else "RGB"))
        return
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if alpha and stream.codec_context.name == "vp9":
            decoder = av.CodecContext.create("libvpx-vp9", "r")
            for packet in container.demux(stream):
                for frame in decoder.decode(packet):
                    yield frame.to_ndarray(format="rgba")
            return
        for frame in container.decode(stream):
            yield frame.to_ndarray(format="rgba" if alpha else "rgb24")
