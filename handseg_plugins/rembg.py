"""Hand a handseg model to rembg, as a model for its `u2net_custom` session.

rembg (checked against rembg 2.0.86, `sessions/base.py` and `sessions/u2net_custom.py`) feeds a
custom model one image, resized to 320x320 (LANCZOS, aspect not kept), divided by the image's
own maximum value and normalised with the ImageNet mean and std. It reads output 0, channel 0,
stretches it from its minimum to its maximum, and resizes that to the image size as the alpha.

The exported graph wraps the handseg network so that it works under those rules:

- in front, nodes undo rembg's normalisation and apply the model's own (mean and std from its
  spec). The network then reads rembg's 320x320 image as it is (`network_size`), or, for a
  model whose `hand_limit` is below that side (lite0), smaller where the hands fill it: a quick
  pass of a copy of the network at FIND_SIZE measures the largest hand and the side follows the
  engine's rule (`handseg_core.sizing`; regions cannot be labelled in a graph, so a hand's
  extent is its longest run of rows or columns). The
  graph enlarged rembg's image to the model's 512 until 2026-11-27, where hands that fill the
  photo are mostly missed. Under rembg 2.0.86 itself (`python -m research.rembg_devsets
  MODEL`, 100 photos a set; the default model of that day), 512 / 320 / 320 with the
  quick pass: 11k Hands held-out 0.227 / 0.938 / 0.945, sign-language digits 0.024 / 0.726 / 0.790, out-of-domain close-ups
  0.780 / 0.875 / 0.873, hands over faces 0.795 / 0.810 / 0.809; EgoHands frames, whose hands
  rembg's squash makes small, lose (egohands_cross14 0.780 / 0.736 / 0.736). The quick pass
  costs about 12 ms (2 threads);
- behind, nodes resize the probability to OUTPUT_SIZE x OUTPUT_SIZE and set its top-left pixel
  to 1 and the one beside it to 0. rembg's min-max stretch then changes nothing: without this a
  photo with no hand (all probabilities low) would be stretched into false foreground.

What remains different from `handseg_core` itself: rembg squashes the photo to a square, scales
dark photos up to full brightness, and thresholds nothing (its alpha is the probability). The
fixed 1 leaves a speck in the top-left corner of rembg's mask, about width/OUTPUT_SIZE pixels
across. Measured with rembg 2.0.86 on a hand-free photo, pixels above half: none at 480x360 (the
corner pixel reaches 20 of 255), 1 at 1280x960, 6 at 4000x3000, 14 at 6000x4000; rembg's `-ppm`
does not reliably remove it.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import shlex
from pathlib import Path

import numpy as np

from handseg_core import HandsegError, ModelError, __version__, load_model
from handseg_core import atomic, registry
from handseg_core.sizing import FIND_SIZE, FitRule, fit_rule

REMBG_SESSION = "u2net_custom"
REMBG_MEAN = (0.485, 0.456, 0.406)
REMBG_STD = (0.229, 0.224, 0.225)
REMBG_INPUT_SIZE = 320
OUTPUT_SIZE = 4 * REMBG_INPUT_SIZE
MIN_OPSET = 13
METADATA_PREFIX = "handseg_rembg."


def _legacy_home() -> str:
    return os.path.expanduser(os.environ.get("U2NET_HOME") or os.path.join(os.environ.get("XDG_DATA_HOME", "~"), ".u2net"))


def accepted_roots() -> list[Path]:
    """The folders rembg accepts custom model paths in, for the current environment.

    As rembg 2.0.86 decides: its home (U2NET_HOME, else REMBG_HOME, else XDG_DATA_HOME/rembg or
    ~/.rembg) and the legacy home (U2NET_HOME, else XDG_DATA_HOME/.u2net or ~/.u2net), which
    older rembg versions use alone.
    """
    if os.environ.get("U2NET_HOME"):
        home = _legacy_home()
    else:
        xdg = os.environ.get("XDG_DATA_HOME")
        home = os.path.expanduser(os.environ.get("REMBG_HOME") or (os.path.join(xdg, "rembg") if xdg else "~/.rembg"))
    return [Path(os.path.abspath(home)), Path(os.path.abspath(_legacy_home()))]


def default_rembg_home() -> Path:
    """U2NET_HOME, else REMBG_HOME, else the legacy ~/.u2net, which every rembg version accepts."""
    if os.environ.get("U2NET_HOME") or not os.environ.get("REMBG_HOME"):
        return Path(os.path.abspath(_legacy_home()))
    return accepted_roots()[0]


def _is_within(path: Path, roots: list[Path]) -> bool:
    return any(path == root or str(path).startswith(str(root) + os.sep) for root in roots)


def rembg_command(model_path: Path, home: Path) -> str:
    """The POSIX shell command that runs rembg with `model_path`; it names `home` when needed."""
    extras = shlex.quote(json.dumps({"model_path": str(model_path)}))
    command = f"rembg i -m {REMBG_SESSION} -x {extras} in.jpg out.png"
    if not _is_within(model_path, accepted_roots()):
        command = f"U2NET_HOME={shlex.quote(str(home))} {command}"
    return command


def _constant(name: str, values, dtype=np.float32):
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)


def _resize_nodes(source: str, target: str, height: int, width: int, prefix: str,
                  hw: str | None = None) -> tuple[list, list]:
    """Nodes resizing NCHW `source` to height x width (bilinear), keeping N and C; or, given
    `hw`, to the size in that int64 [2] tensor."""
    from onnx import helper

    initializers = [
        _constant(f"{prefix}_zero", [0], np.int64),
        _constant(f"{prefix}_two", [2], np.int64),
    ]
    if hw is None:
        initializers.append(_constant(f"{prefix}_hw", [height, width], np.int64))
    nodes = [
        helper.make_node("Shape", [source], [f"{prefix}_shape"]),
        helper.make_node("Slice", [f"{prefix}_shape", f"{prefix}_zero", f"{prefix}_two"], [f"{prefix}_nc"]),
        helper.make_node("Concat", [f"{prefix}_nc", hw or f"{prefix}_hw"], [f"{prefix}_sizes"], axis=0),
        helper.make_node(
            "Resize", [source, "", "", f"{prefix}_sizes"], [target],
            mode="linear", coordinate_transformation_mode="half_pixel",
        ),
    ]
    return nodes, initializers


def network_size(spec: registry.ModelSpec) -> int:
    """The square side the network sees in the rembg graph: rembg's own 320, unless the model's
    input size is smaller (then that, as the engine would reduce the photo to it), a multiple of
    the model's stride."""
    return max(spec.stride, min(REMBG_INPUT_SIZE, spec.input_size) // spec.stride * spec.stride)


def _input_nodes(spec: registry.ModelSpec, rembg_input: str, network_input: str) -> tuple[list, list]:
    """rembg's normalised 320x320 image -> the model's normalised input, `network_size` square."""
    from onnx import helper

    mean, std = np.asarray(spec.mean, np.float64), np.asarray(spec.std, np.float64)
    scale = np.asarray(REMBG_STD) / std
    shift = (np.asarray(REMBG_MEAN) - mean) / std
    initializers = [_constant("rembg_to_handseg_scale", scale.reshape(1, 3, 1, 1)),
                    _constant("rembg_to_handseg_shift", shift.reshape(1, 3, 1, 1))]
    size = network_size(spec)
    normalised = network_input if size == REMBG_INPUT_SIZE else "handseg_normalised"
    nodes = [
        helper.make_node("Mul", [rembg_input, "rembg_to_handseg_scale"], ["handseg_scaled"]),
        helper.make_node("Add", ["handseg_scaled", "rembg_to_handseg_shift"], [normalised]),
    ]
    if size == REMBG_INPUT_SIZE:
        return nodes, initializers
    resize, resize_initializers = _resize_nodes(normalised, network_input, size, size, "rembg_in")
    return nodes + resize, initializers + resize_initializers


def _copied_nodes(nodes: list, keep: set[str], prefix: str) -> list:
    """Copies of `nodes` reading and writing tensors renamed with `prefix`, except those in `keep`
    (the weights, which both copies share)."""
    copies = []
    for node in nodes:
        if any(attribute.g.node or attribute.graphs for attribute in node.attribute):
            raise ModelError(f"the rembg export cannot copy a {node.op_type} node with a subgraph: "
                             "export a model without control flow")
        twin = copy.deepcopy(node)
        twin.input[:] = [name if not name or name in keep else prefix + name for name in twin.input]
        twin.output[:] = [prefix + name for name in twin.output]
        if twin.name:
            twin.name = prefix + twin.name
        copies.append(twin)
    return copies


def _reduce_max(source: str, target: str, axes: list[int] | None, opset: int, keepdims: int = 1) -> tuple[list, list]:
    """ReduceMax over `axes` (all when None), in the form of `opset` (axes an input from 18):
    (nodes, initializers)."""
    from onnx import helper

    if axes is None:
        return [helper.make_node("ReduceMax", [source], [target], keepdims=keepdims)], []
    if opset >= 18:
        return ([helper.make_node("ReduceMax", [source, f"{target}_axes"], [target], keepdims=keepdims)],
                [_constant(f"{target}_axes", axes, np.int64)])
    return [helper.make_node("ReduceMax", [source], [target], axes=axes, keepdims=keepdims)], []


def _fitted_side_nodes(probability: str, side: str, rule: FitRule, opset: int) -> tuple[list, list]:
    """Nodes turning the quick pass's FIND_SIZE-square probability into the side the network
    sees the photo at (int64 [2], square), by the engine's rule (`handseg_core.sizing.FitRule`
    at `network_size`): that size, or where the largest hand spans more than the rule's limit,
    the side at which it spans its target, a multiple of its step, within [floor, size].

    The engine measures the largest connected hand; a graph cannot label regions, so here a
    hand's extent is the longest unbroken run of rows or of columns holding hand pixels, after an
    opening of 5x5 that drops specks. Hands side by side or one above the other stay apart in
    one of the two directions.
    """
    from onnx import TensorProto, helper

    n = FIND_SIZE
    initializers = [
        _constant("quick_half", 0.5),
        _constant("quick_minus_one", -1.0),
        _constant("quick_index", np.arange(n, dtype=np.float32).reshape(1, 1, 1, n)),
        _constant("quick_find_size", float(n)),
        _constant("quick_size", float(rule.size)),
        _constant("quick_limit", float(rule.limit)),
        _constant("quick_extent_target", float(rule.target)),
        _constant("quick_step", float(rule.step)),
        _constant("quick_floor", float(rule.floor)),
        _constant("quick_tiny", 1e-6),
        _constant("quick_one", [1], np.int64),
    ]
    # [N, 1, 1, n]: a hand in the column; [N, 1, n, 1]: in the row
    columns, columns_init = _reduce_max("quick_opened", "quick_columns", [2], opset)
    rows, rows_init = _reduce_max("quick_opened", "quick_rows", [3], opset)
    initializers += columns_init + rows_init
    nodes = [
        helper.make_node("GreaterOrEqual", [probability, "quick_half"], ["quick_hand"]),
        helper.make_node("Cast", ["quick_hand"], ["quick_occupied"], to=TensorProto.FLOAT),
        helper.make_node("Neg", ["quick_occupied"], ["quick_negated"]),
        helper.make_node("MaxPool", ["quick_negated"], ["quick_negated_max"], kernel_shape=[5, 5], pads=[2, 2, 2, 2]),
        helper.make_node("Neg", ["quick_negated_max"], ["quick_eroded"]),
        helper.make_node("MaxPool", ["quick_eroded"], ["quick_opened"], kernel_shape=[5, 5], pads=[2, 2, 2, 2]),
        *columns,
        *rows,
        helper.make_node("Transpose", ["quick_rows"], ["quick_rows_t"], perm=[0, 1, 3, 2]),
    ]
    for profile in ("quick_columns", "quick_rows_t"):
        # The run of hand ending at i has length i - (the last index <= i without hand); that
        # last index is a running maximum: a max pool over everything to the left.
        nodes += [
            helper.make_node("Greater", [profile, "quick_half"], [f"{profile}_on"]),
            helper.make_node("Where", [f"{profile}_on", "quick_minus_one", "quick_index"], [f"{profile}_gaps"]),
            helper.make_node("MaxPool", [f"{profile}_gaps"], [f"{profile}_last_gap"], kernel_shape=[1, n],
                             pads=[0, n - 1, 0, 0]),
            helper.make_node("Sub", ["quick_index", f"{profile}_last_gap"], [f"{profile}_runs"]),
            *_reduce_max(f"{profile}_runs", f"{profile}_longest", None, opset, keepdims=0)[0],
        ]
    nodes += [
        helper.make_node("Max", ["quick_columns_longest", "quick_rows_t_longest"], ["quick_longest"]),
        helper.make_node("Div", ["quick_longest", "quick_find_size"], ["quick_extent"]),
        helper.make_node("Mul", ["quick_extent", "quick_size"], ["quick_span"]),
        helper.make_node("Greater", ["quick_span", "quick_limit"], ["quick_too_large"]),
        helper.make_node("Max", ["quick_extent", "quick_tiny"], ["quick_extent_safe"]),
        helper.make_node("Div", ["quick_extent_target", "quick_extent_safe"], ["quick_side_raw"]),
        helper.make_node("Div", ["quick_side_raw", "quick_step"], ["quick_steps"]),
        helper.make_node("Floor", ["quick_steps"], ["quick_steps_whole"]),
        helper.make_node("Mul", ["quick_steps_whole", "quick_step"], ["quick_side_stepped"]),
        helper.make_node("Min", ["quick_side_stepped", "quick_size"], ["quick_side_capped"]),
        helper.make_node("Max", ["quick_side_capped", "quick_floor"], ["quick_side_fitted"]),
        helper.make_node("Where", ["quick_too_large", "quick_side_fitted", "quick_size"], ["quick_side"]),
        helper.make_node("Cast", ["quick_side"], ["quick_side_int"], to=TensorProto.INT64),
        helper.make_node("Reshape", ["quick_side_int", "quick_one"], ["quick_side_1"]),
        helper.make_node("Concat", ["quick_side_1", "quick_side_1"], [side], axis=0),
    ]
    return nodes, initializers


def _output_nodes(probability: str, output: str) -> tuple[list, list]:
    """Probability -> OUTPUT_SIZE square with a fixed 1 and 0 in its first row (see module doc)."""
    from onnx import helper

    nodes, initializers = _resize_nodes(probability, "rembg_resized", OUTPUT_SIZE, OUTPUT_SIZE, "rembg_out")
    keep = np.ones((1, 1, 1, OUTPUT_SIZE), np.float32)
    keep[..., :2] = 0
    fixed = np.zeros((1, 1, 1, OUTPUT_SIZE), np.float32)
    fixed[..., 0] = 1
    initializers += [
        _constant("rembg_row_keep", keep),
        _constant("rembg_row_fixed", fixed),
        _constant("rembg_row_0", [0], np.int64),
        _constant("rembg_row_1", [1], np.int64),
        _constant("rembg_row_end", [np.iinfo(np.int64).max], np.int64),
        _constant("rembg_axis", [2], np.int64),
    ]
    nodes += [
        helper.make_node("Slice", ["rembg_resized", "rembg_row_0", "rembg_row_1", "rembg_axis"], ["rembg_top"]),
        helper.make_node("Mul", ["rembg_top", "rembg_row_keep"], ["rembg_top_kept"]),
        helper.make_node("Add", ["rembg_top_kept", "rembg_row_fixed"], ["rembg_top_fixed"]),
        helper.make_node("Slice", ["rembg_resized", "rembg_row_1", "rembg_row_end", "rembg_axis"], ["rembg_rest"]),
        helper.make_node("Concat", ["rembg_top_fixed", "rembg_rest"], [output], axis=2),
    ]
    return nodes, initializers


def _rename(graph, old: str, new: str) -> None:
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
        node.output[:] = [new if name == old else name for name in node.output]
    for info in graph.value_info:
        if info.name == old:
            info.name = new


def rembg_graph_bytes(onnx_bytes: bytes, spec: registry.ModelSpec) -> bytes:
    """The handseg ONNX model wrapped for rembg's u2net_custom session (see the module doc).

    The opset and IR version stay those of the source model.

    Raises:
        ModelError: the model is not a one-input, one-output graph of opset 13 or newer.
    """
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load_from_string(onnx_bytes)
    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < MIN_OPSET:
        raise ModelError(f"{spec.name}: ONNX opset {opset} is too old for the rembg export (needs {MIN_OPSET} or newer); export the model again")
    initializer_names = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializer_names]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise ModelError(f"{spec.name}: expected one image input and one probability output, got {len(inputs)} and {len(graph.output)}")
    _rename(graph, inputs[0].name, "handseg_input")
    _rename(graph, graph.output[0].name, "handseg_probability")

    network = list(graph.node)
    back, back_init = _output_nodes("handseg_probability", "probability")
    rule = fit_rule(spec, network_size(spec))
    if rule is None:
        front, front_init = _input_nodes(spec, "image", "handseg_input")
        adapt, adapt_init = [], []
    else:  # the engine's quick pass, with its own copy of the network (the weights are shared)
        front, front_init = _input_nodes(spec, "image", "handseg_view")
        keep = {i.name for i in graph.initializer}
        # The copy's tensors take a prefix that no name of the measuring nodes (quick_...) starts with.
        copy_prefix = "quick_pass/"
        quick_in, quick_in_init = _resize_nodes("handseg_view", copy_prefix + "handseg_input", FIND_SIZE, FIND_SIZE,
                                                "quick_in")
        measure, measure_init = _fitted_side_nodes(copy_prefix + "handseg_probability", "handseg_side", rule, opset)
        main_in, main_in_init = _resize_nodes("handseg_view", "handseg_input", 0, 0, "main_in", hw="handseg_side")
        adapt = [*quick_in, *_copied_nodes(network, keep, copy_prefix), *measure, *main_in]
        adapt_init = [*quick_in_init, *measure_init, *main_in_init]
    del graph.node[:]
    graph.node.extend([*front, *adapt, *network, *back])
    graph.initializer.extend([*front_init, *adapt_init, *back_init])
    del graph.input[:]
    graph.input.extend([helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, "height", "width"])])
    del graph.output[:]
    graph.output.extend([helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["batch", 1, OUTPUT_SIZE, OUTPUT_SIZE])])
    graph.name = f"{spec.name}_for_rembg"

    del model.metadata_props[:]
    metadata = {
        "source_model": spec.name,
        "source_sha256": registry.sha256_of(onnx_bytes),
        "handseg_version": __version__,
        "rembg_session": REMBG_SESSION,
    }
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = METADATA_PREFIX + key, value
    model.producer_name = "handseg"
    model.doc_string = (
        f"handseg model {spec.name} for rembg's {REMBG_SESSION} session: ImageNet-normalised image in, "
        f"hand probability out ({OUTPUT_SIZE}x{OUTPUT_SIZE}, top-left pixel fixed at 1 and the next at 0 "
        "so that rembg's min-max stretch keeps probabilities as they are)."
    )
    onnx.checker.check_model(model)
    return model.SerializeToString()


