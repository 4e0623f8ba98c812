"""The fused engine: a group of trials trained as one stacked model.

All parameters of trial k live in row k of one flat leaf tensor `theta` [K, P]; each layer's
weight [K, in, out] and bias [K, 1, out] are views into it, so the forward pass is a chain of
batched matmuls and the optimizer update is a handful of elementwise ops on [k, P] slices,
whatever the depth. Trials may use different optimizers: the group is sorted by optimizer and
each optimizer updates its contiguous slice of rows. Per-trial hyperparameters (lr, momentum,
betas, eps, weight decay, ...) are [k, 1] tensors; the lr per epoch is read off the same
torch.optim.lr_scheduler the reference engine uses.

Each trial gets the same initial weights (built by the reference model builder under its seed)
and the same data order (engine.common.data_order) as in the reference engine, so the two can
be compared trial by trial; tests/test_fused.py holds each update to its torch.optim class.

Trials are independent: a trial whose loss goes NaN/Inf or explodes is recorded as diverged at
that epoch and frozen (its rows zeroed, its lr set to 0); the others continue untouched.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F  # noqa: N812

from dlbench import models
from dlbench.data import Dataset
from dlbench.engine import CPU_CACHE_PARAMETERS
from dlbench.engine import fused_supports as supports
from dlbench.engine.common import (
    Timer,
    TrialResult,
    data_order,
    dtype_of,
    history_row,
    init_seed,
    is_diverged,
    set_mode,
    tensors,
)
from dlbench.optim import lr_schedule

# The layer views are strided rows of theta; autograd notes that and still accumulates in place.
warnings.filterwarnings("ignore", message="grad and param do not obey the gradient layout contract")
ACT = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "gelu": F.gelu, "none": None}


# --------------------------------------------------------------------------------------------
# Update rules. Each reproduces one torch.optim class (single-tensor form) on a [k, P] slice.


class _Hyper:
    """Per-trial hyperparameters of one optimizer slice, as [k, 1] float64 tensors."""

    def __init__(self, trials: list[dict], device):
        self.device = device
        self.trials = trials

    def col(self, key, index=None) -> torch.Tensor:
        vals = [t[key] if index is None else t[key][index] for t in self.trials]
        return torch.tensor([float(v) for v in vals], dtype=torch.float64, device=self.device).view(-1, 1)

    def decay(self, dtype) -> torch.Tensor | None:
        """Weight decay as a [k, 1] tensor, or None when no trial has any (torch skips it then)."""
        wd = self.col("weight_decay")
        return wd.to(dtype) if bool((wd != 0).any()) else None


def _decayed(g: torch.Tensor, p: torch.Tensor, wd: torch.Tensor | None) -> torch.Tensor:
    """g + λ θ: L2 decay added to the gradient (as torch.optim does with weight_decay != 0)."""
    return g if wd is None else g.add(p * wd)


class SGDUpdate:
    r"""torch.optim.SGD (optimizers sgd, momentum, nesterov), per trial k:

        d_t = g_t + λ θ_{t-1}
        b_1 = d_1;  b_t = μ b_{t-1} + (1 - τ) d_t          (momentum μ > 0, dampening τ)
        d_t ← d_t + μ b_t (nesterov)  or  d_t ← b_t (heavy ball)
        θ_t = θ_{t-1} - γ d_t
    """

    def __init__(self, trials, shape, dtype, device):
        h = _Hyper(trials, device)
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


class AdagradUpdate:
    r"""torch.optim.Adagrad, per trial k:

        d_t = g_t + λ θ_{t-1};   γ̃_t = γ / (1 + (t - 1) η)           (lr_decay η)
        s_t = s_{t-1} + d_t²      (s_0 = initial_accumulator_value)
        θ_t = θ_{t-1} - γ̃_t d_t / (√s_t + ε)
    """

    def __init__(self, trials, shape, dtype, device):
        h = _Hyper(trials, device)
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


class RMSpropUpdate:
    r"""torch.optim.RMSprop, per trial k:

        d_t = g_t + λ θ_{t-1}
        v_t = α v_{t-1} + (1 - α) d_t²
        centered: m_t = α m_{t-1} + (1 - α) d_t;  v̂_t = v_t - m_t²   else v̂_t = v_t
        b_t = μ b_{t-1} + d_t / (√v̂_t + ε)        (μ = 0: b_t = d_t / (√v̂_t + ε))
        θ_t = θ_{t-1} - γ b_t
    """

    def __init__(self, trials, shape, dtype, device):
        h = _Hyper(trials, device)
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


class AdamUpdate:
    r"""torch.optim.Adam (adam: L2 in the gradient) and torch.optim.AdamW (adamw: decoupled
    decay), per trial k:

        adamw: θ ← θ (1 - γ λ);    adam: d_t = g_t + λ θ_{t-1}  (else d_t = g_t)
        m_t = β₁ m_{t-1} + (1 - β₁) d_t;   v_t = β₂ v_{t-1} + (1 - β₂) d_t²
        amsgrad: v̂_t = max(v̂_{t-1}, v_t)  else v̂_t = v_t
        θ_t = θ - (γ / (1 - β₁ᵗ)) m_t / (√v̂_t / √(1 - β₂ᵗ) + ε)
    """

    def __init__(self, trials, shape, dtype, device):
        h = _Hyper(trials, device)
        self.dtype = dtype
        self.decoupled = trials[0]["optimizer"] == "adamw"
        self.wd64 = h.col("weight_decay")
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


UPDATES = {"sgd": SGDUpdate, "momentum": SGDUpdate, "nesterov": SGDUpdate, "adagrad": AdagradUpdate,
           "rmsprop": RMSpropUpdate, "adam": AdamUpdate, "adamw": AdamUpdate}


# --------------------------------------------------------------------------------------------
# The stacked models


class StackedMLP:
    """K MLPs (or linear models). Row k of `theta` [K, P] holds trial k's parameters and row k
    of `grad` [K, P] its gradient; each layer's weight [K, in, out] and bias [K, 1, out] is a
    leaf view into both, so autograd accumulates straight into the flat gradient and each
    optimizer updates its rows of `theta` in a few whole-tensor ops. Hand-written: on the CPU it
    measures faster than the torch.func path (StackedModule) for these models
    (benchmarks/fused_vs_loops.py --generic-models)."""

    def __init__(self, trials: list[dict], info, dtype, device, shape: tuple[list[int], str] | None = None):
        # the layer widths and activation: of the built-in model, or of a user's module that is one (as_mlp)
        self.sizes, activation = shape or (models.layer_sizes(trials[0]["model"], info),
                                           trials[0]["model"].get("activation", "none"))
        self.act = ACT[activation]
        self.K = len(trials)
        rows = []
        for t in trials:
            init_seed(t["seed"])  # the reference builder under the same seed: identical init
            ref = models.build(t["model"], info).to(dtype)
            linears = [m for m in ref if isinstance(m, torch.nn.Linear)]
            rows.append(torch.cat([torch.cat([lin.weight.detach().T.reshape(-1), lin.bias.detach()])
                                   for lin in linears]))
        self.theta = torch.stack(rows).to(device)
        self.grad = torch.zeros_like(self.theta)
        self.params: list[tuple[torch.Tensor, torch.Tensor]] = []
        off = 0
        for a, b in zip(self.sizes[:-1], self.sizes[1:], strict=True):
            w = self.theta[:, off:off + a * b].view(-1, a, b).requires_grad_(True)
            w.grad = self.grad[:, off:off + a * b].view(-1, a, b)
            bias = self.theta[:, off + a * b:off + a * b + b].view(-1, 1, b).requires_grad_(True)
            bias.grad = self.grad[:, off + a * b:off + a * b + b].view(-1, 1, b)
            self.params.append((w, bias))
            off += a * b + b
        self.eval_chunk = max(256, (1 << 24) // max(1, self.K * max(self.sizes)))

    def forward(self, x, per_trial: bool):
        """x: [K, B, ...] (one batch per trial) or [B, ...] (the same inputs for every trial)."""
        h = x.flatten(2) if per_trial else x.flatten(1)
        last = len(self.params) - 1
        for i, (w, b) in enumerate(self.params):
            h = torch.baddbmm(b, h, w) if h.dim() == 3 else torch.matmul(h, w) + b
            if i < last and self.act is not None:
                h = self.act(h)
        return h

    def train(self, mode: bool = True) -> None:
        pass  # no layer of an MLP behaves differently in training

    def leaves(self, a: int, b: int) -> list[torch.Tensor]:
        """Leaf tensors over rows a..b of theta, with their gradients as views of `grad`, in the
        reference module's parameter order (weight, bias per layer). One row: each the shape of
        the reference parameter (weight [out, in], a transposed view); several: stacked."""
        out, off = [], 0
        for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:], strict=True):
            for size, shape in ((n_in * n_out, (n_in, n_out)), (n_out, (n_out,))):
                leaf = self.theta.detach()[a:b, off:off + size]
                g = self.grad[a:b, off:off + size]
                if b - a == 1:
                    leaf, g = leaf[0].view(shape), g[0].view(shape)
                    if len(shape) == 2:
                        leaf, g = leaf.t(), g.t()
                leaf.requires_grad_(True)
                leaf.grad = g
                out.append(leaf)
                off += size
        return out


class StackedModule:
    """K copies of any nn.Module the vmap of torch.func can batch (stack_module_state's idea,
    functional_call and vmap), their parameters as views into one flat `theta` [K, P] so that the
    built-in update rules and any torch.optim optimizer work on them as on StackedMLP. Each copy
    is built by the trial's model builder under the trial's seed, as in the reference engine."""

    def __init__(self, trials: list[dict], info, dtype, device):
        import copy

        from torch.func import functional_call, vmap

        self.K = len(trials)
        built = []
        for t in trials:
            init_seed(t["seed"])
            built.append(models.build(t["model"], info).to(dtype).to(device))
        named = list(built[0].named_parameters())
        self.shapes = [(n, p.shape) for n, p in named]
        P = sum(p.numel() for _, p in named)
        self.theta = torch.zeros(self.K, P, dtype=dtype, device=device)
        self.grad = torch.zeros_like(self.theta)
        self.stacked: dict[str, torch.Tensor] = {}
        off = 0
        for name, shape in self.shapes:
            n = shape.numel()
            view = self.theta[:, off:off + n].view(self.K, *shape)
            view.copy_(torch.stack([dict(m.named_parameters())[name].detach() for m in built]))
            leaf = view.requires_grad_(True)
            leaf.grad = self.grad[:, off:off + n].view(self.K, *shape)
            self.stacked[name] = leaf
            off += n
        self.buffers = {name: torch.stack([dict(m.named_buffers())[name] for m in built])
                        for name, _ in built[0].named_buffers()}
        self.base = copy.deepcopy(built[0]).to("meta")

        def call(p, b, x):
            return functional_call(self.base, (p, b), (x,))

        self.per_trial = vmap(call, in_dims=(0, 0, 0))
        self.shared = vmap(call, in_dims=(0, 0, None))
        self.eval_chunk = max(256, (1 << 22) // self.K)

    def train(self, mode: bool = True) -> None:
        self.base.train(mode)

    def forward(self, x, per_trial: bool):
        """x: [K, B, *input] (one batch per trial) or [B, *input] (the same inputs for all)."""
        return (self.per_trial if per_trial else self.shared)(self.stacked, self.buffers, x)

    def leaves(self, a: int, b: int) -> list[torch.Tensor]:
        out, off = [], 0
        for _, shape in self.shapes:
            n = shape.numel()
            leaf, g = self.theta.detach()[a:b, off:off + n], self.grad[a:b, off:off + n]
            leaf, g = (leaf[0].view(shape), g[0].view(shape)) if b - a == 1 else (leaf.view(b - a, *shape),
                                                                                  g.view(b - a, *shape))
            leaf.requires_grad_(True)
            leaf.grad = g
            out.append(leaf)
            off += n
        return out


def per_sample_loss(name: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Loss of each sample for each trial: out [K, B, C], y [K, B] or [K, B, 1] -> [K, B]."""
    K, B = out.shape[0], out.shape[1]
    if name in ("cross_entropy", "nll"):
        logits = out.reshape(K * B, -1)
        if name == "nll":
            return F.nll_loss(F.log_softmax(logits, dim=-1), y.reshape(-1), reduction="none").view(K, B)
        return F.cross_entropy(logits, y.reshape(-1), reduction="none").view(K, B)
    if name == "bce":
        return F.binary_cross_entropy_with_logits(out.squeeze(-1), y, reduction="none")
    if name == "mse":
        return F.mse_loss(out, y, reduction="none").flatten(2).mean(dim=2)
    if name == "huber":
        return F.huber_loss(out, y, reduction="none").flatten(2).mean(dim=2)
    raise ValueError(f"loss {name!r} is not supported by the fused engine")


