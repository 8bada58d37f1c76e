"""Quantise an exported model to int8 for faster CPU inference, calibrated on photos.

    handseg quantize handseg-lite2 PHOTOS... -o handseg-lite2-int8.onnx

What is quantised, and why (measured on lite2; docs/models.md, "int8"):
- Only the convolutions, as QDQ pairs (per-channel int8 weights, uint8 activations). Quantising
  Add and Concat as well quantises the float arithmetic that computes the encoder's "same"
  padding at run time, and the feature maps come out at wrong sizes (ONNX Runtime's quantised
  Concat then fails); restricted to the feature maps, they gained lite2 3 ms in 65.
- Not the stem (it sees the raw image), the encoder's depthwise convolutions (one filter per
  channel, whose ranges int8 holds worst) or the last convolution (the logits). Quantising every
  convolution cost lite2 0.15 IoU on egohands_cross14; with these kept in float, the int8 lite2
  is within 0.003 IoU of the float one on every dev set.
- Activation ranges from the 99.99th percentile of each tensor over the calibration photos:
  min/max ranges, stretched by a few outliers, cost as much as the quantised stem.

The calibration photos should look like what the model will see: hands, faces, backgrounds.
Each is cropped to the calibration shape (the model's input size, 16:9), never stretched.
"""

from __future__ import annotations

import contextlib
import io
import logging
import random
import tempfile
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import numpy as np

from handseg_core import load_model, registry
from handseg_core.errors import ImageError
from handseg_core.images import load_rgb
from handseg_core.preprocess import prepare
from handseg_core.registry import ModelSpec
from handseg_training.onnx_files import add_metadata, write_model

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
PERCENTILE = 99.99
MIN_PHOTOS = 8
CHUNK = 8  # calibration photos run and binned at a time
MIN_AGREEMENT = 0.95  # pooled mask IoU between the float and the int8 model on the calibration photos


@dataclass(frozen=True)
class Quantized:
    """What `quantize` wrote, and how closely the int8 model follows the float one."""

    spec: ModelSpec
    photos: int  # calibration photos used
    skipped: tuple[str, ...]  # one line per photo that could not be read
    agreement: float  # mask IoU, int8 against float, over all the calibration photos
    float_ms: float  # one network pass at the calibration shape, one thread
    int8_ms: float


def calibration_shape(spec: ModelSpec) -> tuple[int, int]:
    """(height, width): the model's input size wide, 16:9, a multiple of its stride."""
    width = spec.input_size - spec.input_size % spec.stride
    height = max(spec.stride, round(width * 9 / 16 / spec.stride) * spec.stride)
    return height, width


