"""The html report: one self-contained file (inline CSS, inline SVG figures, a few lines of
inline JS for sortable tables; no network, no server, no CDN), laid out by a jinja2 template."""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path

import pandas as pd

from dlbench import __version__, stats, words
from dlbench.report._data import ReportData
from dlbench.store import config_columns
from dlbench.summary import cell, fmt, fmt_ci, fmt_interval

TRIAL_COLUMNS = ("sweep", "dataset", "optimizer", "lr", "batch_size", "epochs", "seed", "stage", "status",
                 "diverged_epoch", "best_epoch", "best_val_acc", "best_val_loss", "test_acc_at_best_val",
                 "test_loss_at_best_val", "test_r2_at_best_val", "final_test_loss", "engine", "wall_time")


def svg(fig, n: int) -> str:
    """A matplotlib figure as an inline <svg> element; its ids get a per-figure prefix so that
    several figures can share one page."""
    from dlbench.plots._common import paper_style

    buf = io.StringIO()
    with paper_style():
        fig.savefig(buf, format="svg")  # the figures lay themselves out (constrained layout): one draw, not two
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r'id="([^"]+)"', rf'id="f{n}-\1"', text)
    text = re.sub(r'url\(#([^)]+)\)', rf'url(#f{n}-\1)', text)
    text = re.sub(r'href="#([^"]+)"', rf'href="#f{n}-\1"', text)
    return re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)


def page_wide(svg_text: str) -> bool:
    """A figure drawn at a page's width (small multiples, the curves) takes a whole row of the
    page: in half a row its text would be read at half its size."""
    from dlbench.plots._common import PAGE_IN

    m = re.search(r'<svg[^>]*\bwidth="([\d.]+)pt"', svg_text)
    return bool(m) and float(m.group(1)) >= 0.9 * PAGE_IN * 72


def _tag_class(c: stats.Comparison) -> str:
    return {"a": "better", "b": "better", "none": "same"}.get(c.verdict, "few")


def groups(data: ReportData) -> list[dict]:
    """The best configurations and comparisons of each (folder, dataset), with their notes."""
    out = []
    keys = list(dict.fromkeys((b.sweep, b.dataset) for b in data.best))
    for sweep, dataset in keys:
        best = [b for b in data.best if (b.sweep, b.dataset) == (sweep, dataset)]
        sel = best[0].selection
        best.sort(key=lambda b: (-b.report["mean"] if sel.report_higher else b.report["mean"], b.name))
        pairs = [c for c in data.comparisons if (c.sweep, c.dataset) == (sweep, dataset)]
        ties = [c.b if c.a == best[0].name else c.a for c in pairs
                if best[0].name in (c.a, c.b) and c.verdict in ("none", "n/a")]
        cols = config_columns(data.trials)
        notes = [words.family_note(pairs), words.resolution_note(best[0])]
        notes += [words.tie_note(b, cols) for b in best] + [words.edge_note(b) for b in best]
        out.append({"title": f"{sweep}: {dataset}" if data.several else dataset, "dataset": dataset, "ties": ties,
                    "best": best, "leader": best[0], "leader_config": words.fmt_config(best[0].config, data.hypers),
                    "metric_words": words.metric_words(sel.report),
                    "how": "; ".join(dict.fromkeys(words.best_how(b) for b in best)),
                    "report_short": words.column_label(sel.report), "select_short": words.column_label(sel.select),
                    "confirmed": any(b.confirmed for b in best), "diverged": any(b.diverged for b in best),
                    "stopped": any(b.counts.get("stopped") for b in best),
                    "comparisons": pairs, "notes": [n for n in notes if n]})
    return out


def render_svgs(jobs: list[tuple]) -> list[str]:
    """[(draw, info, n)] -> the figures as inline SVG. Runs in the report's figure process too."""
    return [svg(draw(info), n) for draw, info, n in jobs]


def render(data: ReportData) -> str:
    """The page, its figures drawn from data.figures."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent), autoescape=True,
                             trim_blocks=False, lstrip_blocks=False, undefined=jinja2.StrictUndefined)
    svgs = render_svgs([(f.draw, f.info, i) for i, f in enumerate(data.figures)])
    figures = [{"key": f.key, "title": f.title, "caption": f.caption, "svg": s, "wide": page_wide(s)}
               for f, s in zip(data.figures, svgs, strict=True)]
    configs = data.configs
    keys = data.config_keys
    config_metrics = data.metrics[:2]
    trial_cols = [c for c in TRIAL_COLUMNS if c in data.trials and (
        data.trials[c].notna().any() and (c not in ("sweep", "stage") or data.trials[c].nunique() > 1))]
    numeric = {c for c in trial_cols if pd.api.types.is_numeric_dtype(data.trials[c])}
    from dlbench.report._text import budget_rows, scoreboard_rows, to_target_rows

    sb = data.scoreboard
    scoreboard_header, sb_rows = scoreboard_rows(data)
    problem_rows = []
    for p in sb.problems:
        items = [b for b in data.best if stats.problem_of(b, data.several) == p]
        row = [p, words.column_label(items[0].selection.report)]
        for o in sb.optimizers:
            v = sb.means.loc[p, o]
            mark = ("*" if sb.ranks.loc[p, o] == sb.ranks.loc[p].min() else "=" if o in sb.leaders[p] else "")
            row.append(f"{fmt(v)} {mark}".strip() if v == v else "")
        problem_rows.append(row)
    headline = [words.pair_summary(sb, sb.optimizers[0], o) for o in sb.optimizers[1:]] if data.focus is None else \
        [words.pair_summary(sb, data.focus, o) for o in sb.optimizers if o != data.focus]
    budget_header, b_rows = budget_rows(data)
    target_header, target_rows = to_target_rows(data)
    return env.get_template("report.html.j2").render(
        target_header=target_header, target_rows=target_rows,
        scoreboard_header=scoreboard_header, scoreboard_rows=sb_rows, problem_rows=problem_rows,
        headline=headline, budget_header=budget_header, budget_rows=b_rows,
        budget=[words.budget_sentence(p, lead) for p, lead in data.budgets.leaders.items()],
        edges=words.edge_words({s.optimizer: s.at_edge for s in sb.standings if s.at_edge}),
        data=data, version=__version__, written=time.strftime("%Y-%m-%d %H:%M"), groups=groups(data),
        figures=figures, fmt=fmt, ci=lambda d: fmt_ci(d, data.method), interval=fmt_interval,
        verdict=words.verdict_words, tag_class=_tag_class, show=cell, short=words.column_label, w=words,
        ci_words=words.CI_WORDS[data.method], diff_words=words.DIFF_WORDS[data.method],
        min_n=stats.MIN_N[data.method],
        config_label=lambda b: words.fmt_config(b.config, data.hypers),
        env_json=lambda e: json.dumps(e, indent=2, sort_keys=True, default=str),
        config_cols=keys, config_metrics=config_metrics, config_rows=configs.to_dict("records"),
        trial_cols=trial_cols, trial_rows=data.trials[trial_cols].to_dict("records"), numeric=numeric)
