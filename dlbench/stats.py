"""Statistics over the stored tables: pure functions of pandas frames (numpy and scipy inside),
no drawing and no printing, so that tests can check every number by hand. `dlbench show`, the
end-of-sweep summary, `dlbench plot` and `dlbench report` only lay out what these return.

Words used throughout:

- A *configuration* is a trial without its seed: every config column but `seed` (CONFIG_COLUMNS
  present in the table). Seed statistics are over the trials of one configuration.
- *Selection* (`selection_for`): configurations and stopping epochs are chosen on the validation
  split, never on test; the test number at the validation-chosen epoch is what is reported.
  Results without a validation split (schema 1, or `validation = 0`) are chosen on the training
  set's final value and reported at the final epoch, and readers say so (`no_validation_note`).
- Intervals are 95% percentile-bootstrap intervals of the mean (`scipy.stats.bootstrap`, 9,999
  resamples, a fixed `random_state`, so one folder always gives the same interval). Below
  MIN_N_FOR_CI values there is no interval (NaN, shown as "n/a").
- P(A > B) is the probability of improvement as rliable defines it: over all pairs of one run of
  A and one run of B, the fraction where A is better, ties counting one half (the Mann-Whitney U
  statistic divided by n_A n_B). Identical samples give 0.5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

CONFIDENCE = 0.95
N_RESAMPLES = 9999
BOOTSTRAP_SEED = 0
MIN_N_FOR_CI = 3
POWER = 0.8  # for "about N seeds would separate a difference of this size"
EQUAL = 1e-12  # differences below this are float round-off: the means are equal

KNOB_COLUMNS = ("momentum", "dampening", "weight_decay", "eps", "alpha", "centered", "amsgrad", "beta1", "beta2",
                "lr_decay", "initial_accumulator_value")
CONFIG_COLUMNS = ("sweep", "stage", "dataset", "validation", "model", "loss", "optimizer", "lr", "batch_size",
                  "epochs", "schedule", "device", "dtype", *KNOB_COLUMNS)
# the hyperparameters a configuration is named by, in display order
HYPER_COLUMNS = ("lr", "batch_size", "epochs", "schedule", "model", *KNOB_COLUMNS)


def higher_is_better(column: str) -> bool | None:
    """The direction of a metric from its name: accuracy and R² up; loss, RMSE, time, steps and
    epochs down; None when the name does not say."""
    words = set(column.split("_"))
    if words & {"acc", "r2"}:
        return True
    if words & {"loss", "rmse", "time", "steps", "epoch", "epochs", "run"}:
        return False
    return None


# --------------------------------------------------------------------------------------------
# Seed statistics


def bootstrap_ci(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """95% percentile-bootstrap interval of the mean of each row of `samples` [rows, n].

    One scipy.stats.bootstrap call for all rows: they share the resampling indices, so each
    row's interval equals what a call on that row alone with the same random_state gives
    (tests/test_stats.py checks this)."""
    from scipy import stats

    samples = np.asarray(samples, dtype=float)
    if samples.ndim == 1:
        samples = samples[None, :]
    res = stats.bootstrap((samples,), np.mean, axis=-1, vectorized=True, n_resamples=N_RESAMPLES,
                          confidence_level=CONFIDENCE, method="percentile",
                          random_state=np.random.default_rng(BOOTSTRAP_SEED))
    low, high = np.atleast_1d(res.confidence_interval.low), np.atleast_1d(res.confidence_interval.high)
    # all values equal: the interval is that value (scipy's float summation can miss it by an ulp)
    same = samples.min(axis=1) == samples.max(axis=1)
    low, high = np.where(same, samples[:, 0], low), np.where(same, samples[:, 0], high)
    return low, high


def intervals(groups: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) per group of values; NaN for groups of fewer than MIN_N_FOR_CI. Groups of the
    same size are bootstrapped in one call."""
    low = np.full(len(groups), np.nan)
    high = np.full(len(groups), np.nan)
    by_n: dict[int, list[int]] = {}
    for i, g in enumerate(groups):
        if len(g) >= MIN_N_FOR_CI:
            by_n.setdefault(len(g), []).append(i)
    for idx in by_n.values():
        lo, hi = bootstrap_ci(np.stack([groups[i] for i in idx]))
        low[idx], high[idx] = lo, hi
    return low, high


