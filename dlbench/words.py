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
    "test_bpc_at_best_val": ("test bits per character at the validation-chosen epoch", "test bpc @ val-best"),
    "test_ppl_at_best_val": ("test perplexity at the validation-chosen epoch", "test ppl @ val-best"),
    "best_val_bpc": ("validation bits per character", "val bpc"),
    "final_test_bpc": ("final test bits per character", "final test bpc"),
    "val_bpc": ("validation bits per character", "val bpc"),
    "test_bpc": ("test bits per character", "test bpc"),
    "final_train_acc": ("final training accuracy", "final train acc"),
    "final_train_eval_loss": ("final training loss", "final train loss"),
    "final_test_acc": ("final test accuracy", "final test acc"),
    "final_test_loss": ("final test loss", "final test loss"),
    "final_test_r2": ("final test R²", "final test R²"),
    "final_train_loss": ("final training loss (mean over the last epoch's batches)", "final train loss (batches)"),
    "final_val_loss": ("final validation loss", "final val loss"),
    "final_val_acc": ("final validation accuracy", "final val acc"),
    "best_train_loss": ("lowest training loss over epochs", "best train loss"),
    "best_test_loss": ("lowest test loss over epochs (never chooses)", "best test loss"),
    "best_test_acc": ("highest test accuracy over epochs (never chooses)", "best test acc"),
    "best_test_r2": ("highest test R² over epochs (never chooses)", "best test R²"),
    "best_epoch": ("validation-chosen epoch", "best epoch"),
    "epochs_run": ("epochs trained", "epochs"),
    "steps": ("optimizer steps", "steps"),
    "train_time": ("seconds training", "train s"),
    "eval_time": ("seconds evaluating", "eval s"),
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


def opponent_labels(names: list[str]) -> dict[str, str]:
    """Short headers for the scoreboard's 'vs' columns: an optimizer named by a reference
    ('./my_optimizer.py:Signum', 'torch.optim:NAdam') by what follows its last ':' or '.', where
    that names no other optimizer of the table; the full name otherwise (the rows keep it)."""
    def tail(n: str) -> str:
        return n.rsplit(":", 1)[-1] if ":" in n else n.rsplit(".", 1)[-1] if "." in n and "/" not in n else n

    tails = [tail(n) for n in names]
    return {n: t if tails.count(t) == 1 and (t == n or t not in names) else n
            for n, t in zip(names, tails, strict=True)}


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
    short = {"batch_size": "bs", "max_steps": "steps"}
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


def edge_note(b: stats.Best, with_dataset: bool = False, extended: dict | None = None) -> str | None:
    """'adam: lr=0.01 is the largest value tried; the best may lie beyond the range swept' (and
    how many points its range grew by, when it has `extend`), or None; with the dataset in front
    when several share a page."""
    if not b.at_edge:
        return None
    grew = {k: (extended or {}).get((b.dataset, b.name, k), 0) for k, _, _ in b.at_edge}
    parts = [f"{k}={v:.4g} is the {which} value tried" + (f", after {grew[k]} extension{'s' * (grew[k] != 1)} of "
                                                           "its range" if grew[k] else "")
             for k, v, which in b.at_edge]
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


INTERVAL_HEADER = "CI at the verdict's level"


def family_note(comparisons: list[stats.Comparison]) -> str | None:
    """'6 comparisons, Holm-adjusted: the chance of any false "better" among them stays at 5%; each
    interval is at the level Holm's procedure tested its pair (95% or more): it excludes 0 exactly
    when the verdict is "better"', or None without comparisons."""
    if not comparisons:
        return None
    k = max(c.family for c in comparisons)
    method = comparisons[0].method
    if k <= 1:
        return f"1 comparison: {DIFF_WORDS[method]} at the 5% level; 95% interval of the difference"
    return (f"{k} comparisons, Holm-adjusted: the chance of any false 'better' among them stays at 5%; each "
            f"interval ({DIFF_WORDS[method]}) is at the level Holm's procedure tested its pair, 95% or more, so it "
            "excludes 0 exactly when the verdict is 'better' (unadjusted 95% intervals: report-pairs.csv)")


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
    halving = halving_note(trials)
    return notes + ([halving] if halving else [])


def halving_note(trials) -> str | None:
    """'successive halving stopped 23 of 27 tuning trials early (17 at epoch 1, 6 at epoch 3): 63
    trial-epochs trained, of the 243 a full grid trains'; None without stopped trials."""
    stopped = trials[trials["status"] == "stopped"] if "status" in trials else trials.iloc[:0]
    if not len(stopped):
        return None
    tune = trials[trials["stage"] != "confirm"] if "stage" in trials else trials
    at = stopped["rung"].value_counts().sort_index()
    where = ", ".join(f"{int(k)} at epoch {int(e)}" for e, k in at.items())
    trained = int(tune["epochs_run"].sum())
    full = int(tune["epochs"].sum())
    return (f"successive halving stopped {len(stopped)} of {len(tune)} tuning trials early ({where}): {trained} "
            f"trial-epochs trained, of the {full} a full grid trains; a stopped trial's numbers are those it reached "
            "by its rung")


# --------------------------------------------------------------------------------------------
# Across problems: the scoreboard and tuning budgets


def record_text(r: stats.Record | None) -> str:
    """'2/4/0' (wins/ties/losses), or '' for no meeting."""
    return "" if r is None else f"{r.wins}/{r.ties}/{r.losses}"


def rank_text(s: stats.Standing) -> str:
    """'1.75 [1.03, 2.47]', or '1.75' below 2 problems."""
    if not math.isfinite(s.mean_rank):
        return "n/a"
    if not math.isfinite(s.rank_low):
        return f"{s.mean_rank:.2f}"
    return f"{s.mean_rank:.2f} [{s.rank_low:.2f}, {s.rank_high:.2f}]"


