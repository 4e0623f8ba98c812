"""Soak: end `dlbench sweep` with SIGTERM, SIGINT and SIGKILL at random moments, resume each
time, and check that nothing was lost, nothing ran twice and no process outlived its driver.

    python benchmarks/kill_stress.py [--kills 30] [--engine reference|auto] [--workers 2] [--seed 0]

Each round starts the sweep in its own session, waits a random time (seeded: during start-up,
or after a random number of newly stored trials), sends one signal to the driver only (as
timeout, systemd and Slurm do), then checks: the exit code (143, 130 or -9), the one-line resume
hint for SIGTERM and SIGINT, and that no process is left in the session 5 s later. At the end it
resumes once more and compares with an uninterrupted run (when a round lets the sweep finish, the
next starts in a fresh folder; stored trials are counted each round, so none can vanish unseen).
Prints: kills per signal, trials lost, trials duplicated, processes orphaned, wrong exit codes,
equal to the uninterrupted run; exits 1 unless all of them are 0 and the results are equal.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
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
SIGNALS = {"SIGTERM": (signal.SIGTERM, 143), "SIGINT": (signal.SIGINT, 130), "SIGKILL": (signal.SIGKILL, -9)}


def sweep_cmd(spec: Path, out: Path, engine: str, workers: int) -> list[str]:
    return [sys.executable, "-m", "dlbench", "sweep", str(spec), "--out", str(out), "--engine", engine,
            "--workers", str(workers)]


def records(out: Path) -> int:
    d = out / "stress" / "trials"
    return len(list(d.glob("*.json"))) if d.is_dir() else 0


def in_session(sid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getsid(int(entry)) == sid:
                    pids.append(int(entry))
            except OSError:
                pass
    return pids


def orphans_after(sid: int, seconds: float = 5.0) -> list[int]:
    """Processes still in the session `seconds` after its leader ended (then killed, so the soak goes on)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and in_session(sid):
        time.sleep(0.1)
    left = in_session(sid)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return left


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=30)
    ap.add_argument("--engine", default="reference")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    rng = random.Random(args.seed)
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
        sent: Counter = Counter()
        orphaned, wrong_codes, missing_hint, rounds, dropped = 0, [], 0, 0, 0
        while sum(sent.values()) < args.kills:
            if records(out) >= total:  # finished: start over in a fresh folder, the soak goes on
                shutil_rmtree(out)
            name = list(SIGNALS)[rounds % 3]
            rounds += 1
            sig, want = SIGNALS[name]
            before = records(out)
            p = subprocess.Popen(sweep_cmd(spec, out, args.engine, args.workers), env=env, start_new_session=True,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if rng.random() < 0.3:
                time.sleep(rng.uniform(0.05, 2.0))  # during start-up or the first unit
            else:
                more = rng.randint(1, 4)
                while p.poll() is None and records(out) < min(total, before + more):
                    time.sleep(0.005)
                time.sleep(rng.uniform(0.0, 0.3))  # mid-unit, or between units
            if p.poll() is not None:
                continue  # it finished before the signal: not a kill
            os.kill(p.pid, sig)
            try:
                _, err = p.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                _, err = p.communicate()
            sent[name] += 1
            if p.returncode != want:
                wrong_codes.append((name, p.returncode))
            if name != "SIGKILL" and "run the same command to resume" not in err:
                missing_hint += 1
            orphaned += len(orphans_after(p.pid))
            dropped += max(0, before - records(out))  # a stored trial never disappears
        final = subprocess.run(sweep_cmd(spec, out, args.engine, args.workers), env=env, capture_output=True,
                               text=True)
        assert final.returncode == 0, final.stderr
        a = pd.read_parquet(tmp / "clean" / "stress" / "trials.parquet").drop(columns=TIMING)
        b = pd.read_parquet(out / "stress" / "trials.parquet").drop(columns=TIMING)
        ha = pd.read_parquet(tmp / "clean" / "stress" / "history.parquet").drop(columns=TIMING[:2])
        hb = pd.read_parquet(out / "stress" / "history.parquet").drop(columns=TIMING[:2])
        lost = len(set(a.trial_id) - set(b.trial_id)) + dropped
        duplicated = int(b.trial_id.duplicated().sum() + hb.duplicated(["trial_id", "epoch"]).sum())
        equal = _same(a, b, ["trial_id"]) and _same(ha, hb, ["trial_id", "epoch"])
        half = sum(1 for f in (out / "stress" / "trials").glob("*.json") if not _whole(f))
        figures = {"kills": dict(sent), "trials": total, "lost": lost, "duplicated": duplicated,
                   "half_written": half, "orphaned": orphaned, "wrong_exit_codes": wrong_codes,
                   "missing_resume_hint": missing_hint, "equal_to_uninterrupted": equal,
                   "engine": args.engine, "workers": args.workers, "seed": args.seed}
        print(f"{sum(sent.values())} kills ({', '.join(f'{k} {v}' for k, v in sent.items())}), {total} trials: "
              f"{lost} lost, {duplicated} duplicated, {half} half-written records, {orphaned} processes orphaned, "
              f"{len(wrong_codes)} wrong exit codes, {missing_hint} without the resume line; equal to the "
              f"uninterrupted run: {equal}")
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=2))
        ok = (not lost and not duplicated and not half and not orphaned and not wrong_codes and not missing_hint
              and equal)
        return 0 if ok else 1


def shutil_rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


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
