"""From nothing to the shipped default in one command: train, average, export, quantise, measure.

    python -m handseg_training.ship --data-root ../shared/data --out runs/ship
        [CONFIG ...] [--data-seeds N ...] [--minutes M] [--encoder-weights-dir DIR] [--limit N]

The steps, each one of handseg's own tools, each writing under OUT:

1. the recipe's runs, side by side (`candidates`; default: the two configs of the shipped
   `handseg-lite2`, RECIPE, each trained twice, with the batches drawn from data seeds 0 and 1,
   SEEDS): OUT/runs/seed<N>/<config name>/model.safetensors (OUT/runs/<config name>/... for
   configs given without --data-seeds, which run once at their own seed);
2. their mean (`soup`; one run is used as it is): OUT/soup/model.safetensors, then, with the
   default recipe or --finetune CONFIG, that config trained further from it (`handseg train`
   with init_from the mean; FINETUNE): OUT/finetune/model.safetensors, and the mean of the two
   (--finetune-weight, the fine-tuned model's share): OUT/finetune/mean/model.safetensors;
3. the float model (`handseg export --half`): OUT/models/<name>.onnx;
4. the int8 default (`handseg quantize`, on the photos of CALIBRATION): OUT/models/<name>-int8.onnx,
   the folder's default (where its masks disagree with the float model's, as an untrained
   model's do, the float model is the default, is measured, and the command ends with an error);
5. both measured on the dev sets found under the data root (`devsets`, and the out-of-domain set
   of research/oodset.py where --ood or DATA/ood holds one): their IoU goes into OUT/models/index.json as
   the models' metrics, each photo's into OUT/eval/<model>.json (for research/paired.py), a table into
   OUT/report.md.

A step of 1-4 whose output exists is not run again (it says so), so a stopped run picks up where
it stopped (the measuring, step 5, runs every time); --fresh deletes what an earlier call wrote there (and nothing else) first. Use the
result by name:

    HANDSEG_MODELS=OUT/models HANDSEG_DEFAULT_MODEL=<name>-int8 handseg mask photo.jpg

or copy it into the package with `handseg export`/`handseg quantize --register handseg_core/models`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

from handseg_training.config import load_config

CONFIGS = Path(__file__).parent / "configs"
RECIPE = (CONFIGS / "lite2-gpu.toml", CONFIGS / "lite2-own20-gpu.toml")
SEEDS = (0, 1)  # the recipe's data seeds: each config trained once per seed, all four averaged
FINETUNE = CONFIGS / "lite2-finetune-cpu.toml"  # the recipe's last training step, from the mean
NAME = "handseg-lite2"
# What `handseg quantize` calibrated the shipped int8 on, under the data root: hands, faces (not
# those whose file name ends in 0, kept for the out-of-domain set) and backgrounds.
CALIBRATION = ("egohands_400/images", "massey_asl/images", "sign_digits/images", "backgrounds/bsds500",
               "faces_utk/images/*[1-9].jpg")


def say(message: str) -> None:
    print(message, flush=True)


def reusing(step: int, what: str, path: Path, reused: list[int]) -> None:
    say(f"{step}. reusing {what}{path}")
    if step not in reused:
        reused.append(step)


def run_folder(out: Path, seed: int | None) -> Path:
    """Where step 1 trains the runs of data seed `seed` (None: each config's own seed)."""
    return out / "runs" if seed is None else out / "runs" / f"seed{seed}"


def train_runs(configs: list[Path], out: Path, args, reused: list[int]) -> list[Path]:
    """Step 1: the checkpoints of `configs`, one per data seed, trained side by side where missing
    (the runs of one seed together, the seeds one after the other)."""
    from handseg_training import candidates as C

    try:
        names = C.config_names(configs)
    except ValueError as error:
        raise SystemExit(f"ship: {error}") from None
    checkpoints = []
    for seed in args.data_seeds:
        folder = run_folder(out, seed)
        mine = [folder / name / "model.safetensors" for name in names]
        todo = [(name, config) for name, config, ckpt in zip(names, configs, mine) if not ckpt.exists()]
        for name, ckpt in zip(names, mine):
            if ckpt.exists():
                reusing(1, f"{name}: ", ckpt, reused)
        if todo:
            minutes = max(args.minutes or load_config(c).time_budget_minutes for _, c in todo)
            seeded = "" if seed is None else f" with data seed {seed}"
            say(f"1. training {', '.join(n for n, _ in todo)}{seeded} side by side (about {minutes:g} minutes "
                f"each; logs in {folder}/<name>/train.log)")
            codes = C.train_side_by_side([c for _, c in todo], folder, args.data_root, args.minutes,
                                         args.grace_minutes, args.encoder_weights_dir, args.threads, seed)
            rows = C.gather(folder, names, {n: codes.get(n, 0) for n in names})
            say(C.markdown(rows))
        for name, ckpt in zip(names, mine):
            if not ckpt.exists():
                raise SystemExit(f"ship: {name} left no checkpoint; see {ckpt.parent / 'train.log'}")
        checkpoints += mine
    return checkpoints


def average_runs(checkpoints: list[Path], out: Path, name: str, reused: list[int]) -> Path:
    """Step 2: the uniform mean of the checkpoints (a running mean: the k-th enters at 1/k)."""
    from handseg_training.soup import soup

    if len(checkpoints) == 1:
        say(f"2. one run: {checkpoints[0]} is the model")
        return checkpoints[0]
    target = out / "soup" / "model.safetensors"
    if target.exists():
        reusing(2, "the mean ", target, reused)
        return target
    mean = checkpoints[0]
    for k, checkpoint in enumerate(checkpoints[1:], start=2):
        step = target if k == len(checkpoints) else out / "soup" / f"mean-of-{k}" / "model.safetensors"
        soup(mean, checkpoint, 1.0 / k, step, name)
        mean = step
    say(f"2. averaged {len(checkpoints)} runs' weights into {target}")
    return target


def finetune(mean: Path, config: Path, out: Path, data_root: Path, name: str, weight: float,
             reused: list[int]) -> Path:
    """Step 2, continued: `config` trained from the mean's weights, then averaged with them
    (`weight`: the fine-tuned model's share; 1 keeps it alone)."""
    from handseg_training.soup import soup

    tuned = train_from(mean, config, out / "finetune" / "model.safetensors", data_root, name, reused)
    if weight == 1.0:
        return tuned
    target = out / "finetune" / "mean" / "model.safetensors"
    if target.exists():
        reusing(2, "the mean with the fine-tuned model ", target, reused)
        return target
    soup(mean, tuned, weight, target, name)
    say(f"2. averaged: {1 - weight:g} x the mean + {weight:g} x the fine-tuned model: {target}")
    return target


def train_from(mean: Path, config: Path, target: Path, data_root: Path, name: str, reused: list[int]) -> Path:
    from handseg_training.train import run

    if target.exists():
        reusing(2, "the fine-tuned model ", target, reused)
        return target
    cfg = load_config(config, {"init_from": str(mean), "data.root": str(data_root), "name": name})
    say(f"2. training {config.name} from the mean ({cfg.max_steps} steps at most, {cfg.time_budget_minutes:g} "
        f"minutes at most; log in {target.parent / 'train.log'})")
    target.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(target.parent / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logger = logging.getLogger("handseg_training")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    try:
        report = run(cfg, target.parent, cache_dir=Path("cache"))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
        handler.close()
    say(f"2. trained {report['steps']} steps in {report['train_seconds'] / 60:.1f} minutes: {target}")
    return target


def export_float(checkpoint: Path, models: Path, name: str, reused: list[int]):
    """Step 3: the float model, fp16 weights, listed in `models`/index.json."""
    from handseg_training.export import export, register
    from handseg_training.train import load_checkpoint

    path = models / f"{name}.onnx"
    if path.exists():
        reusing(3, "", path, reused)
        return listed(models, name)
    model, cfg = load_checkpoint(checkpoint)
    spec = export(model, cfg, path, name=name, half=True)
    register(spec, models)
    say(f"3. exported {path} (sha256 {spec.sha256[:12]}...)")
    return spec


def quantize_default(float_spec, models: Path, data_root: Path, name: str, reused: list[int]):
    """Step 4: the int8 model, calibrated on CALIBRATION, the default of `models`."""
    from handseg_training.onnx_files import register
    from handseg_training.quantize import gather_photos, quantize

    path = models / f"{name}.onnx"
    if path.exists():
        reusing(4, "", path, reused)
        return listed(models, name)
    sources = []
    for pattern in CALIBRATION:
        found = sorted(data_root.glob(pattern)) if any(c in pattern for c in "*?[") else [data_root / pattern]
        found = [p for p in found if p.exists()]
        if not found:
            say(f"4. calibration: nothing at {data_root / pattern}; going on without it")
        sources += found
    say("4. quantising (calibration: a few minutes)")
    result = quantize(str(float_spec.path), gather_photos(sources), path, name=name)
    register(result.spec, models, default=True)
    say(f"4. wrote {path}: masks agree with the float model's at {result.agreement:.3f} IoU on "
        f"{result.photos} calibration photos; one pass, one thread: {result.int8_ms:.0f} ms (float {result.float_ms:.0f})")
    return result.spec


def listed(models: Path, name: str):
    """The entry of `name` in `models`/index.json, as a spec."""
    from handseg_core.registry import read_index

    for spec in read_index(models):
        if spec.name == name:
            return spec
    raise SystemExit(f"ship: {models / 'index.json'} does not list {name}; run again with --fresh")


def dev_sets(data_root: Path, ood: Path | None) -> list[str]:
    """The dev sets of `devsets` that `data_root` holds, then the out-of-domain set's two halves."""
    from handseg_training.devsets import sets_under

    sets = sets_under(data_root)
    if ood is not None:
        sets += [str(ood / half) for half in ("closeups", "hands_over_faces") if (ood / half).is_dir()]
    return sets


def measure(specs: list, models: Path, out: Path, data_root: Path, ood: Path | None, limit: int | None,
            default: str) -> dict:
    """Step 5: each model's IoU on the dev sets, into its index entry and OUT/eval/<name>.json."""
    from handseg_training.devsets import measure as measure_model
    from handseg_training.onnx_files import register

    sets = dev_sets(data_root, ood)
    if not sets:
        say(f"5. no dev sets under {data_root}; not measured")
        return {}
    table = {}
    for spec in specs:
        say(f"5. measuring {spec.name} on {len(sets)} sets" + (f" ({limit} photos a set at most)" if limit else ""))
        results = measure_model(str(spec.path), data_root, sets, limit=limit)
        (out / "eval").mkdir(parents=True, exist_ok=True)
        (out / "eval" / f"{spec.name}.json").write_text(json.dumps(results, indent=1) + "\n")
        metrics = {_short(s): {k: v for k, v in r.items() if k not in ("per_image", "seconds")} for s, r in results.items()}
        register(replace(listed(models, spec.name), metrics=metrics), models, default=spec.name == default)
        table[spec.name] = {s: r["iou"] for s, r in metrics.items()}
    return table


def _short(name: str) -> str:
    """A set's name for the metrics: the out-of-domain halves as `ood_closeups`, ..."""
    path = Path(name)
    return f"ood_{path.name}" if path.is_absolute() or len(path.parts) > 1 else name


def report(table: dict, out: Path, started: float, reused: list[int]) -> Path:
    sets = list(dict.fromkeys(s for row in table.values() for s in row))
    steps = ", ".join(map(str, sorted(reused)))
    lines = [f"# {out}", "",
             f"Trained, averaged, exported, quantised and measured by `python -m handseg_training.ship`: "
             f"{(time.monotonic() - started) / 60:.1f} minutes in its last call"
             + (f", which reused the output of step {steps} from an earlier one." if reused else "."), "",
             "Mean per-photo hand IoU (`devsets`; each photo's in eval/).", "",
             "| model | " + " | ".join(sets) + " |", "|---|" + "---|" * len(sets)]
    lines += [f"| {name} | " + " | ".join(f"{row.get(s, float('nan')):.3f}" for s in sets) + " |"
              for name, row in table.items()]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def forget(out: Path, names: list[str]) -> None:
    """Delete what `main` writes in `out` for runs `names`, and nothing else there."""
    runs = [out / "runs", *sorted((out / "runs").glob("seed*"))]
    for folder in [*(r / name for r in runs for name in names), out / "soup", out / "finetune", out / "models",
                   out / "eval"]:
        if folder.is_dir():
            shutil.rmtree(folder)
    (out / "report.md").unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m handseg_training.ship", description=__doc__.split("\n\n")[0])
    parser.add_argument("configs", nargs="*", type=Path, help="the runs to average [default: the shipped recipe's two]")
    parser.add_argument("--out", type=Path, default=Path("runs/ship"), help="where everything goes [default: runs/ship]")
    parser.add_argument("--data-root", default="../shared/data", help="the training data [default: ../shared/data]")
    parser.add_argument("--ood", type=Path, help="an oodset folder [default: DATA/ood where it exists]")
    parser.add_argument("--finetune", help="a config to train further from the mean, or 'none' "
                                           "[default: FINETUNE with the default recipe, else none]")
    parser.add_argument("--finetune-weight", type=float, default=0.5,
                        help="the fine-tuned model's share in its mean with the model it started from; "
                             "1: the fine-tuned model alone [default: 0.5]")
    parser.add_argument("--name", default=NAME, help=f"the float model's name; the int8's adds -int8 [default: {NAME}]")
    parser.add_argument("--minutes", type=float, help="time budget of each run [default: each config's]")
    parser.add_argument("--grace-minutes", type=float, default=3.0, help="for loading, evaluation and export")
    parser.add_argument("--encoder-weights-dir", type=Path,
                        help="ImageNet encoder weights as ENCODER.safetensors, instead of the lite packages")
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) // 4),
                        help="CPU threads of each training run [default: a quarter of the cores]")
    parser.add_argument("--data-seeds", type=int, nargs="+", metavar="N",
                        help="train each config once per seed of its batch draws, and average them all "
                             f"[default: {' '.join(map(str, SEEDS))} with the default recipe, else each config's own seed]")
    parser.add_argument("--limit", type=int, help="photos a dev set at most [default: all]")
    parser.add_argument("--fresh", action="store_true",
                        help="delete what an earlier call wrote in OUT instead of reusing it (nothing else there)")
    args = parser.parse_args(argv)
    from handseg_training.onnx_files import register

    configs = args.configs or list(RECIPE)
    if args.data_seeds is None:
        args.data_seeds = [None] if args.configs else list(SEEDS)
    elif len(set(args.data_seeds)) < len(args.data_seeds):
        parser.error(f"--data-seeds {' '.join(map(str, args.data_seeds))}: give each seed once")
    if not 0.0 < args.finetune_weight <= 1.0:
        parser.error(f"--finetune-weight {args.finetune_weight}: give a share in (0, 1]")
    if args.finetune is None:
        args.finetune = None if args.configs else FINETUNE
    elif args.finetune == "none":
        args.finetune = None
    else:
        args.finetune = Path(args.finetune)
        if not args.finetune.is_file():
            parser.error(f"--finetune {args.finetune}: no such config")
    for config in configs:
        if not config.is_file():
            parser.error(f"{config}: no such config")
    data_root = Path(args.data_root)
    if not data_root.is_dir():
        parser.error(f"--data-root {data_root}: no such folder (the training data; see docs/training.md)")
    ood = args.ood or (data_root / "ood" if (data_root / "ood").is_dir() else None)
    if args.fresh:
        forget(args.out, [load_config(c).name for c in configs])
    started = time.monotonic()
    models = args.out / "models"
    reused: list[int] = []
    try:
        checkpoints = train_runs(configs, args.out, args, reused)
        mean = average_runs(checkpoints, args.out, args.name, reused)
        if args.finetune is not None:
            mean = finetune(mean, args.finetune, args.out, data_root, args.name, args.finetune_weight, reused)
        float_spec = export_float(mean, models, args.name, reused)
    except (OSError, ValueError, RuntimeError) as error:
        raise SystemExit(f"ship: {str(error).splitlines()[0]}") from None
    failed = ""
    try:
        specs = [quantize_default(float_spec, models, data_root, f"{args.name}-int8", reused), float_spec]
    except (OSError, ValueError) as error:  # e.g. a model trained too briefly for its int8 masks to agree
        failed = f"ship: no int8 model: {str(error).splitlines()[0]}"
        say(f"4. {failed}; the float model is the folder's default")
        specs = [float_spec]
        register(listed(models, float_spec.name), models, default=True)
    table = measure(specs, models, args.out, data_root, ood, args.limit, specs[0].name)
    if table:
        say(f"wrote {report(table, args.out, started, reused)}")
    say(f"done: HANDSEG_MODELS={models} HANDSEG_DEFAULT_MODEL={specs[0].name} handseg mask PHOTO")
    if failed:
        raise SystemExit(failed)


if __name__ == "__main__":
    sys.exit(main())
