"""The fused engine: a group of trials trained as one stacked model.

All parameters of trial k live in row k of one flat leaf tensor `theta` [K, P] (engine/stacked.py),
so the forward pass is one batched computation and an optimizer update is a handful of elementwise
ops on [k, P] slices, whatever the depth. Trials may use different optimizers: the group is sorted
by optimizer and each updates its contiguous block of rows, by its hand-written rule where its
record names one (engine/updates.py), else by the optimizer itself over per-trial views
(engine/generic.py). The lr per epoch is the schedule in closed form (dlbench.schedules), the same
the reference engine's torch.optim.lr_scheduler gives.

Each trial gets the same initial weights (built by the reference model builder under its seed)
and the same data order (engine.common.data_order) as in the reference engine, so the two can
be compared trial by trial; tests/test_fused.py holds each path to the reference.

Trials are independent: a trial whose loss goes NaN/Inf or explodes is recorded as diverged at
that epoch and frozen (its rows zeroed, its lr set to 0); the others continue untouched.
"""

from __future__ import annotations

import functools
import math
import warnings

import torch

from dlbench import catalogue, losses
from dlbench.data import Dataset
from dlbench.engine import CPU_CACHE_PARAMETERS
from dlbench.engine import fused_supports as supports
from dlbench.engine.common import (
    RowClock,
    Timer,
    TrialResult,
    chunks,
    clip_rows,
    dtype_of,
    eval_chunk,
    evaluated,
    history_row,
    is_diverged,
    period_orders,
    schedule_index,
    tensors,
)
from dlbench.engine.generic import GenericUpdate
from dlbench.engine.stacked import stacked_model
from dlbench.engine.updates import UPDATES
from dlbench.schedules import lr_schedule
from dlbench.schema import config_key

# The layer views are strided rows of theta; autograd notes that and still accumulates in place.
LAYOUT_WARNING = "grad and param do not obey the gradient layout contract"


