"""`handseg video`: a video file to a mask video, a cut-out video or PNG frames, the masks
stabilised from frame to frame (`handseg_core.video`; files through `handseg_core.videofile`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from handseg_cli.common import Failure, Reporter, engine_errors
from handseg_cli.options import ModelSettings, model_options, refinement_options


def parse_colour_option(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None or value.strip().lower() in ("", "transparent", "none"):
        return None
    from handseg_core.compose import parse_colour

    colour = parse_colour(value)
    if colour is None:
        raise click.BadParameter(f"{value!r} is not a colour (white, #RRGGBB) nor 'transparent'")
    return colour


def sidecar_target(output: Path) -> Path:
    return output.with_name(output.name.rstrip("/") + ".json")


class Speed:
    """Frames per second over the last few seconds, for the progress bar."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.frames = 0

    def tick(self) -> str:
        self.frames += 1
        return f"{self.rate():.1f} fps"

    def rate(self) -> float:
        elapsed = time.perf_counter() - self.start
        return self.frames / elapsed if elapsed > 0 else 0.0


@click.command()
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path), metavar="INPUT")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="The video to write: .webm (VP9), .mov (ProRes 4444) or .mp4 (H.264), or a folder "
                   "for PNG frames (frame_000001.png, ...).")
@click.option("--cutout", is_flag=True,
              help="Write the hands cut out (with alpha in .webm, .mov and PNG frames) instead of the mask.")
@click.option("-b", "--background", callback=parse_colour_option, metavar="transparent|COLOUR",
              help="With --cutout: a colour such as white or #RRGGBB behind the hands (needed for .mp4)  "
                   "[default: transparent]")
@click.option("--no-stabilise", "stabilise", flag_value=False, default=True,
              help="Segment every frame on its own (no blending along the motion, no hold).")
@click.option("--strength", type=click.FloatRange(0, 0.9), default=None,
              help="Weight of the previous frame's probability, moved along the motion, 0..0.9  [default: 0.3]")
@click.option("--hysteresis", type=click.FloatRange(0, 0.3), default=None,
              help="How far under the threshold a pixel that was hand stays hand (and over it one that "
                   "was not must go), 0..0.3  [default: 0.05]")
@click.option("--hold", type=click.IntRange(0, 30), default=None,
              help="Frames a hand seen before is kept where it is missed  [default: 2]")
@click.option("--json", "sidecar", is_flag=True,
              help="Also write OUTPUT.json: for each frame, each hand's track number, box, area, score, "
                   "handedness and 21 landmarks.")
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
@model_options
@refinement_options
def video(source: Path, output: Path, cutout: bool, background: Any, stabilise: bool, strength: float | None,
          hysteresis: float | None, hold: int | None, sidecar: bool, overwrite: bool, **options: Any) -> None:
    """Segment the hands of a video file, frame by frame, into OUTPUT: the mask as a video
    (255 = hand), or with --cutout the hands on transparency or a colour.

    Frame rate, frame count and size are kept, the audio is copied where OUTPUT's container takes
    it. Masks are stabilised along the motion: hands are followed from frame to frame, briefly
    missed hands kept, and the edges steadied (--no-stabilise turns that off). OUTPUT appears only
    once complete; Ctrl-C or a failure leaves nothing. Exit code 0: done; 1: failed; 130: Ctrl-C.
    Needs PyAV: pip install "handseg[video]".
    """
    from handseg_core import video as motion
    from handseg_core import videofile
    from handseg_core.atomic import write_text
    from handseg_core.batch import cores

    settings = ModelSettings.from_options({**options, "sidecar": sidecar})
    alpha = cutout and background is None
    if background is not None and not cutout:
        raise click.UsageError("--background is for --cutout; drop it or add --cutout")
    if (output.exists() or (sidecar and sidecar_target(output).exists())) and not overwrite:
        raise Failure(f"{output} exists; add --overwrite to replace it")
    with engine_errors():
        videofile.check_target(output, alpha)
        stabilisation = None
        if stabilise:
            given = {k: v for k, v in (("strength", strength), ("hysteresis", hysteresis), ("hold", hold))
                     if v is not None}
            stabilisation = motion.Stabilisation(**given)
        if overwrite and output.is_dir() and videofile.is_sequence(output):
            _empty_frames_folder(output)
        with videofile.VideoReader(source) as reader:
            info = reader.info
            session = settings.load()
            reporter = Reporter(info.frames or 0, "video", settings.quiet, show_item=lambda item: item)
            speed = Speed()
            described = []
            with reporter, videofile.VideoWriter(output, (info.width, info.height), info.rate, alpha=alpha,
                                                 audio_from=reader) as writer:
                frames = session.segment_video(
                    iter(reader), settings.refinement, stabilisation=stabilisation, workers=cores(),
                    **settings.inference.segment_options())
                for frame in frames:
                    writer.write(_rendered(frame, cutout, background))
                    writer.copy_audio(reader.take_audio())
                    if sidecar:
                        described.append(frame.describe())
                    reporter.advance(1, speed.tick())
                writer.copy_audio(reader.take_audio())
            if sidecar:
                import json

                document = {"source": str(source), "width": info.width, "height": info.height,
                            "rate": float(info.rate), "frames": described}
                write_text(sidecar_target(output), json.dumps(document) + "\n")
    audio = ""
    if info.audio:
        audio = " with its audio" if writer.copies_audio else f" without its {info.audio} audio ({output.suffix or 'PNG frames'} cannot hold it)"
    reporter.note(f"{writer.count} frames written to {output}{audio} ({speed.rate():.1f} frames/s)")


def _rendered(frame, cutout: bool, background) -> Any:
    import numpy as np

    result = frame.result
    if not cutout:
        return result.alpha
    rgb = frame.image
    if background is None:
        return np.dstack([rgb, result.alpha])
    weight = result.alpha.astype(np.float32)[..., None] / 255
    colour = np.asarray(background, np.float32)
    return (rgb * weight + colour * (1 - weight) + 0.5).astype(np.uint8)


def _empty_frames_folder(folder: Path) -> None:
    """--overwrite on a PNG sequence: the old frames go (only frame_*.png; anything else stays
    and the folder is then refused as not empty)."""
    for old in folder.glob("frame_*.png"):
        old.unlink()

