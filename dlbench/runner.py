"""`dlbench sweep`: print the grid, resume from the results folder, train what is left, store
each trial atomically as it finishes, then summarize and check the spec's expectations."""

from __future__ import annotations

import math
import operator
import time
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from dlbench import SCHEMA_VERSION
from dlbench.spec import EXPECT_METRICS, Sweep
from dlbench.store import ResultsDir, model_label, schedule_label

CONSOLIDATE_EVERY_S = 2.0


def progress_metric(trial: dict) -> tuple[str, bool]:
    """The column a finished trial is ranked by in the progress line: its selection column
    (validation, or the training set without a split), never test."""
    from dlbench.data import dataset_info, validation_of
    from dlbench.stats import selection_for

    sel = selection_for(dataset_info(trial["dataset"]).task, validation_of(trial) > 0)
    return sel.select, sel.select_higher


def print_grid(sweep: Sweep, console: Console) -> None:
    n = len(sweep.trials)
    factors = " × ".join(f"{k} {len(v)}" for k, v in sweep.axes.items()) or "no grid axes"
    console.print(f"[bold]{sweep.name}[/]: {n} trial{'s' * (n != 1)} ({factors})")
    table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
    table.add_column("key")
    table.add_column("values")
    first = sweep.trials[0]
    shown = {"model": model_label(first["model"]), "schedule": schedule_label(first["schedule"])}
    for k in ("dataset", "model", "loss", "epochs", "batch_size", "schedule", "device", "dtype"):
        if k not in sweep.axes:
            table.add_row(k, str(shown.get(k, first[k])))
    for k, values in sweep.axes.items():
        table.add_row(f"{k} (grid)", ", ".join(_short(v) for v in values))
    console.print(table)


def _short(v) -> str:
    if isinstance(v, dict):
        return model_label(v) if "hidden" in v or v.get("kind") in ("linear", "cnn", "problem") else str(v)
    return str(v)


def print_plan(units, console: Console, workers: int) -> None:
    counts = Counter(u.engine for u in units)
    trials = Counter()
    for u in units:
        trials[u.engine] += len(u.trials)
    parts = [f"{trials[e]} trials on the {e} engine in {counts[e]} unit{'s' * (counts[e] != 1)}"
             for e in ("fused", "reference") if counts[e]]
    console.print(f"plan: {'; '.join(parts) or 'nothing to run'}; {workers} worker{'s' * (workers != 1)}")


def run_sweep(sweep: Sweep, out: str | Path, *, fresh: bool = False, dry_run: bool = False,
              workers: int | None = None, console: Console | None = None) -> int:
    """Run a validated sweep; the exit code: 0, or 1 when a trial failed or an expectation did not hold."""
    from dlbench.executors import LocalExecutor, default_workers
    from dlbench.output import console as make_console
    from dlbench.plan import make_units

    console = console or make_console()
    err = make_console(stderr=True)
    print_grid(sweep, console)
    workers = workers or sweep.workers or default_workers()
    path = Path(out) / sweep.name
    if dry_run:
        units = make_units(sweep.trials, sweep.engine, workers)
        print_plan(units, console, workers)
        console.print(f"dry run: nothing trained, nothing written (results would go to {path})")
        return 0

    from dlbench import devices

    wanted_devices = sorted({t["device"] for t in sweep.trials})
    if wanted_devices != ["cpu"]:  # only then is torch needed in this process before training
        available = devices.available_devices()
        for d in wanted_devices:
            devices.check_device(d, available)
    _check_files(sweep, sweep.data_dir)

    if sweep.executor == "dask":
        from dlbench.executors import DaskExecutor

        executor = DaskExecutor(sweep.address, workers, sweep.data_dir).start()
        try:
            return _run(sweep, path, fresh, workers, wanted_devices, executor, console, err)
        finally:
            executor.shutdown()
    executor = LocalExecutor(workers, sweep.data_dir)
    if workers > 1 and len(sweep.trials) > 1:
        executor.start()  # workers import torch while this process reads the results folder
        # and this process, idle while they train, imports what it needs to write the tables
        import threading

        threading.Thread(target=_import_table_writers, daemon=True).start()
    try:
        return _run(sweep, path, fresh, workers, wanted_devices, executor, console, err)
    finally:
        executor.shutdown()


