"""What the numbers of dlbench.stats mean, in words: metric names, how a configuration was chosen,
the verdict of a comparison, the notes a reader must see. The terminal summary, `dlbench show`,
the report and the figures all say things through these functions, so they say them alike.
Nothing here computes a statistic."""

from __future__ import annotations

import math

from dlbench import stats

# One map of metric names: column -> (words, short header). Summary columns of trials.parquet and
# history columns alike.
METRICS: dict[str, tuple[str, str]] = {
    "best_val_acc": ("validation accuracy", "val acc"),
    "best_val_loss": ("validation loss", "val loss"),
    "best_val_r2": ("validation R²", "val R²"),
    "test_acc_at_best_val": ("test accuracy at the validation-chosen epoch", "test acc @ val-best"),
    "test_loss_at_best_val": ("test loss at the validation-chosen epoch", "test loss @ val-best"),
    "test_r2_at_best_val": ("test R² at the validation-chosen epoch", "test R² @ val-best"),
    "final_train_acc": ("final training accuracy", "final train acc"),
    "final_train_eval_loss": ("final training loss", "final train loss"),
    "final_test_acc": ("final test accuracy", "final test acc"),
    "final_test_loss": ("final test loss", "final test loss"),
    "final_test_r2": ("final test R²", "final test R²"),
    "best_epoch": ("validation-chosen epoch", "best epoch"),
    "wall_time": ("seconds per trial", "seconds"),
    "train_loss": ("training loss (mean over the epoch's batches)", "train loss"),
    "train_eval_loss": ("training loss", "train loss"),
    "train_acc": ("training accuracy", "train acc"),
    "val_loss": ("validation loss", "val loss"),
    "val_acc": ("validation accuracy", "val acc"),
    "val_r2": ("validation R²", "val R²"),
    "val_rmse": ("validation RMSE", "val RMSE"),
    "test_loss": ("test loss", "test loss"),
    "test_acc": ("test accuracy", "test acc"),
    "test_r2": ("test R²", "test R²"),
    "test_rmse": ("test RMSE", "test RMSE"),
    "lr": ("learning rate", "lr"),
}


def metric_words(column: str) -> str:
    """A column in words, e.g. 'test accuracy at the validation-chosen epoch'."""
    return METRICS.get(column, (column.replace("_", " "),))[0]


def column_label(column: str) -> str:
    """A column as a short table header, e.g. 'test acc @ val-best'."""
    return METRICS[column][1] if column in METRICS else column


CI_WORDS = {"t": "95% Student's t interval of the mean", "bootstrap": "95% bootstrap interval of the mean (BCa)"}
DIFF_WORDS = {"t": "Welch's t", "bootstrap": "the two-sample bootstrap"}
BAND_WORDS = {"std": "mean ± 1 std", "minmax": "min–max over seeds", "none": "no band"}


def band_words(kind: str, method: str = stats.DEFAULT_CI) -> str:
    return CI_WORDS[method] if kind == "ci" else BAND_WORDS[kind]


def short_band(kind: str, method: str = stats.DEFAULT_CI) -> str:
    """The band in a figure's title: '95% t interval', 'min–max', ..."""
    return {"t": "95% t interval", "bootstrap": "95% bootstrap interval"}[method] if kind == "ci" else \
        BAND_WORDS[kind]


def fmt_config(config: dict, columns: list[str]) -> str:
    """'lr=0.01 bs=32 epochs=10' from a configuration's columns."""
    short = {"batch_size": "bs"}
    parts = []
    for c in columns:
        v = config.get(c)
        if stats.is_missing(v):
            continue
        parts.append(f"{short.get(c, c)}={v:.4g}" if isinstance(v, float) else f"{short.get(c, c)}={v}")
    return " ".join(parts)


# --------------------------------------------------------------------------------------------
# How a configuration was chosen


def selection_how(sel: stats.Selection) -> str:
    if sel.validation:
        return (f"configuration chosen by mean {metric_words(sel.select)} over seeds, stopping epoch chosen on "
                f"validation; reported: {metric_words(sel.report)}")
    return (f"no validation split: configuration chosen by mean {metric_words(sel.select)} over seeds; "
            f"reported: {metric_words(sel.report)}")


def best_how(b: stats.Best) -> str:
    """How the configuration was chosen and what is reported, in words."""
    if b.confirmed and b.chosen_by:
        return (f"configuration chosen in stage 1 by {b.chosen_by}, stopping epoch chosen on validation; "
                f"reported: {metric_words(b.selection.report)} on fresh seeds")
    return selection_how(b.selection)


