"""Steps to reach a target vs batch size, log-log, with the perfect-scaling line (doubling the
batch halves the steps): Shallue et al. (2019), "Measuring the effects of data parallelism on
neural network training", who set the target on held-out (validation) error. For each batch size
the best lr is taken (the fewest steps, median over seeds); since that is a choice, the metric is a
validation (or training) one, never test. Batch sizes where no configuration reaches the target
are drawn as "not reached"."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dlbench import stats
from dlbench.errors import UserError
from dlbench.plots._common import COLUMN_IN, MARKERS, OKABE_ITO, Results, higher_is_better, label, log_scale, style
from dlbench.store import config_columns


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
    target: float  # NaN when each problem has its own (see targets)
    lines: list[TargetLine]
    default_target: bool = False
    targets: dict = field(default_factory=dict)  # problem -> its target
    met_at_start: list[str] = field(default_factory=list)  # problems whose target is met before any step


CHOOSING_METRICS = ("val_acc", "val_loss", "val_r2", "val_rmse", "train_acc", "train_eval_loss", "train_loss")


def target_info(results: Results, metric: str, target: float | None = None) -> TargetInfo:
    """Steps to the target per batch size, at the best lr, by the performance profile's rule
    (dlbench.stats.config_costs: the median over seeds, a seed that misses counting as inf; the
    target by default v0 + 0.95 (v* - v0), set on each problem's own results)."""
    if metric not in CHOOSING_METRICS:
        raise UserError(f"--metric {metric!r} cannot set a target: the target plot chooses the best lr per batch "
                        f"size by it, and test numbers never choose; allowed: {', '.join(CHOOSING_METRICS)}")
    if results.trials["batch_size"].nunique() < 2:
        raise UserError("--kind target needs several batch sizes; this sweep has one; allowed: a sweep with a "
                        "batch_size axis")
    higher = higher_is_better(metric)
    others = [c for c in results.varying() if c not in ("lr", "batch_size")]
    if results.trials["sweep"].nunique() > 1:
        others = ["sweep", *others]
    problems = [c for c in ("sweep", "dataset", "model") if c in others]
    lines, targets, met_at_start = [], {}, []
    t = results.trials
    for pkey, pt in (t.groupby(problems, sort=True, dropna=False) if problems else [((), t)]):
        ph = results.history[results.history["trial_id"].isin(pt["trial_id"])]
        cols = config_columns(pt)
        chosen = (stats.problem_target(ph, metric, higher, stats.TARGET_FRACTION, cols) if target is None
                  else target)
        pname = " ".join(str(k) for k in (pkey if isinstance(pkey, tuple) else (pkey,)))
        targets[pname] = chosen
        costs = stats.config_costs(pt, ph, metric, chosen, higher, cols)
        if (costs["steps"] == 0).any():
            met_at_start.append(pname or "these results")
        line_keys = [c for c in others if c not in problems]
        for key, g in (costs.groupby(problems + line_keys, sort=True, dropna=False) if problems + line_keys
                       else [(("all",), costs)]):
            key = key if isinstance(key, tuple) else (key,)
            bs_list, steps, epochs, secs, lrs = [], [], [], [], []
            for bs, cell in g.groupby("batch_size", sort=True):
                bs_list.append(int(bs))
                best = cell.sort_values(["steps", "lr"], kind="stable").iloc[0]
                reached = np.isfinite(best["steps"])
                steps.append(float(best["steps"]) if reached else float("nan"))
                epochs.append(float(best["epoch"]) if reached else float("nan"))
                secs.append(float(best["time"]) if reached else float("nan"))
                lrs.append(float(best["lr"]) if reached else float("nan"))
            lines.append(TargetLine(" ".join(str(k) for k in key), bs_list, steps, epochs, secs, lrs))
    shown = next(iter(targets.values())) if len(set(targets.values())) == 1 else float("nan")
    return TargetInfo(metric, shown, lines, default_target=target is None, targets=targets,
                      met_at_start=met_at_start)


def draw(info: TargetInfo):
    plt = style()
    fig, ax = plt.subplots(figsize=(COLUMN_IN, 2.6))
    reached = [s for line in info.lines for s in line.steps if np.isfinite(s)]
    top = max(reached) * 2 if reached else 10.0
    for i, line in enumerate(info.lines):
        c, m = OKABE_ITO[i % len(OKABE_ITO)], MARKERS[i % len(MARKERS)]
        bs = np.array(line.batch_size, dtype=float)
        st = np.array(line.steps)
        ok = np.isfinite(st) & (st > 0)  # 0 steps: met before any step (said in the title)
        ax.plot(bs[ok], st[ok], color=c, marker=m, ms=4, label=line.name)
        missed = ~np.isfinite(st)
        if missed.any():
            ax.plot(bs[missed], [top] * int(missed.sum()), ls="none", marker=m, mfc="white", color=c, ms=5,
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
    value = f"{info.target:.4g}" if np.isfinite(info.target) else "each problem's target"
    how = f" ({100 * stats.TARGET_FRACTION:g}% of the way from the start to the best)" if info.default_target else ""
    early = f"; met before any step: {', '.join(info.met_at_start)}" if info.met_at_start else ""
    ax.set_title(f"steps to {label(info.metric)} {op} {value}{how}\n"
                 f"dotted: perfect scaling; open marker: not reached{early}")
    fig.legend(loc="outside lower center", ncols=min(4, len(info.lines)), frameon=False)
    return fig
