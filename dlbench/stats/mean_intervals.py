"""Intervals of a mean over seeds: Student's t by default (exact coverage for normal seed-to-seed
variation at any N >= 2), the BCa bootstrap on request (fit only for many seeds: see
docs/statistics.md), each clipped to the range its metric really has, and the bands of curves."""

from __future__ import annotations

import math
import warnings

import numpy as np

from dlbench.errors import UserError, did_you_mean
from dlbench.losses import lowest as loss_lowest
from dlbench.stats.distributions import t_quantile

CONFIDENCE = 0.95


ALPHA = 1 - CONFIDENCE


CI_METHODS = ("t", "bootstrap")


DEFAULT_CI = "t"


MIN_N = {"t": 2, "bootstrap": 3}  # values per group below which a method gives no interval


N_RESAMPLES = 9999


BOOTSTRAP_SEED = 0


def check_ci(method: str) -> str:
    if method not in CI_METHODS:
        raise UserError(f"--ci {method!r} is unknown{did_you_mean(method, CI_METHODS)}; allowed: "
                        f"{', '.join(CI_METHODS)}")
    return method


def t_interval(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """95% Student's t interval of the mean of each row of `samples` [rows, n], n >= 2:
    mean ± t_{0.975, n-1} s / √n. Exact for normal values; all values equal: that value."""
    samples = np.atleast_2d(np.asarray(samples, dtype=float))
    n = samples.shape[1]
    mean = samples.mean(axis=1)
    half = t_quantile(1 - ALPHA / 2, n - 1) * samples.std(axis=1, ddof=1) / math.sqrt(n)
    return _exact_when_equal(samples, mean - half, mean + half)


def bootstrap_interval(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """95% bootstrap interval of the mean of each row of `samples` [rows, n]: BCa
    (`scipy.stats.bootstrap`, 9,999 resamples, a fixed random_state) where it is defined, the
    percentile interval where BCa is not (its jackknife degenerates, e.g. when all but one value
    tie). One call for all rows: they share the resampling indices, so each row's interval equals
    what a call on that row alone with the same random_state gives."""
    samples = np.atleast_2d(np.asarray(samples, dtype=float))
    out = []
    for method in ("BCa", "percentile"):
        out.append(_scipy_bootstrap((samples,), lambda x, axis=-1: np.mean(x, axis=axis), method))
    (low, high), (p_low, p_high) = out
    bad = ~(np.isfinite(low) & np.isfinite(high))
    return _exact_when_equal(samples, np.where(bad, p_low, low), np.where(bad, p_high, high))


def _scipy_bootstrap(data: tuple, statistic, method: str):
    from scipy import stats

    with warnings.catch_warnings():  # a degenerate BCa is detected from its NaN, and replaced
        warnings.simplefilter("ignore")
        res = stats.bootstrap(data, statistic, axis=-1, vectorized=True, n_resamples=N_RESAMPLES,
                              confidence_level=CONFIDENCE, method=method,
                              random_state=np.random.default_rng(BOOTSTRAP_SEED))
    return np.atleast_1d(res.confidence_interval.low), np.atleast_1d(res.confidence_interval.high)


def _exact_when_equal(samples, low, high):
    """All values equal: the interval is that value (float summation can miss it by an ulp)."""
    flat = samples.min(axis=1) == samples.max(axis=1)
    return np.where(flat, samples[:, 0], low), np.where(flat, samples[:, 0], high)


def intervals(groups: list[np.ndarray], method: str = DEFAULT_CI) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) per group of values; NaN for groups smaller than MIN_N[method]. Groups of the
    same size are computed in one call."""
    low = np.full(len(groups), np.nan)
    high = np.full(len(groups), np.nan)
    by_n: dict[int, list[int]] = {}
    for i, g in enumerate(groups):
        if len(g) >= MIN_N[method]:
            by_n.setdefault(len(g), []).append(i)
    one = t_interval if method == "t" else bootstrap_interval
    for idx in by_n.values():
        lo, hi = one(np.stack([groups[i] for i in idx]))
        low[idx], high[idx] = lo, hi
    return low, high


def bounds(metric: str | None, loss: str | None = None) -> tuple[float, float]:
    """The range a metric's mean really lives in: accuracy [0, 1], R² at most 1, RMSE, bits per
    character, times and counts at least 0, a perplexity at least 1, a loss at least the
    smallest value that loss takes (0 for cross-entropy or MSE; none for a DeepOBS objective,
    whose noise term makes it negative; none for a loss it does not know). An interval is
    clipped to it: the true mean lies inside, so clipping never changes whether the interval
    covers it, and it prints no accuracy above 1."""
    words = set((metric or "").split("_"))
    if "acc" in words:
        return 0.0, 1.0
    if "r2" in words:
        return -math.inf, 1.0
    if "loss" in words:
        return loss_lowest(loss), math.inf
    if words & {"rmse", "time", "steps", "epoch", "epochs", "run", "bpc"}:
        return 0.0, math.inf
    if "ppl" in words:
        return 1.0, math.inf
    return -math.inf, math.inf


def _clip(low, high, metric: str | None, losses) -> tuple[np.ndarray, np.ndarray]:
    """Intervals clipped to their metric's range; `losses`: the loss of each group (or one for all)."""
    per = losses if isinstance(losses, list | tuple) else [losses] * len(np.atleast_1d(low))
    lo_hi = np.array([bounds(metric, x) for x in per], dtype=float).reshape(-1, 2)
    return np.clip(low, lo_hi[:, 0], lo_hi[:, 1]), np.clip(high, lo_hi[:, 0], lo_hi[:, 1])


def column_stats(groups: list[np.ndarray], method: str = DEFAULT_CI, metric: str | None = None,
                 loss=None) -> dict[str, list]:
    """n, mean, std (ddof 1), median, ci_low and ci_high of each group of finite values (the
    interval clipped to the metric's range, see `bounds`; `loss`: each group's loss, or one)."""
    low, high = intervals(groups, method)
    low, high = _clip(low, high, metric, loss)
    return {"n": [len(v) for v in groups],
            "mean": [float(v.mean()) if len(v) else math.nan for v in groups],
            "std": [float(v.std(ddof=1)) if len(v) > 1 else math.nan for v in groups],
            "median": [float(np.median(v)) if len(v) else math.nan for v in groups],
            "ci_low": [float(x) for x in low], "ci_high": [float(x) for x in high]}


def describe(values, method: str = DEFAULT_CI, metric: str | None = None, loss: str | None = None) -> dict[str, float]:
    """n, mean, std (ddof 1), median and the 95% interval of the mean of some values (values that
    are not finite are left out: a diverged run has no final loss)."""
    v = np.asarray(values, dtype=float)
    return {k: col[0] for k, col in column_stats([v[np.isfinite(v)]], method, metric, loss).items()}


BANDS = ("ci", "std", "minmax", "none")


def band(groups: list[np.ndarray], kind: str, method: str = DEFAULT_CI,
         metric: str | None = None, loss=None) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) of a band per group of seed values: a 95% interval of the mean (NaN below
    MIN_N[method]; clipped to the metric's range), mean ± std, min-max, or none (NaN)."""
    n = len(groups)
    if kind == "ci":
        return _clip(*intervals(groups, method), metric, loss)
    low, high = np.full(n, np.nan), np.full(n, np.nan)
    for i, g in enumerate(groups):
        if not len(g):
            continue
        if kind == "std" and len(g) > 1:
            m, s = g.mean(), g.std(ddof=1)
            low[i], high[i] = m - s, m + s
        elif kind == "minmax":
            low[i], high[i] = g.min(), g.max()
    return low, high