def column_stats(groups: list[np.ndarray]) -> dict[str, list]:
    """n, mean, std (ddof 1), median, ci_low and ci_high of each group of finite values."""
    low, high = intervals(groups)
    return {"n": [len(v) for v in groups],
            "mean": [float(v.mean()) if len(v) else math.nan for v in groups],
            "std": [float(v.std(ddof=1)) if len(v) > 1 else math.nan for v in groups],
            "median": [float(np.median(v)) if len(v) else math.nan for v in groups],
            "ci_low": [float(x) for x in low], "ci_high": [float(x) for x in high]}


def describe(values) -> dict[str, float]:
    """n, mean, std (ddof 1), median and the 95% interval of the mean of some values (NaN and
    infinite values are left out: a diverged run has no final loss)."""
    v = np.asarray(values, dtype=float)
    return {k: col[0] for k, col in column_stats([v[np.isfinite(v)]]).items()}


def config_columns(trials: pd.DataFrame) -> list[str]:
    """The columns that make a configuration in this table (CONFIG_COLUMNS present in it)."""
    return [c for c in CONFIG_COLUMNS if c in trials]


def usable(trials: pd.DataFrame) -> pd.DataFrame:
    """Trials that produced numbers: ok and diverged (a diverged run is a result, stopped on
    validation before it diverged), not failed."""
    return trials[trials["status"] != "failed"]


def group_stats(trials: pd.DataFrame, metric: str, by: list[str] | None = None) -> pd.DataFrame:
    """One row per group (by default: per configuration, over its seeds) with the group's keys,
    its seeds, and n, mean, std, median, ci_low, ci_high of `metric`. Values that are not finite
    are left out of every statistic (n counts what is left); failed trials are never counted."""
    wide = many_stats(trials, [metric], by)
    return wide.rename(columns=lambda c: c.removeprefix(f"{metric}_"))


def many_stats(trials: pd.DataFrame, metrics: list[str], by: list[str] | None = None) -> pd.DataFrame:
    """group_stats for several metrics in one pass: columns <metric>_n, <metric>_mean, ..."""
    by = config_columns(trials) if by is None else list(by)
    t = usable(trials)
    keys, seeds, values = [], [], {m: [] for m in metrics}
    if len(t):
        for key, g in t.groupby(by, sort=True, dropna=False) if by else [((), t)]:
            keys.append(key if isinstance(key, tuple) else (key,))
            seeds.append(_seeds(g))
            for m in metrics:
                v = g[m].to_numpy(dtype=float)
                values[m].append(v[np.isfinite(v)])
    out = pd.DataFrame(keys, columns=by) if by else pd.DataFrame(index=range(len(keys)))
    out["seeds"] = seeds
    for m in metrics:
        for stat, column in column_stats(values[m]).items():
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

    @property
    def how(self) -> str:
        if self.validation:
            return (f"configuration chosen by mean {metric_words(self.select)} over seeds, stopping epoch chosen on "
                    f"validation; reported: {metric_words(self.report)}")
        return (f"no validation split: configuration chosen by mean {metric_words(self.select)} over seeds; "
                f"reported: {metric_words(self.report)}")


def selection_for(task: str, has_validation: bool) -> Selection:
    """The selection rule of a task. With validation: classification chooses on best_val_acc and
    reports test_acc_at_best_val; regression chooses on best_val_loss and reports
    test_r2_at_best_val; DeepOBS objectives choose on best_val_loss and report
    test_loss_at_best_val. Without: the training set's final accuracy (or loss) chooses and the
    final test value is reported."""
    classification = task in ("binary", "multiclass")
    if has_validation:
        if classification:
            return Selection("best_val_acc", True, "test_acc_at_best_val", True, True)
        if task == "regression":
            return Selection("best_val_loss", False, "test_r2_at_best_val", True, True)
        return Selection("best_val_loss", False, "test_loss_at_best_val", False, True)
    if classification:
        return Selection("final_train_acc", True, "final_test_acc", True, False)
    if task == "regression":
        return Selection("final_train_eval_loss", False, "final_test_r2", True, False)
    return Selection("final_train_eval_loss", False, "final_test_loss", False, False)


def task_of(dataset: str) -> str:
    from dlbench.data import DATASETS

    return DATASETS[dataset].task if dataset in DATASETS else "multiclass"


def has_validation(trials: pd.DataFrame) -> bool:
    return "best_val_loss" in trials and bool(np.isfinite(trials["best_val_loss"].to_numpy(dtype=float)).any())


