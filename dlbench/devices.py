"""Devices: which exist here (checked before a sweep writes anything), and the timing harness
behind `dlbench compare-devices`.

Timing rules: warm-up calls first (at least three, and for at least `warmup_s`: lazy init,
allocator, thread pools); then torch.utils.benchmark.Timer.blocked_autorange, which sizes a block
of calls so that the timer's overhead is negligible and times blocks until `min_run_time` has
passed, the device synchronized at both ends of every block (CUDA or MPS; the CPU's calls are
synchronous). Reported: median and interquartile range of the per-call time over blocks, as
samples per second. A point is flagged noisy when its IQR exceeds 10% of its median, or when an
epoch (a train step plus the host copies) comes out faster per sample than the train step alone:
either means the machine was busy, and the numbers are not to be trusted."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dlbench.errors import UserError

ACCELERATOR_PREFIXES = ("cuda", "mps")


def available_devices() -> list[str]:
    import torch

    out = ["cpu"]
    if torch.cuda.is_available():
        out += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    return out


def check_device(name: str, available: list[str] | None = None) -> None:
    """UserError unless `name` (cpu, cuda, cuda:N, mps) is present on this machine."""
    available = available_devices() if available is None else available
    wanted = "cuda:0" if name == "cuda" else name
    if wanted not in available:
        raise UserError(f"device = {name!r} is not available on this machine; allowed: {', '.join(available)}")


def resolve_devices(asked: list[str] | None, available: list[str]) -> list[str]:
    """The devices to compare: cpu first, then the accelerators asked for (default: all present).
    One asked for but absent is an error, not a silent skip."""
    if asked is None:
        return available
    out = []
    for name in asked:
        check_device(name, available)
        name = "cuda:0" if name == "cuda" else name
        if name not in out:
            out.append(name)
    if "cpu" not in out:
        out.insert(0, "cpu")  # the baseline every speedup is measured against
    return out


def is_accelerator(device: str) -> bool:
    return device.startswith(ACCELERATOR_PREFIXES)


# --------------------------------------------------------------------------------------------
# Measuring


NOISY_SPREAD = 0.10  # IQR / median above which a point is flagged noisy
KIND_WORDS = {"train": "train step", "inference": "inference", "epoch": "epoch"}


@dataclass
class Timing:
    median_s: float  # per call
    q1_s: float
    q3_s: float
    blocks: int
    number: int  # calls per block (the most used)
    times: list[float] = field(default_factory=list)  # per call, one per block

    @property
    def spread(self) -> float:
        """The IQR as a fraction of the median."""
        return (self.q3_s - self.q1_s) / self.median_s if self.median_s > 0 else math.inf

    @classmethod
    def of(cls, times: list[float], number: int) -> Timing:
        q = statistics.quantiles(times, n=4, method="inclusive") if len(times) > 1 else [times[0]] * 3
        return cls(statistics.median(times), q[0], q[2], len(times), number, list(times))

    def __add__(self, other: Timing) -> Timing:
        """The blocks of two measurements of the same thing, pooled."""
        return Timing.of(self.times + other.times, max(self.number, other.number))


def device_clock(device: str) -> Callable[[], float]:
    """A host clock that first waits for the device's queued work."""
    from dlbench.engine.common import sync

    def now() -> float:
        sync(device)
        return time.perf_counter()

    return now


def time_calls(fn: Callable[[], object], device: str, min_run_time: float = 0.5, warmup_s: float = 0.1,
               clock: Callable[[], float] | None = None) -> Timing:
    """Per-call time of fn on device: median and IQR over the blocks of
    torch.utils.benchmark.Timer.blocked_autorange, after a warm-up. `clock` replaces the
    synchronizing host clock (tests pass a fake one)."""
    import torch
    from torch.utils import benchmark

    clock = clock or device_clock(device)
    start, calls = clock(), 0
    while calls < 3 or clock() - start < warmup_s:
        fn()
        calls += 1
    # num_threads: the Timer's default (1) would time a different CPU configuration than asked for
    timer = benchmark.Timer("fn()", globals={"fn": fn}, timer=clock, num_threads=torch.get_num_threads())
    m = timer.blocked_autorange(min_run_time=min_run_time)
    return Timing.of(list(m.times), int(m.number_per_run))


ROUNDS = 3  # each point is timed in this many rounds spread over the whole run


