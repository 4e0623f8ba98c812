"""Stress: kill -9 `dlbench sweep` at many different moments, resume each time, then check the
result equals an uninterrupted run's: same trial ids, same numbers, no duplicates, no half rows.

    python benchmarks/kill_stress.py [--kills 12] [--engine reference|auto] [--workers 2]

Kill moments are spread over the run: some during start-up (before any trial is stored),
most after a growing number of stored trials. Prints: N kills, lost, duplicated, equal.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SPEC = """
name = "stress"
dataset = "digits"
model = { kind = "mlp", hidden = [32], activation = "relu" }
epochs = 3
batch_size = 32
seeds = [0, 1, 2]
[grid]
optimizer = ["sgd", "momentum", "rmsprop", "adam"]
lr = [0.001, 0.01, 0.1]
"""
TIMING = ["train_time", "eval_time", "wall_time"]


def sweep_cmd(spec: Path, out: Path, engine: str, workers: int) -> list[str]:
    return [sys.executable, "-m", "dlbench", "sweep", str(spec), "--out", str(out), "--engine", engine,
            "--workers", str(workers)]


def records(out: Path) -> int:
    d = out / "stress" / "trials"
    return len(list(d.glob("*.json"))) if d.is_dir() else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=12)
    ap.add_argument("--engine", default="reference")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        spec = tmp / "stress.toml"
        spec.write_text(SPEC)
        clean = subprocess.run(sweep_cmd(spec, tmp / "clean", args.engine, args.workers), env=env,
                               capture_output=True, text=True)
        assert clean.returncode == 0, clean.stderr
        total = len(pd.read_parquet(tmp / "clean" / "stress" / "trials.parquet"))
        out = tmp / "killed"
        kills, moments = 0, []
        while kills < args.kills:
            before = records(out)
            p = subprocess.Popen(sweep_cmd(spec, out, args.engine, args.workers), env=env, start_new_session=True,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if kills % 4 == 0:
                time.sleep(0.2 + 0.15 * kills)  # during start-up or the first steps
                moment = "t+%.2fs" % (0.2 + 0.15 * kills)
            else:
                while p.poll() is None and records(out) < before + 1:
                    time.sleep(0.005)
                moment = f"after record {records(out)}"
            if p.poll() is not None:
                break  # the sweep finished before this kill
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            kills += 1
            moments.append(moment)
            if records(out) >= total:
                break
        final = subprocess.run(sweep_cmd(spec, out, args.engine, args.workers), env=env, capture_output=True,
                               text=True)
        assert final.returncode == 0, final.stderr
        a = pd.read_parquet(tmp / "clean" / "stress" / "trials.parquet").drop(columns=TIMING)
        b = pd.read_parquet(out / "stress" / "trials.parquet").drop(columns=TIMING)
        ha = pd.read_parquet(tmp / "clean" / "stress" / "history.parquet").drop(columns=TIMING[:2])
        hb = pd.read_parquet(out / "stress" / "history.parquet").drop(columns=TIMING[:2])
        lost = len(set(a.trial_id) - set(b.trial_id))
        duplicated = int(b.trial_id.duplicated().sum() + hb.duplicated(["trial_id", "epoch"]).sum())
        equal = _same(a, b, ["trial_id"]) and _same(ha, hb, ["trial_id", "epoch"])
        half = sum(1 for f in (out / "stress" / "trials").glob("*.json") if not _whole(f))
        print(f"{kills} kills ({', '.join(moments)})")
        print(f"{total} trials: {lost} lost, {duplicated} duplicated, {half} half-written records, "
              f"equal to the uninterrupted run: {equal}")
        return 0 if (kills >= min(args.kills, 10) and not lost and not duplicated and not half and equal) else 1


def _same(a: pd.DataFrame, b: pd.DataFrame, keys: list[str]) -> bool:
    return a.sort_values(keys).reset_index(drop=True).equals(b.sort_values(keys).reset_index(drop=True))


def _whole(path: Path) -> bool:
    try:
        json.loads(path.read_text())
        return True
    except ValueError:
        return False


if __name__ == "__main__":
    sys.exit(main())