def selection_of(trials: pd.DataFrame) -> Selection:
    """The selection rule for the trials of one dataset."""
    return selection_for(task_of(str(trials["dataset"].iloc[0])), has_validation(trials))


def no_validation_note(trials: pd.DataFrame, env: dict | None = None) -> str | None:
    """What readers print about results without a validation split, or None."""
    if has_validation(trials):
        return None
    why = ("written by dlbench schema 1, before validation splits existed"
           if (env or {}).get("schema_version", 2) < 2 else "validation = 0")
    sel = selection_of(trials)
    return (f"no validation split ({why}): configurations are chosen on the training set "
            f"({metric_words(sel.select)}) and test numbers are at the final epoch; rerun with validation > 0 to "
            "choose on validation")


def metric_words(column: str) -> str:
    """A summary column in words, e.g. 'test accuracy at the validation-chosen epoch'."""
    names = {"best_val_acc": "validation accuracy", "best_val_loss": "validation loss",
             "best_val_r2": "validation R²", "test_acc_at_best_val": "test accuracy at the validation-chosen epoch",
             "test_loss_at_best_val": "test loss at the validation-chosen epoch",
             "test_r2_at_best_val": "test R² at the validation-chosen epoch",
             "final_train_acc": "final training accuracy", "final_train_eval_loss": "final training loss",
             "final_test_acc": "final test accuracy", "final_test_loss": "final test loss",
             "final_test_r2": "final test R²"}
    return names.get(column, column)


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

    @property
    def name(self) -> str:
        return " ".join(str(v) for v in self.group.values())

    @property
    def how(self) -> str:
        """How the configuration was chosen and what is reported, in words."""
        if self.confirmed and self.chosen_by:
            return (f"configuration chosen in stage 1 by {self.chosen_by}, stopping epoch chosen on validation; "
                    f"reported: {metric_words(self.selection.report)} on fresh seeds")
        return self.selection.how


def best_configs(trials: pd.DataFrame, per: tuple[str, ...] = ("optimizer",)) -> list[Best]:
    """For each dataset (and sweep) and each `per` group: the configuration with the best mean of
    the selection column over its seeds (ties: the first in config order). When the results hold
    a confirm stage for that group, its fresh seeds give the result and the tuning seeds are kept
    apart (`tuning`)."""
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
            stats = group_stats(g, sel.select, cols)
            stats = stats[np.isfinite(stats["mean"].to_numpy(dtype=float))]
            counts = g["status"].value_counts().to_dict()
            confirmed = rows_matching(confirm, group)
            how = None
            if len(confirmed):
                chosen = confirmed.iloc[0][cols].to_dict()
                if "chosen_by" in confirmed and confirmed["chosen_by"].notna().any():
                    how = str(confirmed["chosen_by"].dropna().iloc[0])
                result_rows = usable(rows_matching(confirmed, chosen))
                tuning_rows = usable(rows_matching(g, chosen))
            elif len(stats):
                order = stats.sort_values("mean", ascending=not sel.select_higher, kind="stable")
                chosen = order.iloc[0][cols].to_dict()
                result_rows = tuning_rows = usable(rows_matching(g, chosen))
            else:
                continue  # nothing finished with a number
            values = result_rows[sel.report].to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            select_vals = tuning_rows[sel.select].to_numpy(dtype=float)
            select_vals = select_vals[np.isfinite(select_vals)]
            edges = range_edges(g, chosen)
            where = dict(zip(outer, key if isinstance(key, tuple) else (key,), strict=True))
            out.append(Best(
                dataset=str(where["dataset"]), sweep=str(where.get("sweep", "")),
                group=group, config=chosen, selection=sel,
                select_mean=float(select_vals.mean()) if len(select_vals) else math.nan,
                report=describe(values), values=values, seeds=sorted(int(s) for s in result_rows["seed"]),
                confirmed=bool(len(confirmed)),
                tuning=describe(tuning_rows[sel.report]) if len(confirmed) else None,
                configs_tried=len(stats), counts=counts, chosen_by=how, at_edge=edges))
    return out


EDGE_KEYS = ("lr", "batch_size", "epochs", *(k for k in KNOB_COLUMNS if k not in ("centered", "amsgrad")))


