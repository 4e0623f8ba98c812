"""Benchmark: dlbench's fused sweep against plain per-config PyTorch loops, same grid.

Grids (issue 4): digits (80/20 stratified, standardized), MLP 64-128-128-10 ReLU,
cross-entropy, 10 epochs, batch 32, {sgd, momentum 0.9, rmsprop, adam} ×
R32: lr {1e-3, 3e-3, 1e-2, 3e-2} × seeds {0, 1}  (32 trials)
R128: 16 log-spaced lr in [1e-4, 1e-1] × seeds {0, 1}  (128 trials)

Each repeat times, interleaved and each as a whole process (start-up and data loading included):
  (a) naive_loop.py: one config at a time, DataLoader with shuffle, torch.optim, default threads
  (b) naive_loop.py --workers W: the same loop over W worker processes (one thread each)
  (c) dlbench sweep of the same grid, on the same data (validation = 0: the whole training split,
      as the naive loop trains)
  (c') with --validation F: the same dlbench sweep with a validation split of F (it trains on
      1 - F of the training split and evaluates the split too); prints c'/c
  (g) with --generic: the same dlbench sweep with the four optimizers given as torch.optim import
      paths (torch.optim:SGD, with momentum 0 and 0.9; torch.optim:RMSprop; torch.optim:Adam):
      the generic path any user's optimizer takes; prints the speed ratio c/g and a/g
  (n) with --named: the same dlbench sweep with the four optimizers as [optimizers.NAME] tables of
      those torch.optim classes (tsgd, tmomentum, trmsprop, tadam); prints c/n: every spelling of
      one optimizer should cost the same
  (u) with --user-model: the same dlbench sweep with the MLP written as a user's model file
      (model = { factory = ... }: torch.func's stacked path); prints c/u
  with --cnn: the built-in cnn on mnist1d (4 optimizers × 2 lr × 2 seeds, 3 epochs), dlbench sweep
      with --engine fused (torch.func) against --engine reference; prints reference/fused
and prints medians, the ratios a/c and b/c, and the grid's FLOP floor: training FLOPs
(6 × Σ in·out per sample: forward + backward) ÷ a measured matmul rate on all cores.

    python benchmarks/fused_vs_loops.py [--grid R32|R128|both] [--repeats 3] [--workers 2] [--device cpu]
                                        [--validation 0.1] [--generic] [--named] [--user-model] [--cnn]
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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from naive_loop import BATCH, EPOCHS, GRIDS, configs  # noqa: E402

LAYERS = [(64, 128), (128, 128), (128, 10)]
N_TRAIN = 1437


def spec_toml(grid: str, device: str, validation: float = 0.0) -> str:
    g = GRIDS[grid]
    return (f'name = "bench-{grid}"\ndataset = "digits"\nvalidation = {validation}\n'
            'model = { kind = "mlp", hidden = [128, 128], activation = "relu" }\n'
            f'epochs = {EPOCHS}\nbatch_size = {BATCH}\ndevice = "{device}"\nseeds = {g["seed"]}\n'
            f'[grid]\noptimizer = {json.dumps(g["optimizer"])}\nlr = {g["lr"]}\n')


def generic_spec_toml(grid: str, device: str) -> str:
    """The same grid with torch.optim import paths instead of dlbench's built-in names."""
    g = GRIDS[grid]
    assert g["optimizer"] == ["sgd", "momentum", "rmsprop", "adam"]
    return (f'name = "generic-{grid}"\ndataset = "digits"\nvalidation = 0.0\n'
            'model = { kind = "mlp", hidden = [128, 128], activation = "relu" }\n'
            f'epochs = {EPOCHS}\nbatch_size = {BATCH}\ndevice = "{device}"\nseeds = {g["seed"]}\n'
            f'[[grid]]\noptimizer = "torch.optim:SGD"\nmomentum = [0.0, 0.9]\nlr = {g["lr"]}\n'
            f'[[grid]]\noptimizer = ["torch.optim:RMSprop", "torch.optim:Adam"]\nlr = {g["lr"]}\n')


