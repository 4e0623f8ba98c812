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
from dlbench.plots._common import (
    AXIS_WORDS,
    COLUMN_IN,
    MAX_PANELS,
    PAGE_IN,
    Results,
    fig_title,
    fmt_value,
    grid_of,
    higher_is_better,
    label,
    legend_below,
    log_scale,
    optimizer_styles,
    panel_title,
    problems,
    style,
    styled,
    tuning_stage,
)
from dlbench.schema import HISTORY_METRICS, is_test_metric
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
    metric: str  # "" when the problems' metrics differ (see metrics)
    target: float  # NaN when each problem has its own (see targets)
    lines: list[TargetLine]
    default_target: bool = False
    targets: dict = field(default_factory=dict)  # problem -> its target
    met_at_start: list[str] = field(default_factory=list)  # problems whose target is met before any step
    panels: list[str] = field(default_factory=lambda: [""])  # one per problem when there are several
    panel_of: list[str] = field(default_factory=list)  # per line, its panel
    metrics: dict = field(default_factory=dict)  # problem -> the metric its target is set on
    left_out: int = 0  # problems beyond MAX_PANELS (--dataset draws them)


# what a target may be set on: a history metric not measured on test (it chooses the lr per batch size)
CHOOSING_METRICS = tuple(m for m in HISTORY_METRICS if not is_test_metric(m))
# per batch size, the configuration that reaches the target in the fewest steps (median over seeds)
FEWEST_STEPS = stats.Selection("steps", False, "steps", False, validation=True)


def target_info(results: Results, metric: str | None = None, target: float | None = None) -> TargetInfo:
    """Steps to the target per batch size, at the best lr, by the performance profile's rule
    (dlbench.stats.config_costs: the median over seeds, a seed that misses counting as inf; the
    target by default v0 + 0.95 (v* - v0), set on each problem's own results). `metric` None: each
    problem's own validation metric (accuracy, or loss for a regression; the training set's without
    a validation split). One panel per problem, at most MAX_PANELS."""
    if metric is not None and metric not in CHOOSING_METRICS:
        raise UserError(f"--metric {metric!r} cannot set a target: the target plot chooses the best lr per batch "
                        f"size by it, and test numbers never choose; allowed: {', '.join(CHOOSING_METRICS)}")
    if results.trials["batch_size"].nunique() < 2:
        raise UserError("--kind target needs several batch sizes; this sweep has one; allowed: a sweep with a "
                        "batch_size axis")
    results = tuning_stage(results)  # where the axes vary
    probs = problems(results)
    lines, targets, metrics, met_at_start, panel_of = [], {}, {}, [], []
    for pname, pt in probs[:MAX_PANELS]:
        problem = results.of(pt)
        ph = problem.history
        m, higher = stats.target_metric(stats.task_of(pt), stats.has_validation(pt))
        if metric is not None and ph[metric].notna().any():
            m, higher = metric, higher_is_better(metric)
        cols = config_columns(pt)
        chosen = stats.problem_target(ph, m, higher, stats.TARGET_FRACTION, cols) if target is None else target
        name = pname if len(probs) > 1 else ""
        targets[name], metrics[name] = chosen, m
        costs = stats.config_costs(pt, ph, m, chosen, higher, cols)
        if (costs["steps"] == 0).any():
            met_at_start.append(name or "these results")
        line_keys = [c for c in problem.varying() if c not in ("lr", "batch_size", "dataset", "sweep")]
        for key, g in (costs.groupby(line_keys, sort=True, dropna=False) if line_keys else [(("all",), costs)]):
            key = key if isinstance(key, tuple) else (key,)
            bs_list, steps, epochs, secs, lrs = [], [], [], [], []
            for bs, cell in g.groupby("batch_size", sort=True):
                bs_list.append(int(bs))
                # the fewest steps, by the one selection function (a tie to the smaller lr, as everywhere)
                choice = stats.choose(cell.assign(status="ok"), FEWEST_STEPS, [c for c in cols if c in cell])
                best = stats.rows_matching(cell, choice.config).iloc[0] if choice is not None else None
                nan = float("nan")
                steps.append(float(best["steps"]) if best is not None else nan)
                epochs.append(float(best["epoch"]) if best is not None else nan)
                secs.append(float(best["time"]) if best is not None else nan)
                lrs.append(float(best["lr"]) if best is not None else nan)
            words = [str(key[0])] + [f"{AXIS_WORDS.get(c, c)} {fmt_value(v)}"
                                     for c, v in zip(line_keys[1:], key[1:], strict=True)]
            lines.append(TargetLine(" ".join(words), bs_list, steps, epochs, secs, lrs))
            panel_of.append(name)
    shown = next(iter(targets.values())) if len(set(targets.values())) == 1 else float("nan")
    one_metric = next(iter(metrics.values())) if len(set(metrics.values())) == 1 else ""
    return TargetInfo(metric or one_metric, shown, lines, default_target=target is None, targets=targets,
                      met_at_start=met_at_start, panels=list(targets), panel_of=panel_of, metrics=metrics,
                      left_out=max(0, len(probs) - MAX_PANELS))


