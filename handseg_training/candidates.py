"""Train several configs side by side on one machine and compare them.

    python -m handseg_training.candidates CONFIG... --out runs/candidates [--data-root DATA]
        [--minutes 6.5] [--encoder-weights-dir DIR] [--pack DIR]

Each config trains in its own process (`handseg train`), all at once: on a GPU the small models
leave it idle between their kernels, so running them together costs each little. Every run
gets the same time budget and data. When all have ended (or their deadline passed), the reports
are gathered into OUT/comparison.json and OUT/comparison.md: IoU per evaluation set and per
skin-colour group, parameters, steps, images seen.

--encoder-weights-dir: a folder of ImageNet encoder state dicts named ENCODER.safetensors, used
instead of the config's weights where one exists (for a machine without the lite packages).
--pack DIR: copy what should travel back (each checkpoint as one fp16 file of at most 16 MiB,
and one archive of the reports, logs and configs) into DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from handseg_training.config import load_config


def launch(config: Path, out: Path, data_root: str | None, minutes: float | None, weights_dir: Path | None,
           threads: int, data_seed: int | None = None) -> subprocess.Popen:
    cfg = load_config(config)
    run_dir = out / cfg.name
    run_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "handseg_cli", "train", str(config), "--out", str(run_dir)]
    if data_root:
        command += ["--data-root", data_root]
    if minutes:
        command += ["--minutes", str(minutes)]
    if data_seed is not None:
        command += ["--data-seed", str(data_seed)]
    if weights_dir is not None and (weights_dir / f"{cfg.encoder}.safetensors").exists():
        command += ["--encoder-weights", str(weights_dir / f"{cfg.encoder}.safetensors")]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    log = (run_dir / "train.log").open("w")
    log.write(" ".join(command) + "\n")
    log.flush()
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)


def config_names(configs: list[Path]) -> list[str]:
    """The configs' run names.

    Raises:
        ValueError: two configs share a name (their runs would share a folder).
    """
    names = [load_config(c).name for c in configs]
    if len(set(names)) != len(names):
        raise ValueError(f"configs must have different names, got {names}")
    return names


def train_side_by_side(configs: list[Path], out: Path, data_root: str | None, minutes: float | None,
                       grace_minutes: float, weights_dir: Path | None, threads: int,
                       data_seed: int | None = None) -> dict[str, int | None]:
    """Train every config at once, each in OUT/<name>; wait until all have ended or the longest
    time budget (`minutes`, else each config's) and `grace_minutes` have passed. Returns each
    run's exit code (None: stopped at the deadline)."""
    names = config_names(configs)
    longest = max(minutes or load_config(c).time_budget_minutes for c in configs)
    deadline = time.monotonic() + (longest + grace_minutes) * 60
    processes = {name: launch(c, out, data_root, minutes, weights_dir, threads, data_seed)
                 for name, c in zip(names, configs)}
    return wait_all(processes, deadline)


def wait_all(processes: dict[str, subprocess.Popen], deadline: float) -> dict[str, int | None]:
    """Wait for every run; stop those still going at the deadline (their last checkpoint stays)."""
    while any(p.poll() is None for p in processes.values()) and time.monotonic() < deadline:
        time.sleep(2)
    for name, p in processes.items():
        if p.poll() is None:
            print(f"{name}: past its deadline, stopped", file=sys.stderr)
            p.terminate()
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
    return {name: p.returncode for name, p in processes.items()}


def parameters(run_dir: Path) -> int | None:
    checkpoint = run_dir / "model.safetensors"
    if not checkpoint.exists():
        return None
    from handseg_training.train import read_checkpoint

    state, _ = read_checkpoint(checkpoint)
    return sum(v.numel() for k, v in state.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))


def gather(out: Path, names: list[str], codes: dict[str, int | None]) -> dict:
    rows = {}
    for name in names:
        report_path = out / name / "report.json"
        row = {"exit_code": codes.get(name), "parameters": parameters(out / name)}
        if report_path.exists():
            report = json.loads(report_path.read_text())
            row.update({k: report[k] for k in ("device", "steps", "images_seen", "train_seconds") if k in report})
            row["eval"] = {k: {"iou": v["iou"], "images": v.get("images"),
                               "groups": {g: r["iou"] for g, r in v.get("groups", {}).items()}}
                           for k, v in report.get("eval", {}).items()}
        rows[name] = row
    (out / "comparison.json").write_text(json.dumps(rows, indent=2))
    (out / "comparison.md").write_text(markdown(rows))
    return rows


def markdown(rows: dict) -> str:
    sets = sorted({s for row in rows.values() for s in row.get("eval", {})})
    head = ["model", "parameters", "steps", "images seen", *sets, "skin groups (11k held-out)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in rows.items():
        evals = row.get("eval", {})
        groups = evals.get("hands11k_holdout", {}).get("groups", {})
        cells = [name, f"{row['parameters'] / 1e6:.1f} M" if row.get("parameters") else "-",
                 str(row.get("steps", "-")), str(row.get("images_seen", "-")),
                 *[f"{evals[s]['iou']:.3f}" if s in evals else "-" for s in sets],
                 ", ".join(f"{g} {v:.3f}" for g, v in groups.items()) or "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def pack(out: Path, names: list[str], target: Path) -> list[Path]:
    """fp16 copies of the checkpoints (one file each, at most 16 MiB) and one archive of the rest."""
    import torch
    from safetensors.torch import save_file

    from handseg_training.train import PART_BYTES, read_checkpoint

    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names:
        checkpoint = out / name / "model.safetensors"
        if not checkpoint.exists():
            continue
        state, meta = read_checkpoint(checkpoint)
        half = {k: (v.to(torch.float16) if v.is_floating_point() else v).contiguous() for k, v in state.items()}
        if sum(v.numel() * v.element_size() for v in half.values()) > PART_BYTES - 2**16:
            print(f"{name}: too large to travel in one 16 MiB file even in fp16; kept its report only", file=sys.stderr)
            continue
        path = target / f"{name}.fp16.safetensors"
        save_file(half, str(path), metadata={**meta, "parts": "1"})
        written.append(path)
    archive = target / "reports.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in ["comparison.json", "comparison.md"]:
            if (out / name).exists():
                tar.add(out / name, arcname=name)
        for name in names:
            for leaf in ["report.json", "train.log", "config.json"]:
                if (out / name / leaf).exists():
                    tar.add(out / name / leaf, arcname=f"{name}/{leaf}")
    written.append(archive)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m handseg_training.candidates", description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("runs/candidates"))
    parser.add_argument("--data-root")
    parser.add_argument("--minutes", type=float, help="time budget of each run [default: each config's]")
    parser.add_argument("--grace-minutes", type=float, default=3.0, help="for loading, evaluation and export")
    parser.add_argument("--encoder-weights-dir", type=Path)
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) // 4))
    parser.add_argument("--pack", type=Path)
    parser.add_argument("--data-seed", type=int,
                        help="seed of every run's batch draws (handseg train --data-seed) [default: each config's seed]")
    args = parser.parse_args()
    try:
        names = config_names(args.configs)
    except ValueError as error:
        parser.error(str(error))
    codes = train_side_by_side(args.configs, args.out, args.data_root, args.minutes, args.grace_minutes,
                               args.encoder_weights_dir, args.threads, args.data_seed)
    rows = gather(args.out, names, codes)
    print(markdown(rows))
    for name, code in codes.items():
        if code:
            print(f"{name}: exited with {code}; see {args.out / name / 'train.log'}", file=sys.stderr)
    if args.pack:
        for path in pack(args.out, names, args.pack):
            print(f"packed {path} ({path.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