def range_edges(group: pd.DataFrame, chosen: dict) -> list[tuple[str, float, str]]:
    """The numeric hyperparameters whose chosen value is the largest or smallest of at least 3
    values the group tried: the best may lie beyond the range swept."""
    out = []
    for k in EDGE_KEYS:
        if k not in group or k not in chosen or is_missing(chosen[k]):
            continue
        values = sorted(v for v in group[k].dropna().unique())
        if len(values) >= 3 and chosen[k] in (values[0], values[-1]):
            out.append((k, float(chosen[k]), "largest" if chosen[k] == values[-1] else "smallest"))
    return out


def edge_note(b: Best, with_dataset: bool = False) -> str | None:
    """'adam: lr=0.01 is the largest value tried; the best may lie beyond the range swept', or
    None; with the dataset in front when several share a page."""
    if not b.at_edge:
        return None
    parts = [f"{k}={v:.4g} is the {which} value tried" for k, v, which in b.at_edge]
    where = f"{b.dataset}, " if with_dataset else ""
    return f"{where}{b.name}: {'; '.join(parts)}; the best may lie beyond the range swept"


def rows_matching(df: pd.DataFrame, values: dict) -> pd.DataFrame:
    """The rows of `df` whose columns equal `values` (a missing value matches a missing one);
    keys that are not columns of `df` are ignored."""
    mask = np.ones(len(df), dtype=bool)
    for k, v in values.items():
        if k not in df:
            continue
        col = df[k]
        mask &= (col.isna().to_numpy() if is_missing(v) else (col == v).to_numpy())
    return df[mask]


def is_missing(v) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


# --------------------------------------------------------------------------------------------
# Pairwise comparison


def prob_improvement(a, b, higher: bool = True) -> float:
    """P(A better than B) over all (run of A, run of B) pairs, ties counting 1/2: the
    Mann-Whitney U statistic of A against B over n_A n_B (rliable's probability of improvement).
    For metrics where lower is better the values are negated first."""
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if not len(a) or not len(b):
        return math.nan
    if not higher:
        a, b = -a, -b
    return float(stats.mannwhitneyu(a, b, alternative="two-sided").statistic / (len(a) * len(b)))


