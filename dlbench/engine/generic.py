"""Any torch.optim.Optimizer on the fused engine: the optimizer, unmodified, over per-trial views of
the stacked parameters (one param group per trial, or one instance per trial), in the reference
module's parameter order, shapes and memory layout."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dlbench import optim
from dlbench.engine.common import set_mode
from dlbench.schedules import lr_schedule
from dlbench.schema import config_key


class GenericUpdate:
    """The optimizer, unmodified, on a block of rows of the stacked model. Each trial gets its own
    instance over its own parameters (so per-tensor and global rules, LAMB's trust ratio, Prodigy's
    step-size estimate, SOAP's eigenbases, a wrapper's slow weights, see exactly one trial), in the
    reference module's parameter order, shapes and memory layout: leaf views of the stacked rows
    where they are laid out as the reference's parameters are, else contiguous copies synchronized
    around each step (a matmul on a transposed view rounds differently, and an eigenbasis amplifies
    that). Where its record says the update acts on each element alone (torch.optim's elementwise
    classes), trials with identical hyperparameters share one instance over views of their stacked
    rows: the same numbers, fewer calls.

    Each param group's lr follows the schedule in closed form from the lr it was built with (the
    trial's lr; a split optimizer's rest_lr), as the reference engine's scheduler scales each group
    from its own initial lr. Gradients are handed over again before every step: an optimizer may
    free them inside step() (p.grad = None), as some do to save memory."""

    def __init__(self, trials: list[dict], net, start: int):
        entry = optim.entry_of(trials[0])
        self.slots: list[_Slot] = []
        i = 0
        while i < len(trials):
            j = i + 1
            if entry.elementwise:
                while j < len(trials) and config_key(trials[j]) == config_key(trials[i]):
                    j += 1
            views = net.leaves(start + i, start + j)
            grads = [v.grad for v in views]
            pairs = None
            if not entry.elementwise and not all(v.is_contiguous() for v in views):
                pairs = []
                for v in views:
                    p = v.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)
                    p.grad = torch.zeros_like(p)
                    pairs.append((v, p))
            opt = optim.build(trials[i], views if pairs is None else [p for _, p in pairs], net.roles)
            schedules = [lr_schedule({**trials[i], "lr": float(g["lr"])}) for g in opt.param_groups]
            self.slots.append(_Slot(start + i, opt, views, grads, pairs, schedules, j - i))
            i = j

    def set_lr(self, epoch: int, alive: torch.Tensor) -> None:
        """Each group's lr during this epoch (1-based): its schedule, or 0 for a diverged trial."""
        for s in self.slots:
            live = bool(alive[s.first])
            for group, schedule in zip(s.opt.param_groups, s.schedules, strict=True):
                group["lr"] = schedule[epoch - 1] if live else 0.0

    @torch.no_grad()
    def step(self, clock=None) -> None:
        """Each slot's optimizer steps; `clock` (engine.common.RowClock) times each slot's step as
        its rows' own update time."""
        for s in self.slots:
            if clock is None:
                self._step(s)
            else:
                clock.time(s.first, s.first + s.rows, lambda s=s: self._step(s))

    @staticmethod
    def _step(s) -> None:
        if s.pairs is None:
            for v, g in zip(s.views, s.grads, strict=True):
                if v.grad is None:
                    v.grad = g
            s.opt.step()
            return
        for (_, p), g in zip(s.pairs, s.grads, strict=True):
            if p.grad is None:
                p.grad = torch.empty_like(p)
            p.grad.copy_(g)
        s.opt.step()
        for v, p in s.pairs:
            v.copy_(p)

    @torch.no_grad()
    def set_mode(self, training: bool) -> None:
        for s in self.slots:
            set_mode([s.opt], training)
            for v, p in s.pairs or []:  # a mode switch may move the parameters (schedule-free: y <-> x)
                v.copy_(p)


@dataclass
class _Slot:
    first: int  # its first row of the stacked model
    opt: torch.optim.Optimizer
    views: list[torch.Tensor]  # leaf views of its rows, in the reference's parameter order
    grads: list[torch.Tensor]  # their gradients: views of the stacked gradient
    pairs: list | None  # (view, contiguous copy) when the optimizer works on copies
    schedules: list[list[float]]  # per param group: the lr of each epoch
    rows: int = 1  # the rows it updates (trials sharing an elementwise instance)
