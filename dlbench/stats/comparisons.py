"""A against B, each at its chosen configuration: the difference with Welch's interval and test
(or the two-sample bootstrap), Holm's adjustment over a dataset's pairs, the probability of
improvement, the seeds that would separate a difference at 80% power, and the settings that
differ between optimizers without being swept."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dlbench.schema import QUALIFIERS
from dlbench.stats.distributions import nct_cdf, norm_quantile, t_quantile, t_sf
from dlbench.stats.mean_intervals import ALPHA, BOOTSTRAP_SEED, DEFAULT_CI, MIN_N, N_RESAMPLES, _scipy_bootstrap, bounds
from dlbench.stats.selection import EQUAL, Best, best_first, same
from dlbench.store import config_columns, knob_columns

POWER = 0.8  # for "about N seeds would separate a difference of this size"


def prob_improvement(a, b, higher: bool = True) -> float:
    """P(A better than B) over all (run of A, run of B) pairs, ties counting 1/2: the
    Mann-Whitney U statistic of A against B over n_A n_B (rliable's probability of improvement).
    For metrics where lower is better the values are negated first."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if not len(a) or not len(b):
        return math.nan
    if not higher:
        a, b = -a, -b
    wins = (a[:, None] > b[None, :]).sum() + 0.5 * (a[:, None] == b[None, :]).sum()
    return float(wins / (len(a) * len(b)))


@dataclass(frozen=True)
class Difference:
    """mean(A) - mean(B) with its 95% interval and the two-sided p-value of 'no difference'."""

    diff: float
    ci_low: float
    ci_high: float
    p_value: float


NO_DIFFERENCE = Difference(math.nan, math.nan, math.nan, math.nan)


def welch(a, b, alpha: float = ALPHA) -> Difference:
    """Welch's t: mean(A) - mean(B) ± t_{1-α/2, ν} √(s²_A/n_A + s²_B/n_B), ν the
    Welch-Satterthwaite degrees of freedom, and the two-sided p-value of Welch's test (the
    interval excludes 0 exactly when p < α; α = 0.05: the 95% interval). Needs 2 values a side.
    Both sides without spread: the difference is exact (p = 1 when equal, 0 otherwise)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        return NO_DIFFERENCE
    d = float(a.mean() - b.mean())
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    if va + vb == 0:
        equal = same(float(a.mean()), float(b.mean()))
        return Difference(0.0 if equal else d, 0.0 if equal else d, 0.0 if equal else d, 1.0 if equal else 0.0)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = float(t_quantile(1 - alpha / 2, df)) * se
    return Difference(d, d - half, d + half, float(2 * t_sf(abs(d) / se, df)))


def bootstrap_difference(a, b, alpha: float | None = None) -> Difference:
    """The two-sample bootstrap: A and B resampled independently (`scipy.stats.bootstrap` with
    two samples), BCa where defined, else percentile; the p-value is the percentile method's
    (twice the smaller share of resampled differences on either side of 0). With `alpha`, the
    percentile interval at level 1 - alpha of the same resamples instead: the one that excludes 0
    exactly when p < alpha. Needs 3 values a side."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < MIN_N["bootstrap"] or len(b) < MIN_N["bootstrap"]:
        return NO_DIFFERENCE
    d = float(a.mean() - b.mean())
    if a.min() == a.max() and b.min() == b.max():
        return Difference(d, d, d, 1.0 if same(float(a[0]), float(b[0])) else 0.0)
    from scipy import stats

    def mean_diff(x, y, axis=-1):
        return np.mean(x, axis=axis) - np.mean(y, axis=axis)

    dist = stats.bootstrap((a, b), mean_diff, vectorized=True, n_resamples=N_RESAMPLES, method="percentile",
                           random_state=np.random.default_rng(BOOTSTRAP_SEED)).bootstrap_distribution
    p = min(1.0, 2 * min(float((dist <= 0).mean()), float((dist >= 0).mean())))
    if alpha is not None:
        low, high = np.quantile(dist, [alpha / 2, 1 - alpha / 2], method="inverted_cdf")
        return Difference(d, float(low), float(high), p)
    (low,), (high,) = _scipy_bootstrap((a, b), mean_diff, "BCa")
    if not (np.isfinite(low) and np.isfinite(high)):
        (low,), (high,) = _scipy_bootstrap((a, b), mean_diff, "percentile")
    return Difference(d, float(low), float(high), p)


def difference(a, b, method: str = DEFAULT_CI, alpha: float | None = None) -> Difference:
    """The difference of means with its interval (at 95%, or at level 1 - alpha) and p-value."""
    if method == "t":
        return welch(a, b, ALPHA if alpha is None else alpha)
    return bootstrap_difference(a, b, alpha)


def verdict_alpha(p_value: float, p_adjusted: float) -> float:
    """The level at which Holm's procedure tests a pair, as one number: α · p / p_Holm. Its
    interval (at 1 - this) excludes 0 exactly when p < α · p / p_Holm, that is when p_Holm < α:
    when the verdict says 'better'. Where the adjusted p-values rise with the raw ones this is
    Holm's own step, α / (m - i + 1) for the i-th smallest of m; it is never above α, so the
    interval is never narrower than the unadjusted 95% one."""
    if not (math.isfinite(p_value) and math.isfinite(p_adjusted)) or p_adjusted <= 0:
        return ALPHA
    return ALPHA * p_value / p_adjusted


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (NaN ones take no part): the i-th
    smallest of m is multiplied by m - i + 1, then made non-decreasing, capped at 1. Rejecting
    where the adjusted value is below 0.05 keeps the chance of any false 'better' at 5%."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    if not len(idx):
        return out
    order = idx[np.argsort(p[idx], kind="stable")]
    m = len(order)
    scaled = np.minimum(1.0, p[order] * (m - np.arange(m)))
    out[order] = np.maximum.accumulate(scaled)
    return out


def power(n: int | np.ndarray, effect: float, alpha: float = ALPHA) -> np.ndarray:
    """Power of a two-sided two-sample t test with n values a side to detect a difference of
    `effect` standard deviations at level alpha (the noncentral t distribution)."""
    n = np.asarray(n, dtype=float)
    df = 2 * n - 2
    crit = t_quantile(1 - alpha / 2, df)
    nc = abs(effect) * np.sqrt(n / 2)
    return 1 - nct_cdf(crit, df, nc) + nct_cdf(-crit, df, nc)


SEEDS_CAP = 1000


def seeds_needed(a, b, difference: float, alpha: float = ALPHA) -> int | None:
    """The fewest seeds per side with which a two-sample t test at level alpha has 80% power to
    detect `difference`, taking the pooled standard deviation of A and B as the truth; capped
    at SEEDS_CAP + 1 (more than 1,000). None when it cannot be said (no difference, no spread,
    or fewer than 2 values a side)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2 or abs(difference) < EQUAL:
        return None
    pooled = ((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2)
    if pooled <= 0:
        return None
    effect = difference / math.sqrt(pooled)
    # the normal approximation 2 (z_{1-α/2} + z_power)² / d² is a little below the t answer: search up from it
    z = norm_quantile(1 - alpha / 2) + norm_quantile(POWER)
    start = max(2, math.floor(2 * z * z / effect ** 2) - 2)
    while start <= SEEDS_CAP:
        n = np.arange(start, min(start + 16, SEEDS_CAP + 1))
        enough = np.flatnonzero(power(n, effect, alpha) >= POWER)
        if len(enough):
            return int(n[enough[0]])
        start += 16
    return SEEDS_CAP + 1


@dataclass
class Comparison:
    """A against B, each at its chosen configuration, on the reported metric."""

    dataset: str
    a: str
    b: str
    metric: str
    higher: bool
    n_a: int
    n_b: int
    diff: float  # mean(A) - mean(B)
    ci_low: float  # its interval at the verdict's level (ci_level): excludes 0 exactly when the verdict is 'better'
    ci_high: float
    p_value: float  # the test of no difference (Welch's t, or the bootstrap's)
    p_adjusted: float  # Holm-adjusted over the family
    family: int  # the pairs of this dataset with a test: the family Holm adjusts over
    p_better: float  # P(A better than B)
    seeds_needed: int | None  # per side, for 80% power at the family's level (pairs not yet separated)
    confirmed: bool  # both measured on fresh seeds that took no part in choosing
    sweep: str = ""
    method: str = DEFAULT_CI
    ci_level: float = 1 - ALPHA  # the confidence of ci_low..ci_high: 1 - verdict_alpha
    ci95_low: float = math.nan  # the unadjusted 95% interval (report-pairs.csv keeps it)
    ci95_high: float = math.nan

    @property
    def verdict(self) -> str:
        """'a', 'b' (the better one), 'none' (not distinguishable after the Holm adjustment) or
        'n/a' (too few seeds for a test)."""
        if not math.isfinite(self.p_adjusted):
            return "n/a"
        if self.p_adjusted < ALPHA:
            return "a" if (self.diff > 0) == self.higher else "b"
        return "none"

    @property
    def in_points(self) -> bool:
        """Accuracy differences read in percentage points."""
        return "acc" in self.metric.split("_")


def compare(best: list[Best], method: str = DEFAULT_CI) -> list[Comparison]:
    """Every pair of groups within a dataset (and results folder), better mean first, on the
    reported metric: the difference with its interval and p-value, the p-values Holm-adjusted over
    the dataset's pairs, P(A > B), and for the pairs not separated the seeds that would."""
    out = []
    by_dataset: dict[tuple[str, str], list[Best]] = {}
    for b in best:
        by_dataset.setdefault((b.sweep, b.dataset), []).append(b)
    for (sweep, dataset), items in by_dataset.items():
        higher = items[0].selection.report_higher
        items = best_first(items)
        pairs = [(a, b, difference(a.values, b.values, method)) for i, a in enumerate(items) for b in items[i + 1:]]
        adjusted = holm([d.p_value for _, _, d in pairs])
        family = int(np.isfinite(adjusted).sum())
        for (a, b, d), p_adj in zip(pairs, adjusted, strict=True):
            alpha = verdict_alpha(d.p_value, float(p_adj))
            shown = d if alpha == ALPHA and method == "t" else difference(a.values, b.values, method, alpha)
            lo, hi = bounds_of_difference(a, shown.ci_low, shown.ci_high)
            lo95, hi95 = bounds_of_difference(a, d.ci_low, d.ci_high)
            c = Comparison(dataset, a.name, b.name, a.selection.report, higher, len(a.values), len(b.values),
                           a.report["mean"] - b.report["mean"], lo, hi, d.p_value, float(p_adj),
                           family, prob_improvement(a.values, b.values, higher), None,
                           a.confirmed and b.confirmed, sweep, method, 1 - alpha, lo95, hi95)
            if c.verdict != "a" and c.verdict != "b":
                need = seeds_needed(a.values, b.values, c.diff, ALPHA / max(1, family))
                # not separated with these seeds, so separating needs more: never fewer than shown
                c.seeds_needed = None if need is None else max(need, max(c.n_a, c.n_b) + 1)
            out.append(c)
    return out


def bounds_of_difference(a: Best, low: float, high: float) -> tuple[float, float]:
    """A difference's interval clipped to the widest difference its metric allows (two accuracies
    differ by at most 1; metrics without both bounds are left alone). The true difference lies
    inside, so clipping never changes whether the interval covers it."""
    lo, hi = bounds(a.selection.report)
    span = hi - lo
    if not math.isfinite(span):
        return low, high
    return max(low, -span), min(high, span)


def settings_between(trials: pd.DataFrame, group: str = "optimizer") -> dict[str, dict[str, list]]:
    """Settings that differ between the `group`s of one dataset without varying within any of them
    (epochs 10 for adam, 5 for sgd): what two sweeps mixed in one folder leave, or a design that
    compares under unequal settings. column -> {group value: its values}. Empty when none."""
    skip = {group, "lr", "stage", "sweep", "dataset", *(q for qs in QUALIFIERS.values() for q in qs),
            *knob_columns(trials)}
    out: dict[str, dict[str, list]] = {}
    if group not in trials or trials[group].nunique() < 2:
        return out
    for c in config_columns(trials):
        if c in skip:
            continue
        per = trials.groupby(group, sort=True)[c].agg(lambda v: sorted(map(str, v.dropna().unique())))
        if all(len(v) == 1 for v in per) and len({v[0] for v in per}) > 1:
            out[c] = {str(k): v for k, v in per.items()}
    return out
