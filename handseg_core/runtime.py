"""ONNX Runtime session settings shared by every network handseg runs (the whole-image and
per-hand segmenters, the finder's two models)."""

from __future__ import annotations


def session_options(threads: int | None):
    """SessionOptions for one of handseg's networks: full graph optimisation, `threads` intra-op
    threads (None: ONNX Runtime's default, every core), quiet logs, and no spinning.

    Spinning is off because one image runs four sessions in turn: a session's threads spin on
    after its run and take the cores from the next one. The default on a 1280x720 photo with two
    hands, 2 threads, 2-core Xeon: 363 ms with spinning, 219 without; the whole image alone 69 ms
    either way (bench/run.py rows; docs/benchmarks.md)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options
