"""Compare two models photo by photo on the same sets, with a bootstrap interval.
Found: most recipe differences are within a single run's bootstrap interval (e.g. close-ups
+0.005, -0.000 to +0.013); a choice needs a paired interval off zero.

    python -m handseg_training.devsets A.onnx --sets ... --json a.json
    python -m handseg_training.devsets B.onnx --sets ... --json b.json
    python -m research.paired a.json b.json

Two models' means over a few hundred photos differ by chance as well as by merit; pairing the
photos takes out how hard each photo is, and the interval says whether what is left is more than
chance. Per set: the mean IoU of each, B minus A, its 95% bootstrap interval
(photos resampled with replacement), and how many photos B does better or worse on.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Paired:
    """B against A on the photos both were measured on."""

    photos: int
    mean_a: float
    mean_b: float
    difference: float
    low: float
    high: float
    better: int
    worse: int

    @property
    def significant(self) -> bool:
        """The 95% interval leaves out zero."""
        return self.low > 0 or self.high < 0


def compare(a: dict[str, float], b: dict[str, float], resamples: int = 10_000, seed: int = 0,
            tie: float = 1e-3) -> Paired:
    """B's per-photo IoUs against A's, on the photos both hold; a photo within `tie` is neither better nor worse.

    Raises:
        ValueError: the two share no photo.
    """
    common = sorted(a.keys() & b.keys())
    if not common:
        raise ValueError("the two measurements share no photo: were they made on the same set?")
    ia = np.array([a[k] for k in common])
    ib = np.array([b[k] for k in common])
    delta = ib - ia
    rng = np.random.default_rng(seed)
    means = delta[rng.integers(0, len(delta), size=(resamples, len(delta)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return Paired(len(common), float(ia.mean()), float(ib.mean()), float(delta.mean()), float(low), float(high),
                  int((delta > tie).sum()), int((delta < -tie).sum()))


def compare_files(path_a: Path, path_b: Path, resamples: int = 10_000) -> dict[str, Paired]:
    """Every set that both `devsets --json` files measured, compared photo by photo.

    Raises:
        SystemExit: a file cannot be read, holds no per-photo IoUs, or the files share no set.
    """
    runs = []
    for path in (path_a, path_b):
        try:
            runs.append(json.loads(Path(path).read_text()))
        except (OSError, ValueError) as error:
            raise SystemExit(f"paired: cannot read {path}: {error}") from None
    shared = [name for name in runs[0] if name in runs[1]]
    if not shared:
        raise SystemExit(f"paired: {path_a} and {path_b} share no set")
    results = {}
    for name in shared:
        if "per_image" not in runs[0][name] or "per_image" not in runs[1][name]:
            raise SystemExit(f"paired: set {name} has no per-photo IoUs; measure again with this "
                             "version of handseg_training.devsets")
        results[name] = compare(runs[0][name]["per_image"], runs[1][name]["per_image"], resamples)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m research.paired", description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path, help="devsets --json of the reference model")
    parser.add_argument("b", type=Path, help="devsets --json of the model compared with it")
    parser.add_argument("--resamples", type=int, default=10_000)
    args = parser.parse_args()
    results = compare_files(args.a, args.b, args.resamples)
    print("| set | photos | A | B | B - A | 95% interval | B better | B worse |")
    print("|---|---|---|---|---|---|---|---|")
    for name, p in results.items():
        mark = " *" if p.significant else ""
        print(f"| {Path(name).name} | {p.photos} | {p.mean_a:.3f} | {p.mean_b:.3f} | {p.difference:+.3f}{mark} | "
              f"{p.low:+.3f} to {p.high:+.3f} | {p.better} | {p.worse} |")


if __name__ == "__main__":
    main()
