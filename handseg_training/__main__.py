"""`python -m handseg_training CONFIG --out DIR`: the same as `handseg train`."""

import argparse
import logging
from pathlib import Path

from handseg_training.config import load_config
from handseg_training.train import run

parser = argparse.ArgumentParser(prog="python -m handseg_training")
parser.add_argument("config")
parser.add_argument("--out", default="runs/latest")
parser.add_argument("--data-root")
parser.add_argument("--minutes", type=float)
parser.add_argument("--device", default="auto")
parser.add_argument("--cache", default="cache")
args = parser.parse_args()
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
cfg = load_config(args.config, {"data.root": args.data_root, "time_budget_minutes": args.minutes})
run(cfg, Path(args.out), args.device, Path(args.cache) if args.cache else None)
