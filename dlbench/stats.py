"""Statistics over the stored tables: pure functions of pandas frames (numpy and scipy inside)
that return numbers and records, never sentences, so that tests can check every number by hand
and by simulation. `dlbench show`, the end of `dlbench sweep`, `dlbench plot`, `dlbench report`,
the protocol's stage-2 choice and `[expect]` all take their numbers from here; dlbench.words says
them in words. docs/statistics.md states every rule.

Words used throughout:

- A *configuration* is a trial without its seed: the configuration columns of the table
  (dlbench.store.config_columns). Seed statistics are over the trials of one configuration.
- *Usable* trials are those that produced numbers: ok and diverged. A diverged trial counts with
  its numbers at the epoch validation chose (it was stopped there, before it diverged); it has no
  final numbers. Failed trials never count.
- *Intervals* of a mean over seeds are Student's t intervals by default (exact coverage for
  normal seed-to-seed variation at any N >= 2); `method="bootstrap"` gives BCa bootstrap
  intervals where BCa is defined, percentile ones otherwise (fit only for many seeds: see
  docs/statistics.md). A difference of two means gets Welch's interval and test (or the
  two-sample bootstrap), and the verdicts within one dataset are Holm-adjusted for the family of
  pairs.
- *Selection* (`choose`): the configuration with the best mean of the selection metric over its
  seeds; a tie (means equal up to round-off) goes to the better mean of the tie-breaker (the
  validation loss for classification, the validation R² for regression), then to the
  configuration that sorts first by its configuration columns (the smaller lr, batch size, ...).
  Every reader chooses through it. Test metrics never choose.
- P(A > B) is the probability of improvement as rliable defines it: over all pairs of one run of
  A and one run of B, the fraction where A is better, ties counting one half (the Mann-Whitney U
  statistic divided by n_A n_B). Identical samples give 0.5.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dlbench.errors import UserError, did_you_mean
from dlbench.store import config_columns, knob_columns

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
CI_METHODS = ("t", "bootstrap")
DEFAULT_CI = "t"
MIN_N = {"t": 2, "bootstrap": 3}  # values per group below which a method gives no interval
N_RESAMPLES = 9999
BOOTSTRAP_SEED = 0
POWER = 0.8  # for "about N seeds would separate a difference of this size"
EQUAL = 1e-12  # relative differences below this are float round-off: the values are equal


def check_ci(method: str) -> str:
    if method not in CI_METHODS:
        raise UserError(f"--ci {method!r} is unknown{did_you_mean(method, CI_METHODS)}; allowed: "
                        f"{', '.join(CI_METHODS)}")
    return method


def higher_is_better(column: str) -> bool | None:
    """The direction of a metric from its name: accuracy and R² up; loss, RMSE, time, steps and
    epochs down; None when the name does not say."""
    words = set(column.split("_"))
    if words & {"acc", "r2"}:
        return True
    if words & {"loss", "rmse", "time", "steps", "epoch", "epochs", "run"}:
        return False
    return None


def same(a: float, b: float) -> bool:
    """Equal up to float round-off (the mean of the same values summed in another order)."""
    return abs(a - b) <= EQUAL * max(1.0, abs(a), abs(b))


# --------------------------------------------------------------------------------------------
# Intervals of a mean


def t_interval(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """95% Student's t interval of the mean of each row of `samples` [rows, n], n >= 2:
    mean ± t_{0.975, n-1} s / √n. Exact for normal values; all values equal: that value."""
    from scipy.stats import t

    samples = np.atleast_2d(np.asarray(samples, dtype=float))
    n = samples.shape[1]
    mean = samples.mean(axis=1)
    half = t.ppf(1 - ALPHA / 2, n - 1) * samples.std(axis=1, ddof=1) / math.sqrt(n)
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


def bounds(metric: str | None) -> tuple[float, float]:
    """The range a metric's mean lives in, from its name: accuracy [0, 1], R² at most 1, losses,
    RMSE, times and counts at least 0. An interval is clipped to it: the true mean lies inside,
    so clipping never changes whether the interval covers it, and it prints no accuracy above 1."""
    words = set((metric or "").split("_"))
    if "acc" in words:
        return 0.0, 1.0
    if "r2" in words:
        return -math.inf, 1.0
    if words & {"loss", "rmse", "time", "steps", "epoch", "epochs", "run"}:
        return 0.0, math.inf
    return -math.inf, math.inf


def column_stats(groups: list[np.ndarray], method: str = DEFAULT_CI, metric: str | None = None) -> dict[str, list]:
    """n, mean, std (ddof 1), median, ci_low and ci_high of each group of finite values (the
    interval clipped to the metric's range, see `bounds`)."""
    low, high = intervals(groups, method)
    lo_bound, hi_bound = bounds(metric)
    low, high = np.clip(low, lo_bound, hi_bound), np.clip(high, lo_bound, hi_bound)
    return {"n": [len(v) for v in groups],
            "mean": [float(v.mean()) if len(v) else math.nan for v in groups],
            "std": [float(v.std(ddof=1)) if len(v) > 1 else math.nan for v in groups],
            "median": [float(np.median(v)) if len(v) else math.nan for v in groups],
            "ci_low": [float(x) for x in low], "ci_high": [float(x) for x in high]}


def describe(values, method: str = DEFAULT_CI, metric: str | None = None) -> dict[str, float]:
    """n, mean, std (ddof 1), median and the 95% interval of the mean of some values (values that
    are not finite are left out: a diverged run has no final loss)."""
    v = np.asarray(values, dtype=float)
    return {k: col[0] for k, col in column_stats([v[np.isfinite(v)]], method, metric).items()}


def usable(trials: pd.DataFrame) -> pd.DataFrame:
    """Trials that produced numbers: ok and diverged (a diverged run is a result, stopped on
    validation before it diverged), not failed."""
    return trials[trials["status"] != "failed"]


def group_stats(trials: pd.DataFrame, metric: str, by: list[str] | None = None,
                method: str = DEFAULT_CI) -> pd.DataFrame:
    """One row per group (by default: per configuration, over its seeds) with the group's keys,
    its seeds, and n, mean, std, median, ci_low, ci_high of `metric`. Values that are not finite
    are left out of every statistic (n counts what is left); failed trials are never counted."""
    wide = many_stats(trials, [metric], by, method)
    return wide.rename(columns=lambda c: c.removeprefix(f"{metric}_"))


def many_stats(trials: pd.DataFrame, metrics: list[str], by: list[str] | None = None,
               method: str = DEFAULT_CI) -> pd.DataFrame:
    """group_stats for several metrics in one pass: columns <metric>_n, <metric>_mean, ...; also
    `runs` (usable trials) and `diverged` (how many of them diverged) per group."""
    by = config_columns(trials) if by is None else list(by)
    t = usable(trials)
    keys, seeds, runs, diverged, values = [], [], [], [], {m: [] for m in metrics}
    if len(t):
        for key, g in t.groupby(by, sort=True, dropna=False) if by else [((), t)]:
            keys.append(key if isinstance(key, tuple) else (key,))
            seeds.append(_seeds(g))
            runs.append(len(g))
            diverged.append(int((g["status"] == "diverged").sum()))
            for m in metrics:
                v = g[m].to_numpy(dtype=float)
                values[m].append(v[np.isfinite(v)])
    out = pd.DataFrame(keys, columns=by) if by else pd.DataFrame(index=range(len(keys)))
    out["seeds"] = seeds
    out["runs"] = runs
    out["diverged"] = diverged
    for m in metrics:
        for stat, column in column_stats(values[m], method, m).items():
            out[f"{m}_{stat}"] = column
    return out


def _seeds(g: pd.DataFrame) -> str:
    return ",".join(str(s) for s in sorted(g["seed"].unique())) if "seed" in g else ""


# --------------------------------------------------------------------------------------------
# What chooses and what is reported


@dataclass(frozen=True)
class Selection:
    """How configurations (and stopping epochs) are chosen, and what is reported."""

    select: str  # trials column whose mean over seeds chooses the configuration
    select_higher: bool
    report: str  # trials column reported as the result
    report_higher: bool
    validation: bool  # chosen on a validation split (else on the training set)
    tie_breakers: tuple[tuple[str, bool], ...] = ()  # (column, higher is better), in turn


def _chain(task: str, validation: bool) -> list[tuple[str, bool]]:
    """The choosing columns of a task, in order: the selection metric, then its tie-breakers."""
    classification = task in ("binary", "multiclass")
    if validation:
        if classification:
            return [("best_val_acc", True), ("best_val_loss", False)]
        if task == "regression":
            return [("best_val_loss", False), ("best_val_r2", True)]
        return [("best_val_loss", False)]
    if classification:
        return [("final_train_acc", True), ("final_train_eval_loss", False)]
    return [("final_train_eval_loss", False)]


def selection_for(task: str, has_validation: bool, select: str | None = None,
                  higher: bool | None = None) -> Selection:
    """The selection rule of a task. With validation: classification chooses on best_val_acc
    (ties: best_val_loss) and reports test_acc_at_best_val; regression chooses on best_val_loss
    (ties: best_val_r2) and reports test_r2_at_best_val; DeepOBS objectives choose on
    best_val_loss and report test_loss_at_best_val. Without: the training set's final accuracy
    (or loss) chooses and the final test value is reported. `select` (a [protocol]'s) replaces
    the selection metric; the task's other choosing columns break its ties."""
    chain = _chain(task, has_validation)
    if select is not None:
        check_chooser(select)
        direction = higher_is_better(select) if higher is None else higher
        chain = [(select, bool(direction))] + [c for c in chain if c[0] != select]
    classification = task in ("binary", "multiclass")
    if has_validation:
        report = ("test_acc_at_best_val", True) if classification else (
            ("test_r2_at_best_val", True) if task == "regression" else ("test_loss_at_best_val", False))
    else:
        report = ("final_test_acc", True) if classification else (
            ("final_test_r2", True) if task == "regression" else ("final_test_loss", False))
    return Selection(chain[0][0], chain[0][1], report[0], report[1], has_validation, tuple(chain[1:]))


def check_chooser(column: str, where: str = "select") -> str:
    """A column that may choose: anything but a test metric."""
    if "test" in column.split("_"):
        raise UserError(f"{where} = {column!r} is a test metric, and test numbers never choose; allowed: a "
                        "validation or training metric, e.g. best_val_acc or best_val_loss")
    return column


def task_of(trials: pd.DataFrame | str) -> str:
    """The task of a dataset: the trials' own `task` column (schema 3), else the registry's."""
    if isinstance(trials, pd.DataFrame):
        if "task" in trials and trials["task"].notna().any():
            return str(trials["task"].dropna().iloc[0])
        trials = str(trials["dataset"].iloc[0])
    from dlbench.data import DATASETS

    return DATASETS[trials].task if trials in DATASETS else "multiclass"


def has_validation(trials: pd.DataFrame) -> bool:
    return "best_val_loss" in trials and bool(np.isfinite(trials["best_val_loss"].to_numpy(dtype=float)).any())


def selection_of(trials: pd.DataFrame) -> Selection:
    """The selection rule for the trials of one dataset."""
    return selection_for(task_of(trials), has_validation(trials))


@dataclass
class Choice:
    """What `choose` picked among configurations, and why."""

    config: dict  # the chosen configuration's columns
    table: pd.DataFrame  # one row per configuration tried: its columns, runs, and <column>_mean per choosing column
    tied: list[dict]  # the other configurations whose selection mean equals the chosen one's (their columns)
    decided_by: str | None  # None: the selection metric alone; a tie-breaker column; or "order"


def choose(trials: pd.DataFrame, sel: Selection, cols: list[str] | None = None) -> Choice | None:
    """The configuration with the best mean of `sel.select` over its seeds (usable trials, finite
    values); ties (means equal up to round-off) go to the best mean of each tie-breaker in turn,
    then to the configuration that sorts first by `cols` (by default the configuration columns,
    in their order: the smaller lr, then the smaller batch size, ...). None when no configuration
    has a finite value. The one selection function: every reader chooses through it."""
    check_chooser(sel.select)
    cols = config_columns(trials) if cols is None else list(cols)
    chain = [(sel.select, sel.select_higher), *sel.tie_breakers]
    chain = [(c, h) for c, h in chain if c in trials]
    t = usable(trials)
    if not len(t):
        return None
    values = t[[c for c, _ in chain]].apply(pd.to_numeric, errors="coerce").astype(float)
    values = values.where(np.isfinite(values))
    grouped = pd.concat([t[cols], values], axis=1).groupby(cols, sort=True, dropna=False)
    table = grouped.mean().add_suffix("_mean")
    table.insert(0, "runs", grouped.size())
    table = table.reset_index()
    table = table[np.isfinite(table[f"{sel.select}_mean"].to_numpy(dtype=float))].reset_index(drop=True)
    if not len(table):
        return None
    candidates = table
    tied, decided_by = None, None
    for col, higher in chain:
        v = candidates[f"{col}_mean"].to_numpy(dtype=float)
        finite = np.isfinite(v)
        if not finite.any():
            continue
        best = np.max(v[finite]) if higher else np.min(v[finite])
        keep = finite & np.array([same(x, best) for x in v])
        if tied is None:
            tied = candidates[keep]
        elif keep.sum() < len(candidates):
            decided_by = col
        candidates = candidates[keep]
        if len(candidates) == 1:
            break
    if len(candidates) > 1:
        decided_by = "order"
    chosen = candidates.iloc[0][cols].to_dict()
    others = [r[cols].to_dict() for _, r in tied.iterrows() if not _same_config(r[cols].to_dict(), chosen)]
    return Choice(chosen, table, others, decided_by)


def _same_config(a: dict, b: dict) -> bool:
    return all((is_missing(a[k]) and is_missing(b[k])) or a[k] == b[k] for k in a)


# --------------------------------------------------------------------------------------------
# Each optimizer at its best configuration


@dataclass
class Best:
    """One group's (e.g. one optimizer's) chosen configuration and its numbers."""

    dataset: str
    group: dict  # the per keys, e.g. {"optimizer": "adam"}
    config: dict  # the chosen configuration's columns
    selection: Selection
    select_mean: float  # mean of the selection column over the tuning seeds
    report: dict  # describe() of the reported column over the result seeds
    values: np.ndarray  # the reported values, one per seed (finite)
    seeds: list[int]
    confirmed: bool  # the result seeds are fresh (a confirm stage), not those that chose
    tuning: dict | None = None  # when confirmed: describe() of the reported column on the tuning seeds
    configs_tried: int = 0
    counts: dict = field(default_factory=dict)  # status counts over the group's tuning trials
    sweep: str = ""  # the results folder, when several are read together
    chosen_by: str | None = None  # a confirm stage: how stage 1 chose (as the protocol stored it)
    at_edge: list[tuple[str, float, str]] = field(default_factory=list)  # (key, value, "largest" | "smallest")
    tied: list[dict] = field(default_factory=list)  # configurations tied with the chosen one on the selection metric
    decided_by: str | None = None  # what broke the tie: a tie-breaker column, "order", or None (no tie)
    runs: int = 0  # usable result trials (seeds)
    diverged: int = 0  # of those, how many diverged
    test_size: float = math.nan  # samples in the test split the reported numbers come from
    method: str = DEFAULT_CI

    @property
    def name(self) -> str:
        return " ".join(str(v) for v in self.group.values())


def best_configs(trials: pd.DataFrame, per: tuple[str, ...] = ("optimizer",),
                 method: str = DEFAULT_CI) -> list[Best]:
    """For each dataset (and sweep) and each `per` group: the configuration `choose` picks among
    the group's tuning trials, and its numbers. When the results hold a confirm stage for the
    group, the candidates are the configurations it confirmed (one per group of the protocol),
    chosen among by the same rule on their tuning trials; their fresh seeds give the result and
    the tuning seeds are kept apart (`tuning`). So `per=()` takes the best of the protocol's
    finalists, measured on their fresh seeds."""
    out: list[Best] = []
    outer = [c for c in ("sweep", "dataset") if c in trials]
    for key, d in trials.groupby(outer, sort=True):
        sel = selection_of(d)
        cols = [c for c in config_columns(d) if c not in ("stage", "sweep")]
        tune = d[d["stage"] != "confirm"] if "stage" in d else d
        confirm = d[d["stage"] == "confirm"] if "stage" in d else d.iloc[:0]
        for gkey, g in tune.groupby(list(per), sort=True, dropna=False) if per else [((), tune)]:
            gkey = gkey if isinstance(gkey, tuple) else (gkey,)
            group = dict(zip(per, gkey, strict=True))
            confirmed = rows_matching(confirm, group)
            candidates = g
            if len(confirmed):
                finalists = confirmed[cols].drop_duplicates()
                candidates = g.merge(finalists, on=cols, how="inner") if len(finalists) else g.iloc[:0]
            choice = choose(candidates, sel, cols)
            if choice is None:
                continue  # nothing finished with a number
            chosen = choice.config
            tuning_rows = usable(rows_matching(g, chosen))
            result_rows = usable(rows_matching(confirmed, chosen)) if len(confirmed) else tuning_rows
            how = None
            if len(confirmed) and "chosen_by" in result_rows and result_rows["chosen_by"].notna().any():
                how = str(result_rows["chosen_by"].dropna().iloc[0])
            values = result_rows[sel.report].to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            select_vals = tuning_rows[sel.select].to_numpy(dtype=float)
            select_vals = select_vals[np.isfinite(select_vals)]
            where = dict(zip(outer, key if isinstance(key, tuple) else (key,), strict=True))
            sizes = result_rows["n_test"].to_numpy(dtype=float) if "n_test" in result_rows else np.array([])
            out.append(Best(
                dataset=str(where["dataset"]), sweep=str(where.get("sweep", "")),
                group=group, config=chosen, selection=sel,
                select_mean=float(select_vals.mean()) if len(select_vals) else math.nan,
                report=describe(values, method, sel.report), values=values,
                seeds=sorted(int(s) for s in result_rows["seed"]),
                confirmed=bool(len(confirmed)),
                tuning=describe(tuning_rows[sel.report], method, sel.report) if len(confirmed) else None,
                configs_tried=len(choose(g, sel, cols).table), counts=g["status"].value_counts().to_dict(),
                chosen_by=how, at_edge=range_edges(g, chosen), tied=choice.tied, decided_by=choice.decided_by,
                runs=len(result_rows), diverged=int((result_rows["status"] == "diverged").sum()),
                test_size=float(np.nanmedian(sizes)) if np.isfinite(sizes).any() else math.nan, method=method))
    return out


def edge_keys(trials: pd.DataFrame) -> list[str]:
    """The numeric hyperparameters whose range can be judged: lr, batch size, epochs and the
    numeric knobs (not the true/false ones)."""
    out = [c for c in ("lr", "batch_size", "epochs") if c in trials]
    for k in knob_columns(trials):
        col = trials[k]
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            out.append(k)
    return out


def range_edges(group: pd.DataFrame, chosen: dict) -> list[tuple[str, float, str]]:
    """The numeric hyperparameters whose chosen value is the largest or smallest of at least 3
    values the group tried: the best may lie beyond the range swept."""
    out = []
    for k in edge_keys(group):
        if k not in chosen or is_missing(chosen[k]):
            continue
        values = sorted(v for v in group[k].dropna().unique())
        if len(values) >= 3 and chosen[k] in (values[0], values[-1]):
            out.append((k, float(chosen[k]), "largest" if chosen[k] == values[-1] else "smallest"))
    return out


def rows_matching(df: pd.DataFrame, values: dict) -> pd.DataFrame:
    """The rows of `df` whose columns equal `values` (a missing value matches a missing one);
    keys that are not columns of `df` are ignored."""
    mask = np.ones(len(df), dtype=bool)
    for k, v in values.items():
        if k not in df:
            continue
        col = df[k]
        mask &= (col.isna().to_numpy() if is_missing(v) else (col == v).to_numpy(dtype=bool, na_value=False))
    return df[mask]


def is_missing(v) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float | np.floating) and math.isnan(v))


