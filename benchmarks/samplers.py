"""Benchmark: TPE (Optuna) against Sobol and a grid at equal budgets.

Momentum SGD on three embedded problems (digits, MNIST-1D, diabetes), an MLP with 64 ReLU units,
5 epochs, one training seed; the space is lr log [1e-4, 1] × momentum lin [0, 0.99]; each method
trains 24 configurations per problem:

  grid   6 × 4 (6 log-spaced lrs × momentum 0, 0.33, 0.66, 0.99)
  sobol  24 scrambled Sobol points (search seed S)
  tpe    24 points asked by Optuna's TPE (its first 10 at random, as TPE starts), 4 at a time (sampler seed S)

It prints, per problem, the best validation number each reached (validation accuracy, or
validation loss for diabetes), the median over sampler seeds 0, 1, 2 for sobol and tpe.

    python benchmarks/samplers.py [--seeds 3] [--json docs/samplers.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBLEMS = {"digits": ("best_val_acc", max), "mnist1d": ("best_val_acc", max), "diabetes": ("best_val_loss", min)}

BASE = """
name = "{name}"
dataset = ["digits", "mnist1d", "diabetes"]
model = {{ kind = "mlp", hidden = [64], activation = "relu" }}
epochs = 5
batch_size = 32
seeds = [0]
optimizer = "momentum"
"""


def spec(method: str, seed: int) -> str:
    text = BASE.format(name=f"{method}-{seed}")
    if method == "grid":
        return text + "[grid]\nlr = { log = [1e-4, 1.0], num = 6 }\nmomentum = { lin = [0.0, 0.99], num = 4 }\n"
    text += "[grid]\nlr = { log = [1e-4, 1.0] }\nmomentum = { lin = [0.0, 0.99] }\n\n[search]\n"
    if method == "sobol":
        return text + f'kind = "sobol"\nbudget = 24\nseed = {seed}\n'
    return text + f'kind = "optuna"\nsampler = "tpe"\nbudget = 24\nbatch = 4\nseed = {seed}\n'


def best(folder: Path) -> dict[str, float]:
    import pandas as pd

    t = pd.read_parquet(folder / "trials.parquet")
    return {p: float(pick(t[t.dataset == p][col])) for p, (col, pick) in PROBLEMS.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--json", help="write the measurements here")
    a = ap.parse_args()
    results: dict[str, list[dict]] = {"grid": [], "sobol": [], "tpe": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for method in results:
            for seed in range(1 if method == "grid" else a.seeds):
                f = tmp / f"{method}-{seed}.toml"
                f.write_text(spec(method, seed))
                subprocess.run([sys.executable, "-m", "dlbench", "sweep", str(f), "--out", str(tmp)], check=True,
                               capture_output=True, cwd=ROOT)
                results[method].append(best(tmp / f"{method}-{seed}"))
    print("best validation reached with 24 configurations per problem (median over sampler seeds):")
    print(f"{'problem':10} {'metric':14} {'grid':>8} {'sobol':>8} {'tpe':>8}")
    summary = {}
    for p, (col, _) in PROBLEMS.items():
        med = {m: statistics.median(r[p] for r in rs) for m, rs in results.items()}
        summary[p] = med
        print(f"{p:10} {col:14} {med['grid']:8.4f} {med['sobol']:8.4f} {med['tpe']:8.4f}")
    if a.json:
        Path(a.json).write_text(json.dumps({"runs": results, "median": summary}, indent=1) + "\n")


if __name__ == "__main__":
    main()
