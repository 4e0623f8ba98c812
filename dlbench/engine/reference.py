"""The reference engine: one trial, a plain nn.Module, a torch.optim optimizer, a
torch.optim.lr_scheduler, and the textbook loop. It is the ground truth the fused engine is
tested against, so it stays simple enough to check at a glance."""

from __future__ import annotations

import warnings

import torch

from dlbench import catalogue, losses, models
from dlbench.data import Dataset
from dlbench.engine.common import (
    Timer,
    TrialResult,
    dtype_of,
    evaluate,
    evaluated,
    history_row,
    init_seed,
    is_diverged,
    make_optimizer,
    make_scheduler,
    needs_closure,
    period_orders,
    set_mode,
    tensors,
)
from dlbench.models.common import roles_of


def train(trial: dict, data: Dataset) -> TrialResult:
    *_, last = epochs(trial, data)  # every epoch's result; the last is the trial's
    return last


def epochs(trial: dict, data: Dataset):
    """Train one trial, yielding its result so far after each epoch (epoch 0, before any step,
    first): status ok while it goes on, diverged at the epoch it diverged (then it ends)."""
    device, dtype, task = trial["device"], dtype_of(trial), data.task
    splits = tensors(data, device, dtype)
    x_train, y_train = splits["train"]
    n, batch_size = len(x_train), trial["batch_size"]

    init_seed(trial["seed"])
    model = models.build(trial["model"], data.info).to(dtype).to(device)
    optimizer = make_optimizer(trial, list(model.parameters()), roles_of(model))
    scheduler = make_scheduler(trial, optimizer)
    loss_fn = losses.loss_fn(trial["loss"])
    orders = period_orders(trial, n)  # each epoch's samples (with a step budget: each period's)
    per_step = "max_steps" in trial  # the schedule steps after every optimizer step, not every epoch
    clip = trial.get("clip_grad_norm")

    closure_step = needs_closure(trial)  # LBFGS: step(closure), on the whole training set (checked in the spec)
    # Hessian-based optimizers differentiate the gradient again: it must keep its graph
    create_graph = catalogue.optimizer_of(trial).second_order

    def eval_all():  # the training, validation and test sets, each whole
        model.eval()
        set_mode([optimizer], training=False)
        with Timer(device) as t:
            evals = {name: evaluate(model, loss_fn, x, y, task) for name, (x, y) in evaluated(splits, task).items()}
        set_mode([optimizer], training=True)
        return evals, t.seconds

    evals, eval_time = eval_all()
    loss0 = evals["train"]["loss"]
    history = [history_row(0, loss0, evals, optimizer.param_groups[0]["lr"], 0, 0, 0.0, eval_time)]
    yield TrialResult(trial["id"], "ok", history)
    steps = samples = 0
    for epoch in range(1, trial["epochs"] + 1):
        lr = optimizer.param_groups[0]["lr"]
        order = orders[epoch - 1].to(device)
        batch_losses = []
        model.train()
        with Timer(device) as t:
            for idx in order.split(batch_size):
                if closure_step:
                    loss = optimizer.step(_closure(model, loss_fn, optimizer, x_train[idx], y_train[idx]))
                else:
                    loss = loss_fn(model(x_train[idx]), y_train[idx])
                    optimizer.zero_grad()
                    backward(loss, create_graph)
                    if clip is not None:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
                    optimizer.step()
                batch_losses.append(loss.detach())
                steps += 1
                samples += len(idx)
                if per_step and scheduler is not None:
                    scheduler.step()
            train_loss = float(torch.stack(batch_losses).mean())
        if scheduler is not None and not per_step:
            scheduler.step()
        evals, eval_time = eval_all()
        history.append(history_row(epoch, train_loss, evals, lr, steps, samples, t.seconds, eval_time))
        if is_diverged(train_loss, loss0) or is_diverged(evals["train"]["loss"], loss0):
            yield TrialResult(trial["id"], "diverged", history, diverged_epoch=epoch)
            return
        yield TrialResult(trial["id"], "ok", history)


def train_together(trials: list[dict], data: Dataset, at_epoch) -> list[TrialResult]:
    """Trials trained one epoch at a time in turn, each exactly as `train` trains it alone (each
    keeps its own state of torch's RNG between its epochs), and `at_epoch(epoch, trials, histories,
    status)` asked after each epoch which ones stop there (successive halving, dlbench.halving):
    those end with status `stopped` and their rung."""
    runs = [epochs(t, data) for t in trials]
    rng: list = [None] * len(trials)
    results: list[TrialResult | None] = [None] * len(trials)
    cuda = [torch.device(t["device"]) if t["device"].startswith("cuda") else None for t in trials]

    def advance(k: int) -> None:
        if rng[k] is not None:
            torch.set_rng_state(rng[k][0])
            if cuda[k] is not None:
                torch.cuda.set_rng_state(rng[k][1], cuda[k])
        try:
            results[k] = next(runs[k])
        except StopIteration:  # it had ended (diverged): nothing more
            pass
        rng[k] = (torch.get_rng_state(), torch.cuda.get_rng_state(cuda[k]) if cuda[k] is not None else None)

    for k in range(len(trials)):
        advance(k)  # epoch 0
    for epoch in range(1, trials[0]["epochs"] + 1):
        live = [k for k, r in enumerate(results) if r.status == "ok"]
        if not live:
            break
        for k in live:
            advance(k)
        if epoch < trials[0]["epochs"]:
            status = [r.status for r in results]
            for k in at_epoch(epoch, trials, [r.history for r in results], status):
                if results[k].status == "ok":
                    results[k] = TrialResult(trials[k]["id"], "stopped", results[k].history, rung=epoch)
    return results


def backward(loss: torch.Tensor, create_graph: bool) -> None:
    """loss.backward(), keeping the graph of the gradient for an optimizer that differentiates it
    again (torch then warns of a reference cycle it creates on purpose: not a user's concern)."""
    if not create_graph:
        loss.backward()
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        loss.backward(create_graph=True)


def _closure(model, loss_fn, optimizer, x, y):
    """The closure an LBFGS-style step calls to re-evaluate the loss and its gradient on one batch;
    the step returns the loss of its first evaluation."""
    def closure():
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        return loss

    return closure
