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
    COLUMN_IN,
    DIVERGED_MARKER,
    MARKERS,
    OKABE_ITO,
    STAT_WORDS,
    Results,
    final_or_best,
    label,
    log_scale,
    style,
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


@dataclass
class LrInfo:
    metric: str
    stat: str
    lines: list[LrLine]
    band: str = "ci"
    method: str = stats.DEFAULT_CI


def lr_info(results: Results, metric: str, stat: str = "best", band: str = "ci",
            method: str = stats.DEFAULT_CI) -> LrInfo:
    value = final_or_best(results.history, metric, stat).rename("value")
    t = results.trials.merge(value, left_on="trial_id", right_index=True, how="left")
    others = [c for c in results.varying() if c not in ("optimizer", "lr")]
    if t["sweep"].nunique() > 1:
        others = ["sweep", *others]
    lines = []
    for key, g in t.groupby(["optimizer", *others], sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        name = " ".join(str(k) for k in key)
        lrs, mean, cells, div, counts = [], [], [], [], []
        for lr, cell in g.groupby("lr", sort=True):
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
                            chosen, tied))
    return LrInfo(metric, stat, lines, band, method)


def draw(info: LrInfo):
    plt = style()
    fig, ax = plt.subplots(figsize=(COLUMN_IN, 2.6))
    finite = [v for line in info.lines for v in line.hi + line.lo if np.isfinite(v)]
    top = max(finite) if finite else 1.0
    bottom = min(finite) if finite else 0.0
    edge = top + 0.06 * (top - bottom or 1.0)
    for i, line in enumerate(info.lines):
        c, m = OKABE_ITO[i % len(OKABE_ITO)], MARKERS[i % len(MARKERS)]
        ax.plot(line.lr, line.mean, color=c, marker=m, ms=3.5, label=line.name)
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
    ax.set_xlabel("learning rate")
    ax.set_ylabel(f"{label(info.metric)}\n({STAT_WORDS[info.stat]})")
    tied = " (thin: tied with it)" if any(line.tied_lr for line in info.lines) else ""
    ns = sorted({n for line in info.lines for n in line.n if n})
    n = (f"N = {ns[0]}" if len(ns) == 1 else f"N = {ns[0]}–{ns[-1]}") if ns else "N = 0"
    ax.set_title(f"lr sensitivity: mean over seeds ({n}), band: {short_band(info.band, info.method)}\n"
                 f"○ chosen on validation{tied}; {DIVERGED_MARKER} k/N seeds diverged", pad=10)
    fig.legend(loc="outside lower center", ncols=min(4, len(info.lines)), frameon=False)
    return fig
