"""Tuning budgets: how good an optimizer is when one can afford k configurations, not all of them
(Dodge et al. 2019, expected validation performance; Sivaprasad et al. 2020: the ranking of
optimizers depends on the budget).

For one optimizer on one problem, its n tuning configurations each have a value v on the
selection metric (the mean over tuning seeds). Ordered from worst to best by the one selection
rule (stats.choose's order: the metric, its tie-breakers, then the stated order), v(1) ≤ … ≤ v(n)
(for a metric where higher is better). Drawing k of them at random without replacement and keeping
the best, the expected value of what is kept is exactly

    E[best of k] = Σ_{i=k..n} v(i) · C(i-1, k-1) / C(n, k)

(the k-subsets whose best is the i-th value are those of the i-1 worse values that hold k-1 of
them). It is a U-statistic: unbiased for the expected best of k configurations drawn from the
distribution the n were drawn from (a random search over the ranges); Dodge et al.'s
with-replacement form is biased (Tang et al. 2020). The same weights applied to the test metric of
each configuration give the expected test number of what would be chosen.

The band is a 95% jackknife t interval (clipped to the metric's range, as every interval is): the
curve recomputed with each configuration left out, the jackknife variance of the U-statistic,
Student's t with n-1 degrees of freedom. It is given for k <= n/2 only: its coverage of the expected
best of k under random search, measured by simulation (benchmarks/budget_coverage.py,
docs/statistics.md), is 93-95% at small k for bounded or symmetric values (85-90% for skewed ones)
and 75-86% at k = n/2, and falls to 65-74% near k = n, where the best of all n is one draw of what
it estimates. (A percentile bootstrap over configurations covers worse: 36-51% at k = n.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dlbench.stats.distributions import t_quantile
from dlbench.stats.mean_intervals import ALPHA, bounds
from dlbench.stats.selection import Selection, configurations, order, tie_classes
from dlbench.stats.tables import one_loss
from dlbench.store import config_columns

CLOSE = 0.01  # tunability: the fewest configurations whose expected best is within 1% of the best


def weights(n: int) -> np.ndarray:
    """W[k-1, i-1] = C(i-1, k-1) / C(n, k): the chance that the best of k configurations drawn
    without replacement from n ranked ones is the i-th worst. Rows sum to 1."""
    w = np.zeros((n, n))
    for k in range(1, n + 1):
        total = math.comb(n, k)
        for i in range(k, n + 1):
            w[k - 1, i - 1] = math.comb(i - 1, k - 1) / total
    return w


def expected_best(ranked: np.ndarray) -> np.ndarray:
    """E[best of k] for k = 1..n, from values ranked worst to best (higher is better)."""
    ranked = np.asarray(ranked, dtype=float)
    return weights(len(ranked)) @ ranked


@dataclass
class BudgetCurve:
    """One optimizer's tuning curve on one problem."""

    problem: str
    sweep: str
    dataset: str
    optimizer: str
    metric: str  # the selection metric (validation)
    higher: bool
    report: str  # the test metric of the pick
    k: list[int]
    expected: list[float]  # E[best of k] on the selection metric
    low: list[float]  # 95% band (jackknife t; NaN where k > n/2)
    high: list[float]
    report_expected: list[float]  # E[test metric of what the best of k is]
    tunability: int  # the fewest k whose expected best is within CLOSE of the best
    r2: bool = False  # closeness is 0.01 of R² rather than 1%

    @property
    def n(self) -> int:
        return len(self.k)


@dataclass
class Budgets:
    curves: list[BudgetCurve]
    # problem -> [(k from which, optimizer leading)]: who has the best expected value as k grows
    leaders: dict[str, list[tuple[int, str]]] = field(default_factory=dict)


def ranked_configs(trials: pd.DataFrame, sel: Selection) -> pd.DataFrame:
    """The configurations `choose` ranks, worst first: their columns, and the mean over seeds of
    the selection metric, its tie-breakers and the reported metric, in the reverse of the one
    selection rule's order (selection.order: round-off ties, tie-breakers, the stated order). A
    configuration without a finite selection value is left out (it produced nothing to choose)."""
    cols = config_columns(trials)
    table = configurations(trials, sel, cols)
    if not len(table):
        return pd.DataFrame()
    if f"{sel.report}_mean" not in table:
        report = trials.groupby(cols, sort=True, dropna=False)[sel.report].mean().rename(f"{sel.report}_mean")
        table = table.merge(report.reset_index(), on=cols, how="left")
    return table.iloc[order(table, sel)[::-1]].reset_index(drop=True)