# --------------------------------------------------------------------------------------------
# Pairwise comparison


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


def welch(a, b) -> Difference:
    """Welch's t: mean(A) - mean(B) ± t_{0.975, ν} √(s²_A/n_A + s²_B/n_B), ν the
    Welch-Satterthwaite degrees of freedom, and the two-sided p-value of Welch's test (the
    interval excludes 0 exactly when p < 0.05). Needs 2 values a side. Both sides without spread:
    the difference is exact (p = 1 when equal, 0 otherwise)."""
    from scipy.stats import t

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
    half = float(t.ppf(1 - ALPHA / 2, df)) * se
    return Difference(d, d - half, d + half, float(2 * t.sf(abs(d) / se, df)))


def bootstrap_difference(a, b) -> Difference:
    """The two-sample bootstrap: A and B resampled independently (`scipy.stats.bootstrap` with
    two samples), BCa where defined, else percentile; the p-value is the percentile method's
    (twice the smaller share of resampled differences on either side of 0). Needs 3 values a side."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < MIN_N["bootstrap"] or len(b) < MIN_N["bootstrap"]:
        return NO_DIFFERENCE
    d = float(a.mean() - b.mean())
    if a.min() == a.max() and b.min() == b.max():
        return Difference(d, d, d, 1.0 if same(float(a[0]), float(b[0])) else 0.0)
    from scipy import stats

    def mean_diff(x, y, axis=-1):
        return np.mean(x, axis=axis) - np.mean(y, axis=axis)

    (low,), (high,) = _scipy_bootstrap((a, b), mean_diff, "BCa")
    if not (np.isfinite(low) and np.isfinite(high)):
        (low,), (high,) = _scipy_bootstrap((a, b), mean_diff, "percentile")
    dist = stats.bootstrap((a, b), mean_diff, vectorized=True, n_resamples=N_RESAMPLES, method="percentile",
                           random_state=np.random.default_rng(BOOTSTRAP_SEED)).bootstrap_distribution
    p = min(1.0, 2 * min(float((dist <= 0).mean()), float((dist >= 0).mean())))
    return Difference(d, float(low), float(high), p)


def difference(a, b, method: str = DEFAULT_CI) -> Difference:
    return welch(a, b) if method == "t" else bootstrap_difference(a, b)


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
    from scipy.stats import nct, t

    n = np.asarray(n, dtype=float)
    df = 2 * n - 2
    crit = t.ppf(1 - alpha / 2, df)
    nc = abs(effect) * np.sqrt(n / 2)
    return nct.sf(crit, df, nc) + nct.cdf(-crit, df, nc)


SEEDS_CAP = 1000


def seeds_needed(a, b, difference: float, alpha: float = ALPHA) -> int | None:
    """The fewest seeds per side with which a two-sample t test at level alpha has 80% power to
    detect `difference`, taking the pooled standard deviation of A and B as the truth; capped
    at SEEDS_CAP + 1 (more than 1,000). None when it cannot be said (no difference, no spread,
    or fewer than 2 values a side)."""
    from scipy.stats import norm

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2 or abs(difference) < EQUAL:
        return None
    pooled = ((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2)
    if pooled <= 0:
        return None
    effect = difference / math.sqrt(pooled)
    # the normal approximation 2 (z_{1-α/2} + z_power)² / d² is a little below the t answer: search up from it
    z = norm.ppf(1 - alpha / 2) + norm.ppf(POWER)
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
    ci_low: float  # its 95% interval (not adjusted)
    ci_high: float
    p_value: float  # the test of no difference (Welch's t, or the bootstrap's)
    p_adjusted: float  # Holm-adjusted over the family
    family: int  # the pairs of this dataset with a test: the family Holm adjusts over
    p_better: float  # P(A better than B)
    seeds_needed: int | None  # per side, for 80% power at the family's level (pairs not yet separated)
    confirmed: bool  # both measured on fresh seeds that took no part in choosing
    sweep: str = ""
    method: str = DEFAULT_CI

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
        items = sorted(items, key=lambda b: ((-b.report["mean"] if higher else b.report["mean"])
                                             if math.isfinite(b.report["mean"]) else math.inf, b.name))
        pairs = [(a, b, difference(a.values, b.values, method)) for i, a in enumerate(items) for b in items[i + 1:]]
        adjusted = holm([d.p_value for _, _, d in pairs])
        family = int(np.isfinite(adjusted).sum())
        for (a, b, d), p_adj in zip(pairs, adjusted, strict=True):
            c = Comparison(dataset, a.name, b.name, a.selection.report, higher, len(a.values), len(b.values),
                           a.report["mean"] - b.report["mean"], d.ci_low, d.ci_high, d.p_value, float(p_adj),
                           family, prob_improvement(a.values, b.values, higher), None,
                           a.confirmed and b.confirmed, sweep, method)
            if c.verdict != "a" and c.verdict != "b":
                need = seeds_needed(a.values, b.values, c.diff, ALPHA / max(1, family))
                # not separated with these seeds, so separating needs more: never fewer than shown
                c.seeds_needed = None if need is None else max(need, max(c.n_a, c.n_b) + 1)
            out.append(c)
    return out


def settings_between(trials: pd.DataFrame, group: str = "optimizer") -> dict[str, dict[str, list]]:
    """Settings that differ between the `group`s of one dataset without varying within any of them
    (epochs 10 for adam, 5 for sgd): what two sweeps mixed in one folder leave, or a design that
    compares under unequal settings. column -> {group value: its values}. Empty when none."""
    skip = {group, "lr", "stage", "sweep", "dataset", "data", "optimizer_class", *knob_columns(trials)}
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


def seed_span(seeds: list[int]) -> str:
    """'0-4' for a run of 3 or more consecutive seeds, else '0, 2'."""
    if len(seeds) >= 3 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(map(str, seeds))


# --------------------------------------------------------------------------------------------
# Across problems: steps to a target and performance profiles


TARGET_FRACTION = 0.95


def target_metric(task: str, validation: bool) -> tuple[str, bool]:
    """The history column a target is set on, and its direction: validation accuracy (or loss),
    or without a validation split the training set's."""
    classification = task in ("binary", "multiclass")
    if validation:
        return ("val_acc", True) if classification else ("val_loss", False)
    return ("train_acc", True) if classification else ("train_eval_loss", False)