def named_spec_toml(grid: str, device: str) -> str:
    """The same grid with the four optimizers as named tables of torch.optim classes."""
    g = GRIDS[grid]
    assert g["optimizer"] == ["sgd", "momentum", "rmsprop", "adam"]
    return (f'name = "named-{grid}"\ndataset = "digits"\nvalidation = 0.0\n'
            'model = { kind = "mlp", hidden = [128, 128], activation = "relu" }\n'
            f'epochs = {EPOCHS}\nbatch_size = {BATCH}\ndevice = "{device}"\nseeds = {g["seed"]}\n'
            f'[grid]\noptimizer = ["tsgd", "tmomentum", "trmsprop", "tadam"]\nlr = {g["lr"]}\n'
            '[optimizers.tsgd]\nclass = "torch.optim:SGD"\n[optimizers.tmomentum]\nclass = "torch.optim:SGD"\n'
            'momentum = 0.9\n[optimizers.trmsprop]\nclass = "torch.optim:RMSprop"\n[optimizers.tadam]\n'
            'class = "torch.optim:Adam"\n')


USER_MLP = """
from torch import nn


def mlp(input_shape, n_outputs):
    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                         nn.Linear(128, n_outputs))
"""


def user_model_spec_toml(grid: str, device: str) -> str:
    """The same grid with the MLP as a user's model file (written beside the spec)."""
    return spec_toml(grid, device).replace(
        'model = { kind = "mlp", hidden = [128, 128], activation = "relu" }',
        'model = { factory = "./user_mlp.py:mlp" }').replace(f'name = "bench-{grid}"', f'name = "user-{grid}"')


CNN_SPEC = """
name = "cnn-{engine}"
dataset = "mnist1d"
model = {{ kind = "cnn" }}
epochs = 3
batch_size = 32
engine = "{engine}"
device = "{device}"
seeds = [0, 1]
[grid]
optimizer = ["sgd", "momentum", "rmsprop", "adam"]
lr = [1e-3, 1e-2]
"""


def timed(cmd: list[str], env=None) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stdout}\n{p.stderr}")
    return dt


