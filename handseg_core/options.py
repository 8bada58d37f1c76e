"""The options of a segmentation, each described once: name, type, range, default and help.

`Refinement` (post-processing) and `Inference` (which model, where, at what size, hand by hand
or not) are typed dataclasses that check their values against these descriptions. Every front
builds its controls from the same descriptions: the CLI's flags, ComfyUI's `INPUT_TYPES`, the
GIMP dialog and the web app's sliders. A new option, or a new range, is written here alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from typing import Any, Literal, Union

from handseg_core.errors import HandsegError, OptionError

DEVICES = ("auto", "cpu", "cuda")
Device = Literal["auto", "cpu", "cuda"]
HAND_CHOICES = ("all", "largest", "left", "right")
# Which hands a result keeps (`SegmentationResult.keep`): all, the largest one, the person's own
# left or right hands, or the N largest.
HandChoice = Union[str, int]
# What a menu offers (the ComfyUI nodes, the GIMP dialog): (value, label, help).
HAND_MENU = (
    ("all", "All hands", "Every hand found"),
    ("largest", "The largest hand", "Only the hand with the largest area"),
    ("left", "Left hands", "The person's own left hands (the finder tells them apart)"),
    ("right", "Right hands", "The person's own right hands (the finder tells them apart)"),
    ("2", "The two largest", "The two hands with the largest areas"),
)
MIN_INPUT_SIZE = 16
# A larger input size gains nothing measured (896 is no better than 768) and a 4096-px network
# pass needs gigabytes; the limit turns a typo into an error that says so.
MAX_INPUT_SIZE = 2048
# What the "small hands in a large photo" switches ask for (docs/models.md, Options at inference:
# egohands_cross14 0.789 -> 0.810, about twice the time; close-ups do worse).
FINE_INPUT_SIZE = 768


@dataclass(frozen=True)
class Option:
    """One option: the field it sets, its type, its allowed range and its help.

    low / high: the allowed range (inclusive, but `high` itself is refused when `high_open`).
    widget_high: the top of a slider, where the allowed range is wider than is useful.
    step: a widget's step.
    flag: the command line's flag (default: the name with dashes); `negative`: the flag of a
        bool option that turns it off (e.g. --no-snap), `negative_help` what that flag does.
    """

    name: str
    kind: type
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    high_open: bool = False
    widget_high: float | None = None
    step: float | None = None
    flag: str = ""
    negative: str = ""
    negative_help: str = ""
    label: str = ""
    unit: str = ""

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def title(self) -> str:
        """The label of a widget: 'Min area' for min_area."""
        return self.label or self.name.replace("_size", "").replace("_", " ").capitalize()

    @property
    def top(self) -> float | None:
        """The largest value a widget offers."""
        return self.widget_high if self.widget_high is not None else self.high

    def range_text(self) -> str:
        return f"{self.low:g}..{self.high:g}" + (f" (not {self.high:g} itself)" if self.high_open else "")

    def check(self, value: Any) -> None:
        """Raises OptionError (a ValueError), saying what is allowed, when `value` is not a
        number or out of range."""
        if self.low is None or (value is None and self.default is None):
            return
        if (not _is_number(value) or not self.low <= value <= self.high
                or (self.high_open and value >= self.high)):
            unit = f" is {self.unit} and" if self.unit else ""
            raise OptionError(f"{self.name}{unit} must be a number within {self.range_text()}, got {value!r}")


def _is_number(value: Any, whole: bool = False) -> bool:
    """An int or (unless `whole`) a float, numpy's scalars too (numpy is not imported); not a bool."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int) or (not whole and isinstance(value, float)):
        return True
    kinds = "iu" if whole else "iuf"
    return type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0 and value.dtype.kind in kinds


_SHORT_SIDE = "as a fraction of the image's short side (0.01 = 1%)"
_AREA = "fraction of the image's area"