@styled
def draw(info: TargetInfo):
    plt = style()
    several = len(info.panels) > 1
    rows, cols = grid_of(len(info.panels), 3)
    size = (PAGE_IN, 1.9 * rows + 1.3) if several else (COLUMN_IN, 2.8)
    fig, axes = plt.subplots(rows, cols, figsize=size, squeeze=False)
    styles = optimizer_styles(list(dict.fromkeys(line.name for line in info.lines)))
    for ax, panel in zip(axes.flat, info.panels, strict=False):
        mine = [line for line, p in zip(info.lines, info.panel_of, strict=True) if p == panel]
        _draw_panel(ax, mine, styles)
        metric = info.metrics.get(panel, info.metric)
        if several:
            ax.set_title(f"{panel_title(panel, 32)}\n{label(metric)} {'≥' if higher_is_better(metric) else '≤'} "
                         f"{info.targets[panel]:.3g}")
    for ax in axes.flat[len(info.panels):]:
        ax.set_visible(False)
    if several:
        what = "each problem's target (in its panel's title)"
    else:
        what = f"{label(info.metric)} {'≥' if higher_is_better(info.metric) else '≤'} {info.target:.4g}"
    how = f" ({100 * stats.TARGET_FRACTION:g}% of the way from the start to the best)" if info.default_target else ""
    early = f"; met before any step: {', '.join(info.met_at_start)}" if info.met_at_start else ""
    more = f"; {info.left_out} more problems: --dataset" if info.left_out else ""
    title = (f"steps to {what}{how}, best lr per batch size; dotted: perfect scaling; open marker: not "
             f"reached{early}{more}")
    fig.suptitle(fig_title(title, size[0]))
    handles = [plt.Line2D([], [], color=c, marker=m, ms=4, label=s) for s, (c, m, _) in styles.items()]
    legend_below(fig, handles)
    return fig


def _draw_panel(ax, lines: list[TargetLine], styles) -> None:
    reached = [s for line in lines for s in line.steps if np.isfinite(s) and s > 0]
    top = max(reached) * 2 if reached else 10.0
    for line in lines:
        c, m, _ = styles[line.name]
        bs = np.array(line.batch_size, dtype=float)
        st = np.array(line.steps)
        ok = np.isfinite(st) & (st > 0)  # 0 steps: met before any step (said in the title)
        ax.plot(bs[ok], st[ok], color=c, marker=m, ms=4)
        missed = ~np.isfinite(st)
        if missed.any():
            ax.plot(bs[missed], [top] * int(missed.sum()), ls="none", marker=m, mfc="white", color=c, ms=5,
                    clip_on=False)
        if ok.any():
            b0, s0 = bs[ok][0], st[ok][0]
            ax.plot(bs, s0 * b0 / bs, color=c, ls=":", lw=0.8)
    if any(not np.isfinite(s) for line in lines for s in line.steps):
        ax.axhline(top, color="0.6", ls="--", lw=0.6)
        ax.text(min(b for line in lines for b in line.batch_size), top * 1.08, "not reached", fontsize=6,
                color="0.3", va="bottom")
    log_scale(ax, "x", base=2)
    log_scale(ax, "y")
    # the limits set by hand: a panel where nothing reached the target has a single y value
    ax.set_ylim(min(reached) / 2 if reached else 1.0, top * 1.6)
    ax.set_xlabel("batch size")
    ax.set_ylabel("steps to reach target")
