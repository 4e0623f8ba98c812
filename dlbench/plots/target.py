"""Steps to reach a target vs batch size, log-log, with the perfect-scaling line (doubling the
batch halves the steps): Shallue et al. (2019), "Measuring the effects of data parallelism on
neural network training", who set the target on held-out (validation) error. For each batch size
the best lr is taken (the fewest steps, median over seeds); since that is a choice, the metric is a
validation (or training) one, never test. Batch sizes where no configuration reaches the target
are drawn as "not reached"."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dlbench.errors import UserError
from dlbench.plots._common import COLUMN_IN, MARKERS, OKABE_ITO, Results, higher_is_better, label, log_scale, style


@dataclass
class TargetLine:
    name: str
    batch_size: list[int]
    steps: list[float]  # NaN: not reached
    epochs: list[float]
    seconds: list[float]
    best_lr: list[float]  # NaN: not reached


@dataclass
class TargetInfo:
    metric: str
    target: float
    lines: list[TargetLine]
    default_target: bool = False


def first_reach(history, metric: str, target: float):
    """Per trial: (steps, epoch, seconds) at the first epoch whose metric reaches the target."""
    ok = history[history[metric] >= target] if higher_is_better(metric) else history[history[metric] <= target]
    first = ok.sort_values("epoch").groupby("trial_id").first()
    return first[["steps", "epoch", "time"]].add_prefix("reach_")


def default_target(results: Results, metric: str) -> float:
    """95% of the best final accuracy (or 105% of the lowest final loss): a target most good
    configurations reach, so that the batch-size effect shows."""
    last = results.history.sort_values("epoch").groupby("trial_id")[metric].last()
    last = last[np.isfinite(last)]
    if higher_is_better(metric):
        return float(np.round(0.95 * last.max(), 3))
    return float(np.round(1.05 * last.min(), 4))


CHOOSING_METRICS = ("val_acc", "val_loss", "val_r2", "val_rmse", "train_acc", "train_eval_loss", "train_loss")


def target_info(results: Results, metric: str, target: float | None = None) -> TargetInfo:
    if metric not in CHOOSING_METRICS:
        raise UserError(f"--metric {metric!r} cannot set a target: the target plot chooses the best lr per batch "
                        f"size by it, and test numbers never choose; allowed: {', '.join(CHOOSING_METRICS)}")
    if results.trials["batch_size"].nunique() < 2:
        raise UserError("--kind target needs several batch sizes; this sweep has one; allowed: a sweep with a "
                        "batch_size axis")
    chosen = default_target(results, metric) if target is None else target
    reach = first_reach(results.history, metric, chosen)
    t = results.trials.merge(reach, left_on="trial_id", right_index=True, how="left")
    others = [c for c in results.varying() if c not in ("lr", "batch_size")]
    if t["sweep"].nunique() > 1:
        others = ["sweep", *others]
    lines = []
    groups = t.groupby(others, sort=True, dropna=False) if others else [(("all",), t)]
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        bs_list, steps, epochs, secs, lrs = [], [], [], [], []
        for bs, cell in g.groupby("batch_size", sort=True):
            # median over seeds per lr (not reached counts as infinite), then the best lr
            per_lr = cell.assign(s=cell.reach_steps.fillna(np.inf)).groupby("lr")
            med = per_lr.agg(s=("s", "median"), e=("reach_epoch", "median"), t=("reach_time", "median"))
            bs_list.append(int(bs))
            if np.isfinite(med.s).any():
                best = med.s.idxmin()
                steps.append(float(med.loc[best, "s"]))
                epochs.append(float(med.loc[best, "e"]))
                secs.append(float(med.loc[best, "t"]))
                lrs.append(float(best))
            else:
                steps.append(float("nan"))
                epochs.append(float("nan"))
                secs.append(float("nan"))
                lrs.append(float("nan"))
        lines.append(TargetLine(" ".join(str(k) for k in key), bs_list, steps, epochs, secs, lrs))
    return TargetInfo(metric, chosen, lines, default_target=target is None)


def draw(info: TargetInfo):
    plt = style()
    fig, ax = plt.subplots(figsize=(COLUMN_IN, 2.6))
    reached = [s for line in info.lines for s in line.steps if np.isfinite(s)]
    top = max(reached) * 2 if reached else 10.0
    for i, line in enumerate(info.lines):
        c, m = OKABE_ITO[i % len(OKABE_ITO)], MARKERS[i % len(MARKERS)]
        bs = np.array(line.batch_size, dtype=float)
        st = np.array(line.steps)
        ok = np.isfinite(st)
        ax.plot(bs[ok], st[ok], color=c, marker=m, ms=4, label=line.name)
        if (~ok).any():
            ax.plot(bs[~ok], [top] * int((~ok).sum()), ls="none", marker=m, mfc="white", color=c, ms=5,
                    clip_on=False)
        if ok.any():
            b0, s0 = bs[ok][0], st[ok][0]
            ax.plot(bs, s0 * b0 / bs, color=c, ls=":", lw=0.8)
    if any(not np.isfinite(s) for line in info.lines for s in line.steps):
        ax.axhline(top, color="0.6", ls="--", lw=0.6)
        ax.text(min(b for line in info.lines for b in line.batch_size), top * 1.08, "not reached", fontsize=6,
                color="0.3", va="bottom")
    log_scale(ax, "x", base=2)
    log_scale(ax, "y")
    ax.set_xlabel("batch size")
    ax.set_ylabel("steps to reach target")
    op = "≥" if higher_is_better(info.metric) else "≤"
    how = " (default: 95% of best)" if info.default_target else ""
    ax.set_title(f"steps to {label(info.metric)} {op} {info.target:g}{how}\n"
                 "dotted: perfect scaling; open marker: not reached")
    fig.legend(loc="outside lower center", ncols=min(4, len(info.lines)), frameon=False)
    return fig
