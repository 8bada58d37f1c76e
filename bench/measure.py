"""What one benchmark worker measures. Each job runs in a fresh process (`run.py --worker`), so
that thread pools, caches and the memory high-water mark of one configuration never mix with
another's; a worker prints one JSON line with its figures."""

from __future__ import annotations

import io
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path


def timed(fn, warmup: int, repeats: int) -> dict:
    """Median and minimum wall time of `fn` in milliseconds, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "runs": repeats}


PNG_COMPRESS_LEVEL = 1  # as `handseg mask` writes its masks


def encode_png(mask) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(mask).save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def peak_rss_mb() -> float:
    """This process's RSS high-water mark in MB.

    Linux's ru_maxrss carries over the parent's high-water mark into a child at fork and exec, so
    a worker started by a big parent would report the parent's peak; VmHWM belongs to the
    process's own address space, which exec makes anew.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def session_options(threads: int | None, opt_level: str = "all", execution: str = "sequential",
                    inter_threads: int | None = None, spinning: bool = True):
    import onnxruntime as ort

    levels = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    options = ort.SessionOptions()
    options.graph_optimization_level = levels[opt_level]
    if threads:
        options.intra_op_num_threads = threads
    if inter_threads:
        options.inter_op_num_threads = inter_threads
    options.execution_mode = ort.ExecutionMode.ORT_PARALLEL if execution == "parallel" else ort.ExecutionMode.ORT_SEQUENTIAL
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


def _session_job_options(job: dict) -> dict:
    return {
        "threads": job.get("threads"),
        "opt_level": job.get("opt_level", "all"),
        "execution": job.get("execution", "sequential"),
        "inter_threads": job.get("inter_threads"),
        "spinning": job.get("spinning", True),
    }


def time_session_creation(model: bytes | str, options_kwargs: dict, providers: list[str], repeats: int) -> float:
    import onnxruntime as ort

    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        ort.InferenceSession(model, sess_options=session_options(**options_kwargs), providers=providers)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def handseg_ort(job: dict) -> dict:
    """A packaged model through the engine: end to end, inference alone, optionally each stage."""
    import numpy as np

    import handseg_core
    from handseg_core import registry
    from handseg_core.images import load_rgb
    from handseg_core.postprocess import Refinement, refine, snap_to_edges
    from handseg_core.preprocess import prepare, resize_long_side, restore
    from handseg_core.session import FIND_SIZE

    start = time.perf_counter()
    segmenter = handseg_core.load_model(job["model"], device=job.get("device", "cpu"), threads=job.get("threads"))
    load_s = time.perf_counter() - start
    spec = segmenter.spec
    variant = _session_job_options(job)
    model_source: bytes | str = job.get("onnx") or registry.read_verified(spec)
    if job.get("variant"):
        import onnxruntime as ort

        # A benchmark-only swap of the engine's session for one built with other options, so
        # that the end-to-end path stays the engine's own; the first is freed before.
        segmenter._session = None
        segmenter._session = ort.InferenceSession(model_source, sess_options=session_options(**variant), providers=segmenter.providers)

    image = job["image"]
    size = job.get("input_size") or spec.input_size
    refinement = Refinement()

    find_hands = job.get("find_hands", True)

    def end_to_end():
        encode_png(segmenter.segment(image, refinement, input_size=size, find_hands=find_hands).mask)

    rgb = load_rgb(image)
    prepared = prepare(rgb, size, spec.mean, spec.std, spec.stride)
    warmup, repeats = job["warmup"], job["repeats"]
    result = {
        "network_input": "x".join(map(str, prepared.tensor.shape[:1:-1])),
        "end_to_end": timed(end_to_end, warmup, repeats),
        "inference": timed(lambda: segmenter._run(prepared.tensor), warmup, repeats),
        "load_model_s": load_s,
        "providers": segmenter.providers,
        "find_hands": find_hands,
        "hands": len(segmenter.segment(image, refinement, input_size=size, find_hands=find_hands).hands),
    }
    if job.get("stages"):
        probability_padded = segmenter._run(prepared.tensor)[0, 0]
        probability = restore(probability_padded, prepared)
        mask, _ = refine(probability, refinement)
        def reduced_decode(path):
            return segmenter._decode(path, size)

        small = reduced_decode(image)[0]
        view = resize_long_side(small, size)
        photo = _phone_photo(image, Path(job.get("tmp_dir") or tempfile.mkdtemp(prefix="handseg-bench-")))
        stages = {
            f"decode (the engine's, {small.shape[1]}x{small.shape[0]})": lambda: reduced_decode(image),
            "preprocess": lambda: prepare(small, size, spec.mean, spec.std, spec.stride),
            f"quick pass (the view reduced to {FIND_SIZE}, network, hand extent)": lambda: segmenter._fitted_size(view, size),
            "inference": lambda: segmenter._run(prepared.tensor),
            "restore": lambda: restore(probability_padded, prepared),
            "snap edges": lambda: snap_to_edges(probability, rgb),
            "refine": lambda: refine(probability, refinement),
            "encode_png": lambda: encode_png(mask),
            # for comparison, not part of the engine's path
            "compare: decode the whole image": lambda: load_rgb(image),
            f"compare: the quick pass's reduction to {FIND_SIZE}, from the view": lambda: resize_long_side(view, FIND_SIZE),
            "compare: the same from the decoded photo (the quick pass until 2026-11-27)": lambda: resize_long_side(small, FIND_SIZE),
            "compare: 4032x2268 photo, end to end": lambda: encode_png(segmenter.segment(photo, refinement, input_size=size).mask),
            "compare: 4032x2268 photo, end to end from the whole decode":
                lambda: encode_png(segmenter.segment(load_rgb(photo), refinement, input_size=size).mask),
        }
        stages.update(finder_stages(segmenter, small, refinement))
        result["stages"] = {name: timed(fn, warmup, repeats) for name, fn in stages.items()}
        whole = segmenter.segment(load_rgb(image), refinement, input_size=size).mask > 0
        engine = segmenter.segment(image, refinement, input_size=size).mask > 0
        union = np.logical_or(engine, whole).sum()
        result["reduced_decode_agreement"] = float(np.logical_and(engine, whole).sum() / union) if union else 1.0
    # Read before the extra sessions below, which would raise the high-water mark.
    result["peak_rss_mb"] = peak_rss_mb()
    result["session_create_s"] = time_session_creation(model_source, variant, segmenter.providers, job["load_repeats"])
    return result