def _size(name: str, help: str, flag: str = "") -> Option:
    return Option(name, float, 0.0, f"{help}, {_SHORT_SIDE}; 0: off.", 0.0, 1.0, True, 0.5, 0.001, flag,
                  unit="a fraction of the image's short side")


def _area(name: str, default: float, help: str) -> Option:
    return Option(name, float, default, f"{help} this {_AREA}; 0: off.", 0.0, 1.0, True, 0.5, 0.0001,
                  unit="a fraction of the image's area")


REFINEMENT_OPTIONS: tuple[Option, ...] = (
    Option("threshold", float, 0.5, "Hand probability at or above which a pixel is hand.", 0.0, 1.0, step=0.01),
    _size("open_size", "Remove specks this wide", "--open"),
    _size("close_size", "Bridge gaps this wide", "--close"),
    _size("dilate", "Grow the mask by this much"),
    _size("erode", "Shrink the mask by this much"),
    _area("min_area", 0.0002, "Drop hand regions smaller than"),
    _area("fill_holes", 0.0002, "Fill holes inside a hand smaller than"),
    _size("feather", "Width of a soft edge of the cut-out"),
    Option("snap_edges", bool, True, "Move the network's edge onto the photo's own edges.", negative="--no-snap",
           negative_help="Keep the network's own edge: do not snap it onto the photo's edges."),
)


@dataclass(frozen=True)
class Refinement:
    """Post-processing settings (`handseg_core.postprocess.refine`). Each step is off when its
    size is 0; ranges and help in REFINEMENT_OPTIONS.

    threshold: probability at or above which a pixel is hand.
    open_size / close_size: opening removes specks, closing bridges hairline gaps
        (fractions of the short side).
    dilate / erode: grow or shrink the mask (fractions of the short side), after opening and
        closing.
    min_area: connected hand regions smaller than this fraction of the image are dropped.
    fill_holes: background holes inside a hand smaller than this fraction of the image are filled
        (gaps between fingers are larger and stay open).
    feather: width of a soft alpha edge (fraction of the short side), for cut-outs.
    snap_edges: move the probability's edges onto the photo's own edges before thresholding
        (`snap_to_edges`; the session does it, as it needs the photo: `refine` alone does not).

    Raises:
        OptionError: a value is out of its range (the message says which range).
    """

    threshold: float = 0.5
    open_size: float = 0.0
    close_size: float = 0.0
    dilate: float = 0.0
    erode: float = 0.0
    min_area: float = 0.0002
    fill_holes: float = 0.0002
    feather: float = 0.0
    snap_edges: bool = True

    def __post_init__(self):
        for option in REFINEMENT_OPTIONS:
            option.check(getattr(self, option.name))

    def with_(self, **changes) -> "Refinement":
        return replace(self, **changes)


NO_REFINEMENT = Refinement(min_area=0.0, fill_holes=0.0, snap_edges=False)


INFERENCE_OPTIONS: tuple[Option, ...] = (
    Option("model", str, None, "Model name (see `handseg models`) or path of an .onnx file; default: the default model."),
    Option("device", str, "auto", "Where the model runs; auto takes a GPU when ONNX Runtime has one."),
    Option("input_size", int, None,
           "Largest long side in pixels the network sees; larger images are reduced to it, smaller ones keep "
           f"their own size ({FINE_INPUT_SIZE} is finer for small hands in large scenes, about twice the time, "
           "and worse on close-ups); default: the model's.",
           MIN_INPUT_SIZE, MAX_INPUT_SIZE, step=32, flag="--size", label="Max size"),
    Option("flip_tta", bool, False, "Also run the mirrored image and average (slower)."),
    Option("adapt_size", bool, True,
           "First find how large the hands are and let the network see a hand that fills a large photo smaller.",
           negative="--fixed-size",
           negative_help="Run the network once at --size, without first finding how large the hands are (a little "
                         "faster; a hand that fills a large photo is then partly missed, by handseg-lite0 mostly)."),
    Option("find_hands", bool, True,
           "First find each hand and segment it in a crop of its own (the model's per-hand network).",
           negative="--no-finder",
           negative_help="Do not find each hand first: the whole image only, as before the finder "
                         "(faster; hands over faces and bodies are often missed)."),
    Option("keep", str, "all", "Which hands to keep: all, largest, left, right (the person's own) or N, the N largest.",
           flag="--hands"),
)

