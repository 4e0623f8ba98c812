"""What every figure shares: reading sweeps, the metric rules, the look, and saving."""

from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dlbench.errors import UserError, did_you_mean
from dlbench.schema import HISTORY_METRICS

# Okabe & Ito's colour-blind-safe palette, for categories (optimizers, sweeps).
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
MARKERS = ["o", "s", "^", "D", "v", "P", "*", "h"]
DIVERGED_MARKER = "x"  # no optimizer's marker: a diverged seed is never mistaken for a line's point
LINESTYLES = ["-", "--", ":", "-."]
COLUMN_IN = 3.5  # one column of a two-column paper
PAGE_IN = 7.2  # the full text width
METRICS = (*HISTORY_METRICS, "lr")  # what a figure may show
XS = {"epoch": "epoch", "step": "steps", "samples": "samples", "time": "time"}
X_LABELS = {"epoch": "epoch", "step": "optimizer steps", "samples": "training samples seen",
            "time": "training time (s)"}


@dataclass
class Results:
    trials: pd.DataFrame  # with a "sweep" column
    history: pd.DataFrame  # joined with config columns and "sweep"

    def of(self, trials: pd.DataFrame) -> Results:
        """These trials (a subset of ours) with their history."""
        return Results(trials, self.history[self.history["trial_id"].isin(trials["trial_id"])])

    def varying(self) -> list[str]:
        """Configuration columns with more than one value across the loaded sweeps (stats.varying:
        an optimizer's knob only if it varies within one optimizer)."""
        from dlbench.stats import varying

        return varying(self.trials)


def load(folders: list[str], read: dict | None = None) -> Results:
    """The folders' trials and history (with a sweep column, history joined with the config);
    `read`: folder -> (trials, history, env) already read, e.g. by the report's checks."""
    from dlbench import folders as results_folders
    from dlbench.store import config_columns

    ts, hs = [], []
    names = []
    for folder in folders:
        trials, history, _ = (read or {}).get(folder) or results_folders.read(folder)
        name = Path(folder).resolve().name
        while name in names:  # two folders with one name: keep them apart
            name += "'"
        names.append(name)
        if trials.empty:
            raise UserError(f"{folder!r} has no finished trials yet; allowed: a results folder with at least one trial")
        trials = trials.assign(sweep=name)
        cols = ["trial_id", "sweep", "status", "diverged_epoch", "best_epoch", *config_columns(trials), "seed"]
        cols = list(dict.fromkeys(c for c in cols if c in trials))
        hist = history.drop(columns=[c for c in cols if c in history and c != "trial_id"])
        hist = hist.merge(trials[cols], on="trial_id", how="inner")
        hist = hist.sort_values(["trial_id", "epoch"])
        hist["time"] = hist.groupby("trial_id")["train_time"].cumsum()
        ts.append(trials)
        hs.append(hist)
    return Results(pd.concat(ts, ignore_index=True), pd.concat(hs, ignore_index=True))


def check_metric(metric: str, results: Results) -> str:
    if metric not in METRICS:
        raise UserError(f"--metric {metric!r} is unknown{did_you_mean(metric, METRICS)}; allowed: {', '.join(METRICS)}")
    if results.history[metric].isna().all():
        has = [m for m in METRICS if results.history[m].notna().any()]
        raise UserError(f"--metric {metric!r} has no values in these results; allowed here: {', '.join(has)}")
    return metric


def default_metric(results: Results) -> str:
    return "test_acc" if results.history["test_acc"].notna().any() else "test_loss"


def higher_is_better(metric: str) -> bool:
    from dlbench.schema import higher_is_better as direction

    return bool(direction(metric))


def label(metric: str) -> str:
    from dlbench.words import metric_words

    return metric_words(metric)


# --------------------------------------------------------------------------------------------
# Several problems: one panel each


MAX_PANELS = 12  # no default figure has more


def problems(results: Results) -> list[tuple[str, pd.DataFrame]]:
    """(name, trials) of each problem the results hold: a dataset of a results folder (with the
    folder's name in front when several are read together)."""
    t = results.trials
    keys = [c for c in ("sweep", "dataset") if c in t and (c == "dataset" or t[c].nunique() > 1)]
    return [(" ".join(str(k) for k in (key if isinstance(key, tuple) else (key,))), g)
            for key, g in t.groupby(keys, sort=True)]


def problems_varying(results: Results, axes: tuple[str, ...]) -> list[tuple[str, pd.DataFrame]]:
    """The problems whose own trials take several values on each of `axes` (a heatmap's)."""
    return [(n, t) for n, t in problems(results) if all(a in t and t[a].nunique() > 1 for a in axes)]


