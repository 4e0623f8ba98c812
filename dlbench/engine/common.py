"""What both engines share: tensors on a device, full-set evaluation, the divergence rule, the
lr schedule, and the per-trial data order. Keeping these in one place is what lets the fused
engine reproduce the reference engine trial by trial."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from dlbench import catalogue, optim
from dlbench.data import Dataset
from dlbench.schedules import units as schedule_units

DIVERGENCE_FACTOR = 1e6  # a loss above 1e6 × its epoch-0 value counts as diverged
EVAL_CHUNK = 8192
SEQUENCE_EVAL_CELLS = 1 << 21  # a sequence model's evaluation chunk: about this many attention cells (windows × T²)


def eval_chunk(x: torch.Tensor, size: int = EVAL_CHUNK, models: int = 1) -> int:
    """Samples per evaluation chunk: `size`, or for windows of tokens (a sequence model's inputs,
    whose attention and logits grow with the window's length squared) as many as hold about
    SEQUENCE_EVAL_CELLS cells for `models` models at once."""
    if x.is_floating_point() or x.dim() != 2:
        return size
    T = x.shape[1]
    return min(size, max(SMALLEST_CHUNK, SEQUENCE_EVAL_CELLS // (T * max(T, 64) * models)))


@dataclass
class TrialResult:
    trial_id: str
    status: str  # ok | diverged | stopped | failed
    history: list[dict] = field(default_factory=list)
    diverged_epoch: int | None = None
    error: str | None = None
    engine: str = "reference"
    rung: int | None = None  # stopped by successive halving: the epochs it trained (its history's last)


def dtype_of(trial: dict) -> torch.dtype:
    return torch.float64 if trial["dtype"] == "float64" else torch.float32


def evaluated(splits: dict[str, tuple[torch.Tensor, torch.Tensor]], task: str) -> dict[str, tuple]:
    """The splits every evaluation measures: each whole, but a language model's training split,
    whose every window a full evaluation would run through ten times a validation's worth each
    period: as many of its windows as the validation (else test) split holds, every k-th from
    the start (the same windows on both engines and at every evaluation), as nanoGPT estimates its
    training loss on a sample too."""
    if task != "language_model":
        return splits
    x, y = splits["train"]
    n = len((splits.get("val") or splits["test"])[0])
    if n >= len(x):
        return splits
    idx = torch.arange(n, device=x.device) * (len(x) // n)
    return {**splits, "train": (x[idx], y[idx])}


def tensors(data: Dataset, device: str, dtype: torch.dtype) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{"train", "val" (when there is a validation split), "test"} -> (inputs, targets) on
    `device`; targets are class indices or float values. Evaluation runs over them in this order."""
    def conv(a):
        t = torch.from_numpy(a)
        if t.is_floating_point():
            t = t.to(dtype)
        return t.to(device)

    splits = {"train": (conv(data.x_train), conv(data.y_train))}
    if data.x_val is not None:
        splits["val"] = (conv(data.x_val), conv(data.y_val))
    splits["test"] = (conv(data.x_test), conv(data.y_test))
    return splits


def data_order(seed: int, n: int, epochs: int) -> list[torch.Tensor]:
    """The permutation of the training set for each epoch, from the trial seed alone (CPU RNG),
    so that every engine and device visits samples in the same order."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randperm(n, generator=g) for _ in range(epochs)]


def period_orders(trial: dict, n: int) -> list[torch.Tensor]:
    """The samples a trial trains on in each period between evaluations, in order: an epoch's
    permutation (data_order) for an epoch budget; for a step budget, `eval_every` batches of the
    stream of those permutations one after another (a batch may span two epochs, as nanoGPT's
    batches ignore epochs), the last period what is left of `steps`."""
    if "max_steps" not in trial:
        return data_order(trial["seed"], n, trial["epochs"])
    bs, steps, every = trial["batch_size"], trial["max_steps"], trial["eval_every"]
    stream = torch.cat(data_order(trial["seed"], n, math.ceil(steps * bs / n)))[:steps * bs]
    return list(stream.split(every * bs))


def schedule_index(trial: dict, period: int, step: int) -> int:
    """Where a trial's lr schedule stands (0-based): its period's (an epoch budget steps the
    schedule once per epoch) or the optimizer step's about to be taken (a step budget)."""
    return step if "max_steps" in trial else period - 1


def clip_rows(grad: torch.Tensor, max_norm: torch.Tensor) -> None:
    """torch.nn.utils.clip_grad_norm_ for each row of a stacked gradient [k, P] at once: a row whose
    norm exceeds its max_norm [k, 1] (inf: no clipping) is scaled by max_norm / (norm + 1e-6)."""
    norm = torch.linalg.vector_norm(grad, dim=1, keepdim=True)
    grad.mul_(torch.clamp(max_norm / (norm + 1e-6), max=1.0))


def init_seed(seed: int) -> None:
    """Model initialization draws from torch's global CPU RNG under the trial seed."""
    torch.manual_seed(seed)


def make_optimizer(trial: dict, params, roles: list[str] | None = None) -> torch.optim.Optimizer:
    """The trial's optimizer over `params`, as its catalogue record builds it (a built-in's
    torch.optim class with its knobs; anyone else's exactly as its constructor builds it).
    `roles`: each parameter's role in the model (models.common.roles_of)."""
    return optim.build(trial, params, roles)


def needs_closure(trial: dict) -> bool:
    """Whether the trial's optimizer steps with a closure that re-evaluates the loss (LBFGS)."""
    return catalogue.optimizer_of(trial).needs_closure


def set_mode(optimizers, training: bool) -> None:
    """Optimizers with train() and eval() (schedule-free ones) evaluate in eval mode: put them there
    before an evaluation and back after it. Others have nothing to switch."""
    for opt in optimizers:
        switch = getattr(opt, "train" if training else "eval", None)
        if callable(switch):
            switch()


def make_scheduler(trial: dict, optimizer: torch.optim.Optimizer):
    """A torch.optim.lr_scheduler stepped once per epoch, or None for a constant lr."""
    from torch.optim import lr_scheduler as ls

    s = trial["schedule"]
    warm = s["warmup"]
    main_epochs = schedule_units(trial) - warm  # epochs, or steps for a step budget
    kind = s["kind"]
    main = None
    if kind == "step":
        main = ls.StepLR(optimizer, step_size=s["step_size"], gamma=s["gamma"])
    elif kind == "exponential":
        main = ls.ExponentialLR(optimizer, gamma=s["gamma"])
    elif kind == "cosine":
        main = ls.CosineAnnealingLR(optimizer, T_max=main_epochs, eta_min=s["eta_min"])
    if not warm:
        return main
    warmup = ls.LinearLR(optimizer, start_factor=1.0 / (warm + 1), end_factor=1.0, total_iters=warm)
    if main is None:
        return warmup
    return ls.SequentialLR(optimizer, schedulers=[warmup, main], milestones=[warm])


def lr_per_epoch(trial: dict) -> list[float]:
    """The lr in effect during each training epoch 1..E (each step with a step budget), read off
    the real torch scheduler: the oracle that optim.lr_schedule (the fused engine's closed form) is
    tested against."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=trial["lr"])
    sched = make_scheduler(trial, opt)
    out = []
    for _ in range(schedule_units(trial)):
        out.append(opt.param_groups[0]["lr"])
        if sched is not None:
            opt.step()  # keeps torch from warning that the scheduler stepped first
            sched.step()
    return out


SMALLEST_CHUNK = 16  # samples; a matmul of 1 or 2 rows takes another kernel here (float32: 1, float64: 1-2)


def chunks(n: int, size: int) -> list[tuple[int, int]]:
    """[start, end) pieces of n samples, `size` each (at least SMALLEST_CHUNK), where a last piece
    under SMALLEST_CHUNK samples joins the one before: a matmul of a row or two takes another kernel
    (a matrix-vector product) and rounds differently, so a sample's numbers would depend on where
    the cuts fall, i.e. on how many trials share its unit. Pieces of SMALLEST_CHUNK rows or more give
    every sample the numbers of the whole split at once (tests/test_fused.py)."""
    bounds = [*range(0, n, max(SMALLEST_CHUNK, size)), n]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] < SMALLEST_CHUNK:
        del bounds[-2]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


@torch.no_grad()
def evaluate(forward, loss_fn, x, y, task: str) -> dict:
    """Mean loss and the task's metric over a whole split, in chunks."""
    total, n = 0.0, len(x)
    correct = 0.0
    sq_err = 0.0
    for i, j in chunks(n, eval_chunk(x)):
        xb, yb = x[i:j], y[i:j]
        out = forward(xb)
        total += float(loss_fn(out, yb)) * len(xb)
        if task == "multiclass":
            correct += float((out.argmax(dim=-1) == yb).sum())
        elif task == "language_model":  # next-token accuracy: each window's share of right guesses
            correct += float((out.argmax(dim=-1) == yb).double().mean(dim=1).sum())
        elif task == "binary":
            correct += float(((out.squeeze(-1) > 0).to(yb.dtype) == yb).sum())
        elif task == "regression":
            sq_err += float(((out - yb) ** 2).sum())
    row = {"loss": total / n}
    if task in ("multiclass", "binary", "language_model"):
        row["acc"] = correct / n
    if task == "language_model":
        row["bpc"] = row["loss"] / math.log(2)
    elif task == "regression":
        ss_tot = float(((y - y.mean(dim=0)) ** 2).sum())
        row["r2"] = 1.0 - sq_err / ss_tot if ss_tot > 0 else float("nan")
        row["rmse"] = math.sqrt(sq_err / y.numel())
    return row


def history_row(epoch: int, train_loss: float, evals: dict[str, dict], lr: float, steps: int,
                samples: int, train_time: float, eval_time: float) -> dict:
    """One epoch of a trial's history. `evals` holds evaluate()'s numbers per split ("train",
    "test", and "val" when the trial has a validation split; without one the val_* are NaN)."""
    nan = float("nan")
    train, val, test = evals["train"], evals.get("val", {}), evals["test"]
    return {
        "epoch": epoch,
        "train_loss": train_loss,
        "train_eval_loss": train["loss"],
        "train_acc": train.get("acc", nan),
        "val_loss": val.get("loss", nan),
        "val_acc": val.get("acc", nan),
        "val_r2": val.get("r2", nan),
        "val_rmse": val.get("rmse", nan),
        "val_bpc": val.get("bpc", nan),
        "test_loss": test["loss"],
        "test_acc": test.get("acc", nan),
        "test_r2": test.get("r2", nan),
        "test_rmse": test.get("rmse", nan),
        "test_bpc": test.get("bpc", nan),
        "lr": lr,
        "steps": steps,
        "samples": samples,
        "train_time": train_time,
        "eval_time": eval_time,
    }


def is_diverged(loss: float, loss0: float) -> bool:
    """NaN/Inf, or above DIVERGENCE_FACTOR × the epoch-0 loss."""
    if not math.isfinite(loss):
        return True
    return abs(loss) > DIVERGENCE_FACTOR * max(abs(loss0), 1e-12)


def sync(device: str) -> None:
    """Wait for queued kernels so that host timers measure the work, not the launches."""
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    elif device == "mps":
        torch.mps.synchronize()


class RowClock:
    """Seconds spent in each row's optimizer update during a period of the fused engine: a call that
    updates rows a..b at once is timed and shared equally among them. On the CPU the calls are timed
    by the host clock; on a GPU by CUDA events read once at the period's end (no sync per call)."""

    def __init__(self, device: str, rows: int):
        self.cuda = device.startswith("cuda")
        self.seconds = [0.0] * rows
        self.events: list[tuple[int, int, object, object]] = []

    def time(self, a: int, b: int, fn) -> None:
        """Run fn() as the update of rows a..b (their share of its time each)."""
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            self.events.append((a, b, start, end))
            return
        t0 = time.perf_counter()
        fn()
        share = (time.perf_counter() - t0) / (b - a)
        for r in range(a, b):
            self.seconds[r] += share

    def per_row(self) -> list[float]:
        if self.events:
            torch.cuda.synchronize()
            for a, b, start, end in self.events:
                share = start.elapsed_time(end) / 1000 / (b - a)
                for r in range(a, b):
                    self.seconds[r] += share
            self.events = []
        return self.seconds


class Timer:
    def __init__(self, device: str):
        self.device = device

    def __enter__(self):
        sync(self.device)
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        sync(self.device)
        self.seconds = time.perf_counter() - self.t0