def band(ranked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """95% jackknife t interval of E[best of k] for k = 1..n from values ranked worst to best
    (higher is better); NaN where k > n/2 (and for n < 2)."""
    ranked = np.asarray(ranked, dtype=float)
    n = len(ranked)
    low, high = np.full(n, np.nan), np.full(n, np.nan)
    if n < 2:
        return low, high
    u = weights(n) @ ranked
    w = weights(n - 1)
    loo = np.stack([w @ np.delete(ranked, i) for i in range(n)])  # [n, n-1]: k = 1..n-1
    se = np.sqrt((n - 1) / n * ((loo - loo.mean(axis=0)) ** 2).sum(axis=0))
    half = t_quantile(1 - ALPHA / 2, n - 1) * se
    shown = n // 2
    low[:shown], high[:shown] = u[:shown] - half[:shown], u[:shown] + half[:shown]
    return low, high


def curve(trials: pd.DataFrame, sel: Selection, problem: str, sweep: str, dataset: str,
          optimizer: str) -> BudgetCurve | None:
    """The tuning curve of one optimizer's tuning trials on one problem (None without a finite value)."""
    ranked = ranked_configs(trials, sel)
    if not len(ranked):
        return None
    sign = 1.0 if sel.select_higher else -1.0
    v = sign * ranked[f"{sel.select}_mean"].to_numpy(dtype=float)  # worst to best: ascending after the sign
    t = ranked[f"{sel.report}_mean"].to_numpy(dtype=float)
    n = len(v)
    w = weights(n)
    expected = w @ v
    low, high = band(v)
    report_expected = w @ np.where(np.isfinite(t), t, np.nan)
    r2 = "r2" in sel.select.split("_")
    best = expected[-1]
    tolerance = CLOSE if r2 else CLOSE * abs(best)
    tunable = next(k for k in range(1, n + 1) if expected[k - 1] >= best - tolerance - 1e-15)
    lo, hi = (sign * low, sign * high) if sign > 0 else (sign * high, sign * low)  # back to the metric's own sign
    floor, ceiling = bounds(sel.select, one_loss(trials))  # clipped to the metric's range, as every interval is
    lo, hi = np.clip(lo, floor, ceiling), np.clip(hi, floor, ceiling)
    return BudgetCurve(problem, sweep, dataset, optimizer, sel.select, sel.select_higher, sel.report,
                       list(range(1, n + 1)), [float(x) for x in sign * expected], [float(x) for x in lo],
                       [float(x) for x in hi], [float(x) for x in report_expected], tunable, r2)


def budgets(trials: pd.DataFrame, per: str = "optimizer") -> Budgets:
    """Every optimizer's tuning curve on every problem (sweep and dataset), from the tuning stage,
    and who leads as the budget grows."""
    from dlbench.stats.selection import selection_of
    from dlbench.stats.tables import usable

    out: list[BudgetCurve] = []
    outer = [c for c in ("sweep", "dataset") if c in trials]
    several = "sweep" in trials and trials["sweep"].nunique() > 1
    for key, d in trials.groupby(outer, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        where = dict(zip(outer, key, strict=True))
        problem = " ".join(str(where[c]) for c in outer if c != "sweep" or several)
        sel = selection_of(d)
        tune = d[d["stage"] != "confirm"] if "stage" in d else d
        tune = usable(tune)
        for name, g in tune.groupby(per, sort=True):
            c = curve(g, sel, problem, str(where.get("sweep", "")), str(where["dataset"]), str(name))
            if c is not None:
                out.append(c)
    return Budgets(out, {p: leaders([c for c in out if c.problem == p]) for p in dict.fromkeys(c.problem for c in out)})


def leaders(curves: list[BudgetCurve]) -> list[tuple[int, str]]:
    """[(k, optimizer)]: the optimizer with the best expected value from each k on where the lead
    changes, k = 1 up to the largest n (an optimizer with fewer configurations keeps its best
    beyond its n). Ties (equal up to round-off: selection.tie_classes) go to the earlier leader."""
    if not curves:
        return []
    higher = curves[0].higher
    out: list[tuple[int, str]] = []
    for k in range(1, max(c.n for c in curves) + 1):
        values = {c.optimizer: c.expected[min(k, c.n) - 1] for c in curves}
        names = list(values)
        lead = [names[i] for i in tie_classes(list(values.values()), higher)[0]]
        who = out[-1][1] if out and out[-1][1] in lead else sorted(lead)[0]
        if not out or out[-1][1] != who:
            out.append((k, who))
    return out
