"""MediaPipe's hand models as ONNX files for handseg's hand finder.

MediaPipe Hands (Apache-2.0) ships a palm detector and a hand landmark model as TFLite files
inside the `mediapipe` 0.10.21 wheel. This script reads them from the wheel (or a folder) and
writes each as one ONNX file that ONNX Runtime runs, so the engine needs neither mediapipe nor
a TFLite runtime:

    python -m handseg_training.mediapipe_convert mediapipe-0.10.21-cp311-...whl \
        --out handseg_core/models --check

The conversion is op by op (the two models use ten TFLite operators, all listed in
`Converter.convert`): NHWC tensors become NCHW, the float16 weights stay float16 behind a Cast
(ONNX Runtime folds it when it loads the model; it computes in float32 as TFLite does). With
`--check`, each file's outputs are compared with LiteRT's (`pip install ai-edge-litert`) on
random and on real photos, and the outputs of one photo are written as the golden file the tests
hold the shipped models to.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

OPSET = 17
# name in the wheel -> (file written, input name, output names in the TFLite model's order)
MODELS = {
    "mediapipe/modules/palm_detection/palm_detection_full.tflite":
        ("mediapipe-palm-detection-full.onnx", ["boxes", "scores"]),
    "mediapipe/modules/hand_landmark/hand_landmark_full.tflite":
        ("mediapipe-hand-landmark-full.onnx", ["landmarks", "presence", "handedness", "world_landmarks"]),
}
LICENCE_FILE = "mediapipe-0.10.21.dist-info/LICENSE"
_NHWC_TO_NCHW = (0, 3, 1, 2)


class ConversionError(ValueError):
    pass


@dataclass
class Value:
    name: str
    shape: tuple[int, ...]  # as TFLite has it (NHWC for 4-D)
    nchw: bool  # a 4-D activation held as NCHW in the ONNX graph


class Converter:
    """One TFLite flatbuffer (its first subgraph) to an ONNX ModelProto."""

    def __init__(self, data: bytes, output_names: list[str], doc: str = ""):
        import tflite
        from tflite.BuiltinOperator import BuiltinOperator

        self.tflite = tflite
        self.model = tflite.Model.GetRootAsModel(data, 0)
        self.graph = self.model.Subgraphs(0)
        self.op_names = {v: k for k, v in BuiltinOperator.__dict__.items() if not k.startswith("_")}
        self.output_names = output_names
        self.doc = doc
        self.nodes, self.initializers = [], []
        self.values: dict[int, Value] = {}
        self.constants: dict[int, np.ndarray] = {}
        self._count = 0

    # -- tensors ---------------------------------------------------------------------------
    def _tensor(self, index: int):
        return self.graph.Tensors(index)

    def _shape(self, index: int) -> tuple[int, ...]:
        t = self._tensor(index)
        return tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()

    def _buffer(self, index: int) -> np.ndarray | None:
        from tflite.TensorType import TensorType

        t = self._tensor(index)
        raw = self.model.Buffers(t.Buffer()).DataAsNumpy()
        if isinstance(raw, int) or raw.size == 0:
            return None
        dtype = {TensorType.FLOAT32: np.float32, TensorType.FLOAT16: np.float16, TensorType.INT32: np.int32,
                 TensorType.INT64: np.int64}.get(t.Type())
        if dtype is None:
            raise ConversionError(f"tensor {t.Name().decode()}: unsupported constant type {t.Type()}")
        return np.frombuffer(raw.tobytes(), dtype=dtype).reshape(self._shape(index))

    def _const(self, index: int) -> np.ndarray:
        if index in self.constants:
            return self.constants[index]
        value = self._buffer(index)
        if value is None:
            raise ConversionError(f"tensor {self._tensor(index).Name().decode()} is not a constant")
        return value

    def _fresh(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def _initializer(self, array: np.ndarray, hint: str) -> str:
        """A weight: float16 where TFLite stored it so (behind a Cast), else as it is."""
        from onnx import TensorProto, helper, numpy_helper

        name = self._fresh(hint)
        if array.dtype == np.float16:
            self.initializers.append(numpy_helper.from_array(array, f"{name}__fp16"))
            self.nodes.append(helper.make_node("Cast", [f"{name}__fp16"], [name], to=TensorProto.FLOAT))
        else:
            self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def _input(self, index: int) -> Value:
        if index not in self.values:
            raise ConversionError(f"tensor {self._tensor(index).Name().decode()} is used before it is computed")
        return self.values[index]

    def _node(self, op: str, inputs: list[str], out_index: int, nchw: bool, **attrs) -> str:
        from onnx import helper

        name = self._fresh(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        self.values[out_index] = Value(name, self._shape(out_index), nchw)
        return name

    def _activation(self, out_index: int, kind: int) -> None:
        from onnx import helper

        if kind == 0:
            return
        value = self.values[out_index]
        name = self._fresh("act")
        if kind == 1:
            self.nodes.append(helper.make_node("Relu", [value.name], [name]))
        elif kind == 3:
            low, high = self._initializer(np.float32(0), "zero"), self._initializer(np.float32(6), "six")
            self.nodes.append(helper.make_node("Clip", [value.name, low, high], [name]))
        else:
            raise ConversionError(f"unsupported fused activation {kind}")
        self.values[out_index] = Value(name, value.shape, value.nchw)

    @staticmethod
    def _same_pads(in_hw, kernel, stride, dilation=(1, 1)) -> list[int]:
        """TensorFlow's SAME padding (the extra pixel at the end) as ONNX pads [t, l, b, r]."""
        begin, end = [], []
        for size, k, s, d in zip(in_hw, kernel, stride, dilation):
            out = -(-size // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            begin.append(total // 2)
            end.append(total - total // 2)
        return begin + end

    def _options(self, op, cls):
        table = op.BuiltinOptions()
        options = cls()
        options.Init(table.Bytes, table.Pos)
        return options

    # -- operators -------------------------------------------------------------------------
    def convert(self):
        from onnx import TensorProto, helper

        g = self.graph
        if g.InputsLength() != 1:
            raise ConversionError("expected one input")
        in_index = g.Inputs(0)
        n, h, w, c = self._shape(in_index)
        self.values[in_index] = Value("image", (n, h, w, c), True)
        inputs = [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", c, h, w])]

        handlers = {
            "DEQUANTIZE": self._dequantize, "CONV_2D": self._conv, "DEPTHWISE_CONV_2D": self._depthwise,
            "PRELU": self._prelu, "ADD": self._add, "MAX_POOL_2D": self._max_pool, "PAD": self._pad,
            "RESIZE_BILINEAR": self._resize, "RESHAPE": self._reshape, "CONCATENATION": self._concat,
            "MEAN": self._mean, "FULLY_CONNECTED": self._fully_connected, "LOGISTIC": self._logistic,
        }
        for i in range(g.OperatorsLength()):
            op = g.Operators(i)
            code = self.model.OperatorCodes(op.OpcodeIndex())
            kind = self.op_names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?")
            if kind not in handlers:
                raise ConversionError(f"operator {i}: {kind} is not supported by this converter")
            handlers[kind](op, [int(j) for j in op.InputsAsNumpy()], [int(j) for j in op.OutputsAsNumpy()])

        outputs = []
        if g.OutputsLength() != len(self.output_names):
            raise ConversionError(f"the model has {g.OutputsLength()} outputs, expected {len(self.output_names)}")
        for k in range(g.OutputsLength()):
            index = g.Outputs(k)
            value = self._input(index)
            if value.nchw:
                raise ConversionError("a 4-D output is not supported")
            self.nodes.append(helper.make_node("Identity", [value.name], [self.output_names[k]]))
            shape = ["batch", *value.shape[1:]]
            outputs.append(helper.make_tensor_value_info(self.output_names[k], TensorProto.FLOAT, shape))
        graph = helper.make_graph(self.nodes, "mediapipe", inputs, outputs, self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="handseg",
                                  doc_string=self.doc)
        model.ir_version = 8
        return model

    def _dequantize(self, op, ins, outs):
        value = self._buffer(ins[0])
        if value is None:
            raise ConversionError("DEQUANTIZE of a computed tensor is not supported")
        self.constants[outs[0]] = value  # kept as float16: `_initializer` casts it

    def _weights_or_none(self, index: int) -> np.ndarray | None:
        if index < 0:
            return None
        return self._const(index)

    def _conv(self, op, ins, outs):
        from tflite.Conv2DOptions import Conv2DOptions

        o = self._options(op, Conv2DOptions)
        x = self._input(ins[0])
        weight = self._const(ins[1]).transpose(0, 3, 1, 2)  # OHWI -> OIHW
        bias = self._weights_or_none(ins[2] if len(ins) > 2 else -1)
        self._conv_node(x, weight, bias, o, outs[0], group=1)

    def _depthwise(self, op, ins, outs):
        from tflite.DepthwiseConv2DOptions import DepthwiseConv2DOptions

        o = self._options(op, DepthwiseConv2DOptions)
        x = self._input(ins[0])
        weight = self._const(ins[1]).transpose(3, 0, 1, 2)  # 1HWO -> O1HW
        bias = self._weights_or_none(ins[2] if len(ins) > 2 else -1)
        self._conv_node(x, weight, bias, o, outs[0], group=x.shape[3])

    def _conv_node(self, x: Value, weight, bias, o, out_index, group):
        kernel = weight.shape[2:]
        stride = (o.StrideH(), o.StrideW())
        dilation = (o.DilationHFactor(), o.DilationWFactor())
        if o.Padding() == 0:
            pads = self._same_pads(x.shape[1:3], kernel, stride, dilation)
        else:
            pads = [0, 0, 0, 0]
        inputs = [x.name, self._initializer(weight, "w")]
        if bias is not None:
            inputs.append(self._initializer(bias, "b"))
        self._node("Conv", inputs, out_index, True, kernel_shape=list(kernel), strides=list(stride),
                   dilations=list(dilation), pads=pads, group=group)
        self._activation(out_index, o.FusedActivationFunction())

    def _prelu(self, op, ins, outs):
        x = self._input(ins[0])
        alpha = self._const(ins[1])
        if x.nchw:
            alpha = alpha.reshape(-1, 1, 1) if alpha.size == x.shape[3] else alpha
        self._node("PRelu", [x.name, self._initializer(alpha, "alpha")], outs[0], x.nchw)

    def _add(self, op, ins, outs):
        from tflite.AddOptions import AddOptions

        a, b = (self._operand(i) for i in ins)
        self._node("Add", [a[0], b[0]], outs[0], a[1] or b[1])
        self._activation(outs[0], self._options(op, AddOptions).FusedActivationFunction())

    def _operand(self, index: int) -> tuple[str, bool]:
        if index in self.values:
            v = self.values[index]
            return v.name, v.nchw
        const = self._const(index)
        if const.ndim == 4:
            const = const.transpose(_NHWC_TO_NCHW)
        elif const.ndim in (1, 3):
            raise ConversionError("a broadcast constant of this rank is not supported")
        return self._initializer(const, "c"), False

    def _max_pool(self, op, ins, outs):
        from tflite.Pool2DOptions import Pool2DOptions

        o = self._options(op, Pool2DOptions)
        x = self._input(ins[0])
        kernel, stride = (o.FilterHeight(), o.FilterWidth()), (o.StrideH(), o.StrideW())
        pads = self._same_pads(x.shape[1:3], kernel, stride) if o.Padding() == 0 else [0, 0, 0, 0]
        self._node("MaxPool", [x.name], outs[0], True, kernel_shape=list(kernel), strides=list(stride), pads=pads)
        self._activation(outs[0], o.FusedActivationFunction())

    def _pad(self, op, ins, outs):
        x = self._input(ins[0])
        paddings = self._const(ins[1]).astype(np.int64)  # [rank, 2], NHWC order
        if x.nchw:
            paddings = paddings[list(_NHWC_TO_NCHW)]
        pads = np.concatenate([paddings[:, 0], paddings[:, 1]])
        self._node("Pad", [x.name, self._initializer(pads, "pads")], outs[0], x.nchw, mode="constant")

    def _resize(self, op, ins, outs):
        from tflite.ResizeBilinearOptions import ResizeBilinearOptions

        o = self._options(op, ResizeBilinearOptions)
        x = self._input(ins[0])
        size = self._const(ins[1]).astype(np.float32)
        scales = np.array([1.0, 1.0, size[0] / x.shape[1], size[1] / x.shape[2]], np.float32)
        mode = "align_corners" if o.AlignCorners() else "half_pixel" if o.HalfPixelCenters() else "asymmetric"
        self._node("Resize", [x.name, "", self._initializer(scales, "scales")], outs[0], True, mode="linear",
                   coordinate_transformation_mode=mode)

    def _nhwc(self, x: Value) -> str:
        """The value in TFLite's own layout (NHWC)."""
        from onnx import helper

        if not x.nchw:
            return x.name
        out = self._fresh("nhwc")
        self.nodes.append(helper.make_node("Transpose", [x.name], [out], perm=[0, 2, 3, 1]))
        return out

    def _reshape(self, op, ins, outs):
        x = self._input(ins[0])
        target = np.array(self._shape(outs[0]), np.int64)
        target[0] = 0  # keep the batch
        if len(target) == 4:
            raise ConversionError("RESHAPE to 4-D is not supported")
        self._node("Reshape", [self._nhwc(x), self._initializer(target, "shape")], outs[0], False)

    def _concat(self, op, ins, outs):
        from tflite.ConcatenationOptions import ConcatenationOptions

        o = self._options(op, ConcatenationOptions)
        parts = [self._input(i) for i in ins]
        nchw = all(p.nchw for p in parts)
        if any(p.nchw for p in parts) and not nchw:
            raise ConversionError("CONCATENATION of mixed layouts is not supported")
        axis = o.Axis()
        rank = len(parts[0].shape)
        axis = axis % rank
        if nchw:
            axis = _NHWC_TO_NCHW.index(axis)
        self._node("Concat", [p.name for p in parts], outs[0], nchw, axis=axis)
        self._activation(outs[0], o.FusedActivationFunction())

    def _mean(self, op, ins, outs):
        from tflite.ReducerOptions import ReducerOptions

        o = self._options(op, ReducerOptions)
        x = self._input(ins[0])
        axes = [int(a) % len(x.shape) for a in self._const(ins[1]).ravel()]
        if x.nchw:
            axes = [_NHWC_TO_NCHW.index(a) for a in axes]
        keep = bool(o.KeepDims())
        if keep and x.nchw:
            raise ConversionError("MEAN with keep_dims on a 4-D tensor is not supported")
        self._node("ReduceMean", [x.name], outs[0], False, axes=sorted(axes), keepdims=int(keep))

    def _fully_connected(self, op, ins, outs):
        from tflite.FullyConnectedOptions import FullyConnectedOptions

        o = self._options(op, FullyConnectedOptions)
        x = self._input(ins[0])
        if x.nchw or len(x.shape) != 2:
            raise ConversionError("FULLY_CONNECTED on a tensor that is not 2-D is not supported")
        inputs = [x.name, self._initializer(self._const(ins[1]), "fc")]
        if len(ins) > 2 and ins[2] >= 0:
            inputs.append(self._initializer(self._const(ins[2]), "fcb"))
        self._node("Gemm", inputs, outs[0], False, transB=1)
        self._activation(outs[0], o.FusedActivationFunction())

    def _logistic(self, op, ins, outs):
        x = self._input(ins[0])
        self._node("Sigmoid", [x.name], outs[0], x.nchw)


def convert(data: bytes, output_names: list[str], doc: str = "") -> bytes:
    """A TFLite model's bytes -> a checked ONNX model's bytes (input `image`, NCHW float)."""
    import onnx

    model = Converter(data, output_names, doc).convert()
    onnx.checker.check_model(model)
    buffer = io.BytesIO()
    onnx.save(model, buffer)
    return buffer.getvalue()


def read_sources(source: Path) -> dict[str, bytes]:
    """The TFLite files (and the licence) from a mediapipe wheel, or from a folder holding its
    `mediapipe/` tree."""
    wanted = [*MODELS, LICENCE_FILE]
    if source.is_dir():
        found = {name: (source / name).read_bytes() for name in wanted if (source / name).is_file()}
    else:
        try:
            with zipfile.ZipFile(source) as wheel:
                names = set(wheel.namelist())
                found = {name: wheel.read(name) for name in wanted if name in names}
        except (OSError, zipfile.BadZipFile) as exc:
            raise ConversionError(f"{source}: not a readable wheel or folder ({exc})") from None
    missing = [name for name in MODELS if name not in found]
    if missing:
        raise ConversionError(f"{source}: has no {', '.join(missing)} (the mediapipe 0.10.21 wheel has them)")
    return found


def largest_difference(tflite_bytes: bytes, onnx_bytes: bytes, images: list[np.ndarray]) -> float:
    """The largest absolute difference between LiteRT's and ONNX Runtime's outputs on `images`
    (NHWC float32 batches of one)."""
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite_bytes)
    interpreter.allocate_tensors()
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    worst = 0.0
    for image in images:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image)
        interpreter.invoke()
        expected = [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]
        got = session.run(None, {"image": image.transpose(0, 3, 1, 2).copy()})
        # LiteRT lists outputs by name (Identity, Identity_1, ...), as the graph's output order
        for e, o in zip(expected, got):
            worst = max(worst, float(np.abs(e - o).max()))
    return worst


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="the mediapipe 0.10.21 wheel, or a folder with its mediapipe/ tree")
    parser.add_argument("--out", type=Path, default=Path("handseg_core/models"))
    parser.add_argument("--check", nargs="*", type=Path, default=None, metavar="PHOTO",
                        help="compare with LiteRT on random inputs and these photos (needs ai-edge-litert)")
    args = parser.parse_args(argv)
    try:
        sources = read_sources(args.source)
    except ConversionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for wheel_name, (file_name, outputs) in MODELS.items():
        doc = f"{Path(wheel_name).name} from mediapipe 0.10.21 (Apache-2.0, Google LLC), converted by handseg"
        onnx_bytes = convert(sources[wheel_name], outputs, doc)
        (args.out / file_name).write_bytes(onnx_bytes)
        digest = hashlib.sha256(onnx_bytes).hexdigest()
        (args.out / f"{file_name}.sha256").write_text(f"{digest}  {file_name}\n")
        line = f"{file_name}: {len(onnx_bytes) / 1e6:.2f} MB, sha256 {digest}"
        if args.check is not None:
            side = 192 if "palm" in file_name else 224
            rng = np.random.default_rng(0)
            images = [rng.random((1, side, side, 3), dtype=np.float32) for _ in range(3)]
            for photo in args.check:
                import cv2

                rgb = cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB)
                images.append(cv2.resize(rgb, (side, side)).astype(np.float32)[None] / 255)
            line += f", largest difference from LiteRT {largest_difference(sources[wheel_name], onnx_bytes, images):.2e}"
        print(line)
    if LICENCE_FILE in sources:
        (args.out / "LICENSE-mediapipe.txt").write_bytes(sources[LICENCE_FILE])
    return 0


if __name__ == "__main__":
    sys.exit(main())
