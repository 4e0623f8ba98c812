"""Simulation: how often each interval dlbench offers covers the true mean over seeds, and how
often its verdict calls one of two identical optimizers better, by seed count and by the shape of
the seed-to-seed variation. The truth is known because the seed values are drawn from a known
distribution. Prints a markdown table (docs/statistics.md quotes it).

    python benchmarks/ci_coverage.py [--reps 4000] [--json FILE]

Distributions (each the values of one configuration over its seeds):
  normal     N(0.9, 0.02²): an accuracy that varies a little from seed to seed
  lognormal  exp(N(0, 1)): skewed, as a loss or a time can be
  mixture    one seed in five far off: N(0.9, 0.01²) with probability 0.8, N(0.5, 0.01²) with 0.2
             (a seed that gets stuck)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dlbench import stats  # noqa: E402

DISTRIBUTIONS = {
    "normal": (lambda rng, size: rng.normal(0.9, 0.02, size), 0.9),
    "lognormal": (lambda rng, size: np.exp(rng.normal(0.0, 1.0, size)), math.exp(0.5)),
    "mixture": (lambda rng, size: np.where(rng.random(size) < 0.8, rng.normal(0.9, 0.01, size),
                                           rng.normal(0.5, 0.01, size)), 0.8 * 0.9 + 0.2 * 0.5),
}
NS = (3, 5, 10, 20, 40)
METHODS = ("t", "bootstrap")


def coverage(method: str, draw, truth: float, n: int, reps: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, reps, 250):  # blocks: the bootstrap resamples every row 9,999 times
        samples = draw(rng, (min(250, reps - start), n))
        low, high = stats.intervals(list(samples), method)
        hits += int(((low <= truth) & (truth <= high)).sum())
    return hits / reps


def false_better(method: str, draw, n: int, reps: int, seed: int) -> float:
    """Share of pairs of identical optimizers that the verdict calls 'better' (one pair: no adjustment)."""
    rng = np.random.default_rng(seed)
    called = 0
    for _ in range(reps):
        a, b = draw(rng, n), draw(rng, n)
        called += stats.difference(a, b, method).p_value < stats.ALPHA
    return called / reps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=4000)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows = []
    for name, (draw, truth) in DISTRIBUTIONS.items():
        for method in METHODS:
            for n in NS:
                reps = args.reps if method == "t" else max(1000, args.reps // 2)
                cov = coverage(method, draw, truth, n, reps, seed=n)
                fp = false_better(method, draw, n, min(reps, 2000), seed=100 + n)
                rows.append({"distribution": name, "method": method, "n": n, "coverage": cov, "false_better": fp,
                             "reps": reps})
                print(f"{name:9s} {method:9s} N={n:2d}: coverage {cov:.1%}, false 'better' {fp:.1%} ({reps} reps)",
                      file=sys.stderr)
    print("| distribution | method | " + " | ".join(f"N = {n}" for n in NS) + " |")
    print("|---|---|" + "---|" * len(NS))
    for name in DISTRIBUTIONS:
        for method in METHODS:
            cells = [r for r in rows if r["distribution"] == name and r["method"] == method]
            print(f"| {name} | {method} | " + " | ".join(f"{r['coverage']:.1%} ({r['false_better']:.1%})"
                                                        for r in cells) + " |")
    print("\ncells: coverage of the 95% interval of the mean (share of pairs of identical optimizers called "
          "'better' at the 5% level)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
