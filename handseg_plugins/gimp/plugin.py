"""The GIMP 3 plug-in: three procedures under Filters ▸ Handseg. It runs only inside GIMP.

Each procedure reads the one selected layer, asks handseg_core for its hand mask and writes the
mask back: as the selection, as a layer mask, or as a new layer. Pixel conversions live in
`convert.py`, the Model menu in `models.py`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

import gi
import numpy as np

import handseg_core
from handseg_core.options import HAND_MENU, INFERENCE, REFINEMENT
from handseg_plugins.gimp.convert import (
    LAYER_FORMAT,
    READ_CHANNELS,
    READ_FORMAT,
    channel_format,
    mask_to_bytes,
    on_canvas,
    rgb_from_bytes,
)
from handseg_plugins.gimp.models import model_menu, model_to_load

gi.require_version("Babl", "0.1")
gi.require_version("Gegl", "0.4")
gi.require_version("Gimp", "3.0")
from gi.repository import Babl, Gegl, Gimp, GLib, GObject  # noqa: E402

MENU = "<Image>/Filters/Handseg"
AUTHOR = "handseg"
LAYER_TYPES = {
    Gimp.ImageBaseType.RGB: Gimp.ImageType.RGB_IMAGE,
    Gimp.ImageBaseType.GRAY: Gimp.ImageType.GRAY_IMAGE,
    Gimp.ImageBaseType.INDEXED: Gimp.ImageType.INDEXED_IMAGE,
}


class PluginError(Exception):
    """A problem to show in GIMP's error console, in one line."""


@dataclass(frozen=True)
class Options:
    """The procedure's arguments: a model name (None: the default model), the threshold, the
    largest side the network sees (None: the model's own) and which hands to keep."""

    model: str | None
    threshold: float
    max_size: int | None = None
    hands: str = "all"


Action = Callable[[Gimp.Image, Gimp.Drawable, np.ndarray], None]


def _rectangle(drawable: Gimp.Drawable) -> Gegl.Rectangle:
    return Gegl.Rectangle.new(0, 0, drawable.get_width(), drawable.get_height())


def read_rgb(drawable: Gimp.Drawable) -> np.ndarray:
    """The drawable's pixels as HxWx3 uint8 RGB, whatever its mode and precision."""
    data = drawable.get_buffer().get(_rectangle(drawable), 1.0, READ_FORMAT, Gegl.AbyssPolicy.CLAMP)
    return rgb_from_bytes(bytes(data), drawable.get_width(), drawable.get_height(), READ_CHANNELS)


def write_mask(drawable: Gimp.Drawable, mask: np.ndarray, pixel_format: str) -> None:
    """Replace the drawable's pixels with `mask` (HxW, the drawable's size), written as `pixel_format`."""
    shadow = drawable.get_shadow_buffer()
    shadow.set(_rectangle(drawable), pixel_format, mask_to_bytes(mask))
    shadow.flush()
    drawable.merge_shadow(True)
    drawable.update(0, 0, drawable.get_width(), drawable.get_height())


def channel_pixel_format(channel: Gimp.Drawable) -> str:
    return channel_format(Babl.get_name(Babl.format_get_model(channel.get_format())))


def find_hands(drawable: Gimp.Drawable, options: Options) -> np.ndarray:
    """The hand mask (uint8 0/255, the drawable's size) of the drawable's own pixels."""
    Gimp.progress_set_text("Reading pixels")
    rgb = read_rgb(drawable)
    Gimp.progress_update(0.1)
    Gimp.progress_set_text("Loading the hand model")
    session = handseg_core.load_model(options.model)
    Gimp.progress_update(0.3)
    Gimp.progress_set_text("Finding hands")
    result = session.segment(rgb, handseg_core.Refinement(threshold=options.threshold), input_size=options.max_size,
                             keep=options.hands)
    Gimp.progress_update(0.8)
    return result.mask


def select_hands(image: Gimp.Image, layer: Gimp.Drawable, mask: np.ndarray) -> None:
    """Replace the selection with the hand mask, placed where the layer lies on the canvas."""
    _, x, y = layer.get_offsets()
    selection = image.get_selection()
    canvas = on_canvas(mask, (x, y), (selection.get_width(), selection.get_height()))
    write_mask(selection, canvas, channel_pixel_format(selection))


def check_maskable(layer: Gimp.Drawable) -> None:
    """Refuse, before any work, a drawable that cannot take a new layer mask."""
    if not isinstance(layer, Gimp.Layer):
        raise PluginError("select a layer: the background is removed with a layer mask")
    if layer.get_mask() is not None:
        raise PluginError(f"layer {layer.get_name()!r} already has a layer mask; "
                          "apply or delete it (Layer ▸ Mask), then run again")


def mask_background(image: Gimp.Image, layer: Gimp.Layer, mask: np.ndarray) -> None:
    """Give the layer a layer mask that hides everything but the hands."""
    if not layer.has_alpha():
        layer.add_alpha()
    layer_mask = layer.create_mask(Gimp.AddMaskType.WHITE)
    layer.add_mask(layer_mask)
    write_mask(layer_mask, mask, channel_pixel_format(layer_mask))


def add_mask_layer(image: Gimp.Image, layer: Gimp.Drawable, mask: np.ndarray) -> None:
    """Add the hand mask above the layer as a new grey layer of the same size and position."""
    height, width = mask.shape
    new = Gimp.Layer.new(image, "Hand mask", width, height, LAYER_TYPES[image.get_base_type()], 100.0,
                         Gimp.LayerMode.NORMAL)
    parent = layer.get_parent() if isinstance(layer, Gimp.Layer) else None
    position = image.get_item_position(layer) if isinstance(layer, Gimp.Layer) else 0
    image.insert_layer(new, parent, position)
    _, x, y = layer.get_offsets()
    new.set_offsets(x, y)
    write_mask(new, mask, LAYER_FORMAT)


