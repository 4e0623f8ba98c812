"""What chooses: the selection rule of a task (validation first, test never), the one selection
function every reader calls (`choose`, with its stated tie rule), and each optimizer at its best
configuration (`best_configs`), with what a reader must say of the choice (ties, the edge of a range)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dlbench.errors import UserError
from dlbench.schema import higher_is_better, is_test_metric
from dlbench.stats.mean_intervals import DEFAULT_CI, describe
from dlbench.stats.tables import is_missing, one_loss, rows_matching, usable
from dlbench.store import config_columns, knob_columns

EQUAL = 1e-12  # relative differences below this are float round-off: the values are equal


def same(a: float, b: float) -> bool:
    """Equal up to float round-off (the mean of the same values summed in another order): a
    difference of at most EQUAL relative to the larger, at any scale (1e-13 and 9e-13 differ)."""
    return a == b or abs(a - b) <= EQUAL * max(abs(a), abs(b))


@dataclass(frozen=True)
class Selection:
    """How configurations (and stopping epochs) are chosen, and what is reported."""

    select: str  # trials column whose mean over seeds chooses the configuration
    select_higher: bool
    report: str  # trials column reported as the result
    report_higher: bool
    validation: bool  # chosen on a validation split (else on the training set)
    tie_breakers: tuple[tuple[str, bool], ...] = ()  # (column, higher is better), in turn


def _chain(task: str, validation: bool) -> list[tuple[str, bool]]:
    """The choosing columns of a task, in order: the selection metric, then its tie-breakers."""
    classification = task in ("binary", "multiclass")
    if validation:
        if classification:
            return [("best_val_acc", True), ("best_val_loss", False)]
        if task == "regression":
            return [("best_val_loss", False), ("best_val_r2", True)]
        if task == "language_model":  # the loss chooses (nanoGPT's val loss); next-token accuracy breaks ties
            return [("best_val_loss", False), ("best_val_acc", True)]
        return [("best_val_loss", False)]
    if classification:
        return [("final_train_acc", True), ("final_train_eval_loss", False)]
    return [("final_train_eval_loss", False)]


def selection_for(task: str, has_validation: bool, select: str | None = None,
                  higher: bool | None = None) -> Selection:
    """The selection rule of a task. With validation: classification chooses on best_val_acc
    (ties: best_val_loss) and reports test_acc_at_best_val; regression chooses on best_val_loss
    (ties: best_val_r2) and reports test_r2_at_best_val; DeepOBS objectives choose on
    best_val_loss and report test_loss_at_best_val. Without: the training set's final accuracy
    (or loss) chooses and the final test value is reported. `select` (a [protocol]'s) replaces
    the selection metric; the task's other choosing columns break its ties. A language model chooses
    on best_val_loss (ties: best_val_acc, next-token accuracy) and reports test_bpc_at_best_val (bits
    per character: the loss / ln 2)."""
    chain = _chain(task, has_validation)
    if select is not None:
        check_chooser(select)
        direction = higher_is_better(select) if higher is None else higher
        chain = [(select, bool(direction))] + [c for c in chain if c[0] != select]
    classification = task in ("binary", "multiclass")
    at = "_at_best_val" if has_validation else ""
    final = "" if has_validation else "final_"
    if classification:
        report = (f"{final}test_acc{at}", True)
    elif task == "regression":
        report = (f"{final}test_r2{at}", True)
    elif task == "language_model":  # bits per character: the loss in the unit language models are compared in
        report = (f"{final}test_bpc{at}", False)
    else:
        report = (f"{final}test_loss{at}", False)
    return Selection(chain[0][0], chain[0][1], report[0], report[1], has_validation, tuple(chain[1:]))


def check_chooser(column: str, where: str = "select") -> str:
    """A column that may choose: anything but a test metric."""
    if is_test_metric(column):
        raise UserError(f"{where} = {column!r} is a test metric, and test numbers never choose; allowed: a "
                        "validation or training metric, e.g. best_val_acc or best_val_loss")
    return column


def task_of(trials: pd.DataFrame | str) -> str:
    """The task of a dataset: the trials' own `task` column (schema 3), else the catalogue's record
    of it, else what the stored numbers say (an accuracy: classification; an R²: regression; else
    an objective)."""
    from dlbench.data import known

    frame = trials if isinstance(trials, pd.DataFrame) else None
    if frame is not None and "task" in frame and frame["task"].notna().any():
        return str(frame["task"].dropna().iloc[0])
    info = known(str(frame["dataset"].iloc[0]) if frame is not None else trials)
    if info is not None:
        return info.task
    if frame is None:
        raise UserError(f"dataset = {trials!r} is unknown here; allowed: a built-in or a dataset checked in this sweep")

    def has(col: str) -> bool:
        return col in frame and bool(np.isfinite(pd.to_numeric(frame[col], errors="coerce")).any())

    return "multiclass" if has("best_val_acc") or has("final_train_acc") else "regression" if has(
        "best_val_r2") or has("final_test_r2") else "objective"


def has_validation(trials: pd.DataFrame) -> bool:
    return "best_val_loss" in trials and bool(np.isfinite(trials["best_val_loss"].to_numpy(dtype=float)).any())


def rule_of(trial: dict, chooser: dict | None = None) -> Selection:
    """The selection rule for a canonical trial: its task's, on validation when it has a split;
    `chooser` (a protocol, or halving's field) may name the metric: {"select", "direction"}."""
    from dlbench.data import dataset_info, validation_of

    select = (chooser or {}).get("select")
    return selection_for(dataset_info(trial["dataset"]).task, validation_of(trial) > 0, select,
                         None if select is None else chooser["direction"] == "max")


def rows_of(trials: list[dict], summaries: list[dict]) -> pd.DataFrame:
    """Trials as trials.parquet rows: their configuration columns, their summaries (store.trial_summary),
    and their configuration key, which is what the selection functions take."""
    from dlbench.schema import config_key
    from dlbench.store import flat_config

    return pd.DataFrame([{**flat_config(t), **s, "config": config_key(t)}
                         for t, s in zip(trials, summaries, strict=True)])


def selection_of(trials: pd.DataFrame) -> Selection:
    """The selection rule for the trials of one dataset."""
    return selection_for(task_of(trials), has_validation(trials))


@dataclass
class Choice:
    """What `choose` picked among configurations, and why."""

    config: dict  # the chosen configuration's columns
    table: pd.DataFrame  # one row per configuration tried: its columns, runs, and <column>_mean per choosing column
    tied: list[dict]  # the other configurations whose selection mean equals the chosen one's (their columns)
    decided_by: str | None  # None: the selection metric alone; a tie-breaker column; or "order"


def tie_classes(values, higher: bool) -> list[list[int]]:
    """The one order of numbers, best first: positions of `values` grouped into classes of values
    equal up to round-off. The best finite value and every value `same` as it form the first
    class, then the best of the rest and the values `same` as it, and so on; non-finite values
    come last, in one class of their own. Within a class positions keep their order. Every
    ranking and every choice of dlbench goes through this (`order`, `choose`, halving, the
    budget curves, the scoreboard's ranks, the order of pairs)."""
    v = np.asarray(values, dtype=float)
    left = [i for i in range(len(v)) if np.isfinite(v[i])]
    out: list[list[int]] = []
    while left:
        best = max(v[i] for i in left) if higher else min(v[i] for i in left)
        cls = [i for i in left if same(float(v[i]), float(best))]
        out.append(cls)
        left = [i for i in left if i not in cls]
    rest = [i for i in range(len(v)) if not np.isfinite(v[i])]
    return out + ([rest] if rest else [])


def _pick(table: pd.DataFrame, chain: list[tuple[str, bool]], rows: list[int]) -> tuple[int, list[int], str | None]:
    """The first of `rows` by the rule: (its position, the rows tied with it on the first choosing
    column, what decided among those: None, a tie-breaker column, or "order")."""
    candidates, tied, decided_by = list(rows), None, None
    for n, (col, higher) in enumerate(chain):
        v = table[f"{col}_mean"].to_numpy(dtype=float)[candidates]
        if not np.isfinite(v).any():
            continue
        keep = [candidates[i] for i in tie_classes(v, higher)[0]]
        if n == 0:
            tied = keep
        elif len(keep) < len(candidates):
            decided_by = col
        candidates = keep
        if len(candidates) == 1:
            break
    if len(candidates) > 1:
        decided_by = "order"
    return candidates[0], (tied if tied is not None else list(candidates)), decided_by


def order(table: pd.DataFrame, sel: Selection) -> list[int]:
    """The rows of a configurations table (one row per configuration, `<column>_mean` for each
    choosing column, rows in the stated order) best first by the one selection rule: the
    selection metric with ties up to round-off, its tie-breakers in turn, then the stated order.
    The first is what `choose` picks; the rest is the same rule applied to what is left."""
    chain = [(c, h) for c, h in [(sel.select, sel.select_higher), *sel.tie_breakers] if f"{c}_mean" in table]
    left, out = list(range(len(table))), []
    while left:
        first, _, _ = _pick(table, chain, left)
        out.append(first)
        left.remove(first)
    return out


def configurations(trials: pd.DataFrame, sel: Selection, cols: list[str] | None = None) -> pd.DataFrame:
    """One row per configuration with a finite mean of the selection metric, in the stated order
    (sorted by `cols`): its columns, its usable runs, and the mean over seeds of each choosing column
    (`<column>_mean`)."""
    check_chooser(sel.select)
    cols = config_columns(trials) if cols is None else list(cols)
    chain = [c for c in (sel.select, *(c for c, _ in sel.tie_breakers)) if c in trials]
    t = usable(trials)
    if not len(t):
        return pd.DataFrame(columns=[*cols, "runs", *(f"{c}_mean" for c in chain)])
    values = t[chain].apply(pd.to_numeric, errors="coerce").astype(float)
    values = values.where(np.isfinite(values))
    grouped = pd.concat([t[cols], values], axis=1).groupby(cols, sort=True, dropna=False)
    table = grouped.mean().add_suffix("_mean")
    table.insert(0, "runs", grouped.size())
    table = table.reset_index()
    return table[np.isfinite(table[f"{sel.select}_mean"].to_numpy(dtype=float))].reset_index(drop=True)


def choose(trials: pd.DataFrame, sel: Selection, cols: list[str] | None = None) -> Choice | None:
    """The configuration with the best mean of `sel.select` over its seeds (usable trials, finite
    values); ties (means equal up to round-off) go to the best mean of each tie-breaker in turn,
    then to the configuration that sorts first by `cols` (by default the configuration columns,
    in their order: the smaller lr, then the smaller batch size, ...). None when no configuration
    has a finite value. The one selection function: every reader chooses through it, and every
    ranking of configurations is its rule applied again to what is left (`order`)."""
    cols = config_columns(trials) if cols is None else list(cols)
    table = configurations(trials, sel, cols)
    if not len(table):
        return None
    chain = [(c, h) for c, h in [(sel.select, sel.select_higher), *sel.tie_breakers] if f"{c}_mean" in table]
    first, tied, decided_by = _pick(table, chain, list(range(len(table))))
    chosen = table.iloc[first][cols].to_dict()
    others = [table.iloc[i][cols].to_dict() for i in tied if i != first]
    return Choice(chosen, table, others, decided_by)


def _same_config(a: dict, b: dict) -> bool:
    return all((is_missing(a[k]) and is_missing(b[k])) or a[k] == b[k] for k in a)


@dataclass
class Best:
    """One group's (e.g. one optimizer's) chosen configuration and its numbers."""

    dataset: str
    group: dict  # the per keys, e.g. {"optimizer": "adam"}
    config: dict  # the chosen configuration's columns
    selection: Selection
    select_mean: float  # mean of the selection column over the tuning seeds
    report: dict  # describe() of the reported column over the result seeds
    values: np.ndarray  # the reported values, one per seed (finite)
    seeds: list[int]
    confirmed: bool  # the result seeds are fresh (a confirm stage), not those that chose
    tuning: dict | None = None  # when confirmed: describe() of the reported column on the tuning seeds
    configs_tried: int = 0
    counts: dict = field(default_factory=dict)  # status counts over the group's tuning trials
    sweep: str = ""  # the results folder, when several are read together
    chosen_by: str | None = None  # a confirm stage: how stage 1 chose (as the protocol stored it)
    at_edge: list[tuple[str, float, str]] = field(default_factory=list)  # (key, value, "largest" | "smallest")
    tied: list[dict] = field(default_factory=list)  # configurations tied with the chosen one on the selection metric
    decided_by: str | None = None  # what broke the tie: a tie-breaker column, "order", or None (no tie)
    runs: int = 0  # usable result trials (seeds)
    diverged: int = 0  # of those, how many diverged
    test_size: float = math.nan  # samples in the test split the reported numbers come from
    method: str = DEFAULT_CI

    @property
    def name(self) -> str:
        return " ".join(str(v) for v in self.group.values())


def best_configs(trials: pd.DataFrame, per: tuple[str, ...] = ("optimizer",),
                 method: str = DEFAULT_CI) -> list[Best]:
    """For each dataset (and sweep) and each `per` group: the configuration `choose` picks among
    the group's tuning trials, and its numbers. When the results hold a confirm stage for the
    group, the candidates are the configurations it confirmed (one per group of the protocol),
    chosen among by the same rule on their tuning trials; their fresh seeds give the result and
    the tuning seeds are kept apart (`tuning`). So `per=()` takes the best of the protocol's
    finalists, measured on their fresh seeds."""
    out: list[Best] = []
    outer = [c for c in ("sweep", "dataset") if c in trials]
    for key, d in trials.groupby(outer, sort=True):
        sel = selection_of(d)
        cols = [c for c in config_columns(d) if c not in ("stage", "sweep")]
        tune = d[d["stage"] != "confirm"] if "stage" in d else d
        confirm = d[d["stage"] == "confirm"] if "stage" in d else d.iloc[:0]
        for gkey, g in tune.groupby(list(per), sort=True, dropna=False) if per else [((), tune)]:
            gkey = gkey if isinstance(gkey, tuple) else (gkey,)
            group = dict(zip(per, gkey, strict=True))
            confirmed = rows_matching(confirm, group)
            candidates = g
            if len(confirmed):
                finalists = confirmed[cols].drop_duplicates()
                candidates = g.merge(finalists, on=cols, how="inner") if len(finalists) else g.iloc[:0]
            choice = choose(candidates, sel, cols)
            if choice is None:
                continue  # nothing finished with a number
            chosen = choice.config
            tuning_rows = usable(rows_matching(g, chosen))
            result_rows = usable(rows_matching(confirmed, chosen)) if len(confirmed) else tuning_rows
            how = None
            if len(confirmed) and "chosen_by" in result_rows and result_rows["chosen_by"].notna().any():
                how = str(result_rows["chosen_by"].dropna().iloc[0])
            values = result_rows[sel.report].to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            select_vals = tuning_rows[sel.select].to_numpy(dtype=float)
            select_vals = select_vals[np.isfinite(select_vals)]
            where = dict(zip(outer, key if isinstance(key, tuple) else (key,), strict=True))
            sizes = result_rows["n_test"].to_numpy(dtype=float) if "n_test" in result_rows else np.array([])
            out.append(Best(
                dataset=str(where["dataset"]), sweep=str(where.get("sweep", "")),
                group=group, config=chosen, selection=sel,
                select_mean=float(select_vals.mean()) if len(select_vals) else math.nan,
                report=describe(values, method, sel.report, one_loss(result_rows)), values=values,
                seeds=sorted(int(s) for s in result_rows["seed"]),
                confirmed=bool(len(confirmed)),
                tuning=(describe(tuning_rows[sel.report], method, sel.report, one_loss(tuning_rows))
                        if len(confirmed) else None),
                configs_tried=len((choice if candidates is g else choose(g, sel, cols)).table),
                counts=g["status"].value_counts().to_dict(),
                chosen_by=how, at_edge=range_edges(g, chosen), tied=choice.tied, decided_by=choice.decided_by,
                runs=len(result_rows), diverged=int((result_rows["status"] == "diverged").sum()),
                test_size=float(np.nanmedian(sizes)) if np.isfinite(sizes).any() else math.nan, method=method))
    return out


def best_first(best: list[Best]) -> list[Best]:
    """Groups at their chosen configurations, the best mean of the reported metric first, in the
    one order (tie_classes: means equal up to round-off are tied); ties and the rest by name."""
    items = sorted(best, key=lambda b: b.name)
    higher = items[0].selection.report_higher if items else True
    return [items[i] for cls in tie_classes([b.report["mean"] for b in items], higher) for i in cls]


def edge_keys(trials: pd.DataFrame) -> list[str]:
    """The numeric hyperparameters whose range can be judged: lr, batch size, epochs and the
    numeric knobs (not the true/false ones)."""
    out = [c for c in ("lr", "batch_size", "epochs") if c in trials]
    for k in knob_columns(trials):
        col = trials[k]
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            out.append(k)
    return out


def range_edges(group: pd.DataFrame, chosen: dict) -> list[tuple[str, float, str]]:
    """The numeric hyperparameters whose chosen value is the largest or smallest of at least 3
    values the group tried: the best may lie beyond the range swept."""
    out = []
    for k in edge_keys(group):
        if k not in chosen or is_missing(chosen[k]):
            continue
        values = sorted(v for v in group[k].dropna().unique())
        if len(values) >= 3 and chosen[k] in (values[0], values[-1]):
            out.append((k, float(chosen[k]), "largest" if chosen[k] == values[-1] else "smallest"))
    return out
