"""Heatmap over two grid axes (default lr × batch size): colour = the metric at the epoch chosen
on validation (or its final value), mean over seeds; cells where seeds diverged are hatched and
say "k/N div."; the cell validation chose (dlbench.stats.choose, the tables' rule) is outlined,
whatever metric is drawn, and cells tied with it are outlined dashed; values are written in the
cells. One panel per remaining configuration (e.g. per optimizer)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from dlbench import stats
from dlbench.errors import UserError
from dlbench.plots._common import (
    MAX_PANELS,
    PAGE_IN,
    STAT_WORDS,
    Results,
    fig_title,
    final_or_best,
    fmt_value,
    higher_is_better,
    label,
    metric_for,
    problems,
    problems_varying,
    style,
    styled,
    tuning_stage,
)
from dlbench.words import metric_words


@dataclass
class Panel:
    name: str
    rows: list  # values of the second axis
    cols: list  # values of the first axis
    values: np.ndarray  # [rows, cols], NaN where no seed finished
    diverged: np.ndarray  # [rows, cols] bool: at least one seed diverged
    best: tuple[int, int] | None  # the cell chosen on validation (selection column), not on what is drawn
    counts: dict = field(default_factory=dict)  # (i, j) -> (k diverged, of N seeds) where any diverged
    tied: list[tuple[int, int]] = field(default_factory=list)  # cells tied with the chosen one


@dataclass
class HeatmapInfo:
    metric: str
    stat: str
    axes: tuple[str, str]
    panels: list[Panel]
    chosen_by: str = "best_val_acc"  # the column whose mean over seeds picked the outlined cell
    note: str = ""  # which problem, when the results hold several
    left_out: int = 0  # panels beyond MAX_PANELS


def heatmap_info(results: Results, metric: str | None = None, axes: tuple[str, str] = ("lr", "batch_size"),
                 stat: str = "best") -> HeatmapInfo:
    """Under a protocol, the tuning stage (where the axes vary); with several problems, the first
    (`dlbench plot --dataset` chooses another): one heatmap is one problem's, its panels one per
    optimizer, at most MAX_PANELS of them."""
    results = tuning_stage(results)  # where the axes vary
    probs = problems(results)
    note = ""
    if len(probs) > 1:
        # the first problem whose own trials vary both axes (else the first: its error says why)
        name, t = (problems_varying(results, axes) or probs)[0]
        results = results.of(t)
        note = f"{name} (1 of {len(probs)} problems; --dataset chooses)"
    metric = metric_for(results.trials, results.history, metric)
    info = _heatmap_info(results, metric, axes, stat)
    info.note = note
    if len(info.panels) > MAX_PANELS:
        info.left_out = len(info.panels) - MAX_PANELS
        info.panels = info.panels[:MAX_PANELS]
    return info


def _heatmap_info(results: Results, metric: str, axes: tuple[str, str], stat: str) -> HeatmapInfo:
    for a in axes:
        if a not in results.trials:
            raise UserError(f"--axes {a!r} is not a column of these results; allowed: {', '.join(results.varying())}")
    if len(set(axes)) != 2 or any(results.trials[a].nunique() < 2 for a in axes):
        raise UserError(f"--kind heatmap needs two axes with several values each; {axes[0]} and {axes[1]} have "
                        f"{results.trials[axes[0]].nunique()} and {results.trials[axes[1]].nunique()}; allowed: two "
                        f"of {', '.join(results.varying()) or 'none (this sweep has fewer than two axes)'}")
    value = final_or_best(results.history, metric, stat).rename("value")
    t = results.trials.merge(value, left_on="trial_id", right_index=True, how="left")
    others = [c for c in results.varying() if c not in axes]
    if t["sweep"].nunique() > 1:
        others = ["sweep", *others]
    panels = []
    chosen_by = metric
    groups = t.groupby(others, sort=True, dropna=False) if others else [((), t)]
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        sel = stats.selection_of(g)  # each panel by its own dataset's rule
        chosen_by = sel.select
        cols = sorted(g[axes[0]].unique())
        rows = sorted(g[axes[1]].unique())
        vals = np.full((len(rows), len(cols)), np.nan)
        div = np.zeros((len(rows), len(cols)), dtype=bool)
        counts = {}
        for (c, r), cell in g.groupby([axes[0], axes[1]]):
            i, j = rows.index(r), cols.index(c)
            v = cell["value"].to_numpy(dtype=float)
            v = v[np.isfinite(v)]
            vals[i, j] = v.mean() if len(v) else np.nan
            k = int((cell.status == "diverged").sum())
            div[i, j] = k > 0
            if k:
                counts[(i, j)] = (k, int((cell.status != "failed").sum()))
        choice = stats.choose(g.drop(columns="value"), sel)
        best, tied = None, []
        if choice is not None:
            best = (rows.index(choice.config[axes[1]]), cols.index(choice.config[axes[0]]))
            tied = [(rows.index(c[axes[1]]), cols.index(c[axes[0]])) for c in choice.tied]
        name = " ".join(f"{fmt_value(k)}" for k in key) or "all trials"
        panels.append(Panel(name, rows, cols, vals, div, best, counts, tied))
    return HeatmapInfo(metric, stat, axes, panels, chosen_by)


@styled
def draw(info: HeatmapInfo):
    plt = style()
    import matplotlib as mpl

    n = len(info.panels)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    first = info.panels[0]
    w = min(PAGE_IN, 0.55 * len(first.cols) * cols + 1.2)
    fig, axes = plt.subplots(rows, cols, figsize=(w, (0.4 * len(first.rows) + 0.9) * rows), squeeze=False)
    allv = np.concatenate([p.values[np.isfinite(p.values)] for p in info.panels])
    vmin, vmax = (allv.min(), allv.max()) if len(allv) else (0, 1)
    cmap = mpl.colormaps["viridis" if higher_is_better(info.metric) else "viridis_r"].with_extremes(bad="white")
    image = None
    for ax, p in zip(axes.flat, info.panels, strict=False):
        image = ax.imshow(np.ma.masked_invalid(p.values), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto",
                          origin="lower")
        for i in range(len(p.rows)):
            for j in range(len(p.cols)):
                v = p.values[i, j]
                if p.diverged[i, j]:
                    ax.add_patch(mpl.patches.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///",
                                                       edgecolor="0.4", lw=0))
                text = f"{v:.3g}" if np.isfinite(v) else "n/a"
                if (i, j) in p.counts:
                    text += "\n{}/{} div.".format(*p.counts[(i, j)])
                bright = np.isfinite(v) and (v - vmin) / ((vmax - vmin) or 1) > 0.5
                dark_text = bright if higher_is_better(info.metric) else not bright
                ax.text(j, i, text, ha="center", va="center", fontsize=6,
                        color="black" if dark_text or not np.isfinite(v) else "white")
        if p.best is not None:
            i, j = p.best
            ax.add_patch(mpl.patches.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="#D55E00", lw=2))
        for i, j in p.tied:
            ax.add_patch(mpl.patches.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="#D55E00", lw=1.2,
                                               ls="--"))
        ax.set_xticks(range(len(p.cols)), [fmt_value(c) for c in p.cols], rotation=45)
        ax.set_yticks(range(len(p.rows)), [fmt_value(r) for r in p.rows])
        ax.set_xlabel(info.axes[0].replace("_", " "))
        ax.set_ylabel(info.axes[1].replace("_", " "))
        ax.set_title(p.name)
        ax.grid(False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    fig.colorbar(image, ax=axes, label=f"{label(info.metric)}, {STAT_WORDS[info.stat]}\n(mean over seeds)",
                 shrink=0.9)
    tied = "; dashed: tied with it" if any(p.tied for p in info.panels) else ""
    where = f"{info.note}: " if info.note else ""
    more = f"; {info.left_out} more panels not drawn" if info.left_out else ""
    fig.suptitle(fig_title(f"{where}hatched: k/N seeds diverged; outlined: the cell chosen by mean "
                           f"{metric_words(info.chosen_by)}{tied}{more}", w))
    return fig
