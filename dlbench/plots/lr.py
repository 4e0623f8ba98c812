"""Learning-rate sensitivity: final (or best) metric vs lr on a log axis, one line per
optimizer, seeds as a min-max band, diverged configurations as triangles on the top edge:
the "too small, just right, too large" picture."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dlbench.plots._common import COLUMN_IN, MARKERS, OKABE_ITO, Results, final_or_best, label, style


@dataclass
class LrLine:
    name: str  # optimizer (and sweep / other axes)
    lr: list[float]
    mean: list[float]  # NaN where every seed diverged
    lo: list[float]
    hi: list[float]
    diverged_lr: list[float]  # lrs where at least one seed diverged


@dataclass
class LrInfo:
    metric: str
    stat: str
    lines: list[LrLine]


def lr_info(results: Results, metric: str, stat: str = "final") -> LrInfo:
    value = final_or_best(results.history, metric, stat).rename("value")
    t = results.trials.merge(value, left_on="trial_id", right_index=True, how="left")
    others = [c for c in results.varying() if c not in ("optimizer", "lr")]
    if t["sweep"].nunique() > 1:
        others = ["sweep", *others]
    lines = []
    for key, g in t.groupby(["optimizer", *others], sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        name = " ".join(str(k) for k in key)
        lrs, mean, lo, hi, div = [], [], [], [], []
        for lr, cell in g.groupby("lr", sort=True):
            ok = cell[(cell.status == "ok") & np.isfinite(cell.value)].value
            lrs.append(float(lr))
            mean.append(float(ok.mean()) if len(ok) else float("nan"))
            lo.append(float(ok.min()) if len(ok) else float("nan"))
            hi.append(float(ok.max()) if len(ok) else float("nan"))
            if (cell.status == "diverged").any():
                div.append(float(lr))
        lines.append(LrLine(name, lrs, mean, lo, hi, div))
    return LrInfo(metric, stat, lines)


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
        ax.fill_between(line.lr, line.lo, line.hi, color=c, alpha=0.2, lw=0)
        if line.diverged_lr:
            ax.plot(line.diverged_lr, [edge] * len(line.diverged_lr), ls="none", marker="^", color=c, ms=6,
                    mec="black", mew=0.5, clip_on=False)
    ax.set_xscale("log")
    ax.set_ylim(top=edge + 0.02 * (top - bottom or 1.0))
    ax.set_xlabel("learning rate")
    ax.set_ylabel(f"{info.stat} {label(info.metric)}")
    ax.set_title(f"lr sensitivity: {info.stat} value\nband = min–max over seeds; ▲ = diverged")
    fig.legend(loc="outside lower center", ncols=min(4, len(info.lines)), frameon=False)
    return fig
