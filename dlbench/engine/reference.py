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
    data_order,
    dtype_of,
    evaluate,
    history_row,
    init_seed,
    is_diverged,
    make_optimizer,
    make_scheduler,
    needs_closure,
    set_mode,
    tensors,
)


def train(trial: dict, data: Dataset) -> TrialResult:
    device, dtype, task = trial["device"], dtype_of(trial), data.task
    splits = tensors(data, device, dtype)
    x_train, y_train = splits["train"]
    n, batch_size = len(x_train), trial["batch_size"]

    init_seed(trial["seed"])
    model = models.build(trial["model"], data.info).to(dtype).to(device)
    optimizer = make_optimizer(trial, model.parameters())
    scheduler = make_scheduler(trial, optimizer)
    loss_fn = losses.loss_fn(trial["loss"])
    orders = data_order(trial["seed"], n, trial["epochs"])

    closure_step = needs_closure(trial)  # LBFGS: step(closure), on the whole training set (checked in the spec)
    # Hessian-based optimizers differentiate the gradient again: it must keep its graph
    create_graph = catalogue.optimizer_of(trial).second_order

    def eval_all():  # the training, validation and test sets, each whole
        model.eval()
        set_mode([optimizer], training=False)
        with Timer(device) as t:
            evals = {name: evaluate(model, loss_fn, x, y, task) for name, (x, y) in splits.items()}
        set_mode([optimizer], training=True)
        return evals, t.seconds

    evals, eval_time = eval_all()
    loss0 = evals["train"]["loss"]
    history = [history_row(0, loss0, evals, optimizer.param_groups[0]["lr"], 0, 0, 0.0, eval_time)]
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
                    optimizer.step()
                batch_losses.append(loss.detach())
                steps += 1
                samples += len(idx)
            train_loss = float(torch.stack(batch_losses).mean())
        if scheduler is not None:
            scheduler.step()
        evals, eval_time = eval_all()
        history.append(history_row(epoch, train_loss, evals, lr, steps, samples, t.seconds, eval_time))
        if is_diverged(train_loss, loss0) or is_diverged(evals["train"]["loss"], loss0):
            return TrialResult(trial["id"], "diverged", history, diverged_epoch=epoch)
    return TrialResult(trial["id"], "ok", history)


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
