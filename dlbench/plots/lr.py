"""Learning-rate sensitivity: the metric at the epoch chosen on validation (or its final value)
vs lr on a log axis, one line per optimizer, the mean over seeds with a band (dlbench.stats.band:
a 95% t interval of the mean by default), the lr validation chose ringed (dlbench.stats.choose,
the tables' rule), and lrs where seeds diverged marked on the top edge with "k/N": the "too small,
just right, too large" picture. Diverged seeds follow the tables' rule: counted at the epoch
validation chose, left out of final numbers."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dlbench import stats
from dlbench.plots._common import (
    AXIS_WORDS,
    COLUMN_IN,
    DIVERGED_MARKER,
    MAX_PANELS,
    PAGE_IN,
    STAT_WORDS,
    Results,
    fig_title,
    final_or_best,
    fmt_value,
    grid_of,
    label,
    legend_below,
    log_scale,
    metric_for,
    optimizer_styles,
    panel_title,
    problems,
    style,
    styled,
    tuning_stage,
)
from dlbench.words import short_band


@dataclass
class LrLine:
    name: str  # optimizer (and sweep / other axes)
    lr: list[float]
    mean: list[float]  # NaN where every seed diverged
    lo: list[float]  # the band
    hi: list[float]
    diverged_lr: list[float]  # lrs where at least one seed diverged
    n: list[int] = field(default_factory=list)  # seeds with a value per lr
    diverged: list[tuple[int, int]] = field(default_factory=list)  # per diverged lr: (k diverged, of N seeds)
    chosen_lr: float | None = None  # the lr validation chose (dlbench.stats.choose), None when none
    tied_lr: list[float] = field(default_factory=list)  # lrs tied with it on the selection metric
    stopped: dict[float, int] = field(default_factory=dict)  # lr -> the epoch successive halving stopped it at


@dataclass
class LrInfo:
    metric: str
    stat: str
    lines: list[LrLine]
    band: str = "ci"
    method: str = stats.DEFAULT_CI
    panels: list[str] = field(default_factory=lambda: [""])  # one per problem when there are several
    panel_of: list[str] = field(default_factory=list)  # per line, its panel
    panel_metrics: dict[str, str] = field(default_factory=dict)
    series: list[str] = field(default_factory=list)  # per line, its legend entry (the optimizer)
    left_out: int = 0


def _lines(t, h, metric: str, stat: str, band: str, method: str, others: list[str]) -> list[LrLine]:
    value = final_or_best(h, metric, stat).rename("value")
    t = t.merge(value, left_on="trial_id", right_index=True, how="left")
    lines = []
    for key, g in t.groupby(["optimizer", *others], sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        # the optimizer, then each other axis by name: "adam bs 16", "sgd epochs 10"
        name = " ".join([str(key[0])] + [str(v) if c == "sweep" else f"{AXIS_WORDS.get(c, c)} {fmt_value(v)}"
                                         for c, v in zip(others, key[1:], strict=True)])
        lrs, mean, cells, div, counts, stopped = [], [], [], [], [], {}
        for lr, cell in g.groupby("lr", sort=True):
            if (cell.status == "stopped").any():  # its value is what it reached by its rung
                stopped[float(lr)] = int(cell["rung"].max())
            vals = cell["value"].to_numpy(dtype=float)
            vals = vals[np.isfinite(vals)]
            lrs.append(float(lr))
            mean.append(float(vals.mean()) if len(vals) else float("nan"))
            cells.append(vals)
            k = int((cell.status == "diverged").sum())
            if k:
                div.append(float(lr))
                counts.append((k, int((cell.status != "failed").sum())))
        lo, hi = stats.band(cells, band, method, metric)
        choice = stats.choose(g.drop(columns="value"), stats.selection_of(g))
        chosen = None if choice is None else float(choice.config["lr"])
        tied = [] if choice is None else sorted(float(c["lr"]) for c in choice.tied)
        lines.append(LrLine(name, lrs, mean, lo.tolist(), hi.tolist(), div, [len(c) for c in cells], counts,
                            chosen, tied, stopped))
    return lines


def lr_info(results: Results, metric: str | None = None, stat: str = "best", band: str = "ci",
            method: str = stats.DEFAULT_CI) -> LrInfo:
    """One line per optimizer (and other varying axes), lr on x; where the results hold several
    problems, one panel per problem, each with its own metric. Under a protocol, the tuning stage
    (where the lr varies: the confirm stage has one lr per optimizer)."""
    results = tuning_stage(results)  # where the axes vary
    probs = problems(results)
    if len(probs) == 1:
        metric = metric or metric_for(results.trials, results.history, None)
        others = [c for c in results.varying() if c not in ("optimizer", "lr")]
        if results.trials["sweep"].nunique() > 1:
            others = ["sweep", *others]
        lines = _lines(results.trials, results.history, metric, stat, band, method, others)
        return LrInfo(metric, stat, lines, band, method, [""], [""] * len(lines), {"": metric},
                      [line.name for line in lines])
    lines, panel_of, panel_metrics = [], [], {}
    for name, t in probs[:MAX_PANELS]:
        mine = results.of(t)
        h = mine.history
        m = metric_for(t, h, metric)
        panel_metrics[name] = m
        others = [c for c in mine.varying() if c not in ("optimizer", "lr", "dataset", "sweep", "stage")]
        drawn = _lines(t, h, m, stat, band, method, others)
        lines += drawn
        panel_of += [name] * len(drawn)
    return LrInfo(metric or "", stat, lines, band, method, list(panel_metrics), panel_of, panel_metrics,
                  [line.name for line in lines], max(0, len(probs) - MAX_PANELS))


@styled
def draw(info: LrInfo):
    plt = style()
    several = len(info.panels) > 1
    rows, cols = grid_of(len(info.panels), 3)
    size = (PAGE_IN, 1.9 * rows + 1.3) if several else (COLUMN_IN, 2.8)
    fig, axes = plt.subplots(rows, cols, figsize=size, squeeze=False)
    styles = optimizer_styles(list(dict.fromkeys(info.series)))
    for ax, panel in zip(axes.flat, info.panels, strict=False):
        mine = [line for line, p in zip(info.lines, info.panel_of or [""] * len(info.lines), strict=True)
                if p == panel]
        _draw_panel(ax, mine, info, styles)
        metric = info.panel_metrics.get(panel, info.metric)
        ax.set_xlabel("learning rate")
        ax.set_ylabel(label(metric))
        if several:
            ax.set_title(panel_title(panel), pad=10)
    for ax in axes.flat[len(info.panels):]:
        ax.set_visible(False)
    tied = " (thin: tied with it)" if any(line.tied_lr for line in info.lines) else ""
    ns = sorted({n for line in info.lines for n in line.n if n})
    n = (f"N = {ns[0]}" if len(ns) == 1 else f"N = {ns[0]}–{ns[-1]}") if ns else "N = 0"
    more = f"; {info.left_out} more problems: --dataset" if info.left_out else ""
    where = f", {STAT_WORDS[info.stat]}"
    diverged = f"; {DIVERGED_MARKER} k/N seeds diverged" if any(line.diverged_lr for line in info.lines) else ""
    stopped = "; hollow: stopped by halving (its value by its rung)" if any(line.stopped for line in info.lines) \
        else ""
    title = (f"lr sensitivity{where}: mean over seeds ({n}), band: {short_band(info.band, info.method)}; "
             f"○ chosen on validation{tied}{diverged}{stopped}{more}")
    width = size[0]
    fig.suptitle(fig_title(title, width))
    handles = [plt.Line2D([], [], color=styles[s][0], marker=styles[s][1], ms=3.5, label=s) for s in styles]
    legend_below(fig, handles)
    return fig


def _draw_panel(ax, lines: list[LrLine], info: LrInfo, styles) -> None:
    finite = [v for line in lines for v in line.hi + line.lo + line.mean if np.isfinite(v)]
    top = max(finite) if finite else 1.0
    bottom = min(finite) if finite else 0.0
    edge = top + 0.06 * (top - bottom or 1.0)
    for line in lines:
        c, m, _ = styles[line.name]
        ax.plot(line.lr, line.mean, color=c, marker=m, ms=3.5)
        hollow = [lr_ for lr_ in line.lr if lr_ in line.stopped]
        if hollow:  # stopped early by successive halving: not a value at the end of training
            ax.plot(hollow, [line.mean[line.lr.index(lr_)] for lr_ in hollow], ls="none", marker=m, ms=3.5,
                    mfc="white", mec=c, mew=0.8)
        if info.band != "none":
            ax.fill_between(line.lr, line.lo, line.hi, color=c, alpha=0.2, lw=0)
        if line.chosen_lr is not None and line.chosen_lr in line.lr:
            y = line.mean[line.lr.index(line.chosen_lr)]
            ax.plot([line.chosen_lr], [y], ls="none", marker="o", ms=9, mfc="none", mec=c, mew=1.2)
        for lr_ in line.tied_lr:  # tied with the chosen one on the selection metric
            if lr_ in line.lr:
                ax.plot([lr_], [line.mean[line.lr.index(lr_)]], ls="none", marker="o", ms=9, mfc="none", mec=c,
                        mew=0.6)
        for lr_, (k, n) in zip(line.diverged_lr, line.diverged, strict=True):
            ax.plot([lr_], [edge], ls="none", marker=DIVERGED_MARKER, color=c, ms=6, mew=1.5, clip_on=False)
            ax.annotate(f"{k}/{n}", (lr_, edge), xytext=(0, 4), textcoords="offset points", ha="center",
                        fontsize=5.5, color=c, annotation_clip=False)
    log_scale(ax, "x")
    ax.set_ylim(top=edge + 0.02 * (top - bottom or 1.0))