def tie_note(b: stats.Best, columns: list[str]) -> str | None:
    """'adam: tied with lr=0.1 on mean validation accuracy; chosen by the better mean validation
    loss', or None when nothing tied."""
    return _tie_words(b.name, b.tied, b.decided_by, b.config, b.selection, columns)


def choice_tie_note(name: str, choice: stats.Choice, selection: stats.Selection, columns: list[str]) -> str | None:
    """tie_note for a choice stats.choose made (a protocol's stage 1): None when nothing tied."""
    return _tie_words(name, choice.tied, choice.decided_by, choice.config, selection, columns)


def _tie_words(name: str, tied: list[dict], decided_by: str | None, chosen: dict, selection: stats.Selection,
               columns: list[str]) -> str | None:
    if not tied:
        return None
    others = "; ".join(fmt_config(_differing(t, chosen), columns) or "another configuration" for t in tied)
    if decided_by == "order":
        why = "tied on every choosing metric too; chosen by the stated order (smaller values first)"
    else:
        why = f"chosen by the better mean {metric_words(decided_by)}"
    return f"{name}: tied with {others} on mean {metric_words(selection.select)}; {why}"


def _differing(other: dict, chosen: dict) -> dict:
    return {k: v for k, v in other.items() if not (stats.is_missing(v) and stats.is_missing(chosen.get(k)))
            and v != chosen.get(k)}


def diverged_text(b: stats.Best) -> str | None:
    """'1 of 3 diverged' (seeds of the reported numbers), or None."""
    return f"{b.diverged} of {b.runs} diverged" if b.diverged else None


def edge_note(b: stats.Best, with_dataset: bool = False) -> str | None:
    """'adam: lr=0.01 is the largest value tried; the best may lie beyond the range swept', or
    None; with the dataset in front when several share a page."""
    if not b.at_edge:
        return None
    parts = [f"{k}={v:.4g} is the {which} value tried" for k, v, which in b.at_edge]
    where = f"{b.dataset}, " if with_dataset else ""
    return f"{where}{b.name}: {'; '.join(parts)}; the best may lie beyond the range swept"


def no_validation_note(trials, env: dict | None = None) -> str | None:
    """What readers print about results without a validation split, or None."""
    if stats.has_validation(trials):
        return None
    why = ("written by dlbench schema 1, before validation splits existed"
           if (env or {}).get("schema_version", 2) < 2 else "validation = 0")
    sel = stats.selection_of(trials)
    return (f"no validation split ({why}): configurations are chosen on the training set "
            f"({metric_words(sel.select)}) and test numbers are at the final epoch; rerun with validation > 0 to "
            "choose on validation")


def seeds_note(best: list[stats.Best]) -> str:
    """Whether the seeds that chose a configuration also measured it."""
    seeds = sorted({s for b in best for s in b.seeds})
    if best and all(b.confirmed for b in best):
        return (f"confirmed on fresh seeds ({stats.seed_span(seeds)}) that took no part in choosing the "
                "configurations; tuning numbers are shown apart")
    return (f"the same seeds ({stats.seed_span(seeds)}) chose each configuration and measure it, so the winners' "
            "numbers carry some of those seeds' luck; a [protocol] with confirm_seeds re-runs them on fresh seeds")


def resolution_note(b: stats.Best) -> str | None:
    """'test split: 36 samples (1 sample = 2.78 pts); intervals cover seed-to-seed variation on this
    one split, not the sampling of another test set', or None when the size is unknown."""
    if not math.isfinite(b.test_size) or b.test_size <= 0:
        return None
    n = int(b.test_size)
    step = ""
    if "acc" in b.selection.report.split("_"):
        step = f" (1 sample = {100 / n:.2g} pts)"
    return (f"test split: {n} samples{step}; the intervals cover seed-to-seed variation on this one split, not "
            "the sampling of another test set")


# --------------------------------------------------------------------------------------------
# Comparisons


def _num(c: stats.Comparison, v: float) -> str:
    return f"{100 * v:+.2f}" if c.in_points else f"{v:+.3g}"


def diff_text(c: stats.Comparison) -> str:
    """'+0.37 pts', or '+0.0123' for metrics that are not accuracies."""
    return _num(c, c.diff) + (" pts" if c.in_points else "")


def interval_text(c: stats.Comparison) -> str:
    if not (math.isfinite(c.ci_low) and math.isfinite(c.ci_high)):
        return "[n/a]"
    return f"[{_num(c, c.ci_low)}, {_num(c, c.ci_high)}]"


def p_text(p: float) -> str:
    """A p-value for a table cell: '0.041', '<0.001', 'n/a'."""
    return "n/a" if not math.isfinite(p) else ("<0.001" if p < 0.001 else f"{p:.3f}")


