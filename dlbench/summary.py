"""The summary of a sweep in a terminal (`dlbench show`, the end of `dlbench sweep`): each
optimizer at its best configuration with N and the 95% CI, then the pairwise verdicts and what
the seeds can and cannot say. Every number comes from dlbench.stats and every sentence from
dlbench.words; this module lays them out."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dlbench import stats, words
from dlbench.store import config_columns

SHORT_PAIRS = 6  # the end of a sweep lists this many pairs per dataset; `dlbench show` lists them all


def shown_hypers(trials: pd.DataFrame) -> list[str]:
    """The hyperparameters that name a configuration here: lr, batch size and epochs always, and
    any other that varies within an optimizer's tuning on one dataset (stats.varying)."""
    return stats.varying(trials, within=("sweep", "dataset", "optimizer"), always=("lr", "batch_size", "epochs"),
                         exclude=("seed", "stage", "dataset", "optimizer", "data", "optimizer_class"))


def config_label(config: dict, columns: list[str]) -> str:
    return words.fmt_config(config, columns)


def is_missing(v) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float | np.floating) and not math.isfinite(v))


def fmt(v, digits: int = 4) -> str:
    """A number for a table: 4 significant digits, 'n/a' when missing."""
    if is_missing(v):
        return "n/a"
    return f"{v:.{digits}g}" if isinstance(v, float | np.floating) else str(v)


def fmt_interval(low, high) -> str:
    """'[0.9694, 0.9806]', or 'n/a'."""
    return "n/a" if is_missing(low) or is_missing(high) else f"[{fmt(low)}, {fmt(high)}]"


def fmt_ci(d: dict, method: str = stats.DEFAULT_CI) -> str:
    """The interval of a stats.describe() record, saying why there is none below the method's N."""
    if is_missing(d["ci_low"]):
        return f"n/a (N<{stats.MIN_N[method]})" if d["n"] < stats.MIN_N[method] else "n/a"
    return fmt_interval(d["ci_low"], d["ci_high"])


def cell(v, digits: int = 4) -> str:
    """A table cell: blank when missing, 'yes' or blank for a flag, numbers to `digits`."""
    if is_missing(v):
        return ""
    if isinstance(v, bool | np.bool_):
        return "yes" if v else ""
    return f"{v:.{digits}g}" if isinstance(v, float | np.floating) else str(v)


def render_summary(trials: pd.DataFrame, console: Console, env: dict | None = None, short: bool = False,
                   method: str = stats.DEFAULT_CI, where: str | None = None) -> None:
    """Per dataset: the best-configuration table, the notes (ties, divergence, the test split's
    resolution, a choice at the edge of its range), and the verdict of every pair. `short` (the
    end of a sweep) leaves out the status counts and, past SHORT_PAIRS pairs, lists the leader's
    pairs and says how many others `dlbench show <where>` has."""
    best = stats.best_configs(trials, method=method)
    several = trials["dataset"].nunique() > 1
    from pathlib import Path

    for note in words.mixed_notes(trials, Path(where) if where and Path(where).is_dir() else None):
        console.print(f"[yellow]note:[/] {escape(note)}")
    for dataset, d in trials.groupby("dataset", sort=True):
        items = [b for b in best if b.dataset == dataset]
        note = words.no_validation_note(d, env)
        if note:
            console.print(f"[yellow]note:[/] {escape(f'{dataset}: {note}' if several else note)}")
        if not items:
            console.print(f"{dataset}: no trial finished with a number")
            continue
        sel = items[0].selection
        hypers = shown_hypers(d)
        confirmed = any(b.confirmed for b in items)
        any_diverged = any(b.diverged for b in items)
        title = "best configuration per optimizer" + (f": {dataset}" if several else "")
        how = "; ".join(dict.fromkeys(words.best_how(b) for b in items))
        table = Table(title=title, caption=f"{how}; CI: {words.CI_WORDS[method]}", header_style="bold",
                      caption_justify="left")
        table.add_column("optimizer")
        table.add_column("configuration")
        table.add_column("N", justify="right")
        table.add_column(words.column_label(sel.report), justify="right")
        table.add_column("95% CI", justify="right")
        if any_diverged:
            table.add_column("diverged", justify="right")
        if confirmed:
            table.add_column("tuning (N)", justify="right")
        table.add_column(words.column_label(sel.select) + (" (tuning)" if confirmed else ""), justify="right")
        if not short:
            for c in ("configs", "ok", "diverged", "failed"):
                table.add_column(c if c != "diverged" else "diverged (all)", justify="right")
        order = sorted(items, key=lambda b: (-b.report["mean"] if sel.report_higher else b.report["mean"], b.name))
        for b in order:
            cells = [b.name, config_label(b.config, hypers), str(b.report["n"]), fmt(b.report["mean"]),
                     fmt_ci(b.report, method)]
            if any_diverged:
                cells.append(words.diverged_text(b) or "")
            if confirmed:
                cells.append(f"{fmt(b.tuning['mean'])} ({b.tuning['n']})" if b.tuning else "-")
            cells.append(fmt(b.select_mean))
            if not short:
                cells += [str(b.configs_tried), *(str(b.counts.get(s, 0)) for s in ("ok", "diverged", "failed"))]
            table.add_row(*cells)
        console.print(table)
        comparisons = stats.compare(items, method)
        shown = comparisons
        if short and len(comparisons) > SHORT_PAIRS:
            leader = order[0].name
            shown = [c for c in comparisons if leader in (c.a, c.b)]
        for c in shown:
            console.print(words.comparison_line(c), markup=False, highlight=False)
        if len(shown) < len(comparisons):
            left = len(comparisons) - len(shown)
            console.print(f"{left} more pair{'s' * (left != 1)} (not involving {order[0].name}): "
                          f"`dlbench show {where or '<results folder>'}` lists every one", markup=False,
                          highlight=False)
        notes = [words.family_note(comparisons), words.resolution_note(order[0])]
        notes += [words.tie_note(b, config_columns(d)) for b in order]
        notes += [words.edge_note(b, with_dataset=several) for b in order]
        for n in notes:
            if n:
                console.print(f"[yellow]note:[/] {escape(n)}")
        console.print(words.seeds_note(items), markup=False, highlight=False, style="dim")


def column_label(column: str) -> str:
    return words.column_label(column)
