"""Speed benchmark: handseg's packaged models against the networks rembg runs and a floor.

    python bench/run.py            # full run (minutes); writes bench/RESULTS.md and bench/results.json
    python bench/run.py --quick    # tiny sizes and repeat counts, to check that every row comes out

Every configuration runs in a fresh worker process (this script with --worker), one after the
other, so that thread pools and memory high-water marks never mix. Timings are medians (and
minima) of repeated `time.perf_counter` measurements after warm-up runs.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
DEFAULT_PHOTO = ROOT.parent / "shared" / "data" / "egohands_cross14" / "images" / "padova_06.jpg"

FULL = {
    "quick": False, "rounds": 3, "warmup": 3, "repeats": 25, "load_repeats": 3, "batch_images": 100, "photo_size": None,
    "input_size": None, "u2net_size": 320, "lraspp_size": 512, "explore_sizes": [768, 640, 448, 320],
}
QUICK = {
    "quick": True, "rounds": 1, "warmup": 1, "repeats": 2, "load_repeats": 1, "batch_images": 3, "photo_size": (256, 144),
    "input_size": 128, "u2net_size": 64, "lraspp_size": 64, "explore_sizes": [96],
}
THREADS = (1, 2)
TABLES = ("models", "references", "batch", "speed-ups")
UTILISATION_TARGET = 0.9  # of all cores, for "the CLI keeps every core busy"


# ---------------------------------------------------------------------------------------------
# inputs


def machine() -> dict:
    import numpy
    import onnxruntime

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or cpu
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "onnxruntime": onnxruntime.__version__,
        "onnxruntime_providers": onnxruntime.get_available_providers(),
        "platform": platform.platform(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        info["torch"] = None
    try:
        info["load_average_at_start"] = os.getloadavg()
    except OSError:
        pass
    return info


def synthetic_photo(size: tuple[int, int]):
    """A stand-in photo: smooth background with skin-coloured blobs (only speed matters)."""
    import numpy as np
    from PIL import Image

    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = np.stack([120 + 60 * np.sin(x / 97), 110 + 50 * np.cos(y / 61), 100 + 40 * np.sin((x + y) / 131)], -1)
    for cx, cy, r in ((0.35, 0.6, 0.18), (0.7, 0.55, 0.15)):
        inside = ((x - cx * w) / (r * w)) ** 2 + ((y - cy * h) / (1.6 * r * w)) ** 2 < 1
        rgb[inside] = (224, 172, 140)
    rgb += np.random.default_rng(0).normal(0, 6, rgb.shape)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


def prepare_images(photo: Path | None, settings: dict, tmp: Path) -> tuple[Path, Path, str]:
    """The test photo (a JPEG file) and a folder of `batch_images` variants of it."""
    from PIL import Image, ImageEnhance, ImageOps

    if photo is not None and photo.is_file():
        source = ImageOps.exif_transpose(Image.open(photo)).convert("RGB")
        described = photo.name
    else:
        source = synthetic_photo((1280, 720))
        described = "synthetic 1280x720 image (photo not found)"
    if settings["photo_size"]:
        source = source.resize(settings["photo_size"], Image.LANCZOS)
    if photo is not None and photo.is_file() and not settings["photo_size"]:
        single = photo
    else:
        single = tmp / "photo.jpg"
        source.save(single, quality=90)
    batch = tmp / "batch"
    batch.mkdir()
    w, h = source.size
    for i in range(settings["batch_images"]):
        variant = ImageOps.mirror(source) if i % 2 else source
        dx, dy = (i % 5) * w // 160, (i % 3) * h // 90
        variant = variant.crop((dx, dy, w - (4 * w // 160 - dx), h - (2 * h // 90 - dy))).resize((w, h), Image.BILINEAR)
        variant = ImageEnhance.Brightness(variant).enhance(0.85 + 0.3 * (i % 7) / 6)
        variant.save(batch / f"photo_{i:03d}.jpg", quality=90)
    return single, batch, f"{described}, {w}x{h}"


def network_input(width: int, height: int, long_side: int, stride: int = 32) -> tuple[int, int]:
    """(width, height) of the padded tensor the engine feeds the network for an image."""
    from handseg_core.preprocess import resized_size

    rh, rw = resized_size(height, width, long_side)
    return rw + (-rw % stride), rh + (-rh % stride)


def export_references(tmp: Path, settings: dict, our_input: tuple[int, int]) -> list[dict]:
    """U2-Net, U2-Netp and LRASPP-MobileNetV3 as ONNX files, with the input size each is timed at."""
    import torch
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    sys.path.insert(0, str(BENCH_DIR))
    import u2net

    class OutOnly(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x):
            return self.model(x)["out"]

    s, l = settings["u2net_size"], settings["lraspp_size"]
    lraspp = OutOnly(lraspp_mobilenet_v3_large(weights=None, weights_backbone=None))
    references = [
        ("U2-Net", u2net.u2net(), (s, s), "rembg's default model `u2net`"),
        ("U2-Netp", u2net.u2netp(), (s, s), "rembg's small model `u2netp`"),
        ("LRASPP-MobileNetV3-Large", lraspp, (l, l), "torchvision, the floor at this size"),
        ("LRASPP-MobileNetV3-Large", lraspp, our_input, "same pixels as our network input"),
    ]
    out = []
    for name, model, (w, h), note in references:
        path = tmp / f"{name}-{w}x{h}.onnx"
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes
            torch.onnx.export(model.eval(), (torch.randn(1, 3, h, w),), str(path), input_names=["image"],
                              opset_version=17, dynamo=False)
        parameters = sum(p.numel() for p in model.parameters())
        out.append({"name": name, "onnx": str(path), "shape": [1, 3, h, w], "note": note, "parameters_m": parameters / 1e6})
    return out


def save_optimized(model: Path, tmp: Path, level: str) -> Path:
    """The model after ONNX Runtime's graph optimisations at `level`, saved for loading later."""
    import onnxruntime as ort

    sys.path.insert(0, str(BENCH_DIR))
    from measure import session_options

    path = tmp / f"{model.stem}.opt-{level}.onnx"
    options = session_options(None, opt_level=level)
    options.optimized_model_filepath = str(path)
    ort.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])
    return path