def _import_table_writers() -> None:
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401


def _run(sweep: Sweep, path: Path, fresh: bool, workers: int, wanted_devices: list[str], executor, console,
         err) -> int:
    from dlbench import store
    from dlbench.plan import make_units

    if fresh and path.exists():
        old = ResultsDir(path)
        old.lock()  # never move a folder another sweep is writing to
        aside = path.with_name(f"{path.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            path.rename(aside)
        finally:
            old.unlock()
        console.print(f"--fresh: moved the earlier results to {aside}")
    results = ResultsDir(path)
    results.create()
    results.lock()
    try:
        results.write_spec(sweep.to_toml())
        from dlbench.plan import TRAIN_THREADS

        results.write_env(store.environment(wanted_devices, workers, threads=TRAIN_THREADS))
        records, damaged = results.load_records()
        for name in damaged:
            err.print(f"[yellow]warning:[/] damaged record {name} in {path / 'trials'}: moved aside as "
                      f"{Path(name).with_suffix('.damaged')}, its trial runs again")
        wanted = {t["id"] for t in sweep.trials}
        done = {i for i, r in records.items() if i in wanted and r["result"]["status"] in ("ok", "diverged")}
        retry = {i for i, r in records.items() if i in wanted and r["result"]["status"] == "failed"}
        todo = [t for t in sweep.trials if t["id"] not in done]
        msg = f"{len(done)} done, {len(todo)} to run"
        if retry:
            msg += f" ({len(retry)} failed earlier, retried)"
        console.print(f"{msg}; results in {path}")
        # Units are cut from the whole sweep, not from what is left: a trial is always trained
        # in the same group, so a resumed sweep reproduces an uninterrupted one bit for bit.
        # A unit with any trial left runs whole; only its missing trials are stored.
        units = [u for u in make_units(sweep.trials, sweep.engine, workers) if any(i not in done for i in u.ids)]
        if units:
            print_plan(units, console, workers)
        by_id = {t["id"]: t for t in sweep.trials}
        _execute(executor, units, by_id, records, results, console, done, len(sweep.trials))
        results.consolidate(records)
    finally:
        results.unlock()

    current = [records[t["id"]] for t in sweep.trials if t["id"] in records]
    print_summary(current, console, {"schema_version": SCHEMA_VERSION})
    console.print(f"results: {path}  (trials.parquet, history.parquet; `dlbench plot {path}`)")
    code = 0
    statuses = Counter(r["result"]["status"] for r in current)
    if statuses["failed"]:
        err.print(f"[red]{statuses['failed']} trial(s) failed[/]; their errors are in trials.parquet (column error)")
        code = 1
    failures = check_expectations(sweep.expect, current)
    for f in failures:
        err.print(f"[red]expectation failed:[/] {f}")
    if sweep.expect and not failures:
        console.print(f"expectations met: {', '.join(f'{k} {v}' for k, v in sweep.expect.items())}")
    return 1 if failures else code


def _check_files(sweep: Sweep, data_dir: str | None = None) -> None:
    """Datasets that need files must have them before training starts."""
    from dlbench.data import dataset_info

    names = {t["dataset"] for t in sweep.trials if dataset_info(t["dataset"]).needs_files}
    if names:
        from dlbench.data import files

        for name in sorted(names):
            files.check_present(name, data_dir)


def _execute(executor, units, by_id, records, results, console, done: set[str], n_total: int) -> None:
    from dlbench import store

    one_dataset = len({t["dataset"] for t in by_id.values()}) == 1  # "best so far" compares like with like
    best: tuple[float, str] | None = None
    last_write = time.monotonic()
    interactive = console.is_terminal
    progress = None
    if interactive and units:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        progress = Progress(TextColumn("[bold]training"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[best]}"),
                            console=console, transient=False)
        bar = progress.add_task("sweep", total=n_total, completed=len(done), best="")
        progress.start()
    finished = len(done)
    try:
        for unit_results in executor.run(units):
            for res in unit_results:
                trial = by_id[res.pop("trial_id")]
                if trial["id"] in done:
                    continue  # trained again only because its unit had others left; already stored
                records[trial["id"]] = results.save_trial(trial, res)  # durable before it is reported done
                finished += 1
                s = store.summary(res)
                metric, higher = progress_metric(trial)
                val = s[metric]
                if one_dataset and isinstance(val, float) and math.isfinite(val):
                    score = val if higher else -val
                    if best is None or score > best[0]:
                        best = (score, f"best {metric}={val:.4g} ({_label(trial)})")
                line = (f"[{finished}/{n_total}] {_label(trial)}: {res['status']}"
                        + (f" {metric}={val:.4g}" if isinstance(val, float) and math.isfinite(val) else "")
                        + (f" ({res['error']})" if res["error"] else ""))
                if progress is not None:
                    progress.update(bar, completed=finished, best=best[1] if best else "")
                else:
                    console.print(line, markup=False, highlight=False)
            if time.monotonic() - last_write > CONSOLIDATE_EVERY_S:
                results.consolidate(records)
                last_write = time.monotonic()
    finally:
        if progress is not None:
            progress.stop()


def _label(trial: dict) -> str:
    bs = trial["batch_size"]
    return f"{trial['optimizer']} lr={trial['lr']:g} bs={bs} seed={trial['seed']}"


def print_summary(records: list[dict], console: Console, env: dict | None = None) -> None:
    from dlbench.store import tables
    from dlbench.summary import render_summary

    trials, _ = tables(records)
    if not trials.empty:
        render_summary(trials, console, env, short=True)


OPS = {">=": operator.ge, "<=": operator.le, "==": operator.eq, ">": operator.gt, "<": operator.lt}


def check_expectations(expect: dict[str, str], records: list[dict]) -> list[str]:
    """The [expect] lines that do not hold, each as 'key: wanted OP X, got Y'.

    Counts (ok, diverged, failed) are over trials. A metric is judged on the configuration chosen
    on validation, per dataset (the mean over its seeds; dlbench.stats.best_configs across all
    optimizers): `test_acc_at_best_val >= 0.9` asks that the chosen configuration reach 0.9 on
    test. The best_test_* keys of specs written before validation splits keep their meaning:
    the best value of any trial."""
    from dlbench import stats
    from dlbench.store import summary, tables

    if not expect:
        return []
    sums = [summary(r["result"]) for r in records]
    trials, _ = tables(records)
    chosen = stats.best_configs(trials, per=()) if len(trials) else []
    failures = []
    for key, cond in expect.items():
        column, agg = EXPECT_METRICS[key]
        op, target = cond.split()
        if agg.startswith("count_"):
            got = [("", float(sum(1 for s in sums if s["status"] == agg[6:])))]
        elif agg == "chosen":
            got = [(b.dataset, _chosen_mean(trials, b, column)) for b in chosen] or [("", float("nan"))]
        else:
            vals = [s[column] for s in sums if s["status"] != "failed" and math.isfinite(s[column])]
            got = [("", (max if agg == "max" else min)(vals) if vals else float("nan"))]
        for dataset, value in got:
            if not (math.isfinite(value) and OPS[op](value, float(target))):
                where = f" ({dataset})" if dataset and len(got) > 1 else ""
                failures.append(f"{key}: wanted {op} {target}, got {value:.4g}{where}")
    return failures


def _chosen_mean(trials, best, column: str) -> float:
    """The mean over seeds of `column` for the configuration `best` chose."""
    import numpy as np

    from dlbench import stats

    rows = stats.usable(stats._rows_matching(trials[trials["dataset"] == best.dataset], best.config))
    if best.confirmed:
        rows = rows[rows["stage"] == "confirm"]
    v = rows[column].to_numpy(dtype=float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if len(v) else float("nan")