def problem_target(history: pd.DataFrame, metric: str, higher: bool, fraction: float = TARGET_FRACTION,
                   cols: list[str] | None = None) -> float:
    """The target of one problem, AlgoPerf-style from the best result in the sweep:
    v0 + fraction × (v* - v0), where v* is the best value any configuration reaches at any epoch
    (median over its seeds) and v0 the median value at epoch 0 (before any step). With
    fraction 0.95: 95% of the way from the untrained model to the best configuration."""
    cfg = [c for c in (cols if cols is not None else config_columns(history)) if c in history]
    per_epoch = history.groupby([*cfg, "epoch"], dropna=False)[metric].median()
    finite = per_epoch[np.isfinite(per_epoch.to_numpy(dtype=float))]
    best = finite.max() if higher else finite.min()
    start = float(history.loc[history["epoch"] == 0, metric].median())
    return float(start + fraction * (best - start))


def reach(history: pd.DataFrame, metric: str, target: float, higher: bool) -> pd.DataFrame:
    """Per trial (index trial_id): `steps`, `epoch` and `time` (training seconds so far) at the
    first epoch whose `metric` reaches `target`; inf steps (and NaN epoch and time) when it
    never does. Epoch 0 counts: a target met before any step costs 0 steps."""
    h = history.sort_values(["trial_id", "epoch"])
    h = h.assign(time=h.groupby("trial_id")["train_time"].cumsum()) if "train_time" in h else h.assign(time=np.nan)
    hit = h[h[metric] >= target] if higher else h[h[metric] <= target]
    first = hit.groupby("trial_id")[["steps", "epoch", "time"]].first().astype(float)
    first = first.reindex(h["trial_id"].unique())
    first["steps"] = first["steps"].fillna(math.inf)
    return first