def panel_title(name: str, width: int = 32) -> str:
    """A panel's title, wrapped so that it fits a panel of a three-column page-wide figure (2.4 in
    at 8 points: about 34 characters)."""
    import textwrap

    return "\n".join(textwrap.wrap(name, width)) or name


TITLE_PT = 8.5  # the figure's title (style() sets it)


def fig_title(text: str, width_in: float) -> str:
    """A figure's title wrapped to the figure's width (a character is about 0.6 of the font size
    wide; wide letters and symbols are covered by wrapping at 90% of the width)."""
    import textwrap

    per_inch = 72 / (0.6 * TITLE_PT)
    return "\n".join(textwrap.wrap(text, max(24, int(0.9 * width_in * per_inch))))


def legend_below(fig, handles=None, labels=None):
    """The figure's legend under its panels, in as many columns as fit the figure's width."""
    if handles is None:
        handles, labels = fig.axes[0].get_legend_handles_labels()
        for ax in fig.axes[1:]:
            h, lab = ax.get_legend_handles_labels()
            handles, labels = handles + h, labels + lab
    if labels is None:
        labels = [h.get_label() for h in handles]
    width_in = 0.95 * fig.get_size_inches()[0]
    return fig.legend(handles, labels, loc="outside lower center", ncols=legend_cols(labels, width_in),
                      frameon=False)


def legend_cols(labels: list[str], width_in: float, most: int = 4) -> int:
    """The most columns (up to `most`) whose widest entries fit `width_in`: matplotlib fills a
    legend column by column, each as wide as its widest entry (text at 7 points, a handle and a gap)."""
    n = len(labels)
    for cols in range(min(most, n), 1, -1):
        per = math.ceil(n / cols)
        widths = [max(len(str(lab)) for lab in labels[i:i + per]) * 0.6 * 7 / 72 + 0.6 for i in range(0, n, per)]
        if sum(widths) <= width_in:
            return cols
    return 1


def task_metric(task: str) -> str:
    """The test metric a task reports (what a figure shows by default): accuracy, R², or loss."""
    return "test_acc" if task in ("binary", "multiclass") else ("test_r2" if task == "regression" else "test_loss")


def metric_for(trials: pd.DataFrame, history: pd.DataFrame, metric: str | None) -> str:
    """The metric a problem's panel shows: the one asked for where the problem has it, else its
    task's own (a regression problem has no accuracy)."""
    from dlbench.stats import task_of

    if metric is not None and history[metric].notna().any():
        return metric
    task = task_of(trials)
    if metric is not None and metric.endswith("_acc") and task not in ("binary", "multiclass"):
        metric = metric.replace("_acc", "_r2" if task == "regression" else "_loss")
        if history[metric].notna().any():
            return metric
    return task_metric(task)


def default_stage(results: Results) -> str | None:
    """Where a protocol ran, figures show its confirm stage (its numbers are the results); else all."""
    t = results.trials
    return "confirm" if "stage" in t and (t["stage"] == "confirm").any() else None


def restrict(results: Results, datasets: list[str] | None = None, stage: str | None = None) -> Results:
    """The results of some datasets, or of one stage ("tune" or "confirm")."""
    t = results.trials
    if datasets:
        unknown = [d for d in datasets if d not in set(t["dataset"])]
        if unknown:
            names = sorted(set(t["dataset"]))
            raise UserError(f"--dataset {unknown[0]!r} is not in these results{did_you_mean(unknown[0], names)}; "
                            f"allowed: {', '.join(names)}")
        t = t[t["dataset"].isin(datasets)]
    if stage is not None and "stage" in t:
        if not (t["stage"] == stage).any():
            raise UserError(f"--stage {stage!r}: these results have no {stage} trials; allowed: "
                            f"{', '.join(sorted(set(t['stage'])))}")
        t = t[t["stage"] == stage]
    return results.of(t)


def tuning_stage(results: Results) -> Results:
    """Under a protocol, the tuning stage: where the lr and batch size vary (the confirm stage
    holds one configuration per optimizer). Without one, the results as they are."""
    t = results.trials
    if "stage" in t and (t["stage"] == "tune").any() and (t["stage"] == "confirm").any():
        return restrict(results, stage="tune")
    return results


