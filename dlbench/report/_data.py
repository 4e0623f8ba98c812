"""The report's data step: everything a report shows, computed from results folders by
dlbench.stats and the plots' info steps. Pure (no writing); the writers only lay it out."""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from dlbench import stats, words
from dlbench.errors import UserError
from dlbench.store import config_columns, trial_label

# what the tables and the csv summarize over seeds, per configuration, besides the selection rule's own
EXTRA_METRICS = ("best_val_loss", "test_loss_at_best_val", "final_test_loss", "final_train_eval_loss", "best_epoch",
                 "wall_time")


@dataclass
class FolderInfo:
    """What ran in one results folder."""

    name: str
    path: Path
    spec: str
    env: dict
    counts: dict[str, int]
    diverged: list[tuple[str, int]]  # (trial label, epoch)
    failed: list[tuple[str, str]]  # (trial label, reason)
    fallbacks: dict[str, int]  # reason -> trials
    engines: dict[str, int]
    trial_seconds: float  # summed over trials
    notes: list[str] = field(default_factory=list)  # e.g. no validation split


@dataclass
class Figure:
    key: str  # curves, lr, heatmap, target, profile, timing
    title: str
    caption: str
    info: object  # the plot module's record
    draw: object  # its drawing function


@dataclass
class ReportData:
    title: str
    folders: list[FolderInfo]
    best: list[stats.Best]
    comparisons: list[stats.Comparison]
    seeds_note: str
    configs: pd.DataFrame  # one row per configuration: config columns, chosen flag, per metric n/mean/std/CI
    metrics: list[str]  # the metrics in `configs`, in column order
    trials: pd.DataFrame  # every trial, for the full table
    figures: list[Figure]
    several: bool  # several folders: a side-by-side comparison
    method: str = stats.DEFAULT_CI  # how intervals and verdicts are computed (t or bootstrap)
    scoreboard: stats.Scoreboard | None = None  # the answer across problems
    budgets: stats.Budgets | None = None  # the tuning curves
    focus: str | None = None  # the optimizer put against each other one
    focus_rows: list = field(default_factory=list)
    search: str = "grid"  # how the configurations were made (what a tuning curve means)
    to_target: list = field(default_factory=list)  # stats.ToTarget: steps and seconds to each problem's target

    @functools.cached_property
    def hypers(self) -> list[str]:
        from dlbench.summary import shown_hypers

        return shown_hypers(self.trials)

    @functools.cached_property
    def config_keys(self) -> list[str]:
        """The columns that tell the configurations of the full table apart (stats.varying), with
        the dataset, optimizer and lr always: one rule for the html, markdown and csv tables."""
        return [c for c in stats.varying(self.trials, always=("dataset", "optimizer", "lr")) if c in self.configs]


def load(folders: list[str]):
    """The plots' Results (trials and history of every folder, with a sweep column) and env per
    folder; refuses what is not a results folder, a newer schema, an empty or only-failed sweep."""
    from dlbench import folders as results_folders
    from dlbench.plots import _common

    envs, read = {}, {}
    for f in folders:
        read[f] = trials, _, env = results_folders.read(f)  # refuses non-folders and newer schemas
        if trials.empty:
            raise UserError(f"{f!r} has no finished trials yet; allowed: a results folder with at least one trial")
        if (trials["status"] == "failed").all():
            raise UserError(f"{f!r} holds only failed trials ({len(trials)}); allowed: a results folder with at least "
                            "one trial that trained (see its trials.parquet, column error)")
        envs[f] = env
    return _common.load(folders, read), envs


def folder_info(name: str, path: Path, trials: pd.DataFrame, env: dict) -> FolderInfo:
    spec_path = path / "spec.toml"
    spec = spec_path.read_text() if spec_path.exists() else ""
    div = trials[trials["status"] == "diverged"]
    bad = trials[trials["status"] == "failed"]
    notes = words.mixed_notes(trials, path)
    for dataset, d in trials.groupby("dataset"):
        note = words.no_validation_note(d, env)
        if note:
            notes.append(f"{dataset}: {note}" if trials["dataset"].nunique() > 1 else note)
    fallbacks = Counter(r for r in trials.get("fallback_reason", pd.Series(dtype=str)).dropna())
    return FolderInfo(
        name=name, path=path, spec=spec, env=env, counts=trials["status"].value_counts().to_dict(),
        diverged=[(trial_label(r), int(r["diverged_epoch"]) if pd.notna(r["diverged_epoch"]) else -1)
                  for _, r in div.iterrows()],
        failed=[(trial_label(r), str(r["error"])) for _, r in bad.iterrows()],
        fallbacks=dict(fallbacks), engines=trials["engine"].value_counts().to_dict(),
        trial_seconds=float(np.nansum(trials["wall_time"].to_numpy(dtype=float))), notes=notes)


def config_table(trials: pd.DataFrame, best: list[stats.Best],
                 method: str = stats.DEFAULT_CI) -> tuple[pd.DataFrame, list[str]]:
    """Every configuration over its seeds: keys, `chosen` (the configuration the selection rule
    picked for its optimizer), runs and diverged, and n, mean, std, ci_low, ci_high of each metric."""
    t = trials
    cols = config_columns(t)
    metrics = []
    for b in best:
        for m in (b.selection.report, b.selection.select):
            if m not in metrics:
                metrics.append(m)
    metrics += [m for m in EXTRA_METRICS if m in t and m not in metrics and np.isfinite(
        t[m].to_numpy(dtype=float)).any()]
    table = stats.many_stats(t, metrics, cols, method).drop(columns=[f"{m}_median" for m in metrics])
    chosen = np.zeros(len(table), dtype=bool)
    for b in best:
        want = {**b.config, **({"sweep": b.sweep} if "sweep" in table else {})}
        if b.confirmed:
            want["stage"] = "confirm"
        hit = stats.rows_matching(table, want)
        chosen[table.index.get_indexer(hit.index)] = True
    table.insert(len(cols), "chosen", chosen)
    return table, metrics