def per_trial_loss(name: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean loss of each trial over its batch -> [K]."""
    return losses.per_sample_loss(name, out, y).mean(dim=1)


@torch.no_grad()
def evaluate_all(net, loss: str, x, y, task: str) -> dict[str, torch.Tensor]:
    """Per-trial mean loss and metric over a whole split, each a [K] float64 tensor.

    Per-sample values are gathered first and reduced once per trial, so a trial's numbers do
    not depend on how many trials share its group (the chunking follows K, the sums do not):
    a resumed sweep that regroups the remaining trials reproduces them bit for bit."""
    K, n = net.K, len(x)
    per_sample = torch.empty(K, n, dtype=net.theta.dtype, device=x.device)  # x may hold token ids
    right = torch.empty(K, n, dtype=torch.bool, device=x.device) if task in ("multiclass", "binary") else (
        torch.empty(K, n, dtype=torch.float64, device=x.device) if task == "language_model" else None)
    sq = torch.empty(K, n, dtype=net.theta.dtype, device=x.device) if task == "regression" else None
    for i, j in chunks(n, eval_chunk(x, net.eval_chunk, K)):
        xb, yb = x[i:j], y[i:j]
        out = net.forward(xb, per_trial=False)
        yk = yb.unsqueeze(0).expand(K, *yb.shape)
        per_sample[:, i:j] = losses.per_sample_loss(loss, out, yk)
        if task == "multiclass":
            right[:, i:j] = out.argmax(dim=-1) == yk
        elif task == "language_model":  # next-token accuracy: each window's share of right guesses
            right[:, i:j] = (out.argmax(dim=-1) == yk).double().mean(dim=2)
        elif task == "binary":
            right[:, i:j] = (out.squeeze(-1) > 0).to(yb.dtype) == yk
        elif task == "regression":
            sq[:, i:j] = ((out - yk) ** 2).flatten(2).sum(dim=2)
    row = {"loss": per_sample.double().sum(dim=1) / n}
    if right is not None:
        row["acc"] = right.double().sum(dim=1) / n
    if task == "language_model":
        row["bpc"] = row["loss"] / math.log(2)
    elif sq is not None:
        total = sq.double().sum(dim=1)
        ss_tot = float(((y - y.mean(dim=0)) ** 2).sum())
        row["r2"] = 1 - total / ss_tot if ss_tot > 0 else torch.full_like(total, float("nan"))
        row["rmse"] = torch.sqrt(total / y.numel())
    return row


def train(trials: list[dict], data: Dataset, at_epoch=None) -> list[TrialResult]:
    """Train a group (same dataset, model, loss, batch size, epochs, device, dtype) at once.

    `at_epoch(epoch, trials, histories, status)`, when given, is asked after each epoch which
    trials to stop there (indices into the lists it gets, which are in the engine's order): their
    status becomes `stopped` at that epoch (their `rung`), their history ends there, and the unit
    goes on with the others, dropping the stopped rows where every update is a hand-written one
    (else holding them at lr 0). Rows never touch each other, so what goes on is what the
    survivors alone would give (successive halving, dlbench.halving)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=LAYOUT_WARNING)
        return _train(trials, data, at_epoch)


def _slices_of(keys: list) -> list[tuple[int, int]]:
    """The runs of equal keys: [(start, end), ...]."""
    out, start = [], 0
    while start < len(keys):
        end = start
        while end < len(keys) and keys[end] == keys[start]:
            end += 1
        out.append((start, end))
        start = end
    return out


def _train(trials: list[dict], data: Dataset, at_epoch=None) -> list[TrialResult]:
    first = trials[0]
    for t in trials:
        if supports(t) is not None:
            raise ValueError(supports(t))
    # by optimizer (each updates a contiguous block of rows; a torch.optim class trained by a
    # built-in's rule by that built-in, as its keywords make it one), then by hyperparameters
    same = [catalogue.same_builtin(t) for t in trials]
    rule_name = [s[0] if s is not None else "" for s in same]
    order_idx = sorted(range(len(trials)), key=lambda i: (trials[i]["optimizer"], rule_name[i],
                                                          config_key(trials[i]), i))
    trials, same, rule_name = ([seq[i] for i in order_idx] for seq in (trials, same, rule_name))
    device, dtype, task = first["device"], dtype_of(first), data.task
    splits = tensors(data, device, dtype)
    x_train, y_train = splits["train"]
    n, bs, epochs, K = len(x_train), first["batch_size"], first["epochs"], len(trials)

    net = stacked_model(trials, data.info, dtype, device)
    P = net.theta.shape[1]
    kinds = [(t["optimizer"], r) for t, r in zip(trials, rule_name, strict=True)]
    slices, updates, generic = [], [], []
    for start, end in _slices_of(kinds):
        if same[start] is not None:  # a hand-written stacked update computes what this optimizer computes
            builtin = same[start][0]
            slices.append((start, end))
            # the trials as the built-in's rule reads them: its name (the variant) and its knobs
            as_builtin = [{**t, "optimizer": builtin, **s[1]} for t, s in zip(trials[start:end], same[start:end],
                                                                                strict=True)]
            matrices = net.matrix_mask() if any(t.get("weight_decay_on") == "matrices" for t in as_builtin) else None
            updates.append(UPDATES[catalogue.optimizer_rule(builtin)](as_builtin, (end - start, P), dtype, device,
                                                                      matrices))
        else:
            generic.append(GenericUpdate(trials[start:end], net, start))
    lrs = torch.tensor([lr_schedule(t) for t in trials], dtype=torch.float64, device=device).T  # [E, K]
    # rows per optimizer-update call: a cache-sized block per state tensor keeps a CPU update fast
    # (measured: Adam on 64 × 26k parameters, 4.2 ms whole, 2.7 ms in blocks of 8)
    block = K if device != "cpu" else max(1, CPU_CACHE_PARAMETERS // P)
    orders = [period_orders(t, n) for t in trials]  # each epoch's samples (with a step budget: each period's)
    per_step = "max_steps" in first  # a step budget: the lr follows the schedule step by step
    clip = torch.tensor([[t.get("clip_grad_norm", math.inf)] for t in trials], dtype=dtype, device=device)
    clipped = bool(torch.isfinite(clip).any())

    histories: list[list[dict]] = [[] for _ in trials]
    status = ["ok"] * K
    diverged_at: list[int | None] = [None] * K
    rung: list[int | None] = [None] * K
    rows = list(range(K))  # the trial each row of the stacked model holds (rows drop as trials stop)
    alive = torch.ones(K, 1, dtype=torch.bool, device=device)
    frozen = False

    def evaluate_epoch():  # per split, per metric: a list over the rows
        net.train(False)
        for g in generic:
            g.set_mode(training=False)
        with Timer(device) as timer:
            evals = {name: {m: v.tolist() for m, v in evaluate_all(net, first["loss"], x, y, task).items()}
                     for name, (x, y) in evaluated(splits, task).items()}
        for g in generic:
            g.set_mode(training=True)
        net.train(True)
        return evals, timer.seconds

    evals, eval_time = evaluate_epoch()
    loss0 = evals["train"]["loss"]
    for k in range(K):
        histories[k].append(history_row(0, loss0[k], _at(evals, k), float(lrs[0, k]), 0, 0, 0.0, eval_time / K))
    steps = samples = 0
    for epoch in range(1, epochs + 1):
        perm = torch.stack([orders[k][epoch - 1] for k in rows]).to(device)  # [rows, samples of the period]
        at = schedule_index(first, epoch, steps)  # the lr during this period's first step
        lr_slices = _lr_slices(lrs, at, rows, alive, slices)
        for g in generic:
            g.set_lr(at + 1, alive)
        loss_sum = torch.zeros(len(rows), dtype=torch.float64, device=device)
        n_batches = 0
        clock = RowClock(device, len(rows))  # each row's own optimizer updates, apart from the shared work
        with Timer(device) as timer:
            for i in range(0, perm.shape[1], bs):
                if per_step and i:  # the schedule moves step by step
                    lr_slices = _lr_slices(lrs, steps, rows, alive, slices)
                    for g in generic:
                        g.set_lr(steps + 1, alive)
                idx = perm[:, i:i + bs]  # [rows, B]
                xb = x_train[idx]  # [rows, B, *input]
                yb = y_train[idx]
                batch_loss = per_trial_loss(first["loss"], net.forward(xb, per_trial=True), yb)
                net.grad.zero_()
                batch_loss.sum().backward()  # trials are independent: row k of grad is trial k's
                steps += 1
                samples += idx.shape[1]
                with torch.no_grad():
                    if clipped:  # each trial's gradient by its own global norm, as clip_grad_norm_ does
                        clip_rows(net.grad, clip[rows] if len(rows) < K else clip)
                    for (a, b), upd, lr in zip(slices, updates, lr_slices, strict=True):
                        # in blocks of rows that stay in cache: the update is memory-bound
                        for r0 in range(0, b - a, block):
                            r1 = min(r0 + block, b - a)
                            r = slice(r0, r1)
                            clock.time(a + r0, a + r1, functools.partial(
                                upd.step, net.theta[a + r0:a + r1], net.grad[a + r0:a + r1], lr[r], steps, r))
                    for g in generic:
                        g.step(clock)
                    if frozen:
                        net.theta.masked_fill_(~alive, 0.0)
                    loss_sum += batch_loss.detach().double()
                n_batches += 1
            train_loss = (loss_sum / n_batches).tolist()
        evals, eval_time = evaluate_epoch()
        # a row's training time: its share of the shared work (forward, backward, data), and its own
        # optimizer's updates (optimizers of one unit cost differently: Muon's step is not AdamW's)
        own = clock.per_row()
        shared = max(0.0, timer.seconds - sum(own)) / len(rows)
        for r, k in enumerate(rows):
            if status[k] != "ok":
                continue
            histories[k].append(history_row(epoch, train_loss[r], _at(evals, r), float(lrs[at, k]),
                                            steps, samples, shared + own[r], eval_time / len(rows)))
            if is_diverged(train_loss[r], loss0[k]) or is_diverged(evals["train"]["loss"][r], loss0[k]):
                status[k], diverged_at[k] = "diverged", epoch
                alive[r] = False
                frozen = True  # its row is held at zero and its lr at 0 from now on
        if at_epoch is not None and epoch < epochs:
            for k in at_epoch(epoch, trials, histories, status):
                if status[k] == "ok":
                    status[k], rung[k] = "stopped", epoch
                    alive[rows.index(k)] = False
                    frozen = True
            if not generic and not bool(alive.all()):  # the stopped and diverged rows leave the unit
                keep = [r for r in range(len(rows)) if bool(alive[r])]
                if keep:
                    net.keep_rows(keep)
                    slices, updates = _kept(slices, updates, keep)
                    rows, alive = [rows[r] for r in keep], alive[keep]
                    frozen = False
        if "ok" not in status:
            break  # every trial of the unit diverged or stopped: nothing left to train
    results = [TrialResult(t["id"], status[k], histories[k], diverged_epoch=diverged_at[k], engine="fused",
                           rung=rung[k]) for k, t in enumerate(trials)]
    # back to the caller's order
    out = [None] * K
    for pos, i in enumerate(order_idx):
        out[i] = results[pos]
    return out


def _lr_slices(lrs: torch.Tensor, at: int, rows: list[int], alive: torch.Tensor,
               slices: list[tuple[int, int]]) -> list[torch.Tensor]:
    """Each hand-written update's lrs [rows, 1] at schedule index `at` (0 for a frozen row)."""
    lr_now = (lrs[at, rows].view(-1, 1) * alive).contiguous()
    return [lr_now[a:b] for a, b in slices]


def _kept(slices: list[tuple[int, int]], updates: list, keep: list[int]) -> tuple[list, list]:
    """The updates' slices and states for the rows `keep` (sorted), slices that keep no row dropped."""
    out_slices, out_updates, start = [], [], 0
    for (a, b), upd in zip(slices, updates, strict=True):
        local = [r - a for r in keep if a <= r < b]
        if local:
            upd.keep_rows(local)
            out_slices.append((start, start + len(local)))
            out_updates.append(upd)
            start += len(local)
    return out_slices, out_updates


def _at(evals: dict[str, dict[str, list]], k: int) -> dict[str, dict[str, float]]:
    """Trial k's numbers out of per-split, per-metric lists over the unit."""
    return {name: {m: vals[k] for m, vals in row.items()} for name, row in evals.items()}
