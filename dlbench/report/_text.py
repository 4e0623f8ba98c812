"""The report as GitHub markdown (one table per section), a LaTeX booktabs table for papers, and
tidy CSV (the numbers behind every table)."""

from __future__ import annotations

import io
import math
import re

import pandas as pd

from dlbench import stats, words
from dlbench.report._data import ReportData
from dlbench.store import config_columns
from dlbench.summary import cell, fmt, fmt_interval

# --------------------------------------------------------------------------------------------
# Markdown


def _md_cell(v) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def scoreboard_rows(data: ReportData) -> tuple[list[str], list[list]]:
    """The scoreboard as a table: one row per optimizer (best mean rank first); the 'vs' columns
    headed by the short names of words.opponent_labels."""
    sb = data.scoreboard
    short = words.opponent_labels(sb.optimizers)
    header = ["optimizer", "best or tied", "mean rank [95% CI]", "profile area",
              *(f"vs {short[o]}" for o in sb.optimizers)]
    rows = [[s.optimizer, f"{s.best_or_tied} of {s.problems}", words.rank_text(s), fmt(s.profile_area, 2),
             *("-" if o == s.optimizer else words.record_text(sb.record(s.optimizer, o)) for o in sb.optimizers)]
            for s in sb.standings]
    return header, rows


