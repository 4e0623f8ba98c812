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


def shown_hypers(trials: pd.DataFrame) -> list[str]:
    """The hyperparameters that name a configuration here: lr, batch size and the length (epochs,
    or max_steps for step budgets) always, and any other that varies within an optimizer's tuning
    on one dataset (stats.varying)."""
    steps = "max_steps" in trials and trials["max_steps"].notna().any()
    length = ("max_steps", "epochs") if steps and trials["max_steps"].isna().any() else (
        ("max_steps",) if steps else ("epochs",))
    return stats.varying(trials, within=("sweep", "dataset", "optimizer"), always=("lr", "batch_size", *length),
                         exclude=("seed", "stage", "dataset", "optimizer", "data", "optimizer_class",
                                  *(("epochs",) if length == ("max_steps",) else ())))


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
                   method: str = stats.DEFAULT_CI, where: str | None = None, history: pd.DataFrame | None = None,
                   pairs: bool = False, focus: str | None = None, search: str | None = None,
                   extended: dict | None = None) -> None:
    """The answer first: the scoreboard (wins, ties and losses of every pair over the problems,
    best-or-tied counts, mean ranks, profile areas), the focus optimizer against each other one
    (`focus`), each problem's best means in one table (at the end of a sweep, only without a
    focus: the focus table answers there), and who leads as the tuning budget grows.
    Then, except at the end of a sweep of several problems (`short`), each problem's
    best-configuration table with its notes; the verdict of every pair in words with `pairs` (and
    for one problem at the end of a sweep). `search`: the kind of search that made the
    configurations (grid, random, sobol), which says what a tuning curve means; `extended`: the
    points ranges with `extend` grew by ((dataset, optimizer, key) -> count)."""
    from pathlib import Path

    best = stats.best_configs(trials, method=method)
    comparisons = stats.compare(best, method)
    folder = Path(where) if where and Path(where).is_dir() else None
    for note in words.mixed_notes(trials, folder):
        console.print(f"[yellow]note:[/] {escape(note)}")
    if not best:
        console.print("no trial finished with a number")
        return
    areas = {}
    if history is not None and len(history) and len({b.dataset for b in best}) > 1:
        costs = stats.profile_costs(trials, history).costs
        areas = stats.profile_areas(stats.performance_profile(costs)) if len(costs) else {}
    sb = stats.scoreboard(best, comparisons, areas, extended)
    render_scoreboard(sb, console)
    if focus is not None:
        render_focus(stats.focus_rows(comparisons, focus), focus, console)
    several = len(sb.problems) > 1
    if several and not (short and focus is not None):  # at a sweep's end the focus table answers; show keeps both
        render_problems(sb, best, console)
    render_budget(stats.budgets(trials), console, search)
    if not short and history is not None and len(history):
        render_to_target(stats.to_target(trials, history), console)
    if several and short:
        edges = {s.optimizer: s.at_edge for s in sb.standings if s.at_edge}
        note = words.edge_words(edges)
        if note:
            console.print(f"[yellow]note:[/] {escape(note)}")
        console.print(words.family_note(comparisons) or "", markup=False, highlight=False, style="dim")
        console.print(words.seeds_note(best), markup=False, highlight=False, style="dim")
        console.print(f"each problem's best configurations: `dlbench show {where or '<results folder>'}`; every "
                      f"pair's verdict in words: `dlbench show {where or '<results folder>'} --pairs`", markup=False,
                      highlight=False, style="dim")
        return
    render_problem_tables(trials, best, comparisons, console, env, short, method, pairs or (short and not several),
                          extended)


def render_scoreboard(sb: stats.Scoreboard, console: Console) -> None:
    """One row per optimizer, best mean rank first: best or tied, mean rank with its interval,
    profile area, and wins/ties/losses against each other optimizer."""
    n = len(sb.problems)
    title = (f"scoreboard: {len(sb.optimizers)} optimizer{'s' * (len(sb.optimizers) != 1)} on {n} problem"
             f"{'s' * (n != 1)}" + (f" ({', '.join(sb.problems)})" if n <= 8 else ""))
    table = Table(title=escape(title), caption=words.SCOREBOARD_WORDS, header_style="bold", caption_justify="left")
    table.add_column("optimizer")
    table.add_column("best or tied", justify="right")
    table.add_column("mean rank [95% CI]", justify="right")
    profile = any(np.isfinite(s.profile_area) for s in sb.standings)
    if profile:
        table.add_column("profile", justify="right")
    short = words.opponent_labels(sb.optimizers)
    for o in sb.optimizers:
        table.add_column(f"vs {short[o]}", justify="right")
    for s in sb.standings:
        cells = [s.optimizer, f"{s.best_or_tied} of {s.problems}", words.rank_text(s)]
        if profile:
            cells.append(fmt(s.profile_area, 2))
        cells += ["-" if o == s.optimizer else words.record_text(sb.record(s.optimizer, o)) for o in sb.optimizers]
        table.add_row(*map(escape, cells))
    console.print(table)


