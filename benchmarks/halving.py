"""Benchmark: the small suite tuned by successive halving against the full grid.

The small suite (experiments/benchmarks/small-suite.toml: six problems, four optimizers, 7 lrs
each, 3 tuning seeds, 10 epochs, 5 fresh confirm seeds) without `extend` (halving and growing
ranges both choose among configurations, so a halving sweep has no `extend`), run twice, each as
a whole process, interleaved: (f) the full grid, (h) the same with

    [search]
    kind = "halving"
    eta = ETA
    min_epochs = MIN_EPOCHS

It prints, per repeat and as medians: wall time; trial-epochs trained in the tuning stage (what
halving saves); and per problem whether the confirmed winner is the same: the optimizer with the
best confirmed mean (the scoreboard's leader), and each optimizer's confirmed lr.

    python benchmarks/halving.py [--repeats 3] [--eta 3] [--min-epochs 1] [--json docs/halving.json]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def suite_without_extend() -> str:
    text = (ROOT / "experiments" / "benchmarks" / "small-suite.toml").read_text()
    return re.sub(r",\s*extend\s*=\s*\d+", "", text)


def with_halving(text: str, eta: int, min_epochs: int) -> str:
    head, tail = text.split("[protocol]")
    return (head + f'[search]\nkind = "halving"\neta = {eta}\nmin_epochs = {min_epochs}\n\n[protocol]' + tail)


def run(spec: Path, out: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dlbench", "sweep", str(spec), "--out", str(out)], check=True,
                   capture_output=True, cwd=ROOT)
    return time.perf_counter() - t0


def outcome(folder: Path) -> dict:
    """Trial-epochs of the tuning stage, the leader of each problem, each optimizer's confirmed lr."""
    sys.path.insert(0, str(ROOT))
    from dlbench import folders, stats

    trials, _, _ = folders.read(folder)
    tune = trials[trials.stage == "tune"]
    best = stats.best_configs(trials)
    board = stats.scoreboard(best, stats.compare(best))
    leaders = {p: min(board.optimizers, key=lambda o: board.ranks.loc[p, o]) for p in board.problems}
    tied = {p: sorted(board.leaders[p]) for p in board.problems}  # the best and those not distinguishable from it
    lrs = {f"{b.dataset} {b.name}": float(b.config["lr"]) for b in best}
    return {"trial_epochs": int(tune.epochs_run.sum()), "full_trial_epochs": int(tune.epochs.sum()),
            "stopped": int((trials.status == "stopped").sum()), "leaders": leaders, "tied": tied, "lrs": lrs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--eta", type=int, default=3)
    ap.add_argument("--min-epochs", type=int, default=1)
    ap.add_argument("--json", help="write the measurements here")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        full = tmp / "full.toml"
        full.write_text(suite_without_extend())
        halved = tmp / "halving.toml"
        halved.write_text(with_halving(suite_without_extend(), a.eta, a.min_epochs))
        times = {"full": [], "halving": []}
        for i in range(a.repeats):
            for kind, spec in (("full", full), ("halving", halved)):
                out = tmp / f"{kind}-{i}"
                times[kind].append(run(spec, out))
            print(f"repeat {i + 1}: full {times['full'][-1]:.2f} s, halving {times['halving'][-1]:.2f} s", flush=True)
        f, h = outcome(tmp / "full-0" / "small-suite"), outcome(tmp / "halving-0" / "small-suite")
    same_leader = [p for p in f["leaders"] if f["leaders"][p] == h["leaders"].get(p)]
    # the halving sweep's leader is the full grid's best or not distinguishable from it there
    among_best = [p for p in f["leaders"] if h["leaders"].get(p) in f["tied"][p]]
    same_lr = [k for k in f["lrs"] if f["lrs"][k] == h["lrs"].get(k)]
    mf, mh = statistics.median(times["full"]), statistics.median(times["halving"])
    print(f"\nwall time, median of {a.repeats}: full grid {mf:.2f} s, halving {mh:.2f} s: {mf / mh:.2f}× faster")
    print(f"trial-epochs of the tuning stage: full {f['trial_epochs']}, halving {h['trial_epochs']} "
          f"({f['trial_epochs'] / h['trial_epochs']:.2f}× fewer; {h['stopped']} trials stopped early)")
    print(f"confirmed leader the same on {len(same_leader)} of {len(f['leaders'])} problems; halving's leader among "
          f"the full grid's best or tied on {len(among_best)} of {len(f['leaders'])}")
    for p in f["leaders"]:
        print(f"  {p}: full {f['leaders'][p]} (best or tied: {', '.join(f['tied'][p])}), halving {h['leaders'].get(p)}")
    print(f"each optimizer's confirmed lr the same in {len(same_lr)} of {len(f['lrs'])} (problem, optimizer)")
    for k in f["lrs"]:
        if f["lrs"][k] != h["lrs"].get(k):
            print(f"  {k}: full lr={f['lrs'][k]:.4g}, halving lr={h['lrs'].get(k, float('nan')):.4g}")
    if a.json:
        Path(a.json).write_text(json.dumps({"eta": a.eta, "min_epochs": a.min_epochs, "times": times,
                                            "full": f, "halving": h, "same_leader": same_leader,
                                            "among_best": among_best,
                                            "same_lr": same_lr}, indent=1) + "\n")


if __name__ == "__main__":
    main()
