"""Runs inside GIMP 3 (python-fu-eval, batch mode): calls the handseg procedures and exports what they make.

The folder HANDSEG_GIMP_WORK holds the pictures made by `gimp_check.py prepare`; each case
exports `<case>-input.png` (the layer handseg read, as GIMP holds it) and `<case>-result.png`
(the selection, layer mask or new layer), and `results.json` records statuses, messages and
offsets. `gimp_check.py check` compares them with handseg's own masks.
"""

import json
import os
import traceback
from pathlib import Path

import gi

gi.require_version("Gimp", "3.0")
from gi.repository import Gimp, Gio  # noqa: E402

WORK = Path(os.environ["HANDSEG_GIMP_WORK"])
MODEL = os.environ.get("HANDSEG_GIMP_MODEL", "tiny-red")
SELECT, REMOVE, LAYER = "plug-in-handseg-select-hands", "plug-in-handseg-remove-background", "plug-in-handseg-mask-layer"


def load(name):
    return Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(str(WORK / name)))


def export_drawable(drawable, path):
    """Save one drawable (layer, layer mask, channel) as an 8-bit RGB PNG of its own size."""
    image = Gimp.Image.new(drawable.get_width(), drawable.get_height(), Gimp.ImageBaseType.RGB)
    layer = Gimp.Layer.new_from_drawable(drawable, image)
    image.insert_layer(layer, None, 0)
    layer.set_offsets(0, 0)
    Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, image, Gio.File.new_for_path(str(path)), None)
    image.delete()


def call(procedure_name, image, drawable, **arguments):
    """Run a handseg procedure non-interactively; returns (status name, error message)."""
    procedure = Gimp.get_pdb().lookup_procedure(procedure_name)
    if procedure is None:
        raise RuntimeError(f"GIMP has no procedure {procedure_name}: the plug-in did not register")
    config = procedure.create_config()
    config.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    config.set_property("image", image)
    config.set_core_object_array("drawables", [drawable])
    config.set_property("model", MODEL)
    for key, value in arguments.items():
        config.set_property(key, value)
    result = procedure.run(config)
    status = result.index(0)
    message = Gimp.get_pdb().get_last_error() if status != Gimp.PDBStatusType.SUCCESS else ""
    return status.value_nick, message


def run_case(name, picture, procedure_name, prepare=None, **arguments):
    """Load `picture`, let `prepare(image, layer)` change it, run the procedure, export input and result."""
    image = load(picture)
    layer = image.get_layers()[0]
    if prepare is not None:
        prepare(image, layer)
    export_drawable(layer, WORK / f"{name}-input.png")
    layers_before = len(image.get_layers())
    status, message = call(procedure_name, image, layer, **arguments)
    record = {"status": status, "message": message, "procedure": procedure_name, "threshold": arguments.get("threshold", 0.5),
              "max_size": arguments.get("max-size", 0),
              "offsets": list(layer.get_offsets()[1:]), "canvas": [image.get_width(), image.get_height()]}
    if status == "success":
        if procedure_name == SELECT:
            export_drawable(image.get_selection(), WORK / f"{name}-result.png")
            record["selection_empty"] = Gimp.Selection.is_empty(image)
            record["selected_layer_kept"] = [d.get_id() for d in image.get_selected_drawables()] == [layer.get_id()]
        elif procedure_name == REMOVE:
            export_drawable(layer.get_mask(), WORK / f"{name}-result.png")
            record["has_alpha"] = layer.has_alpha()
        else:
            new = image.get_layers()[0]
            record["new_layers"] = len(image.get_layers()) - layers_before
            record["new_layer_offsets"] = list(new.get_offsets()[1:])
            record["new_layer_name"] = new.get_name()
            export_drawable(new, WORK / f"{name}-result.png")
    image.delete()
    return record


def move(x, y):
    return lambda image, layer: layer.set_offsets(x, y)


def enlarge_canvas(image, layer):
    image.resize(image.get_width() + 100, image.get_height() + 60, 40, 30)


def to_grey(image, layer):
    image.convert_grayscale()


def to_indexed(image, layer):
    image.convert_indexed(Gimp.ConvertDitherType.NONE, Gimp.ConvertPaletteType.GENERATE, 64, False, False, "")


def precision(value):
    return lambda image, layer: image.convert_precision(value)


def select_a_corner(image, layer):
    image.select_rectangle(Gimp.ChannelOps.REPLACE, 0, 0, 40, 30)


def add_mask_first(image, layer):
    layer.add_mask(layer.create_mask(Gimp.AddMaskType.WHITE))


CASES = [
    ("rgb-layer", "hand.png", LAYER, None, {}),
    ("rgb-select", "hand.png", SELECT, None, {}),
    ("rgb-remove", "hand.png", REMOVE, None, {}),
    ("rgba-remove", "hand-rgba.png", REMOVE, None, {}),
    ("threshold-layer", "hand.png", LAYER, None, {"threshold": 0.9}),
    ("replace-select", "hand.png", SELECT, select_a_corner, {}),
    ("canvas-select", "hand.png", SELECT, enlarge_canvas, {}),
    ("canvas-layer", "hand.png", LAYER, enlarge_canvas, {}),
    ("outside-select", "hand.png", SELECT, move(-120, -70), {}),
    ("grey-layer", "hand.png", LAYER, to_grey, {}),
    ("indexed-layer", "hand.png", LAYER, to_indexed, {}),
    ("indexed-select", "hand.png", SELECT, to_indexed, {}),
    ("u16-linear-remove", "hand.png", REMOVE, precision(Gimp.Precision.U16_LINEAR), {}),
    ("float-select", "hand-rgba.png", SELECT, precision(Gimp.Precision.FLOAT_NON_LINEAR), {}),
    ("big-remove", "big.png", REMOVE, None, {}),
    ("has-mask-remove", "hand.png", REMOVE, add_mask_first, {}),
    ("stripes-layer", "stripes.png", LAYER, None, {}),
    ("stripes-fine-layer", "stripes.png", LAYER, None, {"max-size": 1024}),
]


def registration():
    """What GIMP knows of each handseg procedure: menu, label, model choices and default."""
    found = {}
    for name in (SELECT, REMOVE, LAYER):
        procedure = Gimp.get_pdb().lookup_procedure(name)
        if procedure is None:
            found[name] = None
            continue
        model = procedure.find_argument("model")
        found[name] = {
            "menu_paths": procedure.get_menu_paths(),
            "label": procedure.get_menu_label(),
            "models": Gimp.param_spec_choice_get_choice(model).list_nicks(),
            "default_model": Gimp.param_spec_choice_get_default(model),
            "threshold_default": procedure.find_argument("threshold").get_default_value(),
            "max_size_default": procedure.find_argument("max-size").get_default_value(),
        }
    return found


def main():
    results = {"registration": {"status": "registered", "message": "", "procedures": registration()}}
    for name, picture, procedure_name, prepare, arguments in CASES:
        try:
            results[name] = run_case(name, picture, procedure_name, prepare, **arguments)
        except Exception:
            results[name] = {"status": "batch-error", "message": traceback.format_exc()}
        print(f"handseg-gimp case {name}: {results[name]['status']} {results[name]['message'][:300]}", flush=True)
    (WORK / "results.json").write_text(json.dumps(results, indent=1))


main()