def render_problems(sb: stats.Scoreboard, best: list[stats.Best], console: Console) -> None:
    """Each problem's reported mean per optimizer: * the best, = not distinguishable from it."""
    table = Table(title="mean per problem (* best, = not distinguishable from the best)", header_style="bold")
    table.add_column("problem")
    table.add_column("metric")
    for o in sb.optimizers:
        table.add_column(o, justify="right")
    several = len({b.sweep for b in best}) > 1
    for p in sb.problems:
        items = [b for b in best if stats.problem_of(b, several) == p]
        lead = min(sb.optimizers, key=lambda o: sb.ranks.loc[p, o] if np.isfinite(sb.ranks.loc[p, o]) else np.inf)
        cells = [p, words.column_label(items[0].selection.report)]
        for o in sb.optimizers:
            v = sb.means.loc[p, o]
            mark = "" if not np.isfinite(v) else ("*" if o == lead else ("=" if o in sb.leaders[p] else ""))
            cells.append(f"{fmt(v)} {mark}".rstrip() if np.isfinite(v) else "")
        table.add_row(*map(escape, cells))
    console.print(table)


def render_to_target(rows: list[stats.ToTarget], console: Console) -> None:
    """Per problem and optimizer: the fewest steps and the fewest training seconds to the problem's
    validation target (modded-nanogpt counts steps, AlgoPerf scores time)."""
    if not rows:
        return
    table = Table(title=words.TO_TARGET_TITLE, caption=words.TO_TARGET_CAPTION, header_style="bold",
                  caption_justify="left")
    for c in ("problem", "target", "optimizer", "steps", "seconds"):
        table.add_column(c, justify="right" if c in ("steps", "seconds") else "left")
    for r in rows:
        table.add_row(*map(escape, [r.problem, words.target_text(r), r.optimizer, words.steps_text(r.steps),
                                    words.seconds_text(r.seconds)]))
    console.print(table)


def render_focus(rows: list[stats.FocusRow], focus: str, console: Console) -> None:
    if not rows:
        console.print(f"[yellow]note:[/] --focus {escape(focus)}: no comparison of it in these results")
        return
    table = Table(title=escape(f"{focus} against each other optimizer"), header_style="bold")
    for c in ("problem", "other", f"mean({focus}) - mean(other) [{words.INTERVAL_HEADER}]", "verdict"):
        table.add_column(c, justify="right" if c.startswith("mean(") else "left")
    for r in rows:
        table.add_row(*map(escape, [r.problem, r.opponent, words.focus_diff(r), words.focus_outcome(r)]))
    console.print(table)


def render_budget(budgets: stats.Budgets, console: Console, search: str | None) -> None:
    """One line per problem: who leads as the tuning budget grows."""
    if not budgets.curves:
        return
    console.print("tuning budget (expected best validation number of k configurations drawn at random; "
                  f"{words.search_words(search)}):", markup=False, highlight=False)
    for problem, lead in budgets.leaders.items():
        console.print(f"  {words.budget_sentence(problem, lead)}", markup=False, highlight=False)


def render_problem_tables(trials: pd.DataFrame, best: list[stats.Best], comparisons: list[stats.Comparison],
                          console: Console, env: dict | None, short: bool, method: str, pairs: bool,
                          extended: dict | None = None) -> None:
    """Per dataset: the best-configuration table, the notes (ties, divergence, the test split's
    resolution, a choice at the edge of its range), and with `pairs` the verdict of every pair."""
    several = trials["dataset"].nunique() > 1
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
        statuses = ("ok", "diverged", *(["stopped"] if any(b.counts.get("stopped") for b in items) else []), "failed")
        if not short:
            for c in ("configs", *statuses):
                table.add_column(c if c != "diverged" else "diverged (all)", justify="right")
        order = stats.best_first(items)
        for b in order:
            cells = [b.name, config_label(b.config, hypers), str(b.report["n"]), fmt(b.report["mean"]),
                     fmt_ci(b.report, method)]
            if any_diverged:
                cells.append(words.diverged_text(b) or "")
            if confirmed:
                cells.append(f"{fmt(b.tuning['mean'])} ({b.tuning['n']})" if b.tuning else "-")
            cells.append(fmt(b.select_mean))
            if not short:
                cells += [str(b.configs_tried), *(str(b.counts.get(s, 0)) for s in statuses)]
            table.add_row(*cells)
        console.print(table)
        mine = [c for c in comparisons if c.dataset == dataset and (c.sweep == items[0].sweep)]
        if pairs:
            for c in mine:
                console.print(words.comparison_line(c), markup=False, highlight=False)
        notes = [words.family_note(mine), words.resolution_note(order[0])]
        notes += [words.tie_note(b, config_columns(d)) for b in order]
        notes += [words.edge_note(b, with_dataset=several, extended=extended) for b in order]
        for n in notes:
            if n:
                console.print(f"[yellow]note:[/] {escape(n)}")
    console.print(words.seeds_note(best), markup=False, highlight=False, style="dim")


def column_label(column: str) -> str:
    return words.column_label(column)
