"""Benchmark: `dlbench report` (html) on the quickstart sweep and on a 1,000-trial sweep, each
timed as a whole process (start-up, imports, reading, statistics, figures, writing), repeated
and interleaved; prints the medians.

    python benchmarks/report_speed.py [--repeats 5] [--json FILE]

The 1,000-trial sweep: digits, MLP 32, 5 epochs, {sgd, momentum, rmsprop, adam} × 5 learning
rates (log 1e-3..1e-1) × 5 batch sizes (16..256) × 10 seeds: its report has every figure but
the performance profile (one problem).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIG = """
name = "big"
dataset = "digits"
model = { kind = "mlp", hidden = [32], activation = "relu" }
epochs = 5
seeds = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
[grid]
optimizer = ["sgd", "momentum", "rmsprop", "adam"]
lr = { log = [1e-3, 1e-1], num = 5 }
batch_size = [16, 32, 64, 128, 256]
"""


def run(args: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "dlbench", *args], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise SystemExit(f"dlbench {' '.join(args)} failed:\n{p.stderr}")
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", help="write the measurements here")
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "big.toml").write_text(BIG)
        run(["sweep", str(ROOT / "experiments" / "quickstart.toml"), "--out", str(tmp)], env)
        run(["sweep", str(tmp / "big.toml"), "--out", str(tmp)], env)
        times: dict[str, list[float]] = {"quickstart": [], "big": []}
        for _ in range(args.repeats):
            for name in times:
                times[name].append(run(["report", str(tmp / name), "--out", str(tmp / f"{name}.html")], env))
        sizes = {name: (tmp / f"{name}.html").stat().st_size for name in times}
    report = {name: {"seconds": t, "median": statistics.median(t), "html_bytes": sizes[name]}
              for name, t in times.items()}
    for name, r in report.items():
        trials = 48 if name == "quickstart" else 1000
        print(f"dlbench report, {name} ({trials} trials): median {r['median']:.2f} s over {args.repeats} "
              f"(runs: {', '.join(f'{t:.2f}' for t in r['seconds'])}); page {r['html_bytes'] / 1e6:.2f} MB")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
