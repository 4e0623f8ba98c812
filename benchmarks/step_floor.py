"""Benchmark: how fast could a fused unit train at best? The floor of R32 against the naive loop.

Takes the R32 grid of fused_vs_loops.py, plans it as `dlbench sweep` does (units of trials), and on
one thread (as a worker trains) times, for the first unit:

  unit        engine.fused.train on the unit, whole (training and the per-epoch evaluation)
  matmuls     only the batched matmuls one training step cannot do without (the forward pass's
              layers, the weights' and the hidden inputs' gradients), at the unit's shapes, as many
              times as the unit takes steps: what training would cost with no other op, no
              autograd, no optimizer update, no Python
  evaluation  the engine's own evaluation (engine.fused.evaluate_all) as often as a unit evaluates

The rest of the unit (unit - matmuls - evaluation) is per-step overhead: the elementwise work of
the loss, the activations' gradients and the four optimizers' updates, and the dispatch of each op.
With a whole-process sweep time C (--sweep-seconds, or measured here with --repeats sweeps) and the
naive loop's A (--naive-seconds, or measured), it prints the best C this sweep could reach were that
overhead zero, C - (units per worker) * overhead, and the best ratio A / C that leaves.

    python benchmarks/step_floor.py [--repeats 3] [--workers 2] [--json docs/step-floor.json]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
from fused_vs_loops import spec_toml  # noqa: E402


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def whole_process(cmd: list[str], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3, help="of each in-process timing and each whole process")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sweep-seconds", type=float, help="C, the whole-process sweep (else measured)")
    ap.add_argument("--naive-seconds", type=float, help="A, the naive loop (else measured)")
    ap.add_argument("--json", help="write the measurements here")
    a = ap.parse_args()

    import torch

    from dlbench import data as datasets
    from dlbench import plan
    from dlbench.engine import fused
    from dlbench.engine.common import tensors
    from dlbench.engine.stacked import stacked_model
    from dlbench.spec import build_sweep, read_spec_file

    torch.set_num_threads(plan.TRAIN_THREADS)
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "r32.toml"
        spec.write_text(spec_toml("R32", "cpu"))
        sweep = build_sweep(read_spec_file(spec))
        units = plan.make_units(sweep.trials, "auto", a.workers)
        unit = units[0].trials
        first = unit[0]
        ds = datasets.load_for(first, None)
        K, bs, epochs = len(unit), first["batch_size"], first["epochs"]
        n = len(ds.x_train)
        steps = epochs * math.ceil(n / bs)
        evaluations = epochs + 1  # before training and after each epoch

        unit_s = median_time(lambda: fused.train(unit, ds), a.repeats)

        net = stacked_model(unit, ds.info, torch.float32, "cpu")
        sizes = net.sizes
        x = torch.randn(K, bs, sizes[0])
        weights = [w.detach().clone() for w, _ in net.params]
        biases = [b.detach().clone() for _, b in net.params]
        grads_out = [torch.randn(K, bs, s) for s in sizes[1:]]

        def matmuls_of_one_step():
            h, inputs = x, []
            for w, b in zip(weights, biases, strict=True):
                inputs.append(h)
                h = torch.baddbmm(b, h, w)
            for layer in range(len(weights) - 1, -1, -1):
                torch.bmm(inputs[layer].transpose(1, 2), grads_out[layer])  # the weight's gradient
                if layer > 0:  # the input's gradient (the data's is never needed)
                    torch.bmm(grads_out[layer], weights[layer].transpose(1, 2))

        def matmuls():
            for _ in range(steps):
                matmuls_of_one_step()

        splits = tensors(ds, "cpu", torch.float32)

        def evaluation():
            for _ in range(evaluations):
                for xs, ys in splits.values():
                    fused.evaluate_all(net, first["loss"], xs, ys, ds.task)

        with torch.no_grad():
            matmul_s = median_time(matmuls, a.repeats)
            eval_s = median_time(evaluation, a.repeats)

        per_worker = math.ceil(len(units) / a.workers)
        c_runs = ([a.sweep_seconds] if a.sweep_seconds else
                  whole_process([sys.executable, "-m", "dlbench", "sweep", str(spec), "--out", str(Path(tmp) / "out"),
                                 "--fresh", "--workers", str(a.workers)], a.repeats))
        a_runs = ([a.naive_seconds] if a.naive_seconds else
                  whole_process([sys.executable, str(HERE / "naive_loop.py"), "--grid", "R32"], a.repeats))
    c, naive = statistics.median(c_runs), statistics.median(a_runs)
    overhead = unit_s - matmul_s - eval_s
    best_c = c - per_worker * overhead
    out = {"units": [len(u.trials) for u in units], "units_per_worker": per_worker, "steps_per_unit": steps,
           "unit_s": unit_s, "matmuls_s": matmul_s, "evaluation_s": eval_s, "overhead_s": overhead,
           "overhead_per_step_ms": overhead / steps * 1e3, "sweep_s": c_runs, "naive_s": a_runs,
           "a/c": naive / c, "best_c_s": best_c, "best_a/c": naive / best_c,
           "c_for_5x": naive / 5, "overhead_cut_for_5x": (c - naive / 5) / (per_worker * overhead)}
    print(f"R32: {len(units)} units of {K} trials ({per_worker} per worker), {steps} steps and {evaluations} "
          f"evaluations a unit, one thread")
    print(f"  a unit: {unit_s:.3f} s = matmuls {matmul_s:.3f} s + evaluation {eval_s:.3f} s + the rest "
          f"{overhead:.3f} s ({out['overhead_per_step_ms']:.2f} ms a step)")
    print(f"  whole process: naive loop {naive:.2f} s, dlbench sweep {c:.2f} s: a/c = {naive / c:.2f}")
    print(f"  with the rest at zero: sweep {best_c:.2f} s, a/c = {naive / best_c:.2f}; a/c = 5 needs "
          f"{naive / 5:.2f} s, {out['overhead_cut_for_5x']:.0%} of the rest gone")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
