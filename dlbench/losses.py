"""Losses: one record each (its task, what it computes, the smallest value it can take), the mean
over a batch for the reference engine and the per-sample form for the fused engine. Checking is
pure Python; computing imports torch."""

from __future__ import annotations

import math
from dataclasses import dataclass

from dlbench.errors import UserError, did_you_mean


@dataclass(frozen=True)
class Loss:
    name: str
    tasks: tuple[str, ...]  # the tasks it fits (a task's first loss is its default)
    description: str
    lowest: float  # the smallest value it takes: an interval of its mean is never clipped below this


ENTRIES: dict[str, Loss] = {x.name: x for x in [
    Loss("mse", ("regression",), "mean squared error", 0.0),
    Loss("huber", ("regression",), "Huber loss (delta 1)", 0.0),
    Loss("bce", ("binary",), "binary cross-entropy on one logit", 0.0),
    # a language model's: the cross-entropy of each next token in nats, averaged over positions
    Loss("cross_entropy", ("multiclass", "language_model"), "softmax cross-entropy (per position for a "
                                                             "language model, in nats)", 0.0),
    Loss("nll", ("multiclass",), "negative log-likelihood of log-softmax (the same numbers as cross_entropy)", 0.0),
    # DeepOBS objectives: the problem's own function; with its noise term it can be negative
    Loss("problem", ("objective",), "the problem's own objective", -math.inf),
]}
LOSSES = {task: tuple(x.name for x in ENTRIES.values() if task in x.tasks)
          for task in dict.fromkeys(t for x in ENTRIES.values() for t in x.tasks)}
ALL_LOSSES = sorted(ENTRIES)


def check_loss(value, task: str, dataset: str) -> str:
    if value is None or value == "auto":
        return LOSSES[task][0]
    if not isinstance(value, str) or value not in ENTRIES:
        raise UserError(f"loss = {value!r} is unknown{did_you_mean(value, ALL_LOSSES)}; allowed: "
                        f"{', '.join(ALL_LOSSES)}")
    if value not in LOSSES[task]:
        raise UserError(f"loss = {value!r} does not fit dataset {dataset!r} ({task}); allowed: "
                        f"{', '.join(LOSSES[task])}")
    return value


def lowest(name: str | None) -> float:
    """The smallest value a loss takes (-inf for a name it does not know)."""
    return ENTRIES[name].lowest if name in ENTRIES else -math.inf


def loss_fn(name: str):
    """Mean loss over a batch: f(outputs, targets) -> scalar tensor (the reference engine's)."""
    import torch.nn.functional as F  # noqa: N812

    if name == "mse":
        return lambda out, y: F.mse_loss(out, y)
    if name == "huber":
        return lambda out, y: F.huber_loss(out, y)
    if name == "bce":
        return lambda out, y: F.binary_cross_entropy_with_logits(out.squeeze(-1), y)
    if name == "cross_entropy":  # [B, C] and [B]; a language model's [B, T, V] and [B, T]: every position
        return lambda out, y: F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))
    if name == "nll":
        return lambda out, y: F.nll_loss(F.log_softmax(out, dim=-1), y)
    if name == "problem":
        return lambda out, y: out.mean()
    raise ValueError(name)


def per_sample_loss(name: str, out, y):
    """Loss of each sample for each trial (the fused engine's): out [K, B, C], y [K, B] or [K, B, 1]
    (a language model's out [K, B, T, V], y [K, B, T]) -> [K, B]."""
    import torch.nn.functional as F  # noqa: N812

    K, B = out.shape[0], out.shape[1]
    if name == "cross_entropy" and out.dim() == 4:  # a language model's [K, B, T, V]: the mean over positions
        per = F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1), reduction="none")
        return per.view(K, B, -1).mean(dim=2)
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