def diff_ci(a, b) -> tuple[float, float]:
    """95% percentile-bootstrap interval of mean(A) - mean(B), the two samples resampled
    independently (scipy.stats.bootstrap with two samples); NaN with fewer than MIN_N_FOR_CI
    values in either."""
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < MIN_N_FOR_CI or len(b) < MIN_N_FOR_CI:
        return math.nan, math.nan
    if a.min() == a.max() and b.min() == b.max():
        d = float(a[0] - b[0])
        return d, d

    def mean_diff(x, y, axis=-1):
        return np.mean(x, axis=axis) - np.mean(y, axis=axis)

    res = stats.bootstrap((a, b), mean_diff, vectorized=True, n_resamples=N_RESAMPLES, confidence_level=CONFIDENCE,
                          method="percentile", random_state=np.random.default_rng(BOOTSTRAP_SEED))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def seeds_needed(a, b, difference: float) -> int | None:
    """About how many seeds per side a two-sample comparison needs to detect `difference` with
    80% power at the 5% level: n = 2 (z_0.975 + z_0.8)² s² / d², s² the pooled variance. None
    when it cannot be said (no difference, no spread, or fewer than 2 values on a side)."""
    from scipy.stats import norm

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2 or abs(difference) < EQUAL:
        return None
    pooled = ((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2)
    if pooled <= 0:
        return None
    z = norm.ppf(1 - (1 - CONFIDENCE) / 2) + norm.ppf(POWER)
    return max(2, math.ceil(2 * z * z * pooled / difference ** 2))


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
    ci_low: float
    ci_high: float
    p_better: float  # P(A better than B)
    seeds_needed: int | None
    confirmed: bool  # both measured on fresh seeds that took no part in choosing
    sweep: str = ""

    @property
    def verdict(self) -> str:
        """'a', 'b' (the better one), 'none' (not distinguishable) or 'n/a' (too few seeds)."""
        if not (math.isfinite(self.ci_low) and math.isfinite(self.ci_high)):
            return "n/a"
        if self.ci_low > 0 or self.ci_high < 0:
            a_wins = (self.ci_low > 0) == self.higher
            return "a" if a_wins else "b"
        return "none"

    @property
    def in_points(self) -> bool:
        """Accuracy differences read in percentage points."""
        return "acc" in self.metric.split("_")

    def _num(self, v: float) -> str:
        return f"{100 * v:+.2f}" if self.in_points else f"{v:+.3g}"

    def diff_text(self) -> str:
        """'+0.37 pts', or '+0.0123' for metrics that are not accuracies."""
        return self._num(self.diff) + (" pts" if self.in_points else "")

    def interval_text(self) -> str:
        if not (math.isfinite(self.ci_low) and math.isfinite(self.ci_high)):
            return "[n/a]"
        return f"[{self._num(self.ci_low)}, {self._num(self.ci_high)}]"

    def conclusion(self) -> str:
        """What the seeds say, in words."""
        n = min(self.n_a, self.n_b)
        v = self.verdict
        if v == "n/a":
            tail = f"too few seeds to tell ({n}; an interval needs at least {MIN_N_FOR_CI})"
        elif v == "none":
            tail = f"not distinguishable with {n} seeds"
        else:
            return f"{self.a if v == 'a' else self.b} is better (the interval excludes 0)"
        if self.seeds_needed is not None:
            size = self.diff_text().lstrip("+-")
            many = "more than 1,000" if self.seeds_needed > 1000 else f"about {self.seeds_needed}"
            tail += f"; {many} seeds would separate a difference of this size ({size})"
        elif abs(self.diff) < EQUAL:
            tail += "; the means are equal"
        return tail

    def line(self) -> str:
        """The plain verdict, e.g. 'adam vs rmsprop: +0.20 pts [-0.40, +0.80], P(adam > rmsprop) =
        0.56: not distinguishable with 3 seeds; about 40 seeds would separate a difference of this
        size (0.20 pts)'."""
        op = ">" if self.higher else "<"
        return (f"{self.a} vs {self.b}: {self.diff_text()} {self.interval_text()}, "
                f"P({self.a} {op} {self.b}) = {self.p_better:.2f}: {self.conclusion()}")


def compare(best: list[Best]) -> list[Comparison]:
    """Every pair of groups within a dataset (and results folder), better mean first, on the
    reported metric."""
    out = []
    by_dataset: dict[tuple[str, str], list[Best]] = {}
    for b in best:
        by_dataset.setdefault((b.sweep, b.dataset), []).append(b)
    for (sweep, dataset), items in by_dataset.items():
        higher = items[0].selection.report_higher
        items = sorted(items, key=lambda b: (-b.report["mean"] if higher else b.report["mean"])
                       if math.isfinite(b.report["mean"]) else math.inf)
        for i, a in enumerate(items):
            for b in items[i + 1:]:
                diff = a.report["mean"] - b.report["mean"]
                low, high = diff_ci(a.values, b.values)
                out.append(Comparison(dataset, a.name, b.name, a.selection.report, higher, len(a.values),
                                      len(b.values), diff, low, high,
                                      prob_improvement(a.values, b.values, higher),
                                      seeds_needed(a.values, b.values, diff), a.confirmed and b.confirmed, sweep))
    return out


def seeds_note(best: list[Best]) -> str:
    """Whether the seeds that chose a configuration also measured it."""
    if best and all(b.confirmed for b in best):
        seeds = sorted({s for b in best for s in b.seeds})
        return (f"confirmed on fresh seeds ({seed_span(seeds)}) that took no part in choosing the configurations; "
                "tuning numbers are shown apart")
    seeds = sorted({s for b in best for s in b.seeds})
    return (f"the same seeds ({seed_span(seeds)}) chose each configuration and measure it, so the winners' numbers "
            "carry some of those seeds' luck; a [protocol] with confirm_seeds re-runs them on fresh seeds")


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


def problem_target(history: pd.DataFrame, metric: str, higher: bool, fraction: float = TARGET_FRACTION) -> float:
    """The target of one problem, AlgoPerf-style from the best result in the sweep:
    v0 + fraction × (v* - v0), where v* is the best value any configuration reaches at any epoch
    (median over its seeds) and v0 the median value at epoch 0 (before any step). With
    fraction 0.95: 95% of the way from the untrained model to the best configuration."""
    cfg = [c for c in config_columns(history) if c in history]
    per_epoch = history.groupby([*cfg, "epoch"], dropna=False)[metric].median()
    finite = per_epoch[np.isfinite(per_epoch.to_numpy(dtype=float))]
    best = finite.max() if higher else finite.min()
    start = float(history.loc[history["epoch"] == 0, metric].median())
    return float(start + fraction * (best - start))


def steps_to_target(history: pd.DataFrame, metric: str, target: float, higher: bool) -> pd.Series:
    """Per trial: the optimizer steps at the first epoch whose `metric` reaches `target`; inf when
    it never does."""
    reached = history[history[metric] >= target] if higher else history[history[metric] <= target]
    first = reached.sort_values("epoch").groupby("trial_id")["steps"].first().astype(float)
    return first.reindex(history["trial_id"].unique(), fill_value=math.inf)


@dataclass
class ProfileCosts:
    costs: pd.DataFrame  # problems × solvers: steps to the problem's target (inf: never)
    targets: dict[str, float]  # problem -> target value
    metrics: dict[str, str]  # problem -> history column the target is on
    fraction: float


def profile_costs(trials: pd.DataFrame, history: pd.DataFrame, solver: str = "optimizer",
                  problem: tuple[str, ...] = ("sweep", "dataset", "model"),
                  fraction: float = TARGET_FRACTION) -> ProfileCosts:
    """The cost of each solver on each problem: the fewest steps to the problem's validation
    target over the solver's configurations, each configuration's steps being the median over its
    seeds (a seed that never reaches the target counts as inf, so a configuration whose median
    seed misses it costs inf). Failed trials take no part."""
    problem = tuple(c for c in problem if c in trials and (c != "sweep" or trials[c].nunique() > 1))
    t = usable(trials)
    costs: dict[str, dict[str, float]] = {}
    targets, metrics = {}, {}
    for key, pt in t.groupby(list(problem), sort=True):
        key = key if isinstance(key, tuple) else (key,)
        name = " ".join(str(k) for k in key)
        task = task_of(str(pt["dataset"].iloc[0]))
        metric, higher = target_metric(task, has_validation(pt))
        cols = config_columns(pt)
        ph = history.loc[history["trial_id"].isin(pt["trial_id"]), ["trial_id", "epoch", "steps", metric]]
        ph = ph.merge(pt[["trial_id", *cols]], on="trial_id")
        target = problem_target(ph, metric, higher, fraction)
        reach = steps_to_target(ph, metric, target, higher).rename("reach")
        pt = pt.merge(reach, left_on="trial_id", right_index=True, how="left")
        per_config = pt.groupby(cols, dropna=False)["reach"].median().reset_index()
        costs[name] = {str(s): float(g["reach"].min()) for s, g in per_config.groupby(solver, sort=True)}
        targets[name], metrics[name] = target, metric
    frame = pd.DataFrame(costs).T.sort_index()
    return ProfileCosts(frame.fillna(math.inf), targets, metrics, fraction)


def performance_profile(costs: pd.DataFrame) -> pd.DataFrame:
    """Dolan-Moré performance profile of a problems × solvers cost table: for each solver s and
    ratio τ ≥ 1, ρ_s(τ) = the fraction of problems p with cost(p, s) ≤ τ · min_s' cost(p, s').
    A solver that never reaches a problem's target has cost inf there (ratio inf, never counted);
    a problem that no solver reaches counts against all of them.

    Returns the profile's steps: rows (solver, tau, rho) at τ = 1 and at every finite ratio
    where some solver's ρ rises."""
    c = costs.to_numpy(dtype=float)
    best = c.min(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = np.where(np.isfinite(c) & np.isfinite(best) & (best > 0), c / best,
                          np.where((c == 0) & (best == 0), 1.0, math.inf))
    taus = np.unique(np.concatenate([[1.0], ratios[np.isfinite(ratios)]]))
    rows = []
    for j, s in enumerate(costs.columns):
        for tau in taus:
            rows.append({"solver": str(s), "tau": float(tau), "rho": float((ratios[:, j] <= tau).mean())})
    return pd.DataFrame(rows, columns=["solver", "tau", "rho"])


# --------------------------------------------------------------------------------------------
# Bands for curves


BANDS = ("ci", "std", "minmax", "none")
BAND_WORDS = {"ci": "95% bootstrap CI of the mean", "std": "mean ± 1 std", "minmax": "min–max over seeds",
              "none": "no band"}


def band(groups: list[np.ndarray], kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) of a band per group of seed values: a CI of the mean (NaN below
    MIN_N_FOR_CI), mean ± std, min-max, or none (NaN)."""
    n = len(groups)
    if kind == "ci":
        return intervals(groups)
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
