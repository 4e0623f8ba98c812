"""An optimizer of your own, for `dlbench sweep --optimizer ./my_optimizer.py:Signum`.

Signum (Bernstein et al. 2018, "signSGD: compressed optimisation for non-convex problems"): SGD
that steps by the sign of a momentum of the gradient, every coordinate by the same amount:

    m_t = β m_{t-1} + (1 - β) g_t
    θ_t = θ_{t-1} - lr (sign(m_t) + λ θ_{t-1})          (λ: weight_decay)

A plain torch.optim.Optimizer: nothing of dlbench in it. dlbench trains many trials of it at once
(one optimizer per trial over views of the stacked model) and checks, on its test suite, that it
gives what a plain loop gives.
"""

import torch


class Signum(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, beta=0.9, weight_decay=0.0):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta must be in [0, 1), got {beta}")
        if weight_decay < 0.0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        super().__init__(params, dict(lr=lr, beta=beta, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum" not in state:
                    state["momentum"] = torch.zeros_like(p)
                m = state["momentum"]
                m.mul_(group["beta"]).add_(p.grad, alpha=1 - group["beta"])
                update = torch.sign(m)
                if group["weight_decay"]:
                    update = update.add(p, alpha=group["weight_decay"])
                p.add_(update, alpha=-group["lr"])
        return loss