SCOREBOARD_WORDS = ("wins/ties/losses over the problems both ran on: a win is a 'better' verdict (Welch's t, "
                    "Holm-adjusted over each problem's pairs, 5% level), a tie is 'not distinguishable' or too few "
                    "seeds; mean rank over problems (1 = best mean) with a 95% t interval over problems; profile: "
                    "area under the performance profile (1 = fastest to every problem's validation target)")


def pair_summary(sb: stats.Scoreboard, a: str, b: str) -> str:
    """'lion vs adam: better on 0 problems, worse on 1, not distinguishable on 5'."""
    r = sb.record(a, b)
    if r is None:
        return f"{a} vs {b}: never on the same problem"
    return (f"{a} vs {b}: better on {r.wins} problem{'s' * (r.wins != 1)}, worse on {r.losses}, "
            f"not distinguishable on {r.ties}")


def focus_outcome(row: stats.FocusRow) -> str:
    return {"win": "better", "loss": "worse", "tie": "not distinguishable"}[row.outcome]


def focus_diff(row: stats.FocusRow) -> str:
    """'+0.37 pts [-0.78, +1.52]' from the focus optimizer's side."""
    c = row.comparison
    unit = " pts" if c.in_points else ""
    num = (lambda v: f"{100 * v:+.2f}") if c.in_points else (lambda v: f"{v:+.3g}")
    band = f" [{num(row.ci_low)}, {num(row.ci_high)}]" if math.isfinite(row.ci_low) else " [n/a]"
    return f"{num(row.diff)}{unit}{band}"


TO_TARGET_TITLE = "to the validation target: the fewest steps and seconds over each optimizer's configurations"
TO_TARGET_CAPTION = ("target: 95% of the way from the untrained model to the best value any configuration reaches "
                     "(medians over seeds); steps and training seconds to the first evaluation at the target, the "
                     "median over a configuration's seeds; fused trials are timed with their own optimizer's updates "
                     "apart from the work they share")


def target_text(r: stats.ToTarget) -> str:
    """'val loss <= 1.912'."""
    higher = stats.higher_is_better(r.metric)
    return f"{column_label(r.metric)} {'>=' if higher else '<='} {r.target:.4g}"


def steps_text(steps: float) -> str:
    return "never" if not math.isfinite(steps) else f"{steps:,.0f}"


def seconds_text(seconds: float) -> str:
    return "-" if not math.isfinite(seconds) else f"{seconds:.3g}"


def budget_sentence(problem: str, leaders: list[tuple[int, str]]) -> str:
    """'digits: with 1 configuration momentum is best; from 2, rmsprop' (who has the best expected
    validation number as the tuning budget grows)."""
    if not leaders:
        return f"{problem}: no tuning curve"
    (k0, first), *rest = leaders
    words = [f"with {k0} configuration{'s' * (k0 != 1)} {first} is best"]
    words += [f"from {k}, {who}" for k, who in rest]
    return f"{problem}: " + "; ".join(words)


def search_words(kind: str | None) -> str:
    """What a tuning curve means for the search that produced the configurations."""
    if kind == "random":
        return ("a random search: the curve estimates the expected best of k configurations such a search would "
                "draw")
    if kind == "sobol":
        return ("a Sobol search, evenly spread rather than independent: the curve treats its points as a random "
                "sample of the ranges")
    if kind == "optuna":
        return ("an Optuna search, whose sampler chose each point from what the earlier ones reached: the curve is "
                "the expected best of k of its points picked at random, not what a search of k points would reach")
    if kind == "halving":
        return ("successive halving over a grid: the curve is the expected best of k of the grid's configurations "
                "picked at random, each with what it reached (a stopped one by its rung)")
    return ("a grid, not a random search: the curve is the expected best of k configurations picked at random from "
            "the grid's points (an estimate for a random search only as far as the grid samples its ranges evenly)")


def search_short(kind: str | None) -> str:
    """The search kind in a figure's title."""
    return {"random": "a random search", "sobol": "a Sobol search, taken as random",
            "optuna": "an Optuna search's points picked at random",
            "halving": "halving's configurations, as reached"}.get(
        kind or "grid", "a grid's points picked at random")


def edge_words(problem_edges: dict[str, list[str]]) -> str | None:
    """'a choice at the edge of its range (the best may lie beyond): breast_cancer momentum lr=0.3; ...'."""
    if not problem_edges:
        return None
    parts = [f"{who} ({'; '.join(what)})" for who, what in problem_edges.items()]
    return "a choice at the edge of its range (the best may lie beyond): " + ", ".join(parts)


# --------------------------------------------------------------------------------------------
# Ranges that extend themselves


def _value(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def extension_round(n: int, grow: list, blocked: list) -> str:
    """One line per round of `extend` on screen: 'extend, round 1: 10 choices at the edge of their
    ranges; adding lr=9.487 (2), lr=0.09487 (6), lr=0.9487 (2); 2 more at an edge that cannot grow
    (`dlbench show` names them)'. Which problem and optimizer each is: `dlbench show`, the report."""
    at_edge = len(grow) + len(blocked)
    ranges = "their ranges" if at_edge != 1 else "its range"
    text = f"extend, round {n}: {at_edge} choice{'s' * (at_edge != 1)} at the edge of {ranges}"
    if grow:
        added: dict[str, int] = {}
        for s in grow:
            v = f"{s.key}={_value(s.point['value'])}"
            added[v] = added.get(v, 0) + 1
        text += "; adding " + ", ".join(v + (f" ({k})" if k > 1 else "") for v, k in added.items())
    if blocked:
        text += f"; {len(blocked)} at an edge that cannot grow (`dlbench show` names them)"
    return text


