"""The hand-written fused updates of the built-in optimizers: each reproduces one torch.optim class
(single-tensor form) on a [k, P] slice of the stacked parameters, with per-trial hyperparameters
as [k, 1] tensors. A built-in optimizer names its rule (builtin.Optimizer.fused_rule), and a
torch.optim class some built-in is trains by that built-in's (catalogue.same_builtin);
tests/test_fused.py holds each rule to its class on random hyperparameters and seeds."""

from __future__ import annotations

import torch


class _Hyper:
    """Per-trial hyperparameters of one optimizer slice, as [k, 1] float64 tensors. `matrices`: [P]
    True where a column of the stacked parameters belongs to a matrix (where weight decay applies
    for a trial with weight_decay_on = "matrices")."""

    def __init__(self, trials: list[dict], device, matrices: torch.Tensor | None = None):
        self.device = device
        self.trials = trials
        self.matrices = matrices

    def col(self, key, index=None) -> torch.Tensor:
        vals = [t[key] if index is None else t[key][index] for t in self.trials]
        return torch.tensor([float(v) for v in vals], dtype=torch.float64, device=self.device).view(-1, 1)

    def decay64(self) -> torch.Tensor:
        """Weight decay per trial [k, 1] in float64; [k, P] where a trial decays its matrices only
        (0 on the other columns: torch's param group of them has weight_decay 0)."""
        wd = self.col("weight_decay")
        only = [t.get("weight_decay_on") == "matrices" for t in self.trials]
        if not any(only):
            return wd
        mask = torch.ones(len(self.trials), len(self.matrices), dtype=torch.float64, device=self.device)
        mask[torch.tensor(only, device=self.device)] = self.matrices.to(torch.float64)
        return wd * mask

    def decay(self, dtype) -> torch.Tensor | None:
        """Weight decay as a [k, 1] (or [k, P]) tensor, or None when no trial has any (torch skips it then)."""
        wd = self.decay64()
        return wd.to(dtype) if bool((wd != 0).any()) else None


class _Rows:
    """What every update shares: keeping some of its rows when the others' trials stopped. Each
    per-trial tensor it holds (hyperparameters [k, 1], state [k, P]) keeps those rows."""

    def keep_rows(self, rows: list[int]) -> None:
        k = self.k
        for name, value in list(vars(self).items()):
            if isinstance(value, torch.Tensor) and value.dim() >= 1 and value.shape[0] == k:
                setattr(self, name, value[rows].clone())
        self.k = len(rows)


def _decayed(g: torch.Tensor, p: torch.Tensor, wd: torch.Tensor | None) -> torch.Tensor:
    """g + λ θ: L2 decay added to the gradient (as torch.optim does with weight_decay != 0)."""
    return g if wd is None else g.add(p * wd)


class SGDUpdate(_Rows):
    r"""torch.optim.SGD (optimizers sgd, momentum, nesterov), per trial k:

        d_t = g_t + λ θ_{t-1}
        b_1 = d_1;  b_t = μ b_{t-1} + (1 - τ) d_t          (momentum μ > 0, dampening τ)
        d_t ← d_t + μ b_t (nesterov)  or  d_t ← b_t (heavy ball)
        θ_t = θ_{t-1} - γ d_t
    """

    def __init__(self, trials, shape, dtype, device, matrices=None):
        self.k = len(trials)
        h = _Hyper(trials, device, matrices)
        self.dtype = dtype
        self.wd = h.decay(dtype)
        self.has_momentum = trials[0]["optimizer"] in ("momentum", "nesterov")
        self.nesterov = trials[0]["optimizer"] == "nesterov"
        if self.has_momentum:
            self.mom = h.col("momentum").to(dtype)
            self.one_minus_damp = (1 - h.col("dampening")).to(dtype) if "dampening" in trials[0] else None
            zero = h.col("momentum") == 0  # as torch decides it: on the Python float, not the cast
            self.zero_mom = zero if bool(zero.any()) else None
            self.buf = torch.zeros(shape, dtype=dtype, device=device)

    def step(self, p, g, lr, t, r):
        d = _decayed(g, p, None if self.wd is None else self.wd[r])
        if self.has_momentum:
            buf = self.buf[r]
            if t == 1:
                buf.copy_(d)
            else:
                buf.mul_(self.mom[r]).add_(d if self.one_minus_damp is None else d * self.one_minus_damp[r])
            step_dir = d.add(buf * self.mom[r]) if self.nesterov else buf
            d = step_dir if self.zero_mom is None else torch.where(self.zero_mom[r], d, step_dir)
        p.sub_(lr.to(self.dtype) * d)


class AdagradUpdate(_Rows):
    r"""torch.optim.Adagrad, per trial k:

        d_t = g_t + λ θ_{t-1};   γ̃_t = γ / (1 + (t - 1) η)           (lr_decay η)
        s_t = s_{t-1} + d_t²      (s_0 = initial_accumulator_value)
        θ_t = θ_{t-1} - γ̃_t d_t / (√s_t + ε)
    """

    def __init__(self, trials, shape, dtype, device, matrices=None):
        self.k = len(trials)
        h = _Hyper(trials, device, matrices)
        self.dtype = dtype
        self.wd = h.decay(dtype)
        self.lr_decay = h.col("lr_decay")
        self.eps = h.col("eps").to(dtype)
        self.sum = h.col("initial_accumulator_value").to(dtype).expand(shape).clone()

    def step(self, p, g, lr, t, r):
        d = _decayed(g, p, None if self.wd is None else self.wd[r])
        clr = (lr / (1 + (t - 1) * self.lr_decay[r])).to(self.dtype)
        acc = self.sum[r]
        acc.addcmul_(d, d)
        std = acc.sqrt().add_(self.eps[r])
        p.add_(-clr * (d / std))