def per_trial_loss(name: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean loss of each trial over its batch -> [K]."""
    return per_sample_loss(name, out, y).mean(dim=1)


@torch.no_grad()
def evaluate_all(net, loss: str, x, y, task: str) -> dict[str, torch.Tensor]:
    """Per-trial mean loss and metric over a whole split, each a [K] float64 tensor.

    Per-sample values are gathered first and reduced once per trial, so a trial's numbers do
    not depend on how many trials share its group (the chunking follows K, the sums do not):
    a resumed sweep that regroups the remaining trials reproduces them bit for bit."""
    K, n = net.K, len(x)
    chunk = net.eval_chunk
    losses = torch.empty(K, n, dtype=x.dtype, device=x.device)
    right = torch.empty(K, n, dtype=torch.bool, device=x.device) if task in ("multiclass", "binary") else None
    sq = torch.empty(K, n, dtype=x.dtype, device=x.device) if task == "regression" else None
    for i in range(0, n, chunk):
        xb, yb = x[i:i + chunk], y[i:i + chunk]
        out = net.forward(xb, per_trial=False)
        yk = yb.unsqueeze(0).expand(K, *yb.shape)
        losses[:, i:i + chunk] = per_sample_loss(loss, out, yk)
        if task == "multiclass":
            right[:, i:i + chunk] = out.argmax(dim=-1) == yk
        elif task == "binary":
            right[:, i:i + chunk] = (out.squeeze(-1) > 0).to(yb.dtype) == yk
        elif task == "regression":
            sq[:, i:i + chunk] = ((out - yk) ** 2).flatten(2).sum(dim=2)
    row = {"loss": losses.double().sum(dim=1) / n}
    if right is not None:
        row["acc"] = right.double().sum(dim=1) / n
    elif sq is not None:
        total = sq.double().sum(dim=1)
        ss_tot = float(((y - y.mean(dim=0)) ** 2).sum())
        row["r2"] = 1 - total / ss_tot if ss_tot > 0 else torch.full_like(total, float("nan"))
        row["rmse"] = torch.sqrt(total / y.numel())
    return row


# --------------------------------------------------------------------------------------------
# Any torch.optim.Optimizer


def hyperparameters(trial: dict) -> str:
    """What a trial's optimizer update depends on besides its data: everything but its seed and id."""
    import json

    return json.dumps({k: v for k, v in trial.items() if k not in ("id", "seed")}, sort_keys=True)


class GenericUpdate:
    """The user's optimizer, unmodified, on a block of rows of the stacked model. Each trial gets
    its own optimizer over its own parameters (so per-tensor and global rules, LAMB's trust ratio,
    Prodigy's step-size estimate, SOAP's eigenbases, see exactly one trial), in the reference
    module's parameter order, shapes and memory layout: leaf views of the stacked rows where they
    are laid out as the reference's parameters are, else contiguous copies synchronized around
    each step (a matmul on a transposed view rounds differently, and an eigenbasis amplifies
    that). Where the update rule is known to act on each element alone (plugins.ELEMENTWISE,
    torch.optim's elementwise classes), trials with identical hyperparameters share one optimizer
    over views of their stacked rows: the same numbers, fewer calls."""

    def __init__(self, trials: list[dict], net, start: int):
        from dlbench import plugins

        plugin = plugins.REGISTRY.for_trial(trials[0])
        self.slots: list[tuple[int, int, torch.optim.Optimizer, list | None]] = []
        i = 0
        while i < len(trials):
            j = i + 1
            if plugin.elementwise:
                while j < len(trials) and hyperparameters(trials[j]) == hyperparameters(trials[i]):
                    j += 1
            views = net.leaves(start + i, start + j)
            pairs = None
            if not plugin.elementwise and not all(v.is_contiguous() for v in views):
                pairs = []
                for v in views:
                    p = v.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)
                    p.grad = torch.zeros_like(p)
                    pairs.append((v, p))
            params = views if pairs is None else [p for _, p in pairs]
            opt = plugin.construct(params, trials[i]["lr"], plugins.optimizer_keywords(trials[i]))
            self.slots.append((start + i, start + j, opt, pairs))
            i = j

    def set_lr(self, lr_epoch: torch.Tensor) -> None:
        """Each slot's lr for this epoch (the schedule in closed form, as the reference's scheduler
        sets it; 0 for a diverged trial)."""
        for a, _, opt, _ in self.slots:
            for group in opt.param_groups:
                group["lr"] = float(lr_epoch[a])

    @torch.no_grad()
    def step(self) -> None:
        for _, _, opt, pairs in self.slots:
            if pairs is None:
                opt.step()
                continue
            for v, p in pairs:
                p.grad.copy_(v.grad)
            opt.step()
            for v, p in pairs:
                v.copy_(p)

    @torch.no_grad()
    def set_mode(self, training: bool) -> None:
        for _, _, opt, pairs in self.slots:
            set_mode([opt], training)
            for v, p in pairs or []:  # a mode switch may move the parameters (schedule-free: y <-> x)
                v.copy_(p)


