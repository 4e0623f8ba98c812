"""The summary of a sweep in a terminal (`dlbench show`, the end of `dlbench sweep`): each
optimizer at its best configuration with N and the 95% CI, then the pairwise verdicts and what
the seeds can and cannot say. Every number comes from dlbench.stats; this module lays them out."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dlbench import stats


def config_label(config: dict, columns: list[str]) -> str:
    """'lr=0.01 bs=32 epochs=10' from a configuration's columns."""
    short = {"batch_size": "bs"}
    parts = []
    for c in columns:
        v = config.get(c)
        if is_missing(v):
            continue
        parts.append(f"{short.get(c, c)}={v:.4g}" if isinstance(v, float) else f"{short.get(c, c)}={v}")
    return " ".join(parts)


def shown_hypers(trials: pd.DataFrame) -> list[str]:
    """The hyperparameters that name a configuration here: lr, batch size and epochs always, and
    any other that varies within an optimizer's tuning on one dataset."""
    out = [c for c in ("lr", "batch_size", "epochs") if c in trials]
    within = [c for c in ("sweep", "dataset", "optimizer") if c in trials]
    for c in stats.HYPER_COLUMNS:
        if c in trials and c not in out and (trials.groupby(within)[c].nunique(dropna=True) > 1).any():
            out.append(c)
    return out


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


def fmt_ci(d: dict) -> str:
    """The interval of a stats.describe() record, saying why there is none below 3 seeds."""
    if is_missing(d["ci_low"]):
        return f"n/a (N<{stats.MIN_N_FOR_CI})" if d["n"] < stats.MIN_N_FOR_CI else "n/a"
    return fmt_interval(d["ci_low"], d["ci_high"])


def cell(v, digits: int = 4) -> str:
    """A table cell: blank when missing, 'yes' or blank for a flag, numbers to `digits`."""
    if is_missing(v):
        return ""
    if isinstance(v, bool | np.bool_):
        return "yes" if v else ""
    return f"{v:.{digits}g}" if isinstance(v, float | np.floating) else str(v)


def render_summary(trials: pd.DataFrame, console: Console, env: dict | None = None, short: bool = False) -> None:
    """Per dataset: the best-configuration table and the verdict lines. `short` (the end of a
    sweep) leaves out the status counts and compares each optimizer with the leader only."""
    best = stats.best_configs(trials)
    several = trials["dataset"].nunique() > 1
    for dataset, d in trials.groupby("dataset", sort=True):
        items = [b for b in best if b.dataset == dataset]
        note = stats.no_validation_note(d, env)
        if note:
            console.print(f"[yellow]note:[/] {escape(f'{dataset}: {note}' if several else note)}")
        if not items:
            console.print(f"{dataset}: no trial finished with a number")
            continue
        sel = items[0].selection
        hypers = shown_hypers(d)
        confirmed = any(b.confirmed for b in items)
        title = "best configuration per optimizer" + (f": {dataset}" if several else "")
        how = "; ".join(dict.fromkeys(b.how for b in items))
        table = Table(title=title, caption=how, header_style="bold", caption_justify="left")
        table.add_column("optimizer")
        table.add_column("configuration")
        table.add_column("N", justify="right")
        table.add_column(column_label(sel.report), justify="right")
        table.add_column("95% CI", justify="right")
        if confirmed:
            table.add_column("tuning (N)", justify="right")
        table.add_column(column_label(sel.select) + (" (tuning)" if confirmed else ""), justify="right")
        if not short:
            for c in ("configs", "ok", "diverged", "failed"):
                table.add_column(c, justify="right")
        order = sorted(items, key=lambda b: -b.report["mean"] if sel.report_higher else b.report["mean"])
        for b in order:
            cells = [b.name, config_label(b.config, hypers), str(b.report["n"]), fmt(b.report["mean"]),
                     fmt_ci(b.report)]
            if confirmed:
                cells.append(f"{fmt(b.tuning['mean'])} ({b.tuning['n']})" if b.tuning else "-")
            cells.append(fmt(b.select_mean))
            if not short:
                cells += [str(b.configs_tried), *(str(b.counts.get(s, 0)) for s in ("ok", "diverged", "failed"))]
            table.add_row(*cells)
        console.print(table)
        comparisons = stats.compare(items)
        if short:
            leader = order[0].name
            comparisons = [c for c in comparisons if leader in (c.a, c.b)]
        for c in comparisons:
            console.print(c.line(), markup=False, highlight=False)
        for b in order:
            note = stats.edge_note(b, with_dataset=several)
            if note:
                console.print(f"[yellow]note:[/] {escape(note)}")
        console.print(stats.seeds_note(items), markup=False, highlight=False, style="dim")


def column_label(column: str) -> str:
    """A summary column as a short table header, e.g. 'test acc @ val-best'."""
    return {"test_acc_at_best_val": "test acc @ val-best", "test_loss_at_best_val": "test loss @ val-best",
            "test_r2_at_best_val": "test R² @ val-best", "best_val_acc": "val acc",
            "best_val_loss": "val loss", "final_train_acc": "final train acc",
            "final_train_eval_loss": "final train loss", "final_test_acc": "final test acc",
            "final_test_loss": "final test loss", "final_test_r2": "final test R²"}.get(column, column)