def budget_rows(data: ReportData) -> tuple[list[str], list[list]]:
    """Per problem and optimizer: its configurations, the expected best of 1, of half of them, of
    all, the test number of the pick, and its tunability."""
    header = ["problem", "optimizer", "configs", "expected best of 1", "of n/2", "of n (the best)",
              "test number of the best-of-1 pick", "tunability (k within 1%)"]
    rows = []
    for c in data.budgets.curves:
        half = max(1, c.n // 2)
        rows.append([c.problem, c.optimizer, c.n, fmt(c.expected[0]), fmt(c.expected[half - 1]),
                     fmt(c.expected[-1]), fmt(c.report_expected[0]), c.tunability])
    return header, rows


def to_target_rows(data: ReportData) -> tuple[list[str], list[list]]:
    """Per problem and optimizer: the target, the fewest steps and seconds to it."""
    header = ["problem", "target", "optimizer", "steps", "seconds"]
    rows = [[r.problem, words.target_text(r), r.optimizer, words.steps_text(r.steps), words.seconds_text(r.seconds)]
            for r in data.to_target]
    return header, rows


def markdown(data: ReportData) -> str:
    out = [f"# dlbench report: {data.title}", ""]
    for f in data.folders:
        out += [f"> {'**' + f.name + '**: ' if data.several else ''}{n}" for n in f.notes]
    if data.scoreboard is not None:
        out += ["", "## Scoreboard", "", md_table(*scoreboard_rows(data)), "", words.SCOREBOARD_WORDS[0].upper()
                + words.SCOREBOARD_WORDS[1:] + "."]
        edges = words.edge_words({s.optimizer: s.at_edge for s in data.scoreboard.standings if s.at_edge})
        if edges:
            out += ["", f"- note: {edges}"]
    if data.focus_rows:
        out += ["", f"## {data.focus} against each other optimizer", "", md_table(
            ["problem", "other", f"mean({data.focus}) - mean(other) [{words.INTERVAL_HEADER}]", "verdict"],
            [[r.problem, r.opponent, words.focus_diff(r), words.focus_outcome(r)] for r in data.focus_rows])]
    if data.budgets is not None and data.budgets.curves:
        out += ["", "## Tuning budget", "", f"Expected best validation number of k configurations drawn at random "
                f"without replacement from those swept ({words.search_words(data.search)}).", ""]
        out += [f"- {words.budget_sentence(p, lead)}" for p, lead in data.budgets.leaders.items()]
        out += ["", md_table(*budget_rows(data))]
    if data.to_target:
        out += ["", "## Steps and seconds to the target", "", words.TO_TARGET_CAPTION[0].upper()
                + words.TO_TARGET_CAPTION[1:] + ".", "", md_table(*to_target_rows(data))]
    statuses = ["ok", "diverged", *(["stopped"] if any(f.counts.get("stopped") for f in data.folders) else []),
                "failed"]
    out += ["", "## What ran", "", md_table(
        ["folder", "trials", *statuses, "engines", "training time (s, summed)"],
        [[f.name, sum(f.counts.values()), *(f.counts.get(s, 0) for s in statuses),
          ", ".join(f"{n} {e}" for e, n in f.engines.items()), f"{f.trial_seconds:.1f}"] for f in data.folders])]
    hows = list(dict.fromkeys(words.best_how(b) for b in data.best))
    confirmed = any(b.confirmed for b in data.best)
    diverged = any(b.diverged for b in data.best)
    several = len({(b.sweep, b.dataset) for b in data.best}) > 1
    rows = []
    for b in data.best:
        row = ([b.sweep] if data.several else []) + [b.dataset, b.name, words.fmt_config(b.config, data.hypers),
                                                     b.report["n"], fmt(b.report["mean"]),
                                                     fmt_interval(b.report["ci_low"], b.report["ci_high"]),
                                                     words.column_label(b.selection.report)]
        if diverged:
            row.append(words.diverged_text(b) or "")
        if confirmed:
            row.append(f"{fmt(b.tuning['mean'])} ({b.tuning['n']})" if b.tuning else "")
        rows.append(row)
    header = (["folder"] if data.several else []) + ["dataset", "optimizer", "configuration", "N", "mean", "95% CI",
                                                     "metric"] + (["diverged"] if diverged else []) + (
        ["tuning mean (N)"] if confirmed else [])
    out += ["", "## Best configuration per optimizer", "", md_table(header, rows), ""]
    out += [f"{h[0].upper()}{h[1:]}." for h in hows]
    out += [f"CI: {words.CI_WORDS[data.method]} over seeds.", ""]
    out += [data.seeds_note[0].upper() + data.seeds_note[1:] + "."]
    cols = config_columns(data.trials)
    notes = []
    for sweep, dataset in dict.fromkeys((b.sweep, b.dataset) for b in data.best):
        items = [b for b in data.best if (b.sweep, b.dataset) == (sweep, dataset)]
        pairs = [c for c in data.comparisons if (c.sweep, c.dataset) == (sweep, dataset)]
        where = f"{dataset}: " if several else ""
        notes += [where + n for n in (words.family_note(pairs), words.resolution_note(items[0])) if n]
        notes += [n for n in (words.tie_note(b, cols) for b in items) if n]
    notes += [n for n in (words.edge_note(b, several) for b in data.best) if n]
    out += [f"- note: {n}" for n in notes]
    out += ["", "## Pairwise comparisons", ""]
    if data.comparisons:
        out.append(md_table(["dataset", "A", "B", "mean(A) - mean(B)", words.INTERVAL_HEADER, "P(A better)", "p",
                             "p (Holm)", "verdict"],
                            [[c.dataset, c.a, c.b, words.diff_text(c), words.interval_text(c), f"{c.p_better:.2f}",
                              words.p_text(c.p_value), words.p_text(c.p_adjusted), words.conclusion(c)]
                             for c in data.comparisons]))
    else:
        out.append(md_table(["dataset", "note"], [[b.dataset, "one optimizer: nothing to compare"] for b in data.best]))
    cfg = data.configs
    keys = data.config_keys
    m = data.metrics[0]
    out += ["", "## All configurations", "", md_table(
        [*keys, "chosen", "N", words.column_label(m), "95% CI"],
        [[cell(r[c], 6) for c in keys] + [cell(r["chosen"]), int(r[f"{m}_n"]), fmt(r[f"{m}_mean"]),
                                          fmt_interval(r[f"{m}_ci_low"], r[f"{m}_ci_high"])]
         for r in cfg.to_dict("records")])]
    bad = [(f.name, name, f"diverged at epoch {e}") for f in data.folders for name, e in f.diverged]
    bad += [(f.name, name, f"failed: {why}") for f in data.folders for name, why in f.failed]
    if bad:
        out += ["", "## Diverged and failed trials", "", md_table(["folder", "trial", "what happened"], bad)]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------
# LaTeX


TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
               "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def tex_escape(text: str) -> str:
    return re.sub(r"[\\&%$#_{}~^]", lambda m: TEX_SPECIAL[m.group()], str(text))


def tex_number(v: float, digits: int = 4) -> str:
    """A number for math mode with `digits` significant digits: 0.9722, 0.000123, 1.2\\times10^{-7}
    (a fixed number of decimals would print a small loss as 0.0000)."""
    text = f"{v:.{digits}g}"
    if "e" in text:
        mant, exp = text.split("e")
        return rf"{mant}\times10^{{{int(exp)}}}"
    return text


def latex(data: ReportData) -> str:
    """One booktabs table: optimizers × (folder and) dataset, each cell the mean with its 95% CI
    as +/− offsets; in bold, the best mean per column and every optimizer the comparisons cannot
    tell apart from it (the Holm-adjusted verdict is not 'better')."""
    cols = list(dict.fromkeys((b.sweep, b.dataset) for b in data.best))
    opts = sorted({b.name for b in data.best})
    cell = {(b.name, b.sweep, b.dataset): b for b in data.best}
    bold: dict[tuple, set[str]] = {}
    for col in cols:
        items = [b for b in data.best if (b.sweep, b.dataset) == col and math.isfinite(b.report["mean"])]
        if items:
            leader = stats.best_first(items)[0]
            ties = {c.b if c.a == leader.name else c.a for c in data.comparisons
                    if (c.sweep, c.dataset) == col and leader.name in (c.a, c.b) and c.verdict in ("none", "n/a")}
            bold[col] = {leader.name, *ties}
    lines = [r"\begin{table}[t]", r"\centering", r"\begin{tabular}{l" + "r" * len(cols) + "}", r"\toprule"]
    head = [tex_escape(f"{s}: {d}" if data.several else d) for s, d in cols]
    lines.append("optimizer & " + " & ".join(head) + r" \\")
    lines.append(r"\midrule")
    for o in opts:
        cells = []
        for col in cols:
            b = cell.get((o, *col))
            if b is None or not math.isfinite(b.report["mean"]):
                cells.append("--")
                continue
            mean, lo, hi = b.report["mean"], b.report["ci_low"], b.report["ci_high"]
            text = tex_number(mean)
            if o in bold.get(col, ()):
                text = rf"\mathbf{{{text}}}"
            if math.isfinite(lo):
                text += f"^{{+{tex_number(hi - mean, 2)}}}_{{-{tex_number(mean - lo, 2)}}}"
            cells.append(f"${text}$")
        lines.append(tex_escape(o) + " & " + " & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\caption{" + tex_escape(caption(data)) + "}",
              r"\label{tab:dlbench-" + re.sub(r"[^A-Za-z0-9-]", "-", data.title)[:40] + "}", r"\end{table}"]
    return "% dlbench report (needs \\usepackage{booktabs})\n" + "\n".join(lines) + "\n" + latex_scoreboard(data)


def latex_scoreboard(data: ReportData) -> str:
    """The scoreboard as a second booktabs table (with several problems)."""
    sb = data.scoreboard
    if sb is None or len(sb.problems) < 2:
        return ""
    header, rows = scoreboard_rows(data)
    lines = ["", r"\begin{table}[t]", r"\centering", r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}",
             r"\toprule", " & ".join(tex_escape(h) for h in header) + r" \\", r"\midrule"]
    lines += [" & ".join(tex_escape(str(c)) for c in row) + r" \\" for row in rows]
    text = (f"Scoreboard over {len(sb.problems)} problems: " + words.SCOREBOARD_WORDS + ".")
    lines += [r"\bottomrule", r"\end{tabular}", r"\caption{" + tex_escape(text) + "}",
              r"\label{tab:dlbench-scoreboard}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def caption(data: ReportData) -> str:
    what = list(dict.fromkeys(words.metric_words(b.selection.report) for b in data.best))
    hows = list(dict.fromkeys(words.best_how(b) for b in data.best))
    ns = sorted({b.report["n"] for b in data.best})
    n = f"N = {ns[0]}" if len(ns) == 1 else f"N = {ns[0]}-{ns[-1]}"
    fresh = "fresh seeds that took no part in choosing" if all(b.confirmed for b in data.best) else \
        "the seeds that also chose the configuration"
    k = max((c.family for c in data.comparisons), default=0)
    family = f" over the {k} pairs of each dataset" if k > 1 else ""
    return (f"{'; '.join(what).capitalize()}: mean over {n} seeds ({fresh}), with the {words.CI_WORDS[data.method]} "
            f"as +/- offsets. In bold: the best mean per column and every optimizer not distinguishable from it "
            f"({words.DIFF_WORDS[data.method]}, Holm-adjusted{family}, 5% level). {'; '.join(hows).capitalize()}.")


# --------------------------------------------------------------------------------------------
# CSV


def csv_configs(data: ReportData) -> str:
    """One row per configuration: its keys, `chosen`, and for each metric n, mean, std, ci_low,
    ci_high (columns `<metric>_<statistic>`), exactly as dlbench.stats.group_stats gives them."""
    buf = io.StringIO()
    data.configs.to_csv(buf, index=False)
    return buf.getvalue()


def csv_scoreboard(data: ReportData) -> str:
    """One row per ordered pair of optimizers: optimizer, opponent, wins, ties, losses."""
    rows = [{"optimizer": r.optimizer, "opponent": r.opponent, "wins": r.wins, "ties": r.ties, "losses": r.losses}
            for r in data.scoreboard.records]
    buf = io.StringIO()
    pd.DataFrame(rows, columns=["optimizer", "opponent", "wins", "ties", "losses"]).to_csv(buf, index=False)
    return buf.getvalue()


def csv_budget(data: ReportData) -> str:
    """One row per problem, optimizer and k: the expected best of k configurations (the selection
    metric) and its 95% band."""
    rows = [{"dataset": c.problem, "optimizer": c.optimizer, "k": k, "expected": e, "low": lo, "high": hi}
            for c in data.budgets.curves
            for k, e, lo, hi in zip(c.k, c.expected, c.low, c.high, strict=True)]
    buf = io.StringIO()
    pd.DataFrame(rows, columns=["dataset", "optimizer", "k", "expected", "low", "high"]).to_csv(buf, index=False)
    return buf.getvalue()


def csv_to_target(data: ReportData) -> str:
    """One row per problem and optimizer: the validation target, the fewest steps and seconds to it."""
    rows = [{"problem": r.problem, "optimizer": r.optimizer, "metric": r.metric, "target": r.target,
             "steps": r.steps, "seconds": r.seconds} for r in data.to_target]
    buf = io.StringIO()
    columns = ["problem", "optimizer", "metric", "target", "steps", "seconds"]
    pd.DataFrame(rows, columns=columns).to_csv(buf, index=False)
    return buf.getvalue()


def csv_pairs(data: ReportData) -> str:
    """Every pair: ci_low..ci_high at the verdict's level (ci_level: it excludes 0 exactly when the
    verdict is 'better'), and the unadjusted 95% interval (ci95_low..ci95_high)."""
    columns = ["sweep", "dataset", "a", "b", "metric", "n_a", "n_b", "diff", "ci_low", "ci_high", "ci_level",
               "ci95_low", "ci95_high", "p_value", "p_holm", "family", "p_a_better", "verdict", "seeds_needed",
               "method"]
    rows = [{"sweep": c.sweep, "dataset": c.dataset, "a": c.a, "b": c.b, "metric": c.metric, "n_a": c.n_a,
             "n_b": c.n_b, "diff": c.diff, "ci_low": c.ci_low, "ci_high": c.ci_high, "ci_level": c.ci_level,
             "ci95_low": c.ci95_low, "ci95_high": c.ci95_high, "p_value": c.p_value,
             "p_holm": c.p_adjusted, "family": c.family, "p_a_better": c.p_better, "verdict": c.verdict,
             "seeds_needed": c.seeds_needed, "method": c.method} for c in data.comparisons]
    buf = io.StringIO()
    pd.DataFrame(rows, columns=columns).to_csv(buf, index=False)
    return buf.getvalue()
