"""Benchmark: K trials of a sequence model trained fused (engine/sequence.py's hand-written stacked
forms) against the same K trained one at a time by the reference engine, on one thread, as a
worker trains a unit; the built-in cnn on mnist1d the same way (--engine fused's torch.func path).

Sizes (Adam, 4 lrs × 2 seeds = 8 trials, float32, the first 48,000 characters of the shipped corpus
as a text file, so an epoch is the same few hundred steps at every size):
  gpt lesson   2 layers, 2 heads, d_model 32, context 32, batch 16
  gpt nanogpt  nanoGPT's CPU recipe: 4 layers, 4 heads, d_model 128, context 64, batch 12
  lstm lesson  2 layers of 64, context 32, batch 16
  lstm large   2 layers of 128, context 64, batch 12
  cnn          the built-in cnn on mnist1d, batch 32

Each case is timed `--repeats` times, the engines interleaved; medians are printed with the ratio
reference/fused (above 1: fused is faster) and written with --json. `--engine auto` uses what
this measures (dlbench.engine.fused_slower names the cases where it picks the reference engine).

    python benchmarks/sequence_models.py [--repeats 3] [--epochs 1] [--json docs/sequence-models.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CASES = {
    "gpt lesson": ({"kind": "gpt", "n_layer": 2, "n_head": 2, "d_model": 32}, 32, 16),
    "gpt nanogpt": ({"kind": "gpt", "n_layer": 4, "n_head": 4, "d_model": 128}, 64, 12),
    "lstm lesson": ({"kind": "lstm", "layers": 2, "hidden": 64}, 32, 16),
    "lstm large": ({"kind": "lstm", "layers": 2, "hidden": 128}, 64, 12),
    "cnn": ({"kind": "cnn"}, None, 32),
}


def trials_of(case: str, folder: Path, epochs: int):
    from dlbench.spec import build_sweep

    model, context, batch = CASES[case]
    raw = {"model": model, "optimizer": "adam", "lr": [3e-4, 1e-3, 3e-3, 1e-2], "seeds": [0, 1],
           "batch_size": batch, "epochs": epochs, "dtype": "float32"}
    if context is None:
        raw.update(dataset="mnist1d")
    else:
        raw.update(dataset=str(folder / "text.txt"), context=context)
    return build_sweep(raw).trials


def time_once(trials, engine: str) -> float:
    import torch

    from dlbench.data import load_for
    from dlbench.engine import fused, reference

    data = load_for(trials[0])
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    if engine == "fused":
        results = fused.train(trials, data)
    else:
        results = [reference.train(t, data) for t in trials]
    seconds = time.perf_counter() - t0
    assert all(r.status in ("ok", "diverged") for r in results)
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated: " + ", ".join(CASES))
    ap.add_argument("--json", help="write the measurements here")
    args = ap.parse_args()
    from dlbench.data import text

    report = {"trials": 8, "threads": 1, "epochs": args.epochs, "cases": {}}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "text.txt").write_text(text.shipped_text()[:48_000])
        for case in args.cases.split(","):
            trials = trials_of(case, Path(tmp), args.epochs)
            time_once(trials[:1], "fused")  # first-call costs (allocator, kernels) out of the timings
            times = {"fused": [], "reference": []}
            for _ in range(args.repeats):
                for engine in ("fused", "reference"):
                    times[engine].append(time_once(trials, engine))
            med = {k: statistics.median(v) for k, v in times.items()}
            ratio = med["reference"] / med["fused"]
            report["cases"][case] = {"times": times, "median": med, "reference/fused": ratio}
            print(f"{case:12s}: fused {med['fused']:.2f} s, one at a time {med['reference']:.2f} s, "
                  f"reference/fused {ratio:.2f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