def plain(label: str) -> str:
    """A menu label as a title: no mnemonic underscore, no "..." (which says a dialog opens)."""
    return label.replace("_", "").removesuffix("...")


@dataclass(frozen=True)
class Command:
    """One menu entry: a procedure name, its labels, and what it does with the hand mask. Each
    opens a dialog when run from the menu, so its label ends in "...", as GIMP's own do."""

    name: str
    label: str
    blurb: str
    help: str
    action: Action
    check: Callable[[Gimp.Drawable], None] | None = None


COMMANDS = {
    command.name: command
    for command in (
        Command("plug-in-handseg-select-hands", "_Select hands...",
                "Select the hands in the layer",
                "Replaces the selection with the hands that handseg finds in the selected layer.",
                select_hands),
        Command("plug-in-handseg-remove-background", "_Remove background around hands...",
                "Hide everything but the hands with a layer mask",
                "Adds a layer mask to the selected layer that keeps the hands handseg finds and hides the rest.",
                mask_background, check_maskable),
        Command("plug-in-handseg-mask-layer", "Hand _mask as new layer...",
                "Add the hand mask as a new layer",
                "Adds a layer above the selected one holding the hand mask: white hands on black.",
                add_mask_layer),
    )
}


def _the_drawable(image: Gimp.Image, drawables: list[Gimp.Drawable]) -> Gimp.Drawable:
    if len(drawables) != 1:
        raise PluginError(f"select exactly one layer ({len(drawables)} are selected)")
    drawable = drawables[0]
    if isinstance(drawable, Gimp.LayerMask):
        return Gimp.Layer.from_mask(drawable)
    return drawable


def _ask(procedure: Gimp.Procedure, config: Gimp.ProcedureConfig) -> bool:
    gi.require_version("GimpUi", "3.0")
    from gi.repository import GimpUi

    GimpUi.init("handseg")
    dialog = GimpUi.ProcedureDialog.new(procedure, config, plain(procedure.get_menu_label()))
    dialog.fill(None)
    accepted = dialog.run()
    dialog.destroy()
    return accepted


def _failure(procedure: Gimp.Procedure, message: str) -> Gimp.ValueArray:
    return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR, GLib.Error(f"handseg: {message}"))


def run(procedure: Gimp.Procedure, run_mode: Gimp.RunMode, image: Gimp.Image, drawables: list[Gimp.Drawable],
        config: Gimp.ProcedureConfig, data: object) -> Gimp.ValueArray:
    """The run function of every handseg procedure."""
    if run_mode == Gimp.RunMode.INTERACTIVE and not _ask(procedure, config):
        return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
    command = COMMANDS[procedure.get_name()]
    try:
        options = Options(model_to_load(config.get_property("model")), config.get_property("threshold"),
                          config.get_property("max-size") or None, config.get_property("hands"))
    except handseg_core.HandsegError as exc:
        return _failure(procedure, " ".join(str(exc).split()))
    Gegl.init(None)
    Gimp.progress_init(plain(command.label))
    image.undo_group_start()
    try:
        drawable = _the_drawable(image, drawables)
        if command.check is not None:
            command.check(drawable)
        command.action(image, drawable, find_hands(drawable, options))
    except (PluginError, handseg_core.HandsegError, ValueError, OSError) as exc:
        return _failure(procedure, " ".join(str(exc).split()) or type(exc).__name__)
    except Exception as exc:  # a crash would only tell the user "plug-in crashed"
        return _failure(procedure, f"{type(exc).__name__}: {' '.join(str(exc).split())}")
    finally:
        image.undo_group_end()
        Gimp.progress_end()
    Gimp.displays_flush()
    return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())


class HandsegPlugIn(Gimp.PlugIn):
    """Registers the handseg procedures with GIMP."""

    def do_set_i18n(self, name: str) -> bool:
        return False

    def do_query_procedures(self) -> list[str]:
        return list(COMMANDS)

    def do_create_procedure(self, name: str) -> Gimp.Procedure:
        command = COMMANDS[name]
        procedure = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, run, None)
        procedure.set_image_types("*")
        procedure.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE)
        procedure.set_menu_label(command.label)
        procedure.add_menu_path(MENU)
        procedure.set_documentation(command.blurb, command.help, name)
        procedure.set_attribution(AUTHOR, AUTHOR, "2026")
        entries, default = model_menu()
        choice = Gimp.Choice.new()
        for index, entry in enumerate(entries):
            choice.add(entry.name, index, entry.label, entry.help)
        procedure.add_choice_argument("model", "_Model", "The handseg model that finds the hands",
                                      choice, default, GObject.ParamFlags.READWRITE)
        threshold, size = REFINEMENT["threshold"], INFERENCE["input_size"]
        procedure.add_double_argument("threshold", "_Threshold", f"{threshold.help} ({threshold.range_text()})",
                                      threshold.low, threshold.high, threshold.default, GObject.ParamFlags.READWRITE)
        procedure.add_int_argument("max-size", "Max si_ze", size.help.replace("default: the model's", "0: the model's"),
                                   0, size.high, 0, GObject.ParamFlags.READWRITE)
        hands = Gimp.Choice.new()
        for index, (value, label, text) in enumerate(HAND_MENU):
            hands.add(value, index, label, text)
        procedure.add_choice_argument("hands", "_Hands", INFERENCE["keep"].help, hands, INFERENCE["keep"].default,
                                      GObject.ParamFlags.READWRITE)
        return procedure


def main() -> None:
    """Hand control to GIMP (the plug-in's entry point)."""
    Gimp.main(HandsegPlugIn.__gtype__, sys.argv)