def p_phrase(p: float) -> str:
    """'= 0.041' or '< 0.001', to follow 'p' in a sentence."""
    return "< 0.001" if p < 0.001 else f"= {p:.3f}"


def verdict_words(c: stats.Comparison) -> str:
    """The verdict in a few words, for a table cell: 'adam better', 'not distinguishable', ..."""
    v = c.verdict
    if v == "n/a":
        return f"too few seeds (N={min(c.n_a, c.n_b)})"
    if v == "none":
        return "not distinguishable"
    return f"{c.a if v == 'a' else c.b} better"


def power_text(c: stats.Comparison) -> str | None:
    """'about 28 seeds per optimizer would separate a difference of this size (0.37 pts) at 80%
    power', or None."""
    if c.seeds_needed is None:
        return None
    size = diff_text(c).lstrip("+-")
    many = f"more than {stats.SEEDS_CAP:,}" if c.seeds_needed > stats.SEEDS_CAP else f"about {c.seeds_needed}"
    return f"{many} seeds each would separate a difference of this size ({size}) at {stats.POWER:.0%} power"


def conclusion(c: stats.Comparison) -> str:
    """What the seeds say, in words."""
    n = min(c.n_a, c.n_b)
    v = c.verdict
    if v in ("a", "b"):
        return f"{c.a if v == 'a' else c.b} is better"
    if v == "n/a":
        tail = f"too few seeds to tell ({n}; a test needs at least {stats.MIN_N[c.method]} a side)"
    else:
        tail = f"not distinguishable with {n} seeds"
    power = power_text(c)
    if power:
        tail += f"; {power}"
    elif v == "none" and abs(c.diff) < stats.EQUAL:
        tail += "; the means are equal"
    return tail


def comparison_line(c: stats.Comparison) -> str:
    """The plain verdict, e.g. 'adam vs rmsprop: +0.20 pts [-0.40, +0.80], P(adam > rmsprop) =
    0.56, p = 0.41 (Holm 1.000): not distinguishable with 3 seeds; about 40 seeds each would
    separate a difference of this size (0.20 pts) at 80% power'."""
    op = ">" if c.higher else "<"
    p = "" if not math.isfinite(c.p_value) else (
        f", p {p_phrase(c.p_value)}" + (f" (Holm {p_phrase(c.p_adjusted).removeprefix('= ')})" if c.family > 1
                                        else ""))
    return (f"{c.a} vs {c.b}: {diff_text(c)} {interval_text(c)}, P({c.a} {op} {c.b}) = {c.p_better:.2f}{p}: "
            f"{conclusion(c)}")


def family_note(comparisons: list[stats.Comparison]) -> str | None:
    """'6 comparisons, Holm-adjusted: a verdict of "better" keeps a 5% chance of any false one
    among them; intervals 95% (Welch's t), not adjusted', or None without comparisons."""
    if not comparisons:
        return None
    k = max(c.family for c in comparisons)
    method = comparisons[0].method
    if k <= 1:
        return f"1 comparison: {DIFF_WORDS[method]} at the 5% level; 95% interval of the difference"
    return (f"{k} comparisons, Holm-adjusted: the chance of any false 'better' among them stays at 5%; intervals "
            f"are 95% ({DIFF_WORDS[method]}) each, not adjusted")


def mixed_notes(trials, path=None) -> list[str]:
    """What a reader must say of a folder that may hold two sweeps: the spec files it holds (a
    version before one-sweep-per-folder kept the earlier ones) and how they differ, and, per
    dataset, the settings that differ between optimizers (their comparison compares those too)."""
    import tomllib

    from dlbench.folders import spec_diff
    from dlbench.store import earlier_specs

    notes = []
    if path is not None:
        earlier = earlier_specs(path)
        if earlier:
            try:
                diff = spec_diff(tomllib.loads(earlier[0].read_text()), tomllib.loads((path / "spec.toml").read_text()))
            except (OSError, tomllib.TOMLDecodeError):
                diff = []
            notes.append(f"this folder holds trials of {len(earlier) + 1} specs (spec.toml and "
                         f"{', '.join(p.name for p in earlier)}, from before one folder held one sweep)"
                         + (f"; they differ in {'; '.join(diff[:4])}" if diff else ""))
    for dataset, d in trials.groupby("dataset", sort=True):
        for column, values in stats.settings_between(d).items():
            listed = "; ".join(f"{k} {', '.join(v)}" for k, v in values.items())
            where = f"{dataset}: " if trials["dataset"].nunique() > 1 else ""
            notes.append(f"{where}the optimizers ran with different {column} ({listed}): their comparisons compare "
                         "that too")
    return notes