REFINEMENT = {option.name: option for option in REFINEMENT_OPTIONS}
INFERENCE = {option.name: option for option in INFERENCE_OPTIONS}


def parse_choice(value: HandChoice) -> HandChoice:
    """'all', 'largest', 'left', 'right' (the person's own hand) or N (the N largest), as text or
    a number -> the choice.

    Raises:
        HandsegError: anything else (the message says what is accepted).
    """
    text = str(value).strip().lower()
    if text in HAND_CHOICES:
        return text
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise HandsegError(f"hands {value!r}: choose all, largest, left, right or a number of hands (1, 2, ...)")


def check_input_size(value: Any, name: str = "input_size") -> None:
    """Refuse a size the network cannot see: not a whole number from 1 to MAX_INPUT_SIZE (None,
    the model's own, passes). The fronts offer it from MIN_INPUT_SIZE.

    Raises:
        OptionError: naming the value and the range.
    """
    if value is None:
        return
    if not _is_number(value, whole=True) or not 1 <= value <= MAX_INPUT_SIZE:
        raise OptionError(f"{name} must be a whole number of pixels from 1 to {MAX_INPUT_SIZE} "
                          f"(or None for the model's own), got {value!r}")


@dataclass(frozen=True)
class Inference:
    """How a model is loaded and run: the typed twin of `Refinement` (see INFERENCE_OPTIONS).

    model: a registry name or the path of an .onnx file (None: the default model).
    device: one of DEVICES.
    threads: ONNX Runtime threads per run (None: its default).
    input_size: the largest long side the network sees (None: the model's).
    flip_tta, adapt_size, find_hands: as in `HandSegmenter.segment`.
    keep: which hands a result keeps (`parse_choice`; `SegmentationResult.keep`).
    finder: the hand finder's settings (`handseg_core.finder.FinderOptions`; None: its defaults).

    Raises:
        OptionError: a value is out of its range or not one of its choices.
        HandsegError: `keep` is not a hand choice.
    """

    model: str | os.PathLike | None = None
    device: Device = "auto"
    threads: int | None = None
    input_size: int | None = None
    flip_tta: bool = False
    adapt_size: bool = True
    find_hands: bool = True
    keep: HandChoice = "all"
    finder: Any = None

    def __post_init__(self):
        if self.device not in DEVICES:
            raise OptionError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        check_input_size(self.input_size)
        object.__setattr__(self, "keep", parse_choice(self.keep))

    def with_(self, **changes) -> "Inference":
        return replace(self, **changes)

    def segment_options(self) -> dict[str, Any]:
        """The keywords of `HandSegmenter.segment` these settings give."""
        options = {"input_size": self.input_size, "flip_tta": self.flip_tta, "adapt_size": self.adapt_size,
                   "find_hands": self.find_hands, "keep": self.keep}
        if self.finder is not None:
            options["finder"] = self.finder
        return options

    def load(self):
        """The session (`handseg_core.load_model`, cached).

        Raises:
            ModelError, ChecksumError: as `load_model`.
        """
        from handseg_core.session import load_model

        return load_model(self.model, device=self.device, threads=self.threads)


def field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def refinement_from(values: dict[str, Any], base: Refinement = Refinement()) -> Refinement:
    """`base` with the values given for REFINEMENT_OPTIONS (None: keep `base`'s); a front's
    widgets, read by name. Other keys are ignored.

    Raises:
        OptionError: a value is out of its range.
    """
    changes = {name: values[name] for name in REFINEMENT if values.get(name) is not None}
    return replace(base, **changes)
