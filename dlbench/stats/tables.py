"""Statistics of groups of trials: which trials count (usable), each configuration over its seeds
(n, mean, std, median, interval of any metric), rows matching a configuration, which
configuration columns vary."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from dlbench.stats.mean_intervals import DEFAULT_CI, column_stats
from dlbench.store import config_columns, knob_columns


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
    keys, seeds, runs, diverged, values, losses = [], [], [], [], {m: [] for m in metrics}, []
    if len(t):
        for key, g in t.groupby(by, sort=True, dropna=False) if by else [((), t)]:
            keys.append(key if isinstance(key, tuple) else (key,))
            seeds.append(_seeds(g))
            runs.append(len(g))
            diverged.append(int((g["status"] == "diverged").sum()))
            losses.append(one_loss(g))
            for m in metrics:
                v = g[m].to_numpy(dtype=float)
                values[m].append(v[np.isfinite(v)])
    out = pd.DataFrame(keys, columns=by) if by else pd.DataFrame(index=range(len(keys)))
    out["seeds"] = seeds
    out["runs"] = runs
    out["diverged"] = diverged
    for m in metrics:
        for stat, column in column_stats(values[m], method, m, losses).items():
            out[f"{m}_{stat}"] = column
    return out


def one_loss(trials: pd.DataFrame) -> str | None:
    """The loss some trials share (None when they have several, or none is stored): what their
    loss metrics' intervals may be clipped to."""
    names = trials["loss"].dropna().unique() if "loss" in trials else []
    return str(names[0]) if len(names) == 1 else None


def varying(trials: pd.DataFrame, within: tuple[str, ...] = (), always: tuple[str, ...] = (),
            exclude: tuple[str, ...] = ("seed",)) -> list[str]:
    """The configuration columns (store.config_columns) that name configurations here: `always`
    first, then each column that takes more than one value inside some group of `within` (an
    optimizer's knob inside one optimizer too: its default differs between optimizers without
    being swept). The one rule every reader uses to say which columns tell configurations apart."""
    knobs = set(knob_columns(trials))
    out = [c for c in always if c in trials]
    for c in config_columns(trials):
        if c in out or c in exclude or c == "sweep":
            continue
        by = [k for k in (*within, *(("optimizer",) if c in knobs else ())) if k in trials and k != c]
        counts = trials.groupby(by, dropna=False)[c].nunique(dropna=True) if by else [trials[c].nunique(dropna=True)]
        if (pd.Series(counts) > 1).any():
            out.append(c)
    return out


def _seeds(g: pd.DataFrame) -> str:
    return ",".join(str(s) for s in sorted(g["seed"].unique())) if "seed" in g else ""


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


def seed_span(seeds: list[int]) -> str:
    """'0-4' for a run of 3 or more consecutive seeds, else '0, 2'."""
    if len(seeds) >= 3 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(map(str, seeds))