def finder_stages(segmenter, rgb, refinement) -> dict:
    """The stages the hand finder adds (`segment(find_hands=True)`), on the engine's decode."""
    import numpy as np

    from handseg_core import hands as per_hand
    from handseg_core.finder import FinderOptions, hand_square, load_finder

    crops = segmenter._hand_segmenter()
    if crops is None:
        return {}
    finder = load_finder(threads=segmenter._threads)
    variants = FinderOptions().variants
    found = finder.find(rgb)
    squares = [hand_square(points) for _, points in finder.palms(rgb)]
    pastes = crops.probabilities(rgb, found)
    whole = np.zeros(rgb.shape[:2], np.float32)
    mask = (per_hand.combine(whole, pastes) >= refinement.threshold).astype(np.uint8) * 255
    return {
        f"finder, all of it ({len(variants)} palm passes, landmarks; {len(found)} hands)": lambda: finder.find(rgb),
        "finder: one palm pass": lambda: finder.palms(rgb),
        f"finder: landmarks of one pass's palms ({len(squares)})": lambda: finder.landmarks(rgb, squares),
        f"per-hand network ({len(found)} crops of {crops.spec.input_size})": lambda: crops.probabilities(rgb, found),
        "combine, owners, split into hands": lambda: per_hand.split(
            mask, found, per_hand.owners(pastes, rgb.shape[:2]), per_hand.combine(whole, pastes)),
    }


def _phone_photo(image: str, folder: Path) -> str:
    """The bench photo enlarged to 12 megapixels and saved as a JPEG: a phone photo's decode cost."""
    from PIL import Image

    path = folder / "bench-photo-4032x2268.jpg"
    if not path.exists():
        with Image.open(image) as im:
            im.convert("RGB").resize((4032, 2268), Image.BILINEAR).save(path, quality=90)
    return str(path)


