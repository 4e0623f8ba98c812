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

With --seed-sets N it also runs both on N - 1 other sets of tuning seeds (10, 11, 12; 20, 21, 22; ...,
their confirm seeds the next five), once each, and prints the noise floor the comparison stands on:
how often the full grid's leader on one set of seeds is its leader on another (a leader that differs
there is the seeds' luck, not halving's doing), against how often halving's leader is the full grid's
on the same seeds.

    python benchmarks/halving.py [--repeats 3] [--eta 3] [--min-epochs 1] [--seed-sets 1]
                                 [--json docs/halving.json]
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


def with_seeds(text: str, first: int) -> str:
    """The suite tuned on seeds first, first + 1, first + 2 (confirmed on the five after them)."""
    out, n = re.subn(r"^seeds = \[0, 1, 2\]$", f"seeds = [{first}, {first + 1}, {first + 2}]", text, flags=re.M)
    assert n == 1, "the small suite's seeds line changed"
    return out


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
    ap.add_argument("--seed-sets", type=int, default=1, help="sets of tuning seeds (the noise floor: > 1)")
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
        others = []  # (full, halving) on other tuning seeds
        for j in range(1, a.seed_sets):
            pair = []
            for kind, text in (("full", suite_without_extend()),
                               ("halving", with_halving(suite_without_extend(), a.eta, a.min_epochs))):
                spec = tmp / f"{kind}-seeds{j}.toml"
                spec.write_text(with_seeds(text, 10 * j))
                run(spec, tmp / f"{kind}-seeds{j}")
                pair.append(outcome(tmp / f"{kind}-seeds{j}" / "small-suite"))
            others.append(tuple(pair))
            print(f"seed set {j + 1} (tuning seeds {10 * j}-{10 * j + 2}) done", flush=True)
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
    noise = noise_floor([(f, h), *others])
    if noise:
        print(f"\nover {len(others) + 1} sets of seeds: halving's leader is the full grid's on the same seeds in "
              f"{noise['halving_vs_full']} of {noise['halving_pairs']} (problem, seed set); the full grid's "
              f"leader is the same on two sets of seeds in {noise['full_vs_full']} of {noise['full_pairs']}")
        print(f"per set of seeds: the same leader on {', '.join(map(str, noise['same_leader_per_set']))} of "
              f"{len(f['leaders'])} problems (median {noise['median_same_leader']:g}); "
              f"{', '.join(f'{r:.2f}' for r in noise['fewer_epochs_per_set'])}× fewer tuning epochs")
    if a.json:
        Path(a.json).write_text(json.dumps({"eta": a.eta, "min_epochs": a.min_epochs, "times": times,
                                            "full": f, "halving": h, "same_leader": same_leader,
                                            "among_best": among_best, "same_lr": same_lr,
                                            "other_seeds": [{"full": o[0], "halving": o[1]} for o in others],
                                            "noise_floor": noise}, indent=1) + "\n")


def noise_floor(sets: list[tuple[dict, dict]]) -> dict | None:
    """Leader agreement: halving against the full grid on the same seeds, and the full grid against
    itself across sets of seeds (every pair of sets), counted over (problem, pair)."""
    if len(sets) < 2:
        return None
    problems = list(sets[0][0]["leaders"])
    per_set = [sum(h["leaders"].get(p) == f["leaders"][p] for p in problems) for f, h in sets]
    hv = sum(per_set)
    ff = [(i, j) for i in range(len(sets)) for j in range(i + 1, len(sets))]
    same = sum(sets[i][0]["leaders"][p] == sets[j][0]["leaders"][p] for i, j in ff for p in problems)
    return {"halving_vs_full": hv, "halving_pairs": len(sets) * len(problems), "same_leader_per_set": per_set,
            "median_same_leader": statistics.median(per_set),
            "fewer_epochs_per_set": [f["trial_epochs"] / h["trial_epochs"] for f, h in sets],
            "full_vs_full": same, "full_pairs": len(ff) * len(problems),
            "full_leaders": [f["leaders"] for f, _ in sets], "halving_leaders": [h["leaders"] for _, h in sets]}


if __name__ == "__main__":
    main()