def export_for_rembg(model: str | None = None, rembg_home: Path | None = None) -> tuple[Path, str]:
    """Write `model` (default: the default model) where rembg's u2net_custom session accepts it.

    Args:
        model: a registry name or the path of a handseg ONNX file.
        rembg_home: the folder to write into; by default U2NET_HOME, else REMBG_HOME, else
            ~/.u2net. rembg refuses model paths outside its folders, so for another folder the
            command sets U2NET_HOME.

    Returns:
        The written file (`<rembg_home>/<model name>-rembg.onnx`, one self-contained ONNX file) and
        the shell command that runs rembg with it.

    Raises:
        HandsegError: the onnx package is not installed.
        ModelError: unknown, unloadable or unsuitable model.
        ChecksumError: the model file does not match its recorded checksum.
        OSError: the folder cannot be written.
    """
    if importlib.util.find_spec("onnx") is None:
        raise HandsegError("the rembg export needs the onnx package: pip install 'handseg[rembg]'")
    spec = load_model(model, device="cpu").spec
    data = rembg_graph_bytes(registry.read_verified(spec), spec)
    home = Path(os.path.abspath(os.path.expanduser(rembg_home))) if rembg_home is not None else default_rembg_home()
    path = home / f"{spec.name}-rembg.onnx"
    atomic.write_bytes(path, data)
    return path, rembg_command(path, home)
