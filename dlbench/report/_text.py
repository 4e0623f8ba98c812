"""The report as GitHub markdown (one table per section), a LaTeX booktabs table for papers, and
tidy CSV (the numbers behind every table)."""

from __future__ import annotations

import io
import math
import re

import pandas as pd

from dlbench import stats
from dlbench.report._data import ReportData
from dlbench.summary import cell, column_label, config_label, fmt, fmt_interval

# --------------------------------------------------------------------------------------------
# Markdown


def _md_cell(v) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def markdown(data: ReportData) -> str:
    out = [f"# dlbench report: {data.title}", ""]
    for f in data.folders:
        out += [f"> {'**' + f.name + '**: ' if data.several else ''}{n}" for n in f.notes]
    out += ["", "## What ran", "", md_table(
        ["folder", "trials", "ok", "diverged", "failed", "engines", "training time (s, summed)"],
        [[f.name, sum(f.counts.values()), f.counts.get("ok", 0), f.counts.get("diverged", 0), f.counts.get("failed", 0),
          ", ".join(f"{n} {e}" for e, n in f.engines.items()), f"{f.trial_seconds:.1f}"] for f in data.folders])]
    hows = list(dict.fromkeys(b.how for b in data.best))
    confirmed = any(b.confirmed for b in data.best)
    several = len({(b.sweep, b.dataset) for b in data.best}) > 1
    rows = []
    for b in data.best:
        row = ([b.sweep] if data.several else []) + [b.dataset, b.name, config_label(b.config, data.hypers),
                                                     b.report["n"], fmt(b.report["mean"]),
                                                     fmt_interval(b.report["ci_low"], b.report["ci_high"]),
                                                     column_label(b.selection.report)]
        if confirmed:
            row.append(f"{fmt(b.tuning['mean'])} ({b.tuning['n']})" if b.tuning else "")
        rows.append(row)
    header = (["folder"] if data.several else []) + ["dataset", "optimizer", "configuration", "N", "mean", "95% CI",
                                                     "metric"] + (["tuning mean (N)"] if confirmed else [])
    out += ["", "## Best configuration per optimizer", "", md_table(header, rows), ""]
    out += [f"{h[0].upper()}{h[1:]}." for h in hows]
    out += ["", data.seeds_note[0].upper() + data.seeds_note[1:] + "."]
    out += [f"- note: {n}" for n in (stats.edge_note(b, several) for b in data.best) if n]
    out += ["", "## Pairwise comparisons", ""]
    if data.comparisons:
        out.append(md_table(["dataset", "A", "B", "mean(A) - mean(B)", "95% CI", "P(A better)", "verdict"],
                            [[c.dataset, c.a, c.b, c.diff_text(), c.interval_text(), f"{c.p_better:.2f}",
                              c.conclusion()] for c in data.comparisons]))
    else:
        out.append(md_table(["dataset", "note"], [[b.dataset, "one optimizer: nothing to compare"] for b in data.best]))
    cfg = data.configs
    keys = [c for c in stats.config_columns(cfg) if cfg[c].nunique(dropna=True) > 1 or c in ("dataset", "optimizer")]
    m = data.metrics[0]
    out += ["", "## All configurations", "", md_table(
        [*keys, "chosen", "N", column_label(m), "95% CI"],
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


def latex(data: ReportData) -> str:
    """One booktabs table: optimizers × (folder and) dataset, each cell the mean with its 95% CI
    as +/− offsets; the best per column in bold (by the metric's direction)."""
    cols = list(dict.fromkeys((b.sweep, b.dataset) for b in data.best))
    opts = sorted({b.name for b in data.best})
    cell = {(b.name, b.sweep, b.dataset): b for b in data.best}
    best_in = {}
    for col in cols:
        items = [b for b in data.best if (b.sweep, b.dataset) == col and math.isfinite(b.report["mean"])]
        if items:
            pick = max if items[0].selection.report_higher else min
            best_in[col] = pick(items, key=lambda b: b.report["mean"]).name
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
            text = f"{mean:.4f}"
            if best_in.get(col) == o:
                text = rf"\mathbf{{{text}}}"
            if math.isfinite(lo):
                text += f"^{{+{hi - mean:.4f}}}_{{-{mean - lo:.4f}}}"
            cells.append(f"${text}$")
        lines.append(tex_escape(o) + " & " + " & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\caption{" + tex_escape(caption(data)) + "}",
              r"\label{tab:dlbench-" + re.sub(r"[^A-Za-z0-9-]", "-", data.title)[:40] + "}", r"\end{table}"]
    return "% dlbench report (needs \\usepackage{booktabs})\n" + "\n".join(lines) + "\n"


def caption(data: ReportData) -> str:
    words = list(dict.fromkeys(stats.metric_words(b.selection.report) for b in data.best))
    hows = list(dict.fromkeys(b.how for b in data.best))
    ns = sorted({b.report["n"] for b in data.best})
    n = f"N = {ns[0]}" if len(ns) == 1 else f"N = {ns[0]}-{ns[-1]}"
    fresh = "fresh seeds that took no part in choosing" if all(b.confirmed for b in data.best) else \
        "the seeds that also chose the configuration"
    return (f"{'; '.join(words).capitalize()}: mean over {n} seeds ({fresh}), with the 95% percentile-bootstrap "
            f"confidence interval as +/- offsets; best per column in bold. {'; '.join(hows).capitalize()}.")


# --------------------------------------------------------------------------------------------
# CSV


def csv_configs(data: ReportData) -> str:
    """One row per configuration: its keys, `chosen`, and for each metric n, mean, std, ci_low,
    ci_high (columns `<metric>_<statistic>`), exactly as dlbench.stats.group_stats gives them."""
    buf = io.StringIO()
    data.configs.to_csv(buf, index=False)
    return buf.getvalue()


def csv_pairs(data: ReportData) -> str:
    rows = [{"sweep": c.sweep, "dataset": c.dataset, "a": c.a, "b": c.b, "metric": c.metric, "n_a": c.n_a,
             "n_b": c.n_b, "diff": c.diff, "ci_low": c.ci_low, "ci_high": c.ci_high, "p_a_better": c.p_better,
             "verdict": c.verdict, "seeds_needed": c.seeds_needed} for c in data.comparisons]
    buf = io.StringIO()
    pd.DataFrame(rows, columns=["sweep", "dataset", "a", "b", "metric", "n_a", "n_b", "diff", "ci_low", "ci_high",
                                "p_a_better", "verdict", "seeds_needed"]).to_csv(buf, index=False)
    return buf.getvalue()