def is_quantized(path: Path) -> bool:
    """Whether an ONNX file holds int8 (QDQ or QLinear) operators."""
    import onnx

    from handseg_training.quantize import is_quantized as holds_int8

    return holds_int8(onnx.load(str(path), load_external_data=False))


def quantize_int8(spec, tmp: Path, photos: list[Path], input_size: int | None) -> Path:
    """The model with int8 weights and activations (static QDQ, per-channel weights), calibrated
    on `photos` as the engine prepares them. Only its speed is measured here."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from handseg_core.images import load_rgb
    from handseg_core.preprocess import prepare

    tensors = [prepare(load_rgb(p), input_size or spec.input_size, spec.mean, spec.std, spec.stride).tensor for p in photos]

    class Photos(CalibrationDataReader):
        def __init__(self):
            self.feeds = iter({"image": t} for t in tensors)

        def get_next(self):
            return next(self.feeds, None)

    inferred, out = tmp / f"{spec.path.stem}.shapes.onnx", tmp / f"{spec.path.stem}.int8.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quant_pre_process(str(spec.path), str(inferred), skip_symbolic_shape=True)
        quantize_static(str(inferred), str(out), Photos(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return out


# ---------------------------------------------------------------------------------------------
# running children


def run_child(command: list[str], env: dict | None = None) -> dict:
    """Run a process to its end; its wall time, CPU time and peak RSS (its own rusage from
    wait4, which is what getrusage(RUSAGE_CHILDREN) adds up over children), stdout and stderr.

    The peak RSS is only the child's own when this process is small: Linux hands a parent's
    high-water mark down to its children (see `measured`)."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, env=env, cwd=ROOT)
        stdout = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        process.stdout.close()
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    return {
        "returncode": process.returncode,
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "maxrss_mb": usage.ru_maxrss / 1024,
        "stdout": stdout.decode(errors="replace"),
        "stderr": stderr,
    }