def optimizer_styles(names: list[str]) -> dict[str, tuple[str, str, str]]:
    """One colour, marker and line style per optimizer, the same in every panel and figure."""
    return {n: (OKABE_ITO[i % len(OKABE_ITO)], MARKERS[i % len(MARKERS)], LINESTYLES[(i // len(OKABE_ITO)) % 4])
            for i, n in enumerate(sorted(names))}


def grid_of(n: int, cols: int = 3) -> tuple[int, int]:
    cols = max(1, min(n, cols))
    return math.ceil(n / cols), cols


STATS = ("best", "final")
STAT_WORDS = {"final": "final", "best": "at the validation-chosen epoch"}


def final_or_best(trials_hist: pd.DataFrame, metric: str, stat: str) -> pd.Series:
    """Per trial: the metric at the epoch chosen on validation ('best', the trial's best_epoch;
    the last epoch for trials without a validation split) or at its last epoch ('final'). The
    best of the plotted metric over epochs would pick the epoch on that metric, test included.

    The rule for diverged trials is the tables' (dlbench.stats): a diverged trial counts with its
    numbers at the validation-chosen epoch, before it diverged; it has no final numbers (NaN)."""
    h = trials_hist.sort_values("epoch")
    last = h.groupby("trial_id")[metric].last()
    status = h.groupby("trial_id")["status"].last()
    final = last.where(status == "ok")
    if stat == "final" or "best_epoch" not in h:
        return final
    chosen = h[h["epoch"] == h["best_epoch"]].groupby("trial_id")[metric].last()
    return chosen.combine_first(final)


AXIS_WORDS = {"batch_size": "bs", "weight_decay": "wd"}  # short names of axes in legends


def fmt_value(v) -> str:
    if isinstance(v, float | np.floating):
        return f"{v:.4g}"
    return str(v)


# Paper style: small fonts that stay legible at column width, light grid, no top/right spines.
PAPER = {
    "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7, "xtick.labelsize": 7,
    "ytick.labelsize": 7, "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
    "grid.alpha": 0.3, "grid.linewidth": 0.5, "lines.linewidth": 1.2, "savefig.dpi": 200,
    "figure.titlesize": TITLE_PT, "svg.fonttype": "none", "pdf.fonttype": 42,
}


@contextlib.contextmanager
def paper_style():
    """The paper style while drawing and saving a figure, and matplotlib's own settings back after
    (nothing global changes: no backend chosen, no rcParams left behind)."""
    import matplotlib

    with matplotlib.rc_context(PAPER):
        yield


def styled(draw):
    """A figure's drawing step, run in the paper style."""

    @functools.wraps(draw)
    def run(*args, **kwargs):
        with paper_style():
            return draw(*args, **kwargs)

    return run


class _Canvas:
    """What a drawing step needs of matplotlib: figures made without pyplot (no backend, no global
    list of open figures; each laid out by its own constrained layout), and legend handles."""

    @staticmethod
    def subplots(nrows: int = 1, ncols: int = 1, figsize=None, **kwargs):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=figsize, layout="constrained")
        FigureCanvasAgg(fig)  # a canvas to measure text on (saving to svg or pdf switches to theirs)
        return fig, fig.subplots(nrows, ncols, **kwargs)

    @staticmethod
    def Line2D(*args, **kwargs):  # noqa: N802 - matplotlib's name
        from matplotlib.lines import Line2D

        return Line2D(*args, **kwargs)


def style() -> type[_Canvas]:
    """The canvas a drawing step draws on (call it inside a @styled function)."""
    return _Canvas


SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def power_label(v: float, base: int = 10) -> str:
    """A log-axis tick as plain text: 10⁻³, 3×10⁻³; base 2 (batch sizes) as the number itself.
    Plain text instead of mathtext: the same look in a paper, without the TeX parser's cost."""
    if v <= 0:
        return ""
    if base == 2:
        return f"{v:g}"
    exp = math.floor(math.log10(v) + 1e-9)
    mant = v / 10 ** exp
    power = f"10{str(exp).translate(SUPERSCRIPT)}"
    return power if abs(mant - 1) < 1e-9 else f"{mant:.3g}×{power}"


def log_scale(ax, axis: str = "x", base: int = 10) -> None:
    """A log axis whose tick labels are plain text (power_label)."""
    from matplotlib import ticker

    getattr(ax, f"set_{axis}scale")("log", base=base)
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_formatter(ticker.FuncFormatter(lambda v, _: power_label(v, base)))
    if base != 10:
        target.set_minor_formatter(ticker.NullFormatter())
        return

    class Minor(ticker.LogFormatter):
        """matplotlib's choice of which minor ticks to label (some of them when the axis spans
        less than a decade, none when it spans several), written as power_label writes."""

        def __call__(self, x, pos=None):
            return power_label(x, base) if super().__call__(x, pos) else ""

    target.set_minor_formatter(Minor(base=base, labelOnlyBase=False, minor_thresholds=(1, 0.4)))


def save(fig, out: Path, stem: str, fmt: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{stem}.{fmt}"
    tmp = out / f".{stem}.tmp.{fmt}"
    with paper_style():
        fig.savefig(tmp, format=fmt, bbox_inches="tight")
    tmp.replace(path)
    return path
