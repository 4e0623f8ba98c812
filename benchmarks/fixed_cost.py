"""Benchmark: what a sweep costs before and after its training, against `import torch`.

Interleaved, each a whole process: (t) `python -c "import torch"`, (s) `dlbench sweep` of one trial
of one epoch (digits, the default MLP, adam, lr 0.01). Prints the medians and s/t, and with
--timeline where one run of (s) spends its time (DLBENCH_TIMELINE: each process's milestones).

    python benchmarks/fixed_cost.py [--repeats 5] [--timeline] [--json docs/fixed-cost.json]
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
SWEEP = ["--dataset", "digits", "--optimizer", "adam", "--lr", "0.01", "--epochs", "1", "--seeds", "0",
         "--name", "one"]


def timed(cmd: list[str], env=None) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT, env=env)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--timeline", action="store_true", help="also show where one sweep's time goes")
    ap.add_argument("--json", help="write the measurements here")
    a = ap.parse_args()
    torch_s, sweep_s = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(a.repeats):
            torch_s.append(timed([sys.executable, "-c", "import torch"]))
            sweep_s.append(timed([sys.executable, "-m", "dlbench", "sweep", *SWEEP, "--out", f"{tmp}/r{i}"]))
            print(f"repeat {i + 1}: import torch {torch_s[-1]:.2f} s, one-trial sweep {sweep_s[-1]:.2f} s", flush=True)
        timeline = []
        if a.timeline:
            log = Path(tmp) / "timeline.txt"
            t0 = time.time()
            timed([sys.executable, "-m", "dlbench", "sweep", *SWEEP, "--out", f"{tmp}/timeline"],
                  env={**os.environ, "DLBENCH_TIMELINE": str(log)})
            for line in log.read_text().splitlines():
                t, pid, label = line.split(" ", 2)
                timeline.append((round(float(t) - t0, 3), int(pid), label))
    mt, ms = statistics.median(torch_s), statistics.median(sweep_s)
    print(f"\nmedians of {a.repeats}: import torch {mt:.2f} s, one-trial sweep {ms:.2f} s: {ms / mt:.2f}× import torch")
    for t, pid, label in timeline:
        print(f"  {t:6.3f} s  pid {pid}  {label}")
    if a.json:
        Path(a.json).write_text(json.dumps({"import_torch": torch_s, "one_trial_sweep": sweep_s,
                                            "ratio_of_medians": ms / mt, "timeline": timeline}, indent=1) + "\n")


if __name__ == "__main__":
    main()
