"""Devices: which exist here (checked before a sweep writes anything), and the timing harness
behind `dlbench compare-devices`.

Timing rules: warm-up calls first; then `repeats` blocks of `number` calls, each block timed
with the device synchronized at both ends (CUDA events on CUDA, torch.mps.synchronize on MPS, the
host clock on the CPU, where calls are synchronous). Reported: median and interquartile range of
the per-call time over blocks, as samples per second."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

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


@dataclass
class Timing:
    median_s: float  # per call
    q1_s: float
    q3_s: float
    blocks: int
    number: int


def time_calls(fn: Callable[[], object], device: str, repeats: int = 7, warmup: int = 3,
               min_block_s: float = 0.02) -> Timing:
    """Per-call time of fn on device: median and IQR over `repeats` synchronized blocks."""
    import torch

    from dlbench.engine.common import sync as synchronize

    for _ in range(warmup):
        fn()
    synchronize(device)
    # calls per block so that a block lasts at least min_block_s (timer resolution, launch jitter)
    t0 = time.perf_counter()
    fn()
    synchronize(device)
    one = max(time.perf_counter() - t0, 1e-7)
    number = max(1, min(10_000, math.ceil(min_block_s / one)))
    per_call = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(number):
                fn()
            end.record()
            end.synchronize()
            per_call.append(start.elapsed_time(end) / 1000 / number)
        else:
            synchronize(device)
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            synchronize(device)
            per_call.append((time.perf_counter() - t0) / number)
    q = statistics.quantiles(per_call, n=4) if len(per_call) > 1 else [per_call[0]] * 3
    return Timing(statistics.median(per_call), q[0], q[2], repeats, number)


def measure(dataset: str, model: dict, device: str, batch_sizes: list[int], threads: int | None = None,
            repeats: int = 7, epoch_batches: int = 50) -> list[dict]:
    """Rows of measurements for one device (and CPU thread count): train step, inference, and
    end-to-end epoch throughput per batch size, plus peak memory on CUDA."""
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
    rows = []
    for bs in batch_sizes:
        init_seed(0)
        net = models.build(model, info).to(device)
        timings, peak = _measure_batch(net, loss_fn, x_host, y_host, x_dev, y_dev, device, bs, repeats,
                                       epoch_batches)
        for kind, t in timings.items():
            per = bs * epoch_batches if kind == "epoch" else bs
            rows.append({"device": label, "threads": threads if not is_accelerator(device) else None,
                         "batch_size": bs, "kind": kind, "samples_per_s": per / t.median_s,
                         "q1_samples_per_s": per / t.q3_s, "q3_samples_per_s": per / t.q1_s,
                         "seconds_per_call": t.median_s, "blocks": t.blocks, "calls_per_block": t.number,
                         "peak_memory_bytes": peak if kind == "train" else None})
    return rows


def _measure_batch(net, loss_fn, x_host, y_host, x_dev, y_dev, device: str, bs: int, repeats: int,
                   epoch_batches: int) -> tuple[dict[str, Timing], int | None]:
    """Train step and inference on a resident batch; an epoch with host indexing and copies."""
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

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
    train = time_calls(train_step, device, repeats)
    peak = torch.cuda.max_memory_allocated(device) if device.startswith("cuda") else None
    inference = time_calls(infer, device, repeats)
    e2e = time_calls(epoch, device, repeats=max(3, repeats // 2), warmup=1, min_block_s=0.0)
    return {"train": train, "inference": inference, "epoch": e2e}, peak


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


def summary(rows, devices: list[str]) -> dict:
    """Crossover batch sizes per accelerator and kind, against the first CPU configuration."""
    cpu = next((d for d in devices if not is_accelerator(d)), "cpu")
    out = {"baseline": cpu, "accelerators": [d for d in devices if is_accelerator(d)], "crossover": {}}
    for acc in out["accelerators"]:
        out["crossover"][acc] = {k: crossover(rows, cpu, acc, k) for k in ("train", "inference", "epoch")}
    return out
