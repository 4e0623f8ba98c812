"""Learning curves: metric vs epoch/step/samples/time, the mean over seeds with a band (a 95% t
interval of the mean by default; std, min-max or none on request: dlbench.stats.band).

- One problem (a dataset): one panel per optimizer, one colour per lr: how each lr trains.
- Several problems (datasets, or folders read together): small multiples, one panel per problem,
  one curve per optimizer at the configuration validation chose (dlbench.stats.best_configs, the
  tables' choice), the same colour for an optimizer in every panel, one legend outside the data.
  Each panel shows its problem's own metric (accuracy, R² or loss) unless one is asked for.
  Where a protocol ran, its confirm stage is drawn (the fresh seeds are the result).

Diverged trials are drawn up to the epoch before they diverged (the exploded value that stopped
them is no point of a curve) and marked with an x where they diverged, at their last value
before it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dlbench import stats
from dlbench.plots._common import (
    DIVERGED_MARKER,
    LINESTYLES,
    MAX_PANELS,
    PAGE_IN,
    X_LABELS,
    XS,
    Results,
    default_stage,
    fig_title,
    fmt_value,
    grid_of,
    label,
    legend_below,
    log_scale,
    metric_for,
    optimizer_styles,
    panel_title,
    problems,
    restrict,
    style,
    styled,
)
from dlbench.words import band_words


@dataclass
class Curve:
    panel: str  # an optimizer (one problem) or a problem (several)
    series: str  # the legend entry: "lr 0.01", or the optimizer
    style_key: str  # the other varying axes (and the sweep when several are compared)
    x: list[float]
    mean: list[float]
    lo: list[float]  # the band (NaN where it has no value, e.g. an interval from a single seed)
    hi: list[float]
    n_seeds: int
    diverged: list[tuple[float, float]] = field(default_factory=list)  # (x, last finite y) per diverged seed
    lr: float = float("nan")


@dataclass
class CurvesInfo:
    metric: str  # what is drawn (one problem), or what was asked for (several: see panel_metrics)
    x: str
    curves: list[Curve]
    panels: list[str]
    series: list[str]  # legend entries, in order
    style_keys: list[str]
    band: str = "ci"
    method: str = stats.DEFAULT_CI
    by_problem: bool = False  # panels are problems, series optimizers
    panel_metrics: dict[str, str] = field(default_factory=dict)  # panel -> its metric
    stage: str | None = None
    left_out: int = 0  # problems beyond MAX_PANELS (--dataset selects them)

    @property
    def lrs(self) -> list[float]:
        return sorted({c.lr for c in self.curves if np.isfinite(c.lr)})

    @property
    def band_label(self) -> str:
        """What the band is and over how many seeds, for the legend."""
        ns = sorted({c.n_seeds for c in self.curves})
        n = f"N = {ns[0]}" if len(ns) == 1 else f"N = {ns[0]}–{ns[-1]}"
        least = stats.MIN_N[self.method]
        few = self.band == "ci" and ns[0] < least
        return f"band: {band_words(self.band, self.method)} ({n} seeds{f'; none below {least}' if few else ''})"


def _curve(g: pd.DataFrame, metric: str, xcol: str, band: str, method: str, **fields) -> Curve:
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
    return Curve(x=[float(xs[e]) for e in keep], mean=[float(np.mean(vals[e])) for e in keep], lo=lo.tolist(),
                 hi=hi.tolist(), n_seeds=int(g.trial_id.nunique()), diverged=diverged, **fields)


def _without_explosions(h: pd.DataFrame, metric: str) -> pd.DataFrame:
    # the epoch a trial diverged at holds the exploded value that stopped it: it is not a point of the
    # curve (it would stretch the axis by orders of magnitude); the trial is marked there instead
    exploded = (h["status"] == "diverged") & (h["epoch"] >= h["diverged_epoch"].astype(float))
    return h.assign(**{metric: h[metric].where(~exploded)})


def curves_info(results: Results, metric: str | None = None, x: str = "epoch", band: str = "ci",
                method: str = stats.DEFAULT_CI, stage: str | None = None) -> CurvesInfo:
    probs = problems(results)
    if len(probs) > 1:
        return _by_problem(results, metric, x, band, method, stage)
    metric = metric or metric_for(results.trials, results.history, None)
    h = _without_explosions(results.history, metric)
    others = [c for c in results.varying() if c not in ("optimizer", "lr")]
    if results.trials["sweep"].nunique() > 1:
        others = ["sweep", *others]
    keys = ["optimizer", "lr", *others]
    curves = []
    for key, g in h.groupby(keys, sort=True, dropna=False):
        key = dict(zip(keys, key, strict=True))
        curves.append(_curve(g, metric, XS[x], band, method, panel=str(key["optimizer"]),
                             series=f"lr {float(key['lr']):.4g}", lr=float(key["lr"]),
                             style_key=", ".join(f"{k}={fmt_value(key[k])}" if k != "sweep" else str(key[k])
                                                 for k in others)))
    lrs = sorted({c.lr for c in curves})
    # style keys in the groupby's (numeric) order of first appearance: bs 8, 32, 128, not "128" < "8"
    return CurvesInfo(metric, x, curves, sorted({c.panel for c in curves}), [f"lr {lr:.4g}" for lr in lrs],
                      list(dict.fromkeys(c.style_key for c in curves)), band, method,
                      panel_metrics={c.panel: metric for c in curves})


def _by_problem(results: Results, metric: str | None, x: str, band: str, method: str,
                stage: str | None) -> CurvesInfo:
    stage = stage or default_stage(results)
    probs = problems(results)
    left_out = max(0, len(probs) - MAX_PANELS)
    curves, panel_metrics = [], {}
    for name, t in probs[:MAX_PANELS]:
        h = results.of(t).history
        m = metric_for(t, h, metric)
        panel_metrics[name] = m
        h = _without_explosions(h, m)
        has_stage = stage is not None and "stage" in t and bool((t["stage"] == stage).any())
        shown = restrict(Results(t, h), stage=stage) if has_stage else Results(t, h)
        for b in stats.best_configs(t, method=method):
            rows = stats.rows_matching(shown.trials, b.config)
            g = shown.of(rows).history
            if len(g):
                curves.append(_curve(g, m, XS[x], band, method, panel=name, series=b.name, style_key="",
                                     lr=float(b.config.get("lr", np.nan))))
    series = sorted({c.series for c in curves})
    return CurvesInfo(metric or "", x, curves, [n for n, _ in probs[:MAX_PANELS] if n in panel_metrics], series,
                      [""], band, method, by_problem=True, panel_metrics=panel_metrics, stage=stage,
                      left_out=left_out)


@styled
def draw(info: CurvesInfo):
    plt = style()
    import matplotlib as mpl

    n = len(info.panels)
    rows, cols = grid_of(n, 3 if info.by_problem else 4)
    fig, axes = plt.subplots(rows, cols, figsize=(PAGE_IN, 1.9 * rows + 1.0), sharey=not info.by_problem,
                             squeeze=False)
    if info.by_problem:
        styles = optimizer_styles(info.series)
        colour = {s: styles[s][0] for s in info.series}
        dash = {s: styles[s][2] for s in info.series}
    else:
        cmap = mpl.colormaps["viridis"]
        colour = {s: cmap(i / max(1, len(info.series) - 1) * 0.9) for i, s in enumerate(info.series)}
        dash = {k: LINESTYLES[i % len(LINESTYLES)] for i, k in enumerate(info.style_keys)}
    for ax, panel in zip(axes.flat, info.panels, strict=False):
        mine = [c for c in info.curves if c.panel == panel]
        for c in mine:
            ls = dash[c.series] if info.by_problem else dash[c.style_key]
            ax.plot(c.x, c.mean, color=colour[c.series], ls=ls)
            if info.band != "none" and c.n_seeds > 1:
                ax.fill_between(c.x, c.lo, c.hi, color=colour[c.series], alpha=0.2, lw=0)
            for dx, dy in c.diverged:
                ax.plot([dx], [dy], marker=DIVERGED_MARKER, color="#D55E00", ms=6, mew=1.5, ls="none")
        ax.set_title(panel_title(panel))
        ax.set_xlabel(X_LABELS[info.x])
        metric = info.panel_metrics.get(panel, info.metric)
        if info.by_problem or ax in axes[:, 0]:
            ax.set_ylabel(label(metric) if len(label(metric)) < 28 else label(metric).split(" (")[0])
        if metric.endswith("loss") and mine and all(v > 0 for c in mine for v in c.mean):
            log_scale(ax, "y")
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    handles = [mpl.lines.Line2D([], [], color=colour[s], ls=dash[s] if info.by_problem else "-", label=s)
               for s in info.series]
    if not info.by_problem and len(info.style_keys) > 1:
        handles += [mpl.lines.Line2D([], [], color="0.3", ls=dash[k], label=k) for k in info.style_keys]
    if any(c.diverged for c in info.curves):
        handles.append(mpl.lines.Line2D([], [], color="#D55E00", marker=DIVERGED_MARKER, ls="none",
                                        label="diverged"))
    if info.band != "none":
        handles.append(mpl.patches.Patch(color="0.5", alpha=0.3, lw=0, label=info.band_label))
    legend_below(fig, handles)
    if info.by_problem:
        what = "each optimizer at the configuration validation chose"
        stage = f"; {info.stage} stage" if info.stage else ""
        more = f"; {info.left_out} more problems: --dataset" if info.left_out else ""
        shown = label(info.metric) if info.metric else "each problem's test metric"
        title = f"{shown} by {X_LABELS[info.x]}: {what}, mean over seeds{stage}{more}"
    else:
        title = f"{label(info.metric)} vs {X_LABELS[info.x]}: mean over seeds"
    fig.suptitle(fig_title(title, PAGE_IN))
    return fig