def busy_cpu_s() -> float | None:
    """CPU seconds all processes of the machine have used since boot (from /proc/stat)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def measured(command: list[str]) -> dict:
    """`run_child(command)` from a fresh, small launcher process (this script, stdlib only), so
    that the child's ru_maxrss is not raised to this big process's (which holds torch).

    Also how many cores other processes kept busy meanwhile (`others_cores`): what the machine
    did beyond the launcher and its child, a sign that a figure was disturbed."""
    before = busy_cpu_s()
    launcher = run_child([sys.executable, str(Path(__file__).resolve()), "--measure-command", json.dumps(command)])
    after = busy_cpu_s()
    if launcher["returncode"] != 0:
        raise RuntimeError(f"launcher failed: {last_line(launcher['stderr'])}")
    child = json.loads(last_line(launcher["stdout"]))
    if before is not None and after is not None:
        child["others_cores"] = max(0.0, (after - before - launcher["cpu_s"]) / launcher["wall_s"])
    return child


def wait_until_quiet(limit_s: float, threshold: float = 0.15, sample_s: float = 1.0) -> float:
    """Wait (up to `limit_s`) until other processes keep fewer than `threshold` cores busy; the
    last sample, in cores."""
    deadline = time.monotonic() + limit_s
    while True:
        before = busy_cpu_s()
        time.sleep(sample_s)
        after = busy_cpu_s()
        if before is None or after is None:
            return 0.0
        load = (after - before) / sample_s
        if load < threshold or time.monotonic() >= deadline:
            return load
        time.sleep(2.0)


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


QUIET_WAIT_S = 0.0  # set by --wait-quiet


def run_job(job: dict) -> dict:
    """One measurement in a fresh worker; {"status": "ok", ...figures} or {"status": "failed: ..."}."""
    if QUIET_WAIT_S:
        wait_until_quiet(QUIET_WAIT_S)
    child = measured([sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(job)])
    if child["returncode"] != 0:
        return {"status": f"failed: {last_line(child['stderr'])[:300] or 'exit code ' + str(child['returncode'])}"}
    result = json.loads(last_line(child["stdout"]))
    result["status"] = "ok"
    result["child"] = {k: child[k] for k in ("wall_s", "cpu_s", "maxrss_mb", "others_cores") if k in child}
    return result


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def handseg_executable() -> str | None:
    beside = Path(sys.executable).with_name("handseg")
    return str(beside) if beside.exists() else shutil.which("handseg")


def cli_batch(in_dir: Path, out_dir: Path, count: int, input_size: int | None) -> dict:
    """`handseg mask DIR -o OUT -q` timed as a child; a status saying why when the CLI can't."""
    exe = handseg_executable()
    if exe is None:
        return {"status": "no handseg executable"}
    if QUIET_WAIT_S:
        wait_until_quiet(QUIET_WAIT_S)
    size = ["--size", str(input_size)] if input_size else []
    child = measured([exe, "mask", str(in_dir), "-o", str(out_dir), "-q", *size])
    written = len(list(out_dir.glob("*"))) if out_dir.exists() else 0
    if child["returncode"] != 0:
        return {"status": f"handseg mask failed ({last_line(child['stderr']) or child['returncode']})"}
    if written != count:
        return {"status": f"handseg mask wrote {written} files for {count} images"}
    return {"status": "ok", "child": {k: child[k] for k in ("wall_s", "cpu_s", "maxrss_mb", "others_cores") if k in child}}


# ---------------------------------------------------------------------------------------------
# huge photos: peak memory and time of one cut-out


HUGE = (("jpeg", (12000, 9000)), ("png", (12247, 12247)))  # 108 Mpx and 150 Mpx, under images.MAX_PIXELS
HUGE_LIMIT_MB = 2048


