"""Do two versions of dlbench give the same numbers? Runs presets with an earlier revision (checked
out with `git worktree` into a temporary folder) and with the working tree, then compares their
trials.parquet and history.parquet value by value: every column both have, timings left out, NaN
equal to NaN, floats compared bit for bit.

    python benchmarks/same_numbers.py --before e500870                  # quickstart and small-suite
    python benchmarks/same_numbers.py --before e500870 --presets smoke  # any preset names
    git show e500870:experiments/benchmarks/small-suite.toml > /tmp/old-suite.toml
    python benchmarks/same_numbers.py --before e500870 --presets /tmp/old-suite.toml  # one spec file for both

Exit code 0 when every number is identical, 1 otherwise (the differing columns are listed).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIMING = {"train_time", "eval_time", "wall_time", "time"}


def run(code_root: Path, preset: str, out: Path) -> float:
    """One whole `dlbench sweep` of a preset by name (each revision's own file) or of a spec file
    (the same file for both), with the code of `code_root`."""
    if Path(preset).is_file():
        preset = str(Path(preset).resolve())
    env = {**os.environ, "PYTHONPATH": str(code_root)}
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "dlbench", "sweep", preset, "--out", str(out)], cwd=code_root, env=env,
                       capture_output=True, text=True)
    if p.returncode not in (0, 1):  # 1: an [expect] line or a failed trial, still results
        raise SystemExit(f"{preset} at {code_root} exited {p.returncode}:\n{p.stderr[-2000:]}")
    return time.perf_counter() - t0


def differences(a, b, key: list[str]) -> list[str]:
    """Columns whose values differ between two tables (rows matched by `key`)."""
    import numpy as np

    a = a.sort_values(key).reset_index(drop=True)
    b = b.sort_values(key).reset_index(drop=True)
    if len(a) != len(b) or not (a[key].values == b[key].values).all():
        return [f"different rows: {len(a)} before, {len(b)} after"]
    out = []
    for c in sorted((set(a) & set(b)) - TIMING):
        x, y = a[c].to_numpy(), b[c].to_numpy()
        if x.dtype.kind == "f" and y.dtype.kind == "f":
            same = (x.view(np.int64) == y.view(np.int64)) | (np.isnan(x) & np.isnan(y))
            if not same.all():
                out.append(f"{c}: {int((~same).sum())} values differ (largest |diff| "
                           f"{np.nanmax(np.abs(x - y)):.3g})")
        elif not all(str(u) == str(v) for u, v in zip(x, y, strict=True)):
            out.append(f"{c}: {sum(str(u) != str(v) for u, v in zip(x, y, strict=True))} values differ")
    return out


def main() -> int:
    import pandas as pd

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True, help="a git revision of dlbench to compare the working tree with")
    ap.add_argument("--presets", default="quickstart,small-suite")
    args = ap.parse_args()
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(old), args.before], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            for preset in args.presets.split(","):
                tag = Path(preset).stem
                secs = {label: run(root, preset, Path(tmp) / f"out-{label}-{tag}")
                        for label, root in (("before", old), ("after", ROOT))}
                tables = {}
                for label in secs:
                    folder = next((Path(tmp) / f"out-{label}-{tag}").iterdir())
                    tables[label] = (pd.read_parquet(folder / "trials.parquet"),
                                     pd.read_parquet(folder / "history.parquet"))
                (t0, h0), (t1, h1) = tables["before"], tables["after"]
                diff = differences(t0, t1, ["trial_id"]) + [f"history {d}" for d in
                                                             differences(h0, h1, ["trial_id", "epoch"])]
                only = sorted(set(t0) ^ set(t1))
                print(f"{preset}: {len(t0)} trials, {len(h0)} history rows; {args.before} {secs['before']:.1f} s, "
                      f"working tree {secs['after']:.1f} s: " + ("identical" if not diff else "DIFFERENT")
                      + (f" (columns in one version only: {', '.join(only)})" if only else ""))
                for d in diff:
                    print(f"  {d}")
                bad += bool(diff)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, capture_output=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