def matmul_rate(threads: int, device: str = "cpu") -> float:
    """FLOP/s of a large float32 matmul with `threads` intra-op threads (or on the GPU)."""
    import torch

    torch.set_num_threads(threads)
    n = 2048 if device == "cpu" else 8192
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    for _ in range(3):
        a @ b
    if device != "cpu":
        torch.cuda.synchronize()
    reps = 10
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    if device != "cpu":
        torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def flop_floor(grid: str, rate: float) -> tuple[float, float]:
    """(training FLOPs of the grid, seconds at `rate`)."""
    flops = 6 * sum(i * o for i, o in LAYERS) * N_TRAIN * EPOCHS * len(configs(grid))
    return flops, flops / rate


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grid", choices=["R32", "R128", "R1024", "both"], default="R32")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--validation", type=float, help="also time (c') with this validation split")
    ap.add_argument("--generic", action="store_true", help="also time (g): the optimizers as torch.optim paths")
    ap.add_argument("--named", action="store_true", help="also time (n): the optimizers as named tables")
    ap.add_argument("--user-model", action="store_true", help="also time (u): the MLP as a user's model file")
    ap.add_argument("--cnn", action="store_true", help="also time the built-in cnn, fused against reference")
    ap.add_argument("--json", help="write the measurements here")
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    dlbench = [sys.executable, "-m", "dlbench"]
    grids = ["R32", "R128"] if args.grid == "both" else [args.grid]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    report = {"cores": cores, "workers": args.workers, "device": args.device, "grids": {}}
    for grid in grids:
        times = {"a": [], "b": [], "c": []}
        if args.validation:
            times["c'"] = []
        if args.generic:
            times["g"] = []
        if args.named:
            times["n"] = []
        if args.user_model:
            times["u"] = []
        if args.cnn:
            times["cnn fused"], times["cnn reference"] = [], []
        with tempfile.TemporaryDirectory() as tmp:
            spec_generic = Path(tmp) / f"{grid}-generic.toml"
            spec_generic.write_text(generic_spec_toml(grid, args.device))
            spec_named = Path(tmp) / f"{grid}-named.toml"
            spec_named.write_text(named_spec_toml(grid, args.device))
            (Path(tmp) / "user_mlp.py").write_text(USER_MLP)
            spec_user = Path(tmp) / f"{grid}-user.toml"
            spec_user.write_text(user_model_spec_toml(grid, args.device))
            for engine in ("fused", "reference"):
                (Path(tmp) / f"cnn-{engine}.toml").write_text(CNN_SPEC.format(engine=engine, device=args.device))
            spec = Path(tmp) / f"{grid}.toml"
            spec.write_text(spec_toml(grid, args.device))
            spec_val = Path(tmp) / f"{grid}-val.toml"
            spec_val.write_text(spec_toml(grid, args.device, args.validation or 0.0))
            for r in range(args.repeats):
                naive = [sys.executable, str(HERE / "naive_loop.py"), "--grid", grid, "--device", args.device]
                times["a"].append(timed(naive, env))
                times["b"].append(timed([*naive, "--workers", str(args.workers)], env))
                times["c"].append(timed([*dlbench, "sweep", str(spec), "--out", str(Path(tmp) / f"r{r}"),
                                         "--workers", str(args.workers)], env))
                if args.validation:
                    times["c'"].append(timed([*dlbench, "sweep", str(spec_val), "--out", str(Path(tmp) / f"v{r}"),
                                              "--workers", str(args.workers)], env))
                if args.generic:
                    times["g"].append(timed([*dlbench, "sweep", str(spec_generic), "--out",
                                             str(Path(tmp) / f"g{r}"), "--workers", str(args.workers)], env))
                if args.named:
                    times["n"].append(timed([*dlbench, "sweep", str(spec_named), "--out",
                                             str(Path(tmp) / f"n{r}"), "--workers", str(args.workers)], env))
                if args.user_model:
                    times["u"].append(timed([*dlbench, "sweep", str(spec_user), "--out", str(Path(tmp) / f"u{r}"),
                                             "--workers", str(args.workers)], env))
                if args.cnn:
                    for engine in ("fused", "reference"):
                        times[f"cnn {engine}"].append(timed([*dlbench, "sweep", str(Path(tmp) / f"cnn-{engine}.toml"),
                                                             "--out", str(Path(tmp) / f"cnn{engine}{r}"), "--workers",
                                                             str(args.workers)], env))
                print(f"{grid} repeat {r + 1}: " + "  ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()),
                      flush=True)
        med = {k: statistics.median(v) for k, v in times.items()}
        rate = matmul_rate(1, args.device) * (cores if args.device == "cpu" else 1)
        flops, floor = flop_floor(grid, rate)
        report["grids"][grid] = {"times": times, "median": med, "a/c": med["a"] / med["c"],
                                 "b/c": med["b"] / med["c"], "flops": flops, "matmul_rate": rate,
                                 "floor_s": floor, "c/floor": med["c"] / floor}
        print(f"\n{grid}: {len(configs(grid))} trials, medians of {args.repeats} "
              f"(a) naive loop {med['a']:.2f} s | (b) naive loop × {args.workers} processes {med['b']:.2f} s | "
              f"(c) dlbench sweep {med['c']:.2f} s")
        print(f"  a/c = {med['a'] / med['c']:.1f}   b/c = {med['b'] / med['c']:.1f}")
        if args.validation:
            with_split = med["c'"]
            report["grids"][grid]["c'/c"] = with_split / med["c"]
            print(f"  (c') with validation = {args.validation}: {with_split:.2f} s; c'/c = {with_split / med['c']:.3f}")
        if args.generic:
            report["grids"][grid]["c/g"] = med["c"] / med["g"]
            report["grids"][grid]["a/g"] = med["a"] / med["g"]
            print(f"  (g) generic path (torch.optim import paths): {med['g']:.2f} s; speed against the built-in "
                  f"fused path c/g = {med['c'] / med['g']:.2f}; against the naive loop a/g = {med['a'] / med['g']:.1f}")
        if args.named:
            report["grids"][grid]["c/n"] = med["c"] / med["n"]
            print(f"  (n) named tables of the torch.optim classes: {med['n']:.2f} s; speed against the built-in "
                  f"names c/n = {med['c'] / med['n']:.2f}")
        if args.user_model:
            report["grids"][grid]["c/u"] = med["c"] / med["u"]
            print(f"  (u) the MLP as a user's model file: {med['u']:.2f} s; speed against the built-in "
                  f"mlp c/u = {med['c'] / med['u']:.2f}")
        if args.cnn:
            ratio = med["cnn reference"] / med["cnn fused"]
            report["grids"][grid]["cnn reference/fused"] = ratio
            print(f"  built-in cnn on mnist1d, 16 trials: --engine fused {med['cnn fused']:.2f} s, --engine reference "
                  f"{med['cnn reference']:.2f} s; reference/fused = {ratio:.2f}")
        print(f"  FLOP floor: {flops / 1e9:.1f} GFLOP of training at {rate / 1e9:.0f} GFLOP/s "
              f"({'all ' + str(cores) + ' cores' if args.device == 'cpu' else args.device}) = {floor:.2f} s; "
              f"c / floor = {med['c'] / floor:.1f}\n")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