def config_costs(trials: pd.DataFrame, history: pd.DataFrame, metric: str, target: float, higher: bool,
                 cols: list[str]) -> pd.DataFrame:
    """Per configuration: the median over its seeds of the steps to reach the target (a seed that
    never reaches it counts as inf, so a configuration whose median seed misses costs inf), and
    the median epoch and time of the seeds that reach it. Failed trials take no part. The one
    steps-to-target rule of the performance profile and of `dlbench plot --kind target`."""
    t = usable(trials)[["trial_id", *cols]]
    r = reach(history[history["trial_id"].isin(t["trial_id"])], metric, target, higher)
    t = t.merge(r, left_on="trial_id", right_index=True, how="left")
    t["steps"] = t["steps"].fillna(math.inf)
    return t.groupby(cols, dropna=False, sort=True).agg(steps=("steps", "median"), epoch=("epoch", "median"),
                                                        time=("time", "median")).reset_index()


@dataclass
class ProfileCosts:
    costs: pd.DataFrame  # problems × solvers: steps to the problem's target (inf: never)
    targets: dict[str, float]  # problem -> target value
    metrics: dict[str, str]  # problem -> history column the target is on
    fraction: float
    dropped: list[str] = field(default_factory=list)  # problems whose target is met before any step


def profile_costs(trials: pd.DataFrame, history: pd.DataFrame, solver: str = "optimizer",
                  problem: tuple[str, ...] = ("sweep", "dataset", "model"),
                  fraction: float = TARGET_FRACTION) -> ProfileCosts:
    """The cost of each solver on each problem: the fewest steps to the problem's validation
    target over the solver's configurations (config_costs). A problem whose target some solver
    meets before any step (cost 0) leaves the profile: no ratio to 0 means anything, and it
    says the problem is too easy to rank anyone (`dropped`)."""
    problem = tuple(c for c in problem if c in trials and (c != "sweep" or trials[c].nunique() > 1))
    costs: dict[str, dict[str, float]] = {}
    targets, metrics, dropped = {}, {}, []
    for key, pt in usable(trials).groupby(list(problem), sort=True):
        key = key if isinstance(key, tuple) else (key,)
        name = " ".join(str(k) for k in key)
        metric, higher = target_metric(task_of(pt), has_validation(pt))
        cols = config_columns(pt)
        ph = history.loc[history["trial_id"].isin(pt["trial_id"])]
        ph = ph[["trial_id", "epoch", "steps", metric, *(["train_time"] if "train_time" in ph else [])]]
        ph = ph.merge(pt[["trial_id", *cols]], on="trial_id")
        target = problem_target(ph, metric, higher, fraction, cols)
        per_config = config_costs(pt, ph, metric, target, higher, cols)
        cost = {str(s): float(g["steps"].min()) for s, g in per_config.groupby(solver, sort=True)}
        if min(cost.values()) == 0:
            dropped.append(name)
            continue
        costs[name] = cost
        targets[name], metrics[name] = target, metric
    frame = pd.DataFrame(costs).T.sort_index()
    return ProfileCosts(frame.fillna(math.inf), targets, metrics, fraction, dropped)