def cover_crop(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """Scale `rgb` to cover height x width (aspect kept) and cut out the centre."""
    import cv2

    h, w = rgb.shape[:2]
    scale = max(height / h, width / w)
    sh, sw = max(height, round(h * scale)), max(width, round(w * scale))
    scaled = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    top, left = (sh - height) // 2, (sw - width) // 2
    return scaled[top:top + height, left:left + width]


def gather_photos(sources: list[Path]) -> list[Path]:
    """The photos among `sources`: files as given, folders searched through."""
    photos = []
    for source in map(Path, sources):
        if source.is_dir():
            photos += sorted(p for p in source.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file())
        else:
            photos.append(source)
    return photos


def even_pick(photos: list[Path], seed: int = 0) -> list[Path]:
    """`photos` in an order that takes from every folder in turn (randomly within each), so that
    the first few are spread over hands, faces and backgrounds however many each folder holds."""
    rng = random.Random(seed)
    folders: dict[Path, list[Path]] = {}
    for photo in photos:
        folders.setdefault(photo.parent, []).append(photo)
    queues = [rng.sample(group, len(group)) for _, group in sorted(folders.items())]
    order = []
    for i in range(max(map(len, queues), default=0)):
        order += [queue[i] for queue in queues if i < len(queue)]
    return order


def calibration_tensors(spec: ModelSpec, photos: list[Path], count: int, seed: int = 0):
    """Up to `count` network inputs from `photos` (an even pick over their folders), and one line
    for each photo that could not be read. A per-hand network's inputs are the crops around the
    hands the finder finds in them, as the engine makes them."""
    picks = even_pick(photos, seed)
    if spec.kind == registry.HANDS_KIND:
        return hand_crop_tensors(spec, picks, count)
    height, width = calibration_shape(spec)
    tensors, skipped = [], []
    for rgb in readable(picks, skipped, lambda: len(tensors) < count):
        crop = cover_crop(rgb, height, width)
        tensors.append(prepare(crop, width, spec.mean, spec.std, spec.stride).tensor)
    return tensors, skipped


def readable(photos: list[Path], skipped: list[str], wanted) -> Iterator[np.ndarray]:
    """The RGB pixels of each photo while `wanted()`; one line in `skipped` for each that cannot
    be read."""
    for path in photos:
        if not wanted():
            return
        try:
            rgb = load_rgb(path)
        except ImageError as exc:
            skipped.append(str(exc))
            continue
        yield rgb


def hand_crop_tensors(spec: ModelSpec, photos: list[Path], count: int):
    """Up to `count` per-hand network inputs: the found hands of `photos`, in turn."""
    from handseg_core import handcrop
    from handseg_core.finder import load_finder

    finder = load_finder(threads=1)
    tensors, skipped = [], []
    for rgb in readable(photos, skipped, lambda: len(tensors) < count):
        for hand in finder.find(rgb)[: count - len(tensors)]:
            square = handcrop.crop_square(hand.landmarks)
            tensors.append(handcrop.crop_input(rgb, hand.landmarks, square, spec.mean, spec.std, spec.input_size)[None])
    return tensors, skipped


def float_graph(model_bytes: bytes) -> bytes:
    """The model with its batch norms folded into the convolutions and float16 weights cast
    back: what ONNX Runtime runs. Quantising before that would quantise weights that the fold
    changes afterwards."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        optimized = Path(tmp) / "optimized.onnx"
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(optimized)
        ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        return optimized.read_bytes()


def is_quantized(model) -> bool:
    """Whether an ONNX model (a ModelProto) holds int8 operators (QDQ or QLinear)."""
    return any(node.op_type in ("QuantizeLinear", "QLinearConv") for node in model.graph.node)


@contextlib.contextmanager
def _quiet_root_logger():
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def kept_in_float(model) -> list[str]:
    """The convolutions left in float: the stem, the encoder's depthwise ones and the last."""
    convs = [node for node in model.graph.node if node.op_type == "Conv"]  # in topological order
    depthwise = [node for node in convs if any(a.name == "group" and a.i > 1 for a in node.attribute)]
    # The decoder's depthwise convolutions quantise well, and keeping them in float cost lite2 an
    # eighth of the gain (every float layer between int8 ones adds a dequantise and a quantise).
    in_encoder = [node for node in depthwise if "/encoder/" in node.name]
    names = {node.name for node in in_encoder or depthwise}
    names |= {convs[0].name, convs[-1].name} if len(convs) > 1 else set()
    if len(names) < 2 or any(not name for name in names):
        raise ValueError("cannot tell the model's stem and head convolutions apart; not a handseg model?")
    return sorted(names)


def _one_thread_session(model_bytes: bytes):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def _pass_ms(session, tensor: np.ndarray, repeats: int = 3) -> float:
    session.run(None, {"image": tensor})
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, {"image": tensor})
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def mask_agreement(pairs) -> float:
    """IoU of the hand masks (probability >= 0.5) of one model against another's, over all the
    (reference, other) probability maps together; 1.0 when both find no hand anywhere."""
    intersection = union = 0
    for reference, other in pairs:
        a, b = reference >= 0.5, other >= 0.5
        intersection += int(np.logical_and(a, b).sum())
        union += int(np.logical_or(a, b).sum())
    return 1.0 if union == 0 else intersection / union