class RMSpropUpdate(_Rows):
    r"""torch.optim.RMSprop, per trial k:

        d_t = g_t + λ θ_{t-1}
        v_t = α v_{t-1} + (1 - α) d_t²
        centered: m_t = α m_{t-1} + (1 - α) d_t;  v̂_t = v_t - m_t²   else v̂_t = v_t
        b_t = μ b_{t-1} + d_t / (√v̂_t + ε)        (μ = 0: b_t = d_t / (√v̂_t + ε))
        θ_t = θ_{t-1} - γ b_t
    """

    def __init__(self, trials, shape, dtype, device, matrices=None):
        self.k = len(trials)
        h = _Hyper(trials, device, matrices)
        self.dtype = dtype
        self.wd = h.decay(dtype)
        self.alpha = h.col("alpha").to(dtype)
        self.one_minus_alpha = (1 - h.col("alpha")).to(dtype)
        self.eps = h.col("eps").to(dtype)
        self.mom = h.col("momentum").to(dtype)
        self.centered = h.col("centered") > 0
        self.any_centered = bool(self.centered.any())
        self.sq = torch.zeros(shape, dtype=dtype, device=device)
        self.avg = torch.zeros(shape, dtype=dtype, device=device) if self.any_centered else None
        self.buf = torch.zeros(shape, dtype=dtype, device=device)

    def step(self, p, g, lr, t, r):
        d = _decayed(g, p, None if self.wd is None else self.wd[r])
        sq = self.sq[r]
        sq.mul_(self.alpha[r]).addcmul_(d, d * self.one_minus_alpha[r])
        if self.any_centered:
            avg = self.avg[r]
            avg.lerp_(d, self.one_minus_alpha[r])
            centered = sq.addcmul(avg, avg, value=-1).sqrt_()
            denom = torch.where(self.centered[r], centered, sq.sqrt())
        else:
            denom = sq.sqrt()
        denom.add_(self.eps[r])
        buf = self.buf[r]
        buf.mul_(self.mom[r]).add_(d / denom)
        p.add_(-lr.to(self.dtype) * buf)


class AdamUpdate(_Rows):
    r"""torch.optim.Adam (adam: L2 in the gradient) and torch.optim.AdamW (adamw: decoupled
    decay), per trial k:

        adamw: θ ← θ (1 - γ λ);    adam: d_t = g_t + λ θ_{t-1}  (else d_t = g_t)
        m_t = β₁ m_{t-1} + (1 - β₁) d_t;   v_t = β₂ v_{t-1} + (1 - β₂) d_t²
        amsgrad: v̂_t = max(v̂_{t-1}, v_t)  else v̂_t = v_t
        θ_t = θ - (γ / (1 - β₁ᵗ)) m_t / (√v̂_t / √(1 - β₂ᵗ) + ε)
    """

    def __init__(self, trials, shape, dtype, device, matrices=None):
        self.k = len(trials)
        h = _Hyper(trials, device, matrices)
        self.dtype = dtype
        self.decoupled = trials[0]["optimizer"] == "adamw"
        self.wd64 = h.decay64()
        self.wd = h.decay(dtype)
        self.beta1 = h.col("betas", 0)
        self.beta2 = h.col("betas", 1)
        self.one_minus_b1 = (1 - self.beta1).to(dtype)
        self.beta2_t = self.beta2.to(dtype)
        self.one_minus_b2 = (1 - self.beta2).to(dtype)
        self.eps = h.col("eps").to(dtype)
        self.amsgrad = h.col("amsgrad") > 0
        self.any_amsgrad = bool(self.amsgrad.any())
        self.m = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.vmax = torch.zeros(shape, dtype=dtype, device=device) if self.any_amsgrad else None

    def step(self, p, g, lr, t, r):
        if self.decoupled:
            if self.wd is not None:
                p.mul_((1 - lr * self.wd64[r]).to(self.dtype))
            d = g
        else:
            d = _decayed(g, p, None if self.wd is None else self.wd[r])
        m, v = self.m[r], self.v[r]
        m.lerp_(d, self.one_minus_b1[r])
        v.mul_(self.beta2_t[r]).addcmul_(d, d * self.one_minus_b2[r])
        step_size = (lr / (1 - self.beta1[r] ** t)).to(self.dtype)
        bc2_sqrt = torch.sqrt(1 - self.beta2[r] ** t).to(self.dtype)
        if self.any_amsgrad:
            vmax = self.vmax[r]
            torch.maximum(vmax, v, out=vmax)
            v = torch.where(self.amsgrad[r], vmax, v)
        denom = (v.sqrt() / bc2_sqrt).add_(self.eps[r])
        p.add_(-step_size * (m / denom))


UPDATES = {"sgd": SGDUpdate, "adagrad": AdagradUpdate, "rmsprop": RMSpropUpdate, "adam": AdamUpdate}  # by fused_rule