ACTIVATION_NAMES = {torch.nn.ReLU: "relu", torch.nn.Tanh: "tanh", torch.nn.Sigmoid: "sigmoid",
                    torch.nn.Identity: "none"}


def as_mlp(module) -> tuple[list[int], str] | None:
    """(layer widths, activation) when a module is an MLP in all but name: an nn.Sequential of an
    optional Flatten, then Linear layers with biases and one activation between them (ReLU, Tanh,
    Sigmoid, exact GELU). Such a user's model trains on the hand-written StackedMLP, which computes
    the same function and measures faster than torch.func for it; else None."""
    if not isinstance(module, torch.nn.Sequential):
        return None
    layers = list(module)
    if layers and isinstance(layers[0], torch.nn.Flatten) and (layers[0].start_dim, layers[0].end_dim) == (1, -1):
        layers = layers[1:]
    linears, acts = layers[0::2], layers[1::2]
    if not linears or len(linears) != len(acts) + 1:
        return None
    if not all(type(m) is torch.nn.Linear and m.bias is not None for m in linears):
        return None
    names = set()
    for a in acts:
        if type(a) is torch.nn.GELU and a.approximate == "none":
            names.add("gelu")
        elif type(a) in ACTIVATION_NAMES:
            names.add(ACTIVATION_NAMES[type(a)])
        else:
            return None
    if len(names) > 1:
        return None
    sizes = [linears[0].in_features] + [m.out_features for m in linears]
    if any(a.out_features != b.in_features for a, b in zip(linears[:-1], linears[1:], strict=True)):
        return None
    return sizes, (names.pop() if names else "none")


