"""results.json -> RESULTS.md."""

from __future__ import annotations


def _ms(timing: dict | None) -> str:
    return f"{timing['median_ms']:.1f} ({timing['min_ms']:.1f})" if timing else "-"


def _mb(row: dict) -> str:
    return f"{row['peak_rss_mb']:.0f}" if row.get("peak_rss_mb") else "-"


def _others(row: dict) -> list[str]:
    """Cores other processes kept busy meanwhile, and the spread of the rounds (two cells)."""
    value = row.get("child", {}).get("others_cores")
    others = f"{value:.2f}" if value is not None else "-"
    figures = row.get("round_figures") or []
    spread = f"{100 * (max(figures) / min(figures) - 1):.0f} %" if len(figures) > 1 and min(figures) > 0 else "-"
    return [others, spread]


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a and b else "-"


def _median(row: dict | None, key: str) -> float | None:
    return row[key]["median_ms"] if row and row.get("status") == "ok" and row.get(key) else None


def _table(header: list[str], lines: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(cell) for cell in line) + " |" for line in lines]
    return out + [""]


def _find(rows, table, **match):
    return next((r for r in rows if r["table"] == table and r["status"] == "ok" and all(r.get(k) == v for k, v in match.items())), None)


def markdown(results: dict) -> str:
    m, s, rows = results["machine"], results["settings"], results["rows"]
    default = results["default_model"]
    cores = m["cores"]
    out = ["# handseg speed benchmark", ""]
    if results["quick"]:
        out += ["**Quick run (`--quick`): tiny sizes and repeat counts; the figures mean nothing.**", ""]
    load = m.get("load_average_at_start")
    out += [
        f"- Date: {results['date']} (run took {results['duration_s']:.0f} s)",
        f"- Machine: {m['cpu']}, {cores} cores, {m['platform']}"
        + (f"; load average (1 min) {load[0]:.2f} at start, {m['load_average_at_end'][0]:.2f} at the end"
           if load and m.get("load_average_at_end") else ""),
        f"- Software: Python {m['python']}, onnxruntime {m['onnxruntime']} ({', '.join(m['onnxruntime_providers'])}), "
        f"torch {m.get('torch') or 'not installed'}, numpy {m['numpy']}; GPU: {m.get('cuda') or 'none'}",
        f"- Image: {s['image']}; batch: {s['batch_images']} JPEG variants of it (mirrored, shifted, brightened)",
        f"- Method: `python bench/run.py`. Each configuration runs in a fresh process; {s['warmup']} warm-up runs, then "
        f"{s['repeats']} timed runs (`time.perf_counter`); figures are median (min) in ms. End to end = decode the JPEG "
        "file, preprocess, inference, restore + refine, encode the mask as PNG bytes (PIL, zlib level 1 as `handseg mask` "
        "does). Inference = one "
        "`session._run` on the prepared tensor. ONNX Runtime: graph optimisation ALL, `intra_op_num_threads` set "
        "explicitly; torch: `torch.set_num_threads`, eval, no_grad, fp32, random weights. Peak RSS = the RSS "
        "high-water mark of the configuration's own process (MB; VmHWM, which equals its `ru_maxrss` as the process "
        "is started from a small launcher: Linux hands a parent's `ru_maxrss` down to its children). Batch: CPU time and peak RSS of the child from `os.wait4`, the "
        "per-child form of `getrusage(RUSAGE_CHILDREN)`; utilisation = (user + sys) / wall, "
        f"{cores}.0 = all cores busy. The whole set ran {s.get('rounds', 1)} time(s), round-robin; each configuration "
        "shows its fastest round (a slow spell of the shared machine then spoils no figure); *spread* = slowest / "
        "fastest round - 1 (end to end, else inference, else batch wall time); *others* = cores that other processes "
        "kept busy meanwhile."
        + (f" Before each configuration the run waited (up to {s['wait_quiet_s']:.0f} s) for other processes to leave "
           "the CPUs idle." if s.get("wait_quiet_s") else ""),
        "",
    ]

    disturbed = [(r["child"]["others_cores"], r) for r in rows if r["status"] == "ok" and "others_cores" in r.get("child", {})]
    if disturbed:
        mean = sum(v for v, _ in disturbed) / len(disturbed)
        worst, row = max(disturbed, key=lambda pair: pair[0])
        label = " / ".join(str(row.get(k)) for k in ("model", "how", "change", "backend", "input", "threads") if row.get(k) is not None)
        out += [f"Other processes on the machine kept {mean:.2f} cores busy on average while configurations ran "
                f"(most: {worst:.2f} during {label}, in the round shown). Rows above about 0.2 were disturbed, the more so "
                "with 2 threads.", ""]

    out += ["## Targets", ""]
    out += _table(["target", "figures", "result"],
                  [[t["target"], t["figures"], "**pass**" if t["passed"] else "**FAIL**"] for t in results["targets"]])

    out += ["## Per image, packaged models", ""]
    lines = []
    for r in (r for r in rows if r["table"] == "models"):
        if r["status"] == "ok":
            lines.append([r["model"], r["backend"], r["threads"], r["network_input"], _ms(r["end_to_end"]),
                          _ms(r["inference"]), _mb(r), f"{r['load_model_s']:.2f}", *_others(r)])
        else:
            lines.append([r["model"], r["backend"], r["threads"], "-", r["status"], "", "", "", "", ""])
    out += _table(["model", "backend", "threads", "network input", "end to end ms", "inference ms", "peak RSS MB",
                   "load s", "others", "spread"], lines)

    staged = next((r for r in rows if r["table"] == "models" and r["status"] == "ok" and r.get("stages")), None)
    if staged:
        total = staged["end_to_end"]["median_ms"]
        out += [f"### Where the time goes: {staged['model']}, {staged['backend']}, {staged['threads']} threads", ""]
        lines = [[name, _ms(t), f"{100 * t['median_ms'] / total:.0f} %"] for name, t in staged["stages"].items()]
        stage_sum = sum(t["median_ms"] for name, t in staged["stages"].items() if not name.startswith("compare"))
        lines.append(["sum of stages / measured end to end", f"{stage_sum:.1f} / {total:.1f}", ""])
        out += _table(["stage", "ms", "share of end to end"], lines)
        agreement = staged.get("reduced_decode_agreement")
        if agreement is not None:
            out += ["The engine decodes a large JPEG at the smallest DCT scale that covers twice the network "
                    f"input; its mask has IoU {agreement:.4f} with the mask from the whole decode of this photo.", ""]

    out += ["## References (ONNX Runtime CPU, random weights)", "",
            f"Ratios: {default} (ONNX Runtime CPU, same thread count) time / reference inference time; "
            "below 1 means ours is faster.", ""]
    lines = []
    for r in (r for r in rows if r["table"] == "references"):
        ref = next(x for x in results["references"] if x["name"] == r["model"] and x["shape"][3] == int(r["input"].split("x")[0])
                   and x["shape"][2] == int(r["input"].split("x")[1]))
        ours = _find(rows, "models", model=default, backend="onnxruntime CPU", threads=r["threads"])
        if r["status"] != "ok":
            lines.append([r["model"], r["input"], f"{ref['parameters_m']:.1f}", r["threads"], r["status"], "", "", "", "", "", ref["note"]])
            continue
        inference = _median(r, "inference")
        lines.append([r["model"], r["input"], f"{ref['parameters_m']:.1f}", r["threads"], _ms(r["inference"]), _mb(r),
                      _ratio(_median(ours, "end_to_end"), inference), _ratio(_median(ours, "inference"), inference),
                      *_others(r), ref["note"]])
    out += _table(["network", "input", "params M", "threads", "inference ms", "peak RSS MB", "ours end to end / ref",
                   "ours inference / ref", "others", "spread", "note"], lines)

    out += [f"## Batch throughput ({s['batch_images']} images, {default}, wall time includes start-up and model load)", ""]
    lines = []
    for r in (r for r in rows if r["table"] == "batch"):
        if r["status"] != "ok":
            lines.append([r["how"], r["threads"], r["status"], "", "", "", "", "", ""])
            continue
        c = r["child"]
        lines.append([r["how"], r["threads"], f"{r['images'] / c['wall_s']:.2f}", f"{c['wall_s']:.1f}", f"{c['cpu_s']:.1f}",
                      f"{c['cpu_s'] / c['wall_s']:.2f} of {cores}.0", f"{c['maxrss_mb']:.0f}", *_others(r)])
    out += _table(["how", "threads", "images/s", "wall s", "CPU s", "CPU utilisation", "peak RSS MB", "others", "spread"], lines)

    base = _find(rows, "models", model=default, backend="onnxruntime CPU", threads=2)
    out += [f"## Speed-up candidates for {default} (ONNX Runtime CPU)", "",
            "Each change alone against the baseline, the engine as it is with 2 intra-op threads (optimisation ALL, "
            f"sequential execution, the model's input size, here {base['network_input'] if base else '-'}); ratios below 1 "
            "are faster. Session creation: median time to create the ONNX Runtime session.", ""]
    lines = []
    if base:
        lines.append(["baseline", 2, base["network_input"], _ms(base["end_to_end"]), "1.00", _ms(base["inference"]), "1.00",
                      f"{base['session_create_s']:.2f}", *_others(base)])
    for r in (r for r in rows if r["table"] == "speed-ups"):
        if r["status"] != "ok":
            lines.append([r["change"], r["threads"], "-", r["status"], "", "", "", "", "", ""])
            continue
        lines.append([r["change"], r["threads"], r["network_input"], _ms(r["end_to_end"]),
                      _ratio(_median(r, "end_to_end"), _median(base, "end_to_end")), _ms(r["inference"]),
                      _ratio(_median(r, "inference"), _median(base, "inference")), f"{r['session_create_s']:.2f}", *_others(r)])
    out += _table(["change", "threads", "network input", "end to end ms", "vs baseline", "inference ms", "vs baseline",
                   "session creation s", "others", "spread"], lines)
    return "\n".join(out)
