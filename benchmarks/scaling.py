"""How a sweep's cost grows with its size: `dlbench sweep` on R32, R128 and R1024 (digits, MLP
64-128-128-10, 10 epochs, batch 32; 4 optimizers × 4 or 16 lrs × 2 or 16 seeds), whole process,
with the peak memory of the whole process tree (driver, forkserver and workers, their resident
memory summed, sampled every 50 ms from /proc).

    python benchmarks/scaling.py [--grids R32,R128,R1024] [--repeats 3] [--workers 2] [--json out.json]

Repeats are interleaved (R32, R128, R1024, R32, ...) so that a machine that changes speed for a
while does not land on one grid; the medians are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from fused_vs_loops import spec_toml  # noqa: E402
from naive_loop import configs  # noqa: E402


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        stack += children.get(p, [])
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def run(grid: str, workers: int, folder: Path) -> tuple[float, int]:
    """(seconds, peak resident bytes of the process tree) of one whole `dlbench sweep`."""
    spec = folder / f"{grid}.toml"
    spec.write_text(spec_toml(grid, "cpu"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "dlbench", "sweep", str(spec), "--out", str(folder / "out"),
                          "--workers", str(workers), "--fresh"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         env=env)
    peak = [0]

    def sample():
        while p.poll() is None:
            peak[0] = max(peak[0], tree_rss(p.pid))
            time.sleep(0.05)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    _, err = p.communicate()
    seconds = time.perf_counter() - t0
    t.join()
    if p.returncode != 0:
        raise SystemExit(f"{grid} failed:\n{err.decode()[-2000:]}")
    return seconds, peak[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grids", default="R32,R128,R1024")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json")
    args = ap.parse_args()
    grids = args.grids.split(",")
    got: dict[str, list[tuple[float, int]]] = {g: [] for g in grids}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for g in grids:
                got[g].append(run(g, args.workers, Path(tmp)))
    out = {}
    print(f"{'grid':>6} {'trials':>6} {'seconds (median)':>17} {'s/trial':>8} {'peak memory (median)':>21}  "
          "repeats (s)")
    for g in grids:
        secs = [s for s, _ in got[g]]
        mem = [m for _, m in got[g]]
        n = len(configs(g))
        out[g] = {"trials": n, "seconds": secs, "peak_bytes": mem}
        print(f"{g:>6} {n:>6} {statistics.median(secs):>15.2f} s {statistics.median(secs) / n:>8.3f} "
              f"{statistics.median(mem) / 2**30:>17.2f} GiB  " + " / ".join(f"{s:.2f}" for s in secs))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