def make_figure(results, key: str, method: str = stats.DEFAULT_CI) -> Figure:
    """One figure's record (the plot module's info step) with its title and caption."""
    from dlbench.plots import _common, figure_job

    several = len(_common.problems(results)) > 1
    shown = None if several else _common.metric_for(results.trials, results.history, None)
    draw, info, _ = figure_job(results, key, shown, "epoch", stat="best", band="ci", method=method)
    what = "each problem's test metric" if several else _common.label(shown)
    if key == "curves":
        title, caption = "Learning curves", (f"{what} by epoch: mean over seeds, band: "
                                             f"{words.band_words('ci', method)} (none below {stats.MIN_N[method]} "
                                             f"seeds); {_common.DIVERGED_MARKER}: a seed diverged there.")
    elif key == "lr":
        title, caption = "Learning-rate sensitivity", (
            f"{what} at the epoch chosen on validation, mean over seeds with a {words.band_words('ci', method)}; "
            f"ringed: the lr validation chose; {_common.DIVERGED_MARKER} k/N: seeds that diverged (counted at the "
            "epoch validation chose, before they diverged).")
    elif key == "heatmap":
        title = " × ".join(a.replace("_", " ") for a in info.axes)
        caption = (f"{what} at the epoch chosen on validation (mean over seeds); the outlined cell is the one "
                   "validation chose (dashed: tied with it); hatched: seeds diverged.")
    elif key == "target":
        target = f"{info.target:.4g}" if np.isfinite(info.target) else "each problem's target"
        title, caption = "Steps to a validation target", (
            f"optimizer steps until {_common.label(info.metric)} reaches {target} (by default "
            f"{100 * stats.TARGET_FRACTION:g}% of the way from the untrained model to the best result, the "
            "performance profile's rule); the best lr per batch size (median over seeds).")
    elif key == "profile":
        title, caption = "Performance profile", (
            "fraction of problems on which an optimizer's steps to the problem's validation target are within τ of "
            f"the best optimizer's; target: {100 * info.costs.fraction:g}% of the way from the untrained model to the "
            "best result in the sweep; ∞ when never reached.")
    else:
        title, caption = "Time per epoch", ("median seconds per epoch per trial, training and evaluation (training, "
                                            "validation and test sets); fused trials share their unit's time.")
    return Figure(key, title, caption, info, draw)


def figures(results, method: str = stats.DEFAULT_CI) -> list[Figure]:
    """The figures the data supports, in page order (dlbench.plots.supported_kinds: curves; lr
    sensitivity with 2+ lrs; the heatmap where a problem varies lr and batch size; steps to a
    validation target with 2+ batch sizes; the performance profile with 2+ problems; timing)."""
    from dlbench.plots import supported_kinds

    return [make_figure(results, k, method) for k in supported_kinds(results)]


def report_data(folders: list[str], with_figures: bool = True, method: str = stats.DEFAULT_CI,
                focus: str | None = None) -> ReportData:
    results, envs = load(folders)
    return summarize(folders, results, envs, figures(results, method) if with_figures else [], method, focus)


TRIAL_ORDER = ("sweep", "dataset", "optimizer", "stage")


def summarize(folders: list[str], results, envs: dict, figs: list[Figure],
              method: str = stats.DEFAULT_CI, focus: str | None = None) -> ReportData:
    """Everything the report shows, from loaded results (figs: the figure records, or none).
    `focus`: the optimizer put against each other one (default: the first folder's spec's)."""
    from dlbench import folders as results_folders

    t = results.trials
    infos = [folder_info(name, Path(f), d, envs[f])
             for f, (name, d) in zip(folders, t.groupby("sweep", sort=False), strict=True)]
    best = stats.best_configs(t, method=method)
    comparisons = stats.compare(best, method)
    configs, metrics = config_table(t, best, method)
    # every trial, in the order a reader looks for one: dataset, optimizer, configuration, seed
    order = [c for c in TRIAL_ORDER if c in t] + [c for c in config_columns(t) if c not in TRIAL_ORDER] + ["seed"]
    t = t.sort_values(order, kind="stable", na_position="last").reset_index(drop=True)
    title = " vs ".join(i.name for i in infos)
    spec = results_folders.stored_spec(folders[0])
    focus = focus if focus is not None else spec.get("focus")
    costs = stats.profile_costs(results.trials, results.history).costs if t["dataset"].nunique() > 1 or \
        len(folders) > 1 else None
    areas = stats.profile_areas(stats.performance_profile(costs)) if costs is not None and len(costs) else {}
    board = stats.scoreboard(best, comparisons, areas, results_folders.extended(spec))
    return ReportData(title, infos, best, comparisons, words.seeds_note(best), configs, metrics, t, figs,
                      len(folders) > 1, method, board, stats.budgets(t), focus,
                      stats.focus_rows(comparisons, focus) if focus else [], results_folders.search_kind(spec),
                      stats.to_target(results.trials, results.history) if len(results.history) else [])
