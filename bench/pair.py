"""Two ONNX models' network time side by side, interleaved in one process.

    python bench/pair.py A.onnx B.onnx [--threads 1] [--runs 40] [--size 512x288]

For a change of weights rather than of code (a retrained or re-quantised model): both sessions
run the same tensor in turn, so a slow spell of a shared machine slows both alike and the ratio
holds where separate runs of `bench/run.py` differ by 5-10%. Prints the median and the fastest
run of each, in ms, and B's median over A's. With more than one thread, ONNX Runtime's spinning
is off in both sessions: a session's threads otherwise spin on after its run and take the cores
from the other (2 threads, the default model: 67 ms a run interleaved, against 47 ms without
spinning and 38 ms alone with it), so the times are those without spinning; the ratio is what
this script is for.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np


def time_pair(path_a: str, path_b: str, threads: int = 1, runs: int = 40, width: int = 512, height: int = 288,
              warmup: int = 5) -> dict[str, list[float]]:
    """Seconds per run of each model on one random image tensor, the two alternating."""
    import onnxruntime as ort
    from measure import session_options  # bench/run.py's own options (this folder is on the path)

    tensor = np.random.default_rng(0).normal(size=(1, 3, height, width)).astype(np.float32)
    sessions = {}
    for key, path in (("a", path_a), ("b", path_b)):
        options = session_options(threads, spinning=threads == 1)
        sessions[key] = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feeds = {key: {s.get_inputs()[0].name: tensor} for key, s in sessions.items()}
    for key, session in sessions.items():
        for _ in range(warmup):
            session.run(None, feeds[key])
    times: dict[str, list[float]] = {"a": [], "b": []}
    for _ in range(runs):
        for key, session in sessions.items():
            start = time.perf_counter()
            session.run(None, feeds[key])
            times[key].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(prog="python bench/pair.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--size", default="512x288", help="WIDTHxHEIGHT of the network's input")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    times = time_pair(args.a, args.b, args.threads, args.runs, width, height)
    print(f"{platform.processor() or platform.machine()}, {args.threads} thread(s), {args.runs} runs each, {width}x{height}")
    for key, path in (("a", args.a), ("b", args.b)):
        ms = [t * 1000 for t in times[key]]
        print(f"{key.upper()} {path}: median {statistics.median(ms):.1f} ms, fastest {min(ms):.1f} ms")
    print(f"B / A (medians): {statistics.median(times['b']) / statistics.median(times['a']):.3f}")


if __name__ == "__main__":
    main()