def huge_photo(path: Path, size: tuple[int, int], source: Path | None) -> Path:
    """A photo of `size` (width, height) at `path`: the test photo (or a synthetic one) enlarged,
    with a little noise so that its file is the size of a real photo's. Reused when there."""
    if path.exists():
        return path
    import cv2
    import numpy as np

    small = cv2.imread(str(source)) if source and source.exists() else None
    if small is None:
        small = np.asarray(synthetic_photo((1280, 720)))[:, :, ::-1]
    big = cv2.resize(small, size, interpolation=cv2.INTER_CUBIC)
    rng = np.random.default_rng(0)
    for y in range(0, big.shape[0], 1024):  # in bands: a full-size noise array would double the memory
        band = big[y:y + 1024]
        np.minimum(band, 251, out=band)
        band += rng.integers(0, 4, band.shape, dtype=np.uint8)
    params = [cv2.IMWRITE_JPEG_QUALITY, 90] if path.suffix == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    temporary = path.with_suffix(".tmp" + path.suffix)
    if not cv2.imwrite(str(temporary), big, params):
        raise RuntimeError(f"cannot write {temporary}")
    os.replace(temporary, path)
    return path


def huge_cutouts(folder: Path, source: Path | None, model: str | None = None) -> list[dict]:
    """`handseg cutout` of each HUGE photo in a fresh process: peak RSS (MiB) and wall time.

    The CLI is this checkout's (PYTHONPATH), run from a small launcher (`measured`) so that the
    child's high-water mark is its own."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for kind, size in HUGE:
        photo = huge_photo(folder / f"huge-{size[0]}x{size[1]}.{'jpg' if kind == 'jpeg' else 'png'}", size, source)
        out = folder / f"out-{kind}"
        shutil.rmtree(out, ignore_errors=True)
        command = [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv.pop(1)); "
                   "from handseg_cli import main; main()", str(ROOT), "cutout", str(photo), "-o", str(out), "-q",
                   *(["-m", model] if model else [])]
        progress(f"handseg cutout {photo.name}")
        child = measured(command)
        written = sorted(out.glob("*.png")) if out.exists() else []
        rows.append({
            "photo": photo.name, "megapixels": round(size[0] * size[1] / 1e6, 1),
            "status": "ok" if child["returncode"] == 0 and len(written) == 1 else
                      f"failed ({last_line(child['stderr']) or child['returncode']})",
            "peak_rss_mib": round(child["maxrss_mb"]), "wall_s": round(child["wall_s"], 1),
            "cpu_s": round(child["cpu_s"], 1), "others_cores": round(child.get("others_cores", 0.0), 2),
            "within_limit": child["maxrss_mb"] <= HUGE_LIMIT_MB,
        })
        shutil.rmtree(out, ignore_errors=True)
    return rows


def huge_table(rows: list[dict]) -> str:
    lines = ["| photo | Mpx | peak RSS (MiB) | wall (s) | CPU (s) | within 2 GiB |", "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['photo']} | {row['megapixels']} | {row['peak_rss_mib']:,} | {row['wall_s']} | "
                     f"{row['cpu_s']} | {'yes' if row['within_limit'] else 'no'} ({row['status']}) |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# the benchmark


def benchmark(settings: dict, photo: Path | None, tmp: Path) -> dict:
    import onnxruntime as ort

    from handseg_core import registry

    started = datetime.datetime.now(datetime.timezone.utc)
    info = machine()
    image, batch_dir, image_note = prepare_images(photo, settings, tmp)
    models = registry.available_models()
    default = registry.default_model_name()
    default_spec = models[default]
    input_size = settings["input_size"] or default_spec.input_size
    from PIL import Image

    with Image.open(image) as im:
        width, height = im.size
    our_input = network_input(width, height, input_size)
    progress("exporting the reference networks to ONNX")
    references = export_references(tmp, settings, our_input)

    common = {k: settings[k] for k in ("warmup", "repeats", "load_repeats")}
    common["image"] = str(image)
    common["input_size"] = settings["input_size"]
    common["tmp_dir"] = str(tmp)
    plan: list[tuple[str, dict, Callable[[int], dict]]] = []  # (table, label, measure(round))

    def add(table: str, label: dict, job: dict | None = None, skipped: str | None = None, runner=None):
        if skipped:
            runner = lambda round_: {"status": f"skipped: {skipped}"}  # noqa: E731
        elif runner is None:
            runner = functools.partial(lambda job, round_: run_job(job), {**common, **job})
        plan.append((table, label, runner))

    cuda_ort = "CUDAExecutionProvider" in ort.get_available_providers()
    cuda_torch = bool(info.get("cuda"))
    quantized = {name: is_quantized(spec.path) for name, spec in models.items()}
    for name in models:
        for threads in THREADS:
            add("models", {"model": name, "backend": "onnxruntime CPU", "threads": threads},
                {"kind": "handseg-ort", "model": name, "threads": threads, "stages": name == default and threads == max(THREADS)})
        for threads in THREADS:
            torch_skip = None if info.get("torch") else "torch is not installed"
            if quantized[name]:
                torch_skip = "an int8 ONNX file: torch would run its float twin"
            add("models", {"model": name, "backend": "torch CPU fp32", "threads": threads},
                {"kind": "handseg-torch", "model": name, "threads": threads}, torch_skip)
        if models[name].hands_model:
            for threads in THREADS:
                add("models", {"model": name, "backend": "onnxruntime CPU, whole image only (--no-finder)",
                               "threads": threads},
                    {"kind": "handseg-ort", "model": name, "threads": threads, "find_hands": False})
        add("models", {"model": name, "backend": "onnxruntime CUDA", "threads": "-"},
            {"kind": "handseg-ort", "model": name, "device": "cuda"},
            None if cuda_ort else f"no CUDA: onnxruntime has {', '.join(ort.get_available_providers())}")
        add("models", {"model": name, "backend": "torch CUDA fp32", "threads": "-"},
            {"kind": "handseg-torch", "model": name, "threads": 1, "device": "cuda"},
            "an int8 ONNX file: torch would run its float twin" if quantized[name]
            else None if cuda_torch else "no CUDA: torch.cuda.is_available() is False")

    for reference in references:
        for threads in THREADS:
            add("references", {"model": reference["name"], "input": "x".join(map(str, reference["shape"][:1:-1])), "threads": threads},
                {"kind": "reference-ort", "onnx": reference["onnx"], "shape": reference["shape"], "threads": threads})

    # Batch throughput: the CLI as a user runs it, then batch loops that could replace its loop.
    # Every round writes into new folders: the CLI keeps the outputs that exist.
    count = settings["batch_images"]

    def cli_or_loop(round_: int) -> dict:
        cli = cli_batch(batch_dir, tmp / f"out-cli-{round_}", count, settings["input_size"])
        if cli["status"] == "ok":
            return cli
        loop = run_job({**common, "kind": "batch-loop", "model": default, "in_dir": str(batch_dir),
                        "out_dir": str(tmp / f"out-loop-{round_}")})
        return {**loop, "how": f"loop over session.segment (CLI not usable: {cli['status']})"}

    add("batch", {"how": "`handseg mask DIR -o OUT -q`", "threads": "default", "images": count}, runner=cli_or_loop)
    loops = [
        ("sequential loop", {"threads": 2}),
        ("2 images in flight (thread pool), 1 thread each", {"threads": 1, "workers": 2}),
        ("2 images in flight (thread pool), 2 threads, no spinning", {"threads": 2, "workers": 2, "spinning": False}),
    ]
    for i, (how, options) in enumerate(loops):
        job = {**common, "kind": "batch-loop", "model": default, "in_dir": str(batch_dir), **options}
        add("batch", {"how": how, "threads": options["threads"], "images": count},
            runner=functools.partial(lambda job, i, round_: run_job({**job, "out_dir": str(tmp / f"out-{i}-{round_}")}), job, i))

    # Ways to make the default model faster (engine unchanged; options swapped in the worker).
    optimized = {level: save_optimized(default_spec.path, tmp, level) for level in ("extended", "all")}
    if quantized[default]:
        int8_variant = {"skipped": "the default model is int8 already"}
    else:
        progress("quantising the default model to int8")
        int8 = quantize_int8(default_spec, tmp, sorted(batch_dir.glob("*.jpg"))[:8], settings["input_size"])
        int8_variant = {"job": {"threads": 2, "variant": True, "onnx": str(int8)}}
    variants = [
        ("engine default threads (threads=None)", {"threads": None}),
        ("graph optimisation: disabled", {"threads": 2, "variant": True, "opt_level": "disable"}),
        ("graph optimisation: basic", {"threads": 2, "variant": True, "opt_level": "basic"}),
        ("graph optimisation: extended", {"threads": 2, "variant": True, "opt_level": "extended"}),
        ("saved optimised model (extended), loaded with all", {"threads": 2, "variant": True, "onnx": str(optimized["extended"])}),
        ("saved optimised model (all), loaded with none", {"threads": 2, "variant": True, "onnx": str(optimized["all"]), "opt_level": "disable"}),
        ("parallel execution mode, inter-op 2", {"threads": 2, "variant": True, "execution": "parallel", "inter_threads": 2}),
        ("intra-op spinning off", {"threads": 2, "variant": True, "spinning": False}),
    ]
    variants += [(f"input size {size}", {"threads": 2, "input_size": size}) for size in settings["explore_sizes"]]
    for how, options in variants:
        add("speed-ups", {"change": how, "threads": options["threads"] or "default"},
            {"kind": "handseg-ort", "model": default, **options})
    add("speed-ups", {"change": "int8 static quantisation of every operator (QDQ; quality not measured)", "threads": 2},
        {"kind": "handseg-ort", "model": default, **int8_variant.get("job", {})}, int8_variant.get("skipped"))

    if settings.get("only"):
        plan = [entry for entry in plan if entry[0] in settings["only"]]
    rows = run_plan(plan, settings["rounds"])

    try:
        info["load_average_at_end"] = os.getloadavg()
    except OSError:
        pass
    return {
        "date": started.isoformat(timespec="seconds"),
        "quick": settings["quick"],
        "machine": info,
        "settings": {**settings, "image": image_note, "threads": list(THREADS), "wait_quiet_s": QUIET_WAIT_S},
        "default_model": default,
        "references": references,
        "rows": rows,
        "targets": targets(rows, default, info["cores"], settings["lraspp_size"]),
        "duration_s": (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds(),
    }


def primary_figure(result: dict) -> float | None:
    """The figure a configuration is judged by: end-to-end time, else inference, else batch wall."""
    if result.get("status") != "ok":
        return None
    for key in ("end_to_end", "inference"):
        if key in result:
            return result[key]["median_ms"]
    return result["child"]["wall_s"]


def run_plan(plan: list, rounds: int) -> list[dict]:
    """Run every configuration `rounds` times, round-robin, and keep each one's fastest round.

    On a shared machine a slow spell (a neighbour, a frequency drop) can make one round slower;
    taking the best round of several taken at different times leaves it out. The figures of all
    rounds are kept in `round_figures` (the spread shows how steady the machine was)."""
    results: list[list[dict]] = [[] for _ in plan]
    for round_ in range(rounds):
        for (table, label, runner), kept in zip(plan, results):
            progress(f"round {round_ + 1}/{rounds} {table}: {' / '.join(str(v) for v in label.values())}")
            result = runner(round_)
            if not result["status"].startswith(("ok", "skipped")):
                progress(f"  {result['status']}")
            kept.append(result)
    rows = []
    for (table, label, _), kept in zip(plan, results):
        figures = [primary_figure(r) for r in kept]
        measured_ok = [(f, r) for f, r in zip(figures, kept) if f is not None]
        best = min(measured_ok, key=lambda pair: pair[0])[1] if measured_ok else kept[0]
        rows.append({"table": table, **label, **best, "round_figures": [f for f, _ in measured_ok]})
    return rows


def find(rows: list[dict], table: str, **match) -> dict | None:
    for row in rows:
        if row["table"] == table and row["status"] == "ok" and all(row.get(k) == v for k, v in match.items()):
            return row
    return None


def targets(rows: list[dict], default: str, cores: int, lraspp_size: int) -> list[dict]:
    """The goals set for the default model, each with the figures it was judged on."""
    out = []
    for threads in THREADS:
        ours = find(rows, "models", model=default, backend="onnxruntime CPU", threads=threads)
        lraspp = find(rows, "references", model="LRASPP-MobileNetV3-Large", input=f"{lraspp_size}x{lraspp_size}", threads=threads)
        u2netp = find(rows, "references", model="U2-Netp", threads=threads)
        if ours and lraspp:
            e2e, ref = ours["end_to_end"]["median_ms"], lraspp["inference"]["median_ms"]
            out.append({"target": f"{default} end to end <= 2x one LRASPP-MobileNetV3 pass at {lraspp['input']} ({threads} thread{'s' * (threads > 1)})",
                        "figures": f"{e2e:.1f} ms vs 2 x {ref:.1f} ms (ratio {e2e / ref:.2f})", "passed": e2e <= 2 * ref})
        if ours and u2netp:
            e2e, ref = ours["end_to_end"]["median_ms"], u2netp["inference"]["median_ms"]
            out.append({"target": f"{default} end to end faster than U2-Netp at {u2netp['input']} ({threads} thread{'s' * (threads > 1)})",
                        "figures": f"{e2e:.1f} ms vs {ref:.1f} ms (ratio {e2e / ref:.2f})", "passed": e2e < ref})
    cli = next((r for r in rows if r["table"] == "batch" and r["status"] == "ok"), None)
    if cli:
        utilisation = cli["child"]["cpu_s"] / cli["child"]["wall_s"]
        out.append({"target": f"CLI batch keeps all {cores} cores busy (CPU time / wall >= {UTILISATION_TARGET * cores:.1f})",
                    "figures": f"{utilisation:.2f} ({cli['how']})", "passed": utilisation >= UTILISATION_TARGET * cores})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes and repeat counts (seconds; figures meaningless)")
    parser.add_argument("--out", type=Path, default=BENCH_DIR, help="folder for RESULTS.md and results.json (default: bench/)")
    parser.add_argument("--image", type=Path, default=DEFAULT_PHOTO, help="the 1280x720 test photo (synthetic when missing)")
    parser.add_argument("--repeats", type=int, help="timed runs per measurement (default 25; 2 with --quick)")
    parser.add_argument("--rounds", type=int, help="times the whole set is run, keeping each configuration's "
                        "fastest round (default 3; 1 with --quick)")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="before each configuration, wait up to SECONDS for other processes to leave the CPUs idle")
    parser.add_argument("--huge", type=Path, metavar="FOLDER",
                        help="only measure peak RSS and time of `handseg cutout` on a 108 Mpx JPEG and a 150 Mpx PNG "
                             "(made in FOLDER from --image when missing, and kept); prints a table and writes "
                             "FOLDER/huge.json")
    parser.add_argument("--video", action="store_true",
                        help="only the video table: frames per second of session.segment_video on a 1280x720 "
                             "clip, 1 and 2 threads, with and without stabilising (bench/video.py)")
    parser.add_argument("--only", metavar="TABLE,...",
                        help="run only these tables (models, references, batch, speed-ups); default: all")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--measure-command", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure_command:
        print(json.dumps(run_child(json.loads(args.measure_command))))
        return 0
    if args.worker:
        sys.path.insert(0, str(BENCH_DIR))
        import measure

        measure.main(args.worker)
        return 0

    if args.video:
        sys.path.insert(0, str(BENCH_DIR))
        import video

        video.main(["--frames", "3", "--warmup", "1"] if args.quick else [])
        return 0

    if args.huge:
        rows = huge_cutouts(args.huge, args.image)
        (args.huge / "huge.json").write_text(json.dumps(rows, indent=1) + "\n")
        print(huge_table(rows))
        return 0 if all(r["status"] == "ok" and r["within_limit"] for r in rows) else 1

    global QUIET_WAIT_S
    QUIET_WAIT_S = args.wait_quiet
    settings = dict(QUICK if args.quick else FULL)
    if args.repeats:
        settings["repeats"] = args.repeats
    if args.rounds:
        settings["rounds"] = args.rounds
    if args.only:
        settings["only"] = [name.strip() for name in args.only.split(",")]
        unknown = set(settings["only"]) - set(TABLES)
        if unknown:
            parser.error(f"--only: no table {', '.join(sorted(unknown))}; choose from {', '.join(TABLES)}")
    sys.path.insert(0, str(BENCH_DIR))
    import report

    with tempfile.TemporaryDirectory(prefix="handseg-bench-") as tmp:
        results = benchmark(settings, args.image, Path(tmp))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    markdown = report.markdown(results)
    (args.out / "RESULTS.md").write_text(markdown)
    print(markdown)
    failed = [r for r in results["rows"] if not r["status"].startswith(("ok", "skipped"))]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
