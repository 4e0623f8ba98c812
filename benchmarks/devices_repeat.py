"""Do two back-to-back `dlbench compare-devices --quick` runs agree? Runs it `--runs` times in a
row (each a fresh process, as a user would), then for every device, batch size and kind reports
the spread of the medians across runs: max/min - 1. The promise (docs/performance.md): within 15%
at every batch size on an idle machine; a point the run itself flagged noisy is counted apart.

    python benchmarks/devices_repeat.py [--runs 2] [--json FILE] [-- compare-devices flags]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
PROMISE = 0.15


def run_once(out: Path, name: str, extra: list[str]) -> tuple[pd.DataFrame, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dlbench", "compare-devices", "--quick", "--out", str(out), "--name", name,
                    *extra], check=True, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    return pd.read_parquet(out / name / "devices.parquet"), seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("extra", nargs="*", help="more compare-devices flags (after --)")
    args = ap.parse_args()
    frames, seconds = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            df, s = run_once(Path(tmp), f"run{i}", args.extra)
            frames.append(df.assign(run=i))
            seconds.append(s)
    rows = pd.concat(frames)
    rows = rows[rows["batch_size"].notna()]
    table = rows.pivot_table(index=["device", "kind", "batch_size"], columns="run", values="samples_per_s")
    noisy = rows.assign(flag=rows["noisy"] != "").groupby(["device", "kind", "batch_size"])["flag"].any()
    spread = (table.max(axis=1) / table.min(axis=1) - 1).rename("spread")
    out = pd.concat([table, spread, noisy.rename("flagged")], axis=1).reset_index()
    print(f"compare-devices --quick, {args.runs} runs back to back, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores; seconds per run: {', '.join(f'{s:.1f}' for s in seconds)}")
    print("| device | kind | batch | " + " | ".join(f"run {i + 1} samples/s" for i in range(args.runs))
          + " | spread | flagged noisy |")
    print("|---|---|---:|" + "---:|" * args.runs + "---:|---|")
    for r in out.itertuples(index=False):
        vals = " | ".join(f"{getattr(r, f'_{3 + i}'):,.0f}" for i in range(args.runs))
        print(f"| {r.device} | {r.kind} | {int(r.batch_size)} | {vals} | {100 * r.spread:.1f}% | "
              f"{'yes' if r.flagged else ''} |")
    worst = float(out["spread"].max())
    quiet = out[~out["flagged"]]
    worst_quiet = float(quiet["spread"].max()) if len(quiet) else float("nan")
    print(f"largest spread: {100 * worst:.1f}% (over points no run flagged: {100 * worst_quiet:.1f}%); "
          f"promise: within {100 * PROMISE:.0f}%: {'kept' if worst <= PROMISE else 'NOT kept'}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "runs": args.runs, "seconds_per_run": seconds, "cores": os.cpu_count(), "largest_spread": worst,
            "largest_spread_unflagged": worst_quiet, "points": json.loads(out.to_json(orient="records"))}, indent=2))


if __name__ == "__main__":
    main()
