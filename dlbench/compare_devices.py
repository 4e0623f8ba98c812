"""`dlbench compare-devices`: training-step, inference and end-to-end epoch throughput per
device and batch size, the crossover batch size where an accelerator starts to beat the CPU,
peak memory on CUDA, and optionally a whole small sweep timed with each engine on each device.

Writes results/<name>/devices.parquet, env.json and figures; prints a table."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from dlbench import devices as dev
from dlbench.errors import UserError

DEFAULT_BATCH_SIZES = [2**i for i in range(13)]  # 1 .. 4096
QUICK_BATCH_SIZES = [1, 16, 256, 2048]
DEFAULT_MODEL = {"kind": "mlp", "hidden": [256, 256], "activation": "relu"}
FULL_TIMING = (1.0, 30)  # seconds of timed blocks per point, batches per timed epoch
QUICK_TIMING = (0.3, 10)  # enough that two runs on an idle machine agree within 15% (benchmarks/devices_repeat.py)


def parse_ints(text: str | None, flag: str, lo: int, hi: int) -> list[int] | None:
    if text is None:
        return None
    try:
        values = [int(t) for t in text.split(",")]
    except ValueError:
        raise UserError(f"{flag} {text!r} is not a list of whole numbers; allowed: e.g. 1,2,4,8") from None
    bad = [v for v in values if not lo <= v <= hi]
    if bad or not values:
        raise UserError(f"{flag} {text!r} has {bad[0] if bad else 'no value'}; allowed: whole numbers from {lo} "
                        f"to {hi}")
    return sorted(set(values))


def run_compare(dataset: str = "digits", model: str | None = None, batch_sizes: str | None = None,
                devices: str | None = None, threads: str | None = None, include_sweep: str | None = None,
                out: str = "results", name: str = "devices", quick: bool = False, console=None) -> int:
    from dlbench import models
    from dlbench.data import dataset_info
    from dlbench.output import console as make_console
    from dlbench.spec import check_name, parse_value

    console = console or make_console()
    check_name(name)
    info = dataset_info(dataset)
    model_spec = models.check(parse_value(model) if model else DEFAULT_MODEL, info)
    sizes = parse_ints(batch_sizes, "--batch-sizes", 1, 65536) or (QUICK_BATCH_SIZES if quick else DEFAULT_BATCH_SIZES)
    thread_counts = parse_ints(threads, "--threads", 1, 4 * (os.cpu_count() or 1))
    asked = [d.strip() for d in devices.split(",")] if devices else None
    for d in asked or []:
        from dlbench.trials import check_device_name

        check_device_name(d)
    sweep_spec = None
    if include_sweep:
        from dlbench.presets import spec_path
        from dlbench.spec import build_sweep, read_spec_file

        sweep_spec = read_spec_file(spec_path(include_sweep))
        build_sweep(dict(sweep_spec))  # validate before measuring anything

    import torch

    default_threads = torch.get_num_threads()
    chosen = dev.resolve_devices(asked, dev.available_devices())
    accelerators = [d for d in chosen if dev.is_accelerator(d)]
    if not accelerators:
        console.print("no accelerator on this machine (no CUDA, no MPS): a CPU-only report")
    # seconds of timed blocks per point (after a warm-up), and batches per timed epoch
    min_run_time, epoch_batches = QUICK_TIMING if quick else FULL_TIMING
    rows = []
    plan = [("cpu", t) for t in (thread_counts or [default_threads])] + [(d, None) for d in accelerators]
    t_start = time.perf_counter()
    for device, n_threads in plan:
        label = f"{device} ({n_threads} threads)" if n_threads else device
        console.print(f"measuring {label}: batch sizes {', '.join(map(str, sizes))}")
        rows += dev.measure(dataset, model_spec, device, sizes, threads=n_threads, min_run_time=min_run_time,
                            epoch_batches=epoch_batches)
    torch.set_num_threads(default_threads)
    # the baseline label is the first CPU configuration measured
    labels = list(dict.fromkeys(r["device"] for r in rows))
    if sweep_spec is not None:
        try:
            rows += time_sweep(sweep_spec, ["cpu", *accelerators], console, repeats=1 if quick else 3)
        except SweepTimingError as e:
            from dlbench.output import console as make_console

            make_console(stderr=True).print(f"[red]error:[/] {e}", highlight=False)
            return e.code
    report = dev.summary(rows, labels)
    path = Path(out) / name
    write_report(path, rows, report, dataset, model_spec, accelerators, default_threads)
    print_report(rows, report, console, accelerators)
    from dlbench.plots.devices import draw_devices

    for f in draw_devices(rows, report, path / "plots"):
        console.print(f"wrote {f}")
    console.print(f"results: {path} (devices.parquet, env.json) in {time.perf_counter() - t_start:.1f} s")
    return 0


def time_sweep(raw_spec: dict, devices: list[str], console, repeats: int = 3) -> list[dict]:
    """A whole small sweep, timed with each engine on each device: both engines run once untimed
    first (imports, kernel and allocator warm-up), then `repeats` interleaved timed runs each;
    the median wall time is reported."""
    import statistics

    from dlbench.runner import run_sweep
    from dlbench.spec import build_sweep

    rows = []
    for device in devices:
        sweeps = {engine: build_sweep({**{k: v for k, v in raw_spec.items() if k != "expect"}, "device": device,
                                       "engine": engine, "name": f"timing-{engine}"})
                  for engine in ("fused", "reference")}
        times: dict[str, list[float]] = {e: [] for e in sweeps}
        for r in range(repeats + 1):
            for engine, sweep in sweeps.items():
                with tempfile.TemporaryDirectory() as tmp:
                    t0 = time.perf_counter()
                    code = run_sweep(sweep, tmp, workers=1, console=_quiet())
                    seconds = time.perf_counter() - t0
                if code != 0:  # a sweep that failed or was stopped timed nothing worth reporting
                    raise SweepTimingError(f"--include-sweep: the sweep on {device} with the {engine} engine ended "
                                           f"with exit code {code}; its time is not reported", code)
                if r:  # the first round warms up
                    times[engine].append(seconds)
        for engine, ts in times.items():
            seconds = statistics.median(ts)
            n = len(sweeps[engine].trials)
            console.print(f"sweep of {n} trials on {device} with the {engine} engine: {seconds:.2f} s "
                          f"(median of {len(ts)})")
            rows.append({"device": device, "threads": None, "batch_size": None, "kind": f"sweep-{engine}",
                         "samples_per_s": None, "q1_samples_per_s": None, "q3_samples_per_s": None,
                         "seconds_per_call": seconds, "blocks": len(ts), "calls_per_block": 1,
                         "peak_memory_bytes": None, "trials": n})
    return rows


class SweepTimingError(Exception):
    """The timed sweep did not finish cleanly (a failed trial, a signal): its exit code is the command's."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def _quiet():
    from rich.console import Console

    return Console(file=open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the sweep


def gpu_details() -> dict:
    import torch

    out = {"gpu": [], "cuda": torch.version.cuda, "driver": None}
    if torch.cuda.is_available():
        out["gpu"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        try:
            q = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=10)
            out["driver"] = q.stdout.strip().splitlines()[0] if q.returncode == 0 and q.stdout.strip() else None
        except (OSError, subprocess.SubprocessError):
            pass
    return out


def write_report(path: Path, rows, report, dataset, model, accelerators, threads) -> None:
    import io

    import pandas as pd

    from dlbench.store import ResultsDir, atomic_write, environment

    results = ResultsDir(path)
    results.create()
    env = environment(["cpu", *accelerators], workers=1, threads=threads)
    env.update(gpu_details())
    env.update({"report": report, "dataset": dataset, "model": model})
    results.write_env(env)
    buf = io.BytesIO()
    frame = pd.DataFrame(rows)
    if "noisy" in frame:
        frame["noisy"] = frame["noisy"].fillna("")  # the timed sweep's rows have no such flag
    frame.to_parquet(buf, index=False)
    atomic_write(path / "devices.parquet", buf.getvalue())
    atomic_write(path / "summary.json", json.dumps(report, indent=2).encode())


def print_report(rows, report, console, accelerators) -> None:
    from rich.table import Table

    table = Table(title=f"throughput (samples/s, median [IQR]; noisy: {report['noisy_rule']})", header_style="bold")
    for c in ("device", "batch", "train step", "inference", "epoch (with copies)", "peak MiB"):
        table.add_column(c, justify="left" if c == "device" else "right")
    by = {}
    for r in rows:
        if r["batch_size"] is not None:
            by.setdefault((r["device"], r["batch_size"]), {})[r["kind"]] = r

    def cell(r):
        mark = " [yellow]noisy[/]" if r.get("noisy") else ""
        return f"{r['samples_per_s']:,.0f} [{r['q1_samples_per_s']:,.0f}–{r['q3_samples_per_s']:,.0f}]{mark}"

    for (device, bs), kinds in by.items():
        peak = kinds["train"]["peak_memory_bytes"]
        table.add_row(device, str(bs), cell(kinds["train"]), cell(kinds["inference"]), cell(kinds["epoch"]),
                      f"{peak / 2**20:.1f}" if peak else "-")
    console.print(table)
    for acc, kinds in report["crossover"].items():
        words = {k: (f"batch size {v}" if v is not None else "not within range") for k, v in kinds.items()}
        console.print(f"{acc} beats {report['baseline']} from: training {words['train']}; inference "
                      f"{words['inference']}; end-to-end epoch {words['epoch']}")
    if not accelerators:
        console.print("no accelerator measured: crossover not applicable")
    for point in report.get("noisy", []):
        console.print(f"[yellow]{dev.noise_line(point)}[/]", highlight=False)