def measure(dataset: str, model: dict, device: str, batch_sizes: list[int], threads: int | None = None,
            min_run_time: float = 0.5, epoch_batches: int = 30, rounds: int = ROUNDS) -> list[dict]:
    """Rows of measurements for one device (and CPU thread count): train step, inference, and
    end-to-end epoch throughput per batch size, plus peak memory on CUDA.

    Each point is timed in `rounds` rounds that go over every batch size in turn, `min_run_time`
    seconds in all, and its blocks pooled: a machine whose speed changes during the run (another
    program, a neighbour on the same host, a clock that steps down) then shows a wide IQR, and the
    point is flagged, instead of one batch size being timed fast and the next slow."""
    import torch

    from dlbench import losses, models
    from dlbench.data import load
    from dlbench.engine.common import init_seed
    from dlbench.losses import LOSSES

    if threads is not None:
        torch.set_num_threads(threads)
    data = load(dataset)
    info = data.info
    loss_fn = losses.loss_fn(LOSSES[info.task][0])
    x_host = torch.from_numpy(data.x_train)
    y_host = torch.from_numpy(data.y_train)
    x_dev, y_dev = x_host.to(device), y_host.to(device)
    label = device if threads is None or is_accelerator(device) else f"cpu×{threads}"
    calls, peaks = {}, {}
    for bs in batch_sizes:
        init_seed(0)
        net = models.build(model, info).to(device)
        calls[bs] = _calls(net, loss_fn, x_host, y_host, x_dev, y_dev, device, bs, epoch_batches)
    timings: dict[tuple[int, str], Timing] = {}
    for r in range(rounds):
        for bs in batch_sizes:
            for kind, fn in calls[bs].items():
                if kind == "train" and r == 0 and device.startswith("cuda"):
                    torch.cuda.reset_peak_memory_stats(device)
                # an epoch is one long call: twice the time, for as many blocks
                t = time_calls(fn, device, (2 if kind == "epoch" else 1) * min_run_time / rounds,
                               warmup_s=0.1 if r == 0 else 0.0)
                timings[(bs, kind)] = timings[(bs, kind)] + t if (bs, kind) in timings else t
                if kind == "train" and r == 0:
                    peaks[bs] = torch.cuda.max_memory_allocated(device) if device.startswith("cuda") else None
    rows = []
    for bs in batch_sizes:
        for kind in calls[bs]:
            t = timings[(bs, kind)]
            per = bs * epoch_batches if kind == "epoch" else bs
            rows.append({"device": label, "threads": threads if not is_accelerator(device) else None,
                         "batch_size": bs, "kind": kind, "samples_per_s": per / t.median_s,
                         "q1_samples_per_s": per / t.q3_s, "q3_samples_per_s": per / t.q1_s,
                         "seconds_per_call": t.median_s, "blocks": t.blocks, "calls_per_block": t.number,
                         "iqr_ratio": t.spread, "peak_memory_bytes": peaks[bs] if kind == "train" else None})
    return rows


def _calls(net, loss_fn, x_host, y_host, x_dev, y_dev, device: str, bs: int,
           epoch_batches: int) -> dict[str, Callable[[], None]]:
    """What is timed: a train step and inference on a resident batch; an epoch of `epoch_batches`
    steps with host indexing and copies."""
    import torch

    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(bs)
    idx = torch.randint(0, len(x_host), (bs,), generator=g).to(device)  # with replacement: any batch size
    xb, yb = x_dev[idx], y_dev[idx]

    def train_step():
        loss = loss_fn(net(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def infer():
        with torch.no_grad():
            net(xb)

    order = torch.randint(0, len(x_host), (epoch_batches * bs,), generator=g)

    def epoch():
        for i in range(epoch_batches):
            sel = order[i * bs:(i + 1) * bs]
            loss = loss_fn(net(x_host[sel].to(device)), y_host[sel].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return {"train": train_step, "inference": infer, "epoch": epoch}


# --------------------------------------------------------------------------------------------
# The report (pure: tested with a faked accelerator)


def crossover(rows, baseline: str, accelerator: str, kind: str) -> int | None:
    """The batch size from which the accelerator beats the baseline at every larger measured
    size, or None when it never does within the range."""
    base = {r["batch_size"]: r["samples_per_s"] for r in rows if r["device"] == baseline and r["kind"] == kind}
    acc = {r["batch_size"]: r["samples_per_s"] for r in rows if r["device"] == accelerator and r["kind"] == kind}
    sizes = sorted(set(base) & set(acc))
    result = None
    for b in reversed(sizes):
        if acc[b] > base[b]:
            result = b
        else:
            break
    return result


def flag_noise(rows) -> list[dict]:
    """Mark each measured point that cannot be trusted (row["noisy"]: the reason, "" when fine) and
    return them: an IQR above NOISY_SPREAD of the median, or an epoch faster per sample than its
    train step (an epoch is a train step plus host copies: it cannot be faster on a quiet machine)."""
    train = {(r["device"], r["batch_size"]): r["samples_per_s"] for r in rows if r["kind"] == "train"}
    out = []
    for r in rows:
        if r.get("batch_size") is None:  # a timed sweep
            continue
        reasons = []
        # the IQR of the per-call time over its median, from the throughput's quartiles (also for rows
        # written before iqr_ratio was kept)
        spread = ((1 / r["q1_samples_per_s"] - 1 / r["q3_samples_per_s"]) * r["samples_per_s"]
                  if r.get("q1_samples_per_s") else None)
        if spread is not None and spread > NOISY_SPREAD:
            reasons.append(f"IQR {100 * spread:.0f}% of the median")
        step = train.get((r["device"], r["batch_size"]))
        if r["kind"] == "epoch" and step is not None and r["samples_per_s"] > step:
            reasons.append(f"epoch faster than its train step ({r['samples_per_s']:,.0f} vs {step:,.0f} samples/s)")
        r["noisy"] = "; ".join(reasons)
        if reasons:
            out.append({"device": r["device"], "batch_size": r["batch_size"], "kind": r["kind"],
                        "reason": r["noisy"]})
    return out


def noise_line(point: dict) -> str:
    return (f"noisy: {point['device']} batch {point['batch_size']} {KIND_WORDS[point['kind']]}: {point['reason']}; "
            "close other programs and re-run")


def summary(rows, devices: list[str]) -> dict:
    """Crossover batch sizes per accelerator and kind, against the first CPU configuration."""
    cpu = next((d for d in devices if not is_accelerator(d)), "cpu")
    out = {"baseline": cpu, "accelerators": [d for d in devices if is_accelerator(d)], "crossover": {}}
    for acc in out["accelerators"]:
        out["crossover"][acc] = {k: crossover(rows, cpu, acc, k) for k in ("train", "inference", "epoch")}
    out["noisy"] = flag_noise(rows)
    out["noisy_rule"] = (f"IQR above {100 * NOISY_SPREAD:g}% of the median, or an epoch faster per sample than its "
                         "train step")
    return out
