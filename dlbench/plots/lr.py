"""Learning-rate sensitivity: the final metric (or its value at the epoch chosen on validation)
vs lr on a log axis, one line per optimizer, the mean over seeds with a band (dlbench.stats.band:
a 95% bootstrap CI by default), diverged configurations as triangles on the top edge: the "too
small, just right, too large" picture."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dlbench import stats
from dlbench.plots._common import (
    COLUMN_IN,
    MARKERS,
    OKABE_ITO,
    STAT_WORDS,
    Results,
    final_or_best,
    label,
    log_scale,
    style,
)


@dataclass
class LrLine:
    name: str  # optimizer (and sweep / other axes)
    lr: list[float]
    mean: list[float]  # NaN where every seed diverged
    lo: list[float]  # the band
    hi: list[float]
    diverged_lr: list[float]  # lrs where at least one seed diverged
    n: list[int] = field(default_factory=list)  # seeds with a value per lr


@dataclass
class LrInfo:
    metric: str
    stat: str
    lines: list[LrLine]
    band: str = "ci"


def lr_info(results: Results, metric: str, stat: str = "final", band: str = "ci") -> LrInfo:
    value = final_or_best(results.history, metric, stat).rename("value")
    t = results.trials.merge(value, left_on="trial_id", right_index=True, how="left")
    others = [c for c in results.varying() if c not in ("optimizer", "lr")]
    if t["sweep"].nunique() > 1:
        others = ["sweep", *others]
    lines = []
    for key, g in t.groupby(["optimizer", *others], sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        name = " ".join(str(k) for k in key)
        lrs, mean, cells, div = [], [], [], []
        for lr, cell in g.groupby("lr", sort=True):
            ok = cell[(cell.status == "ok") & np.isfinite(cell.value)].value.to_numpy(dtype=float)
            lrs.append(float(lr))
            mean.append(float(ok.mean()) if len(ok) else float("nan"))
            cells.append(ok)
            if (cell.status == "diverged").any():
                div.append(float(lr))
        lo, hi = stats.band(cells, band)
        lines.append(LrLine(name, lrs, mean, lo.tolist(), hi.tolist(), div, [len(c) for c in cells]))
    return LrInfo(metric, stat, lines, band)


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
        if line.diverged_lr:
            ax.plot(line.diverged_lr, [edge] * len(line.diverged_lr), ls="none", marker="^", color=c, ms=6,
                    mec="black", mew=0.5, clip_on=False)
    log_scale(ax, "x")
    ax.set_ylim(top=edge + 0.02 * (top - bottom or 1.0))
    ax.set_xlabel("learning rate")
    ax.set_ylabel(f"{label(info.metric)}, {STAT_WORDS[info.stat]}")
    ns = sorted({n for line in info.lines for n in line.n if n})
    n = (f"N = {ns[0]}" if len(ns) == 1 else f"N = {ns[0]}–{ns[-1]}") if ns else "N = 0"
    ax.set_title(f"lr sensitivity: mean over seeds ({n})\nband: {stats.BAND_WORDS[info.band]}; ▲ = diverged")
    fig.legend(loc="outside lower center", ncols=min(4, len(info.lines)), frameon=False)
    return fig