def stacked_model(trials: list[dict], info, dtype, device):
    """The stacked form of the unit's model: the hand-written StackedMLP for linear and mlp (and a
    user's model that is an MLP: as_mlp), torch.func (StackedModule) for every other model."""
    kind = trials[0]["model"]["kind"]
    if kind in ("linear", "mlp"):
        return StackedMLP(trials, info, dtype, device)
    if kind == "factory":
        init_seed(trials[0]["seed"])
        shape = as_mlp(models.build(trials[0]["model"], info))
        if shape is not None and shape[0][0] == math.prod(info.input_shape):
            return StackedMLP(trials, info, dtype, device, shape)
    return StackedModule(trials, info, dtype, device)


def train(trials: list[dict], data: Dataset) -> list[TrialResult]:
    """Train a group (same dataset, model, loss, batch size, epochs, device, dtype) at once."""
    first = trials[0]
    for t in trials:
        if supports(t) is not None:
            raise ValueError(supports(t))
    # by optimizer (each updates a contiguous block of rows), and within one by hyperparameters
    order_idx = sorted(range(len(trials)), key=lambda i: (trials[i]["optimizer"], hyperparameters(trials[i]), i))
    trials = [trials[i] for i in order_idx]
    device, dtype, task = first["device"], dtype_of(first), data.task
    splits = tensors(data, device, dtype)
    x_train, y_train = splits["train"]
    n, bs, epochs, K = len(x_train), first["batch_size"], first["epochs"], len(trials)

    net = stacked_model(trials, data.info, dtype, device)
    P = net.theta.shape[1]
    slices, updates, generic = [], [], []
    start = 0
    while start < K:
        end = start
        while end < K and trials[end]["optimizer"] == trials[start]["optimizer"]:
            end += 1
        if trials[start]["optimizer"] in UPDATES:
            slices.append((start, end))
            updates.append(UPDATES[trials[start]["optimizer"]](trials[start:end], (end - start, P), dtype, device))
        else:
            generic.append(GenericUpdate(trials[start:end], net, start))
        start = end
    lrs = torch.tensor([lr_schedule(t) for t in trials], dtype=torch.float64, device=device).T  # [E, K]
    # rows per optimizer-update call: a cache-sized block per state tensor keeps a CPU update fast
    # (measured: Adam on 64 × 26k parameters, 4.2 ms whole, 2.7 ms in blocks of 8)
    block = K if device != "cpu" else max(1, CPU_CACHE_PARAMETERS // P)
    orders = [data_order(t["seed"], n, epochs) for t in trials]

    histories: list[list[dict]] = [[] for _ in trials]
    status = ["ok"] * K
    diverged_at: list[int | None] = [None] * K
    alive = torch.ones(K, 1, dtype=torch.bool, device=device)
    frozen = False

    def evaluate_epoch():  # per split, per metric: a list over the K trials
        net.train(False)
        for g in generic:
            g.set_mode(training=False)
        with Timer(device) as timer:
            evals = {name: {m: v.tolist() for m, v in evaluate_all(net, first["loss"], x, y, task).items()}
                     for name, (x, y) in splits.items()}
        for g in generic:
            g.set_mode(training=True)
        net.train(True)
        return evals, timer.seconds

    evals, eval_time = evaluate_epoch()
    loss0 = evals["train"]["loss"]
    for k in range(K):
        histories[k].append(history_row(0, loss0[k], _at(evals, k), float(lrs[0, k]), 0, 0, 0.0, eval_time / K))
    steps = 0
    for epoch in range(1, epochs + 1):
        perm = torch.stack([o[epoch - 1] for o in orders]).to(device)  # [K, n]
        lr_epoch = (lrs[epoch - 1].view(-1, 1) * alive).contiguous()
        lr_slices = [lr_epoch[a:b] for a, b in slices]
        for g in generic:
            g.set_lr(lr_epoch.view(-1))
        loss_sum = torch.zeros(K, dtype=torch.float64, device=device)
        n_batches = 0
        with Timer(device) as timer:
            for i in range(0, n, bs):
                idx = perm[:, i:i + bs]  # [K, B]
                xb = x_train[idx]  # [K, B, *input]
                yb = y_train[idx]
                losses = per_trial_loss(first["loss"], net.forward(xb, per_trial=True), yb)
                net.grad.zero_()
                losses.sum().backward()  # trials are independent: row k of grad is trial k's
                steps += 1
                with torch.no_grad():
                    for (a, b), upd, lr in zip(slices, updates, lr_slices, strict=True):
                        # in blocks of rows that stay in cache: the update is memory-bound
                        for r0 in range(0, b - a, block):
                            r1 = min(r0 + block, b - a)
                            r = slice(r0, r1)
                            upd.step(net.theta[a + r0:a + r1], net.grad[a + r0:a + r1], lr[r], steps, r)
                    for g in generic:
                        g.step()
                    if frozen:
                        net.theta.masked_fill_(~alive, 0.0)
                    loss_sum += losses.detach().double()
                n_batches += 1
            train_loss = (loss_sum / n_batches).tolist()
        evals, eval_time = evaluate_epoch()
        samples = epoch * n
        for k in range(K):
            if status[k] != "ok":
                continue
            histories[k].append(history_row(epoch, train_loss[k], _at(evals, k), float(lrs[epoch - 1, k]),
                                            steps, samples, timer.seconds / K, eval_time / K))
            if is_diverged(train_loss[k], loss0[k]) or is_diverged(evals["train"]["loss"][k], loss0[k]):
                status[k], diverged_at[k] = "diverged", epoch
                alive[k] = False
                frozen = True  # its row is held at zero and its lr at 0 from now on
        if "ok" not in status:
            break  # every trial of the unit diverged: nothing left to train
    results = [TrialResult(t["id"], status[k], histories[k], diverged_epoch=diverged_at[k], engine="fused")
               for k, t in enumerate(trials)]
    # back to the caller's order
    out = [None] * K
    for pos, i in enumerate(order_idx):
        out[i] = results[pos]
    return out


def _at(evals: dict[str, dict[str, list]], k: int) -> dict[str, dict[str, float]]:
    """Trial k's numbers out of per-split, per-metric lists over the unit."""
    return {name: {m: vals[k] for m, vals in row.items()} for name, row in evals.items()}
