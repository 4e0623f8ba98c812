"""Learning curves: metric vs epoch/step/samples/time, one panel per optimizer, one colour per
lr, the mean over seeds with a band (a 95% t interval of the mean by default; std, min-max or
none on request: dlbench.stats.band); diverged trials drawn up to the epoch before they diverged
(the exploded value that stopped them is no point of a curve) and marked with an x where they
diverged, at their last value before it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from dlbench import stats
from dlbench.plots._common import (
    DIVERGED_MARKER,
    LINESTYLES,
    PAGE_IN,
    X_LABELS,
    XS,
    Results,
    fmt_value,
    label,
    log_scale,
    style,
)
from dlbench.words import band_words


@dataclass
class Curve:
    panel: str  # optimizer
    lr: float
    style_key: str  # the other varying axes (and the sweep when several are compared)
    x: list[float]
    mean: list[float]
    lo: list[float]  # the band (NaN where it has no value, e.g. a CI from fewer than 3 seeds)
    hi: list[float]
    n_seeds: int
    diverged: list[tuple[float, float]] = field(default_factory=list)  # (x, last finite y) per diverged seed


@dataclass
class CurvesInfo:
    metric: str
    x: str
    curves: list[Curve]
    panels: list[str]
    lrs: list[float]
    style_keys: list[str]
    band: str = "ci"
    method: str = stats.DEFAULT_CI

    @property
    def band_label(self) -> str:
        """What the band is and over how many seeds, for the legend."""
        ns = sorted({c.n_seeds for c in self.curves})
        n = f"N = {ns[0]}" if len(ns) == 1 else f"N = {ns[0]}–{ns[-1]}"
        least = stats.MIN_N[self.method]
        few = self.band == "ci" and ns[0] < least
        return f"band: {band_words(self.band, self.method)} ({n} seeds{f'; none below {least}' if few else ''})"


def curves_info(results: Results, metric: str, x: str = "epoch", band: str = "ci",
                method: str = stats.DEFAULT_CI) -> CurvesInfo:
    h = results.history
    # the epoch a trial diverged at holds the exploded value that stopped it: it is not a point of the
    # curve (it would stretch the axis by orders of magnitude); the trial is marked there instead
    exploded = (h["status"] == "diverged") & (h["epoch"] >= h["diverged_epoch"].astype(float))
    h = h.assign(**{metric: h[metric].where(~exploded)})
    others = [c for c in results.varying() if c not in ("optimizer", "lr")]
    if results.trials["sweep"].nunique() > 1:
        others = ["sweep", *others]
    keys = ["optimizer", "lr", *others]
    xcol = XS[x]
    curves = []
    for key, g in h.groupby(keys, sort=True, dropna=False):
        key = dict(zip(keys, key, strict=True))
        by_epoch = g.groupby("epoch")
        vals = by_epoch[metric].apply(lambda s: s[np.isfinite(s)].to_numpy())
        xs = by_epoch[xcol].mean()
        keep = [e for e in vals.index if len(vals[e])]
        lo, hi = stats.band([vals[e] for e in keep], band, method, metric)
        diverged = []
        for _, t in g[g.status == "diverged"].groupby("trial_id"):
            t = t.sort_values("epoch")
            finite = t[np.isfinite(t[metric])]
            last = finite.iloc[-1] if len(finite) else t.iloc[0]
            dx = t[t.epoch == t.epoch.max()][xcol].iloc[0]  # where it diverged, at its last value before
            diverged.append((float(dx), float(last[metric])))
        curves.append(Curve(
            panel=str(key["optimizer"]), lr=float(key["lr"]),
            style_key=", ".join(f"{k}={fmt_value(key[k])}" if k != "sweep" else str(key[k]) for k in others),
            x=[float(xs[e]) for e in keep], mean=[float(np.mean(vals[e])) for e in keep],
            lo=lo.tolist(), hi=hi.tolist(), n_seeds=int(g.trial_id.nunique()), diverged=diverged))
    # style keys in the groupby's (numeric) order of first appearance: bs 8, 32, 128, not "128" < "8"
    return CurvesInfo(metric, x, curves, sorted({c.panel for c in curves}), sorted({c.lr for c in curves}),
                      list(dict.fromkeys(c.style_key for c in curves)), band, method)


def draw(info: CurvesInfo):
    plt = style()
    import matplotlib as mpl

    n = len(info.panels)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(PAGE_IN, 1.9 * rows + 0.6), sharey=True, squeeze=False)
    cmap = mpl.colormaps["viridis"]
    colour = {lr: cmap(i / max(1, len(info.lrs) - 1) * 0.9) for i, lr in enumerate(info.lrs)}
    dash = {k: LINESTYLES[i % len(LINESTYLES)] for i, k in enumerate(info.style_keys)}
    for ax, panel in zip(axes.flat, info.panels, strict=False):
        for c in (c for c in info.curves if c.panel == panel):
            ax.plot(c.x, c.mean, color=colour[c.lr], ls=dash[c.style_key])
            if info.band != "none" and c.n_seeds > 1:
                ax.fill_between(c.x, c.lo, c.hi, color=colour[c.lr], alpha=0.2, lw=0)
            for dx, dy in c.diverged:
                ax.plot([dx], [dy], marker=DIVERGED_MARKER, color="#D55E00", ms=6, mew=1.5, ls="none")
        ax.set_title(panel)
        ax.set_xlabel(X_LABELS[info.x])
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel(label(info.metric))
    if info.metric.endswith("loss") and all(v > 0 for c in info.curves for v in c.mean):
        for ax in axes.flat:
            log_scale(ax, "y")
    handles = [mpl.lines.Line2D([], [], color=colour[lr], label=f"lr {lr:.4g}") for lr in info.lrs]
    if len(info.style_keys) > 1:
        handles += [mpl.lines.Line2D([], [], color="0.3", ls=dash[k], label=k) for k in info.style_keys]
    if any(c.diverged for c in info.curves):
        handles.append(mpl.lines.Line2D([], [], color="#D55E00", marker=DIVERGED_MARKER, ls="none",
                                        label="diverged"))
    if info.band != "none":
        handles.append(mpl.patches.Patch(color="0.5", alpha=0.3, lw=0, label=info.band_label.replace(" (", "\n(")))
    fig.legend(handles=handles, loc="outside right center", frameon=False)
    fig.suptitle(f"{label(info.metric)} vs {X_LABELS[info.x]}: mean over seeds; {info.band_label}")
    return fig
