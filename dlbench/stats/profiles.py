"""Across problems: steps to a validation target (AlgoPerf-style, from the best result in the
sweep) and Dolan-Moré performance profiles."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dlbench.stats.selection import has_validation, task_of
from dlbench.stats.tables import usable
from dlbench.store import config_columns

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
class ToTarget:
    """One optimizer on one problem: the fewest steps and the fewest training seconds to the
    problem's validation target over its configurations (each the median over a configuration's
    seeds), and the configurations that get there so."""

    problem: str
    optimizer: str
    metric: str  # the history column the target is on
    target: float
    steps: float  # inf: no configuration's median seed reaches the target
    seconds: float  # NaN where it never does
    by_steps: dict  # the configuration with the fewest steps
    by_seconds: dict  # the configuration with the fewest seconds


def to_target(trials: pd.DataFrame, history: pd.DataFrame, solver: str = "optimizer",
              problem: tuple[str, ...] = ("sweep", "dataset", "model"),
              fraction: float = TARGET_FRACTION) -> list[ToTarget]:
    """Steps and seconds to each problem's validation target (problem_target, AlgoPerf-style) per
    optimizer: modded-nanogpt counts steps, AlgoPerf scores time. Seconds are each trial's
    training time (history `train_time`, summed to the evaluation that reaches the target): the
    reference engine times its own trial; the fused engine gives each trial its share of the
    unit's shared work and the time of its own optimizer's updates, measured apart."""
    # a problem is named by what tells problems apart: the dataset, and a sweep or model only where several
    problem = tuple(c for c in problem if c in trials and (c == "dataset" or trials[c].nunique() > 1))
    out: list[ToTarget] = []
    for name, metric, target, cols, per_config in _problems(trials, history, problem, fraction):
        for s_name, g in per_config.groupby(solver, sort=True):
            g = g.reset_index(drop=True)
            fast_steps = g.loc[g["steps"].idxmin()] if np.isfinite(g["steps"]).any() else None
            timed = g[np.isfinite(g["steps"]) & np.isfinite(g["time"])]
            fast_time = timed.loc[timed["time"].idxmin()] if len(timed) else None
            out.append(ToTarget(name, str(s_name), metric, target,
                                float(fast_steps["steps"]) if fast_steps is not None else math.inf,
                                float(fast_time["time"]) if fast_time is not None else math.nan,
                                {c: fast_steps[c] for c in cols} if fast_steps is not None else {},
                                {c: fast_time[c] for c in cols} if fast_time is not None else {}))
    return out


def _problems(trials: pd.DataFrame, history: pd.DataFrame, problem: tuple[str, ...], fraction: float):
    """Per problem (the groups of `problem`'s columns): its name, target metric, target value, config
    columns and each configuration's cost to the target (config_costs)."""
    for key, pt in usable(trials).groupby(list(problem), sort=True):
        key = key if isinstance(key, tuple) else (key,)
        metric, higher = target_metric(task_of(pt), has_validation(pt))
        cols = config_columns(pt)
        ph = history.loc[history["trial_id"].isin(pt["trial_id"])]
        ph = ph[["trial_id", "epoch", "steps", metric, *(["train_time"] if "train_time" in ph else [])]]
        ph = ph.merge(pt[["trial_id", *cols]], on="trial_id")
        target = problem_target(ph, metric, higher, fraction, cols)
        yield " ".join(str(k) for k in key), metric, target, cols, config_costs(pt, ph, metric, target, higher, cols)


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
    for name, metric, target, _cols, per_config in _problems(trials, history, problem, fraction):
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