def quantize(
    model: str | Path, photos: list[Path], out_path: Path, name: str | None = None, count: int = 64,
    min_agreement: float = MIN_AGREEMENT,
) -> Quantized:
    """Write an int8 copy of `model` (a name or an .onnx path) to `out_path`, with its .sha256.

    Raises:
        ValueError: fewer than MIN_PHOTOS readable photos, or the int8 model's masks agree with
            the float model's by less than `min_agreement` (nothing is written then).
        ModelError: the model cannot be found or fails its checksum.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static,
    )

    with load_model(model, device="cpu") as session:  # the spec, completed from the file's metadata
        source = session.spec
    tensors, skipped = calibration_tensors(source, photos, count)
    if len(tensors) < MIN_PHOTOS:
        raise ValueError(f"{len(tensors)} readable calibration photos; give at least {MIN_PHOTOS} "
                         "(photos of hands, faces and backgrounds)")
    folded = float_graph(registry.read_verified(source))
    float_model = onnx.load_from_string(folded)
    if is_quantized(float_model):
        raise ValueError(f"{source.name} is quantised already; quantise the float model it was made from")

    class Photos(CalibrationDataReader):
        """The calibration tensors, in chunks: ONNX Runtime keeps every activation of a chunk
        until it has binned them (all 64 photos at once took 23 GB for lite2; a chunk of 8, 3)."""

        def __init__(self):
            self.set_range(0, len(tensors))

        def __len__(self):
            return len(tensors)

        def set_range(self, start_index: int, end_index: int):
            self.items = iter({"image": tensor} for tensor in tensors[start_index:end_index])

        def get_next(self):
            return next(self.items, None)

    chunk = max(d for d in range(1, CHUNK + 1) if len(tensors) % d == 0)  # the quantiser wants a divisor

    with tempfile.TemporaryDirectory() as tmp:
        float_path, int8_path = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        float_path.write_bytes(folded)
        # The quantiser prints its calibration statistics and logs advice to run its own
        # pre-processing (float_graph is that); neither is for the user.
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), _quiet_root_logger():
            warnings.simplefilter("ignore")
            try:
                quantize_static(
                    str(float_path), str(int8_path), Photos(), quant_format=QuantFormat.QDQ, per_channel=True,
                    op_types_to_quantize=["Conv"], nodes_to_exclude=kept_in_float(float_model),
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.Percentile,
                    extra_options={"CalibPercentile": PERCENTILE, "CalibStridedMinMax": chunk},  # any method
                )
            except MemoryError:
                raise ValueError(f"out of memory while calibrating on {len(tensors)} photos; try a lower --count") from None
        quantized = int8_path.read_bytes()

    name = name or out_path.stem
    description = (f"{source.description}; " if source.description else "") + \
        f"int8 convolutions (from {source.name}, {len(tensors)} calibration photos)"
    spec = replace(source, name=name, file=out_path.name, description=description, metrics={}, sha256="",
                   folder=str(out_path.parent))
    quantized = add_metadata(quantized, spec.to_metadata())

    reference, candidate = _one_thread_session(folded), _one_thread_session(quantized)
    agreement = mask_agreement(
        (reference.run(None, {"image": t})[0], candidate.run(None, {"image": t})[0]) for t in tensors
    )
    height, width = tensors[0].shape[2:]
    other_shape = np.ascontiguousarray(np.tile(tensors[0], (1, 1, 2, 1))[:, :, : height + source.stride, : width - source.stride])
    try:  # a quantised Concat once failed on shapes other than the calibration's
        candidate.run(None, {"image": other_shape})
    except Exception as exc:  # onnxruntime raises its own types
        raise ValueError(f"the int8 model fails on another input size ({str(exc).splitlines()[0]}); not written") from None
    if agreement < min_agreement:
        raise ValueError(f"the int8 model's masks agree with the float model's by {agreement:.3f} IoU "
                         f"(< {min_agreement}) on the calibration photos; not written")
    float_ms, int8_ms = _pass_ms(reference, tensors[0]), _pass_ms(candidate, tensors[0])
    digest = write_model(quantized, out_path)
    return Quantized(replace(spec, sha256=digest), len(tensors), tuple(skipped), agreement, float_ms, int8_ms)