def performance_profile(costs: pd.DataFrame) -> pd.DataFrame:
    """Dolan-Moré performance profile of a problems × solvers cost table (costs > 0): for each
    solver s and ratio τ ≥ 1, ρ_s(τ) = the fraction of problems p with cost(p, s) ≤ τ · min_s'
    cost(p, s'). A solver that never reaches a problem's target has cost inf there (ratio inf,
    never counted); a problem that no solver reaches counts against all of them.

    Returns the profile's steps: rows (solver, tau, rho) at τ = 1 and at every finite ratio
    where some solver's ρ rises."""
    c = costs.to_numpy(dtype=float)
    if (c <= 0).any():
        raise ValueError("performance_profile needs costs > 0 (profile_costs drops problems met before any step)")
    best = c.min(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = np.where(np.isfinite(c) & np.isfinite(best), c / best, math.inf)
    taus = np.unique(np.concatenate([[1.0], ratios[np.isfinite(ratios)]]))
    rows = []
    for j, s in enumerate(costs.columns):
        for tau in taus:
            rows.append({"solver": str(s), "tau": float(tau), "rho": float((ratios[:, j] <= tau).mean())})
    return pd.DataFrame(rows, columns=["solver", "tau", "rho"])


# --------------------------------------------------------------------------------------------
# Bands for curves


BANDS = ("ci", "std", "minmax", "none")


def band(groups: list[np.ndarray], kind: str, method: str = DEFAULT_CI,
         metric: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) of a band per group of seed values: a 95% interval of the mean (NaN below
    MIN_N[method]; clipped to the metric's range), mean ± std, min-max, or none (NaN)."""
    n = len(groups)
    if kind == "ci":
        low, high = intervals(groups, method)
        lo_bound, hi_bound = bounds(metric)
        return np.clip(low, lo_bound, hi_bound), np.clip(high, lo_bound, hi_bound)
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
