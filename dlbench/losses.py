"""Losses by task, and the metrics each task reports. Validation is pure Python."""

from __future__ import annotations

from dlbench.errors import UserError, did_you_mean

LOSSES = {
    "regression": ("mse", "huber"),
    "binary": ("bce",),
    "multiclass": ("cross_entropy", "nll"),
    "objective": ("problem",),
}
ALL_LOSSES = sorted({name for names in LOSSES.values() for name in names})
def check_loss(value, task: str, dataset: str) -> str:
    if value is None or value == "auto":
        return LOSSES[task][0]
    if not isinstance(value, str) or value not in ALL_LOSSES:
        raise UserError(f"loss = {value!r} is unknown{did_you_mean(value, ALL_LOSSES)}; allowed: "
                        f"{', '.join(ALL_LOSSES)}")
    if value not in LOSSES[task]:
        raise UserError(f"loss = {value!r} does not fit dataset {dataset!r} ({task}); allowed: "
                        f"{', '.join(LOSSES[task])}")
    return value


def loss_fn(name: str):
    """Mean loss over a batch: f(outputs, targets) -> scalar tensor."""
    import torch.nn.functional as F  # noqa: N812

    if name == "mse":
        return lambda out, y: F.mse_loss(out, y)
    if name == "huber":
        return lambda out, y: F.huber_loss(out, y)
    if name == "bce":
        return lambda out, y: F.binary_cross_entropy_with_logits(out.squeeze(-1), y)
    if name == "cross_entropy":
        return F.cross_entropy
    if name == "nll":
        return lambda out, y: F.nll_loss(F.log_softmax(out, dim=-1), y)
    if name == "problem":
        return lambda out, y: out.mean()
    raise ValueError(name)