def decoder_channels_of(onnx_path: Path) -> int | None:
    """DeepLabV3+'s decoder width, read off the one-channel segmentation head of the ONNX graph."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    shapes = {init.name: list(init.dims) for init in graph.initializer}
    for node in graph.node:  # float16 files keep each weight behind a Cast to float32
        if node.op_type == "Cast" and node.input[0] in shapes:
            shapes[node.output[0]] = shapes[node.input[0]]
    for node in graph.node:
        if node.op_type == "Conv" and len(node.input) > 1:
            dims = shapes.get(node.input[1])
            if dims and dims[0] == 1 and len(dims) == 4:
                return dims[1]
    return None


def handseg_torch(job: dict) -> dict:
    """The same network in eager torch (fp32, eval, no_grad), random weights, same pre/post."""
    import torch

    from handseg_core import registry
    from handseg_core.images import load_rgb
    from handseg_core.postprocess import Refinement, refine, snap_to_edges
    from handseg_core.preprocess import prepare, restore
    from handseg_training.export import WithSigmoid
    from handseg_training.model import build_model

    torch.set_num_threads(job["threads"])
    device = torch.device(job.get("device", "cpu"))
    spec = registry.find(job["model"])
    channels = decoder_channels_of(spec.path)
    start = time.perf_counter()
    net = WithSigmoid(build_model(spec.encoder, decoder_channels=channels)).eval().float().to(device)
    load_s = time.perf_counter() - start
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def forward(tensor):
        with torch.no_grad():
            out = net(tensor)
        sync()
        return out

    image = job["image"]
    size = job.get("input_size") or spec.input_size
    refinement = Refinement()

    def end_to_end():
        rgb = load_rgb(image)
        prepared = prepare(rgb, size, spec.mean, spec.std, spec.stride)
        probability = forward(torch.from_numpy(prepared.tensor).to(device))[0, 0].cpu().numpy()
        mask, _ = refine(snap_to_edges(restore(probability, prepared), rgb), refinement)
        encode_png(mask)

    prepared = prepare(load_rgb(image), size, spec.mean, spec.std, spec.stride)
    tensor = torch.from_numpy(prepared.tensor).to(device)
    warmup, repeats = job["warmup"], job["repeats"]
    return {
        "network_input": "x".join(map(str, prepared.tensor.shape[:1:-1])),
        "end_to_end": timed(end_to_end, warmup, repeats),
        "inference": timed(lambda: forward(tensor), warmup, repeats),
        "load_model_s": load_s,
        "decoder_channels": channels,
    }


def reference_ort(job: dict) -> dict:
    """One ONNX Runtime pass of a reference network on a random input of the exported size."""
    import numpy as np
    import onnxruntime as ort

    options = _session_job_options(job)
    providers = job.get("providers", ["CPUExecutionProvider"])
    session = ort.InferenceSession(job["onnx"], sess_options=session_options(**options), providers=providers)
    shape = job["shape"]
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    feed = {session.get_inputs()[0].name: x}
    result = {
        "network_input": f"{shape[3]}x{shape[2]}",
        "inference": timed(lambda: session.run(None, feed), job["warmup"], job["repeats"]),
        "peak_rss_mb": peak_rss_mb(),
    }
    result["session_create_s"] = time_session_creation(job["onnx"], options, providers, job["load_repeats"])
    return result


def batch_loop(job: dict) -> dict:
    """Masks for every image of a folder written as PNGs, as the CLI would: sequentially, or with
    `workers` images in flight at once on one session (pipelining decode and post-processing of
    one image with inference of another)."""
    import onnxruntime as ort

    import handseg_core
    from handseg_core import registry

    paths = sorted(Path(job["in_dir"]).glob("*.jpg"))
    out_dir = Path(job["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    segmenter = handseg_core.load_model(job["model"], device="cpu", threads=job.get("threads"))
    if not job.get("spinning", True):
        data = registry.read_verified(segmenter.spec)
        segmenter._session = ort.InferenceSession(  # benchmark-only swap, as in handseg_ort
            data, sess_options=session_options(job.get("threads"), spinning=False), providers=segmenter.providers
        )
    size = job.get("input_size")

    def one(path: Path) -> None:
        mask = segmenter.segment(path, input_size=size).mask
        (out_dir / f"{path.stem}.png").write_bytes(encode_png(mask))

    start = time.perf_counter()
    workers = job.get("workers", 1)
    if workers == 1:
        for path in paths:
            one(path)
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, paths))
    return {"images": len(paths), "loop_s": time.perf_counter() - start}


KINDS = {"handseg-ort": handseg_ort, "handseg-torch": handseg_torch, "reference-ort": reference_ort, "batch-loop": batch_loop}


def main(job_json: str) -> None:
    job = json.loads(job_json)
    result = KINDS[job["kind"]](job)
    result.setdefault("peak_rss_mb", peak_rss_mb())
    sys.stdout.write("\n" + json.dumps(result) + "\n")
