"""`dlbench sweep`: print the grid, resume from the results folder, train what is left, store
each trial atomically as it finishes, then summarize and check the spec's expectations."""

from __future__ import annotations

import math
import operator
import time
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dlbench import SCHEMA_VERSION
from dlbench.errors import UserError
from dlbench.spec import EXPECT_METRICS, Sweep
from dlbench.store import ResultsDir, model_label, schedule_label, trial_label

CONSOLIDATE_EVERY_S = 2.0


def progress_metric(trial: dict) -> tuple[str, bool]:
    """The column a finished trial is ranked by in the progress line: its selection column
    (validation, or the training set without a split), never test."""
    from dlbench.data import dataset_info, validation_of
    from dlbench.stats import selection_for

    sel = selection_for(dataset_info(trial["dataset"]).task, validation_of(trial) > 0)
    return sel.select, sel.select_higher


def print_grid(sweep: Sweep, console: Console, dry_run: bool = False) -> None:
    """What the sweep trains: fixed keys, axes (each sub-grid's, with its ranges resolved), the
    search's points (all of them on a dry run), the stages of a protocol, and expansion notes."""
    n = len(sweep.trials)
    if sweep.sub_grids:
        parts = [" × ".join(f"{k} {len(v) if isinstance(v, list) else 'range'}" for k, v in g.values.items())
                 or "defaults" for g in sweep.grids]
        factors = " + ".join(f"({p})" for p in parts) if len(parts) > 1 else parts[0]
        if sweep.search:
            factors = f"{sweep.search['kind']} search, {sweep.search['budget']} points per sub-grid"
        factors += "".join(f" × {k} {len(v)}" for k, v in sweep.top_axes.items())
    else:
        factors = " × ".join(f"{k} {len(v)}" for k, v in sweep.axes.items()) or "no grid axes"
    console.print(f"[bold]{sweep.name}[/]: {n} trial{'s' * (n != 1)} ({escape(factors)})")
    table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
    table.add_column("key")
    table.add_column("values")
    first = sweep.trials[0]
    shown = {"model": model_label(first["model"]), "schedule": schedule_label(first["schedule"]),
             "validation": first.get("validation", 0.0)}
    varying = set(sweep.axes) | {k for g in sweep.grids for k in g.values}
    for k in ("dataset", "validation", "model", "loss", "epochs", "batch_size", "schedule", "device", "dtype"):
        if k not in varying:
            table.add_row(k, str(shown.get(k, first.get(k))))
    if not sweep.sub_grids:
        for k, values in sweep.axes.items():
            table.add_row(f"{k} (grid)", ", ".join(_short(v) for v in values))
    else:
        for k, values in sweep.top_axes.items():
            table.add_row(f"{k} (every sub-grid)", ", ".join(_short(v) for v in values))
        for i, g in enumerate(sweep.grids, 1):
            for k, values in g.values.items():
                label = f"grid {i}: {k}" if len(sweep.grids) > 1 else f"{k} (search space)"
                table.add_row(label, _range_text(g.ranges.get(k), values))
    console.print(table)
    if sweep.search:
        pts = sweep.search["points"]
        console.print(f"search: {sweep.search['kind']}, seed {sweep.search['seed']}, {len(pts)} points"
                      + (" (Sobol points balance best when the budget is a power of 2)"
                         if sweep.search["kind"] == "sobol" and sweep.search["budget"] & (sweep.search["budget"] - 1)
                         else ""))
        for i, p in enumerate(pts if dry_run else pts[:4], 1):
            console.print(f"  point {i}: " + " ".join(f"{k}={_short(v)}" for k, v in p.items()), markup=False)
        if not dry_run and len(pts) > 4:
            console.print(f"  ... {len(pts) - 4} more (all of them in spec.toml; --dry-run lists them)")
    if sweep.protocol:
        console.print(stage_sizes(sweep))
    for note in sweep.notes:
        console.print(f"[yellow]note:[/] {escape(note)}")


def stage_sizes(sweep: Sweep) -> str:
    from dlbench import design

    pr = sweep.protocol
    seeds = design.confirm_seeds({t["seed"] for t in sweep.trials}, pr["confirm_seeds"])
    per = ", ".join(["dataset", *pr["per"]])
    n = _confirm_size(sweep)
    return (f"stage 1 (tune): {len(sweep.trials)} trials; stage 2 (confirm): the best configuration of each "
            f"({per}) by {pr['direction']} mean {pr['select']}: {n // pr['confirm_seeds']} × {pr['confirm_seeds']} "
            f"fresh seeds ({seeds[0]}-{seeds[-1]}) = {n} trials")


def _range_text(spec: dict | None, values) -> str:
    if spec is None:
        return ", ".join(_short(v) for v in values)
    kind = "log" if "log" in spec else "lin"
    a, b = spec[kind]
    head = f"{kind} {a:g}..{b:g}"
    if "num" not in spec:
        return f"{head} (continuous)"
    return f"{head} ({spec['num']}): " + ", ".join(_short(v) for v in values)


def _short(v) -> str:
    if isinstance(v, dict):
        return model_label(v) if "hidden" in v or v.get("kind") in ("linear", "cnn", "problem") else str(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def print_plan(units, console: Console, workers: int) -> None:
    counts = Counter(u.engine for u in units)
    trials = Counter()
    for u in units:
        trials[u.engine] += len(u.trials)
    parts = [f"{trials[e]} trial{'s' * (trials[e] != 1)} on the {e} engine in {counts[e]} "
             f"unit{'s' * (counts[e] != 1)}" for e in ("fused", "reference") if counts[e]]
    console.print(f"plan: {'; '.join(parts) or 'nothing to run'}; {workers} worker{'s' * (workers != 1)}")
    reasons = Counter(u.reason for u in units if u.reason for _ in u.trials)
    for reason, k in reasons.items():  # once per sweep: why trials do not run fused
        console.print(f"[yellow]note:[/] {k} trial{'s' * (k != 1)} on the reference engine, {escape(reason)}")


def early_pool(raw: dict, workers: int | None):
    """A local worker pool started before the spec is checked, when checking it means importing the
    user's code (and with it torch and, for any torch.optim.Optimizer, torch._dynamo: about 3 s
    here): the workers import the same while this process checks. None when there is nothing to
    overlap (one worker, Dask, only built-ins)."""
    from dlbench.executors import LocalExecutor, default_workers
    from dlbench.spec import mentions_user_code, mentions_user_optimizer

    n = workers or raw.get("workers") or default_workers()
    if not isinstance(n, int) or n <= 1 or raw.get("executor", "local") != "local" or raw.get("address"):
        return None
    if not mentions_user_code(raw):
        return None
    # torch._dynamo only for a user's optimizer: constructing any torch.optim.Optimizer imports it
    preload = ("torch._dynamo",) if mentions_user_optimizer(raw) else ()
    return LocalExecutor(n, raw.get("data_dir") if isinstance(raw.get("data_dir"), str) else None,
                         preload=preload).start()


def run_sweep(sweep: Sweep, out: str | Path, *, fresh: bool = False, dry_run: bool = False,
              workers: int | None = None, console: Console | None = None, pool=None) -> int:
    """Run a validated sweep; the exit code: 0; 1 when a trial failed or an expectation did not
    hold; 128 + N when signal N ended it (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP).

    Every check that can refuse the sweep (devices, dataset files, the Dask scheduler, the
    results folder) runs before anything is printed."""
    from dlbench.executors import LocalExecutor, default_workers
    from dlbench.output import console as make_console
    from dlbench.plan import make_units

    console = console or make_console()
    err = make_console(stderr=True)
    workers = workers or sweep.workers or default_workers()
    path = Path(out) / sweep.name
    units = make_units(sweep.trials, sweep.engine, workers)  # refuses trials --engine fused cannot train
    wanted_devices = sorted({t["device"] for t in sweep.trials})
    if wanted_devices != ["cpu"]:  # only then is torch needed in this process before training
        from dlbench import devices

        available = devices.available_devices()
        for d in wanted_devices:
            devices.check_device(d, available)
    _check_files(sweep, sweep.data_dir)
    if not fresh:
        check_user_files(path)
    extends = None if fresh else check_same_sweep(path, sweep)
    if pool is not None and (dry_run or sweep.executor != "local" or pool.workers != workers
                             or pool.data_dir != sweep.data_dir):
        pool.kill()  # started early for nothing: the sweep runs elsewhere, or not at all
        pool = None
    if dry_run:
        print_grid(sweep, console, dry_run=True)
        _say_extends(extends, path, console)
        print_plan(units, console, workers)
        console.print(f"dry run: nothing trained, nothing written (results would go to {path})")
        return 0

    from dlbench.interrupt import StopOnSignal

    if sweep.executor == "dask":
        from dlbench.executors import DaskExecutor

        executor = DaskExecutor(sweep.address, workers, sweep.data_dir)
    else:
        executor = pool or LocalExecutor(workers, sweep.data_dir)
    with StopOnSignal(on_second=executor.kill) as stop:
        if isinstance(executor, LocalExecutor):
            executor.stop = stop
        try:
            if sweep.executor == "dask":
                executor.start()  # may refuse (unreachable scheduler): before anything is written
            results = _open_results(path, fresh, console)  # may refuse (locked, unwritable)
            try:
                if sweep.executor == "local" and workers > 1 and len(sweep.trials) > 1:
                    executor.start()  # workers import torch while this process reads the results folder
                    # and this process, idle while they train, imports what it needs to write the tables
                    import threading

                    threading.Thread(target=_import_table_writers, daemon=True).start()
                return _run(sweep, results, workers, wanted_devices, executor, console, err, stop, extends)
            finally:
                results.unlock()
        finally:
            # every result is in by now: idle local workers are ended rather than left to tear down
            # their interpreters (with torch loaded that takes most of a second each); a Dask
            # executor only disconnects either way
            executor.kill() if stop.signum is not None or sweep.executor == "local" else executor.shutdown()


def _import_table_writers() -> None:
    """What the end of a sweep needs (tables, and the statistics of its summary: scipy.stats
    alone takes a second), imported while the workers train and this process waits."""
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    import scipy.stats  # noqa: F401

    import dlbench.stats  # noqa: F401
    import dlbench.summary  # noqa: F401


def _open_results(path: Path, fresh: bool, console) -> ResultsDir:
    """The locked results folder (an earlier one moved aside first with --fresh)."""
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
    return results


def _run(sweep: Sweep, results: ResultsDir, workers: int, wanted_devices: list[str], executor, console, err,
         stop, extends: tuple[int, int] | None = None) -> int:
    from dlbench import plugins, store
    from dlbench.interrupt import Interrupted
    from dlbench.plan import TRAIN_THREADS

    path = results.path
    all_trials = list(sweep.trials)
    records: dict[str, dict] = {}
    code = 0
    try:
        print_grid(sweep, console)
        _say_extends(extends, path, console)
        with stop.critical():
            results.write_spec(sweep.to_toml())
            results.write_env(store.environment(wanted_devices, workers, threads=TRAIN_THREADS,
                                                plugins=plugins.REGISTRY.provenance()))
            records, damaged = results.load_records()
        for name in damaged:
            err.print("[yellow]warning:[/] " + escape(f"damaged record {name} in {path / 'trials'}: moved aside as "
                                                      f"{Path(name).with_suffix('.damaged')}, its trial runs again"))
        _run_stage(sweep.trials, "tune", sweep, executor, records, results, console, workers, stop)
        if sweep.protocol:
            confirm, why_not = confirm_stage(sweep, records)
            if confirm is None:
                err.print(f"[red]stage 2 (confirm) not started:[/] {escape(why_not)}")
                code = 1
            else:
                all_trials += confirm
                _run_stage(confirm, "confirm", sweep, executor, records, results, console, workers, stop,
                           chosen_by(sweep))
    except Interrupted as e:
        executor.kill()
        if records:
            with stop.critical():
                results.consolidate(records)
        stored = sum(1 for t in all_trials if t["id"] in records)
        total = len(all_trials) + (_confirm_size(sweep) if sweep.protocol and len(all_trials) == len(sweep.trials)
                                   else 0)
        err.print(f"interrupted: {stored} of {total} trials stored in {path}; run the same command to resume",
                  markup=False, highlight=False)
        return e.exit_code
    with stop.critical():
        results.consolidate(records)

    from dlbench.summary import render_summary

    current = [records[t["id"]] for t in all_trials if t["id"] in records]
    trials, _ = store.tables(current)
    if not trials.empty:
        render_summary(trials, console, {"schema_version": SCHEMA_VERSION}, short=True, where=str(path))
    console.print(f"results: {path}  (trials.parquet, history.parquet; `dlbench plot {path}`)")
    statuses = Counter(r["result"]["status"] for r in current)
    if statuses["failed"]:
        err.print(f"[red]{statuses['failed']} trial(s) failed[/]; their errors are in trials.parquet (column error)")
        code = 1
    fell_back = Counter(r["result"].get("fallback_reason") for r in current
                        if (r["result"].get("fallback_reason") or "").startswith("out of memory"))
    for reason, k in fell_back.items():
        err.print(f"[yellow]note:[/] {k} trial{'s' * (k != 1)} fell back to the reference engine: {escape(reason)}")
    failures = check_expectations(sweep.expect, trials)
    for f in failures:
        err.print(f"[red]expectation failed:[/] {escape(f)}")
    if sweep.expect and not failures:
        console.print(f"expectations met: {', '.join(f'{k} {v}' for k, v in sweep.expect.items())}")
    return 1 if failures else code


def _run_stage(trials: list[dict], stage: str, sweep: Sweep, executor, records, results, console, workers,
               stop, chosen: str | None = None) -> None:
    """Train what is left of one stage's trials, storing each as it finishes."""
    from dlbench.plan import make_units

    wanted = {t["id"] for t in trials}
    done = {i for i, r in records.items() if i in wanted and r["result"]["status"] in ("ok", "diverged")}
    retry = {i for i, r in records.items() if i in wanted and r["result"]["status"] == "failed"}
    todo = [t for t in trials if t["id"] not in done]
    msg = f"{len(done)} done, {len(todo)} to run"
    if retry:
        msg += f" ({len(retry)} failed earlier, retried)"
    prefix = "" if not sweep.protocol else ("stage 1 (tune): " if stage == "tune" else "stage 2 (confirm): ")
    console.print(f"{prefix}{msg}; results in {results.path}")
    # Units are cut from the whole stage, not from what is left: a trial is always trained in
    # the same group, so a resumed sweep reproduces an uninterrupted one bit for bit. A unit
    # with any trial left runs whole; only its missing trials are stored.
    units = [u for u in make_units(trials, sweep.engine, workers, ship_all=sweep.executor == "dask")
             if any(i not in done for i in u.ids)]
    if units:
        print_plan(units, console, workers)
    by_id = {t["id"]: t for t in trials}
    _execute(executor, units, by_id, records, results, console, done, len(trials), stage, stop, chosen)


def chosen_by(sweep: Sweep) -> str:
    """How stage 1 chose what stage 2 confirms, in words stored with each confirm trial."""
    from dlbench import stats

    pr = sweep.protocol
    seeds = sorted({t["seed"] for t in sweep.trials})
    return (f"the {'highest' if pr['direction'] == 'max' else 'lowest'} mean {pr['select']} over tuning seeds "
            f"{stats.seed_span(seeds)}, per {', '.join(['dataset', *pr['per']])}")


def confirm_stage(sweep: Sweep, records: dict) -> tuple[list[dict] | None, str]:
    """Stage 2's trials, chosen from the stored stage-1 results (so a resume chooses the same), or
    None and why it cannot start yet."""
    from dlbench import design, store
    from dlbench.spec import canonical_trial

    pr = sweep.protocol
    missing = [t for t in sweep.trials if t["id"] not in records]
    failed = [t for t in sweep.trials if t["id"] in records and records[t["id"]]["result"]["status"] == "failed"]
    if missing or failed:
        return None, (f"{len(failed)} stage-1 trial(s) failed and {len(missing)} are missing; the choice would "
                      "rest on an incomplete stage 1. Fix the cause and run the same command again")
    summaries = {t["id"]: store.summary(records[t["id"]]["result"]) for t in sweep.trials}
    chosen = design.choose(sweep.trials, summaries, pr)
    seeds = design.confirm_seeds({t["seed"] for t in sweep.trials}, pr["confirm_seeds"])
    confirm = []
    for group in design.groups_of(sweep.trials, pr["per"]):
        if group not in chosen:
            continue  # no configuration of the group has a finite value of select
        base = {k: v for k, v in chosen[group].items() if k != "id"}
        confirm += [canonical_trial({**base, "seed": s}) for s in seeds]
    if not confirm:
        return None, f"no stage-1 trial has a finite {pr['select']}; nothing to confirm"
    return confirm, ""


def _confirm_size(sweep: Sweep) -> int:
    from dlbench import design

    return len(design.groups_of(sweep.trials, sweep.protocol["per"])) * sweep.protocol["confirm_seeds"]


def check_same_sweep(path: Path, sweep: Sweep) -> tuple[int, int] | None:
    """A results folder holds one sweep. (trials stored, new trials) when `path` holds this sweep
    or one that this sweep only adds trials to (new grid values, sub-grids, seeds, optimizers);
    None when there is no sweep there yet. Anything else is refused in one line naming each
    changed key, so that two sweeps are never compared as one."""
    import tomllib

    from dlbench import store
    from dlbench.spec import spec_diff

    spec_file = path / "spec.toml"
    stages = store.stored_stages(path) if path.is_dir() else {}
    if not stages:
        return None
    new = {t["id"] for t in sweep.trials}
    tuned = {i for i, stage in stages.items() if stage != "confirm"}
    confirmed = len(stages) - len(tuned)
    try:
        old_raw = tomllib.loads(spec_file.read_text()) if spec_file.exists() else {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        old_raw = {}
    new_raw = tomllib.loads(sweep.to_toml())
    protocol_changed = confirmed and old_raw.get("protocol") != new_raw.get("protocol")
    missing = tuned - new
    if not missing and not protocol_changed:
        return len(tuned & new), len(new - tuned)
    diff = spec_diff(old_raw, new_raw) if old_raw else []
    changes = [d for d in diff if not d.startswith("protocol.")] + [d for d in diff if d.startswith("protocol.")]
    what = "; ".join(changes[:6]) + (f"; and {len(changes) - 6} more" if len(changes) > 6 else "") if changes else \
        f"{len(missing)} of its {len(tuned)} trials are not in this sweep"
    raise UserError(f"{path} holds another sweep ({what}); allowed: the same spec, one that only adds trials, "
                    "--fresh (moves the old results aside), or another --name")


def _say_extends(extends: tuple[int, int] | None, path: Path, console) -> None:
    if extends is not None and extends[0] and extends[1]:
        console.print(f"extends {path}: {extends[0]} done, {extends[1]} new", markup=False, highlight=False)


def check_user_files(path: Path) -> None:
    """A user's file (an optimizer, a model, a dataset) that changed since this results folder was
    written would mix old and new results under one name: refuse, saying which and the ways out."""
    import json

    from dlbench import plugins

    env_file = path / "env.json"
    if not env_file.exists():
        return
    try:
        before = json.loads(env_file.read_text()).get("plugins", {})
    except ValueError:
        return  # a damaged env.json is the reader's to report; it is rewritten on this run
    now = plugins.REGISTRY.provenance()
    for key, was in before.items():
        sha = (now.get(key) or {}).get("sha256")
        if was.get("sha256") and sha and sha != was["sha256"]:
            raise UserError(f"{key}: {was.get('path')} changed since {path} was written (SHA-256 "
                            f"{was['sha256'][:12]}… then, {sha[:12]}… now): its results would mix with the old ones; "
                            "allowed: restore the file, --fresh (moves the old results aside), or another --name")


def _check_files(sweep: Sweep, data_dir: str | None = None) -> None:
    """Datasets that need files must have them before training starts."""
    from dlbench.data import dataset_info

    names = {t["dataset"] for t in sweep.trials if dataset_info(t["dataset"]).needs_files}
    if names:
        from dlbench.data import files

        for name in sorted(names):
            files.check_present(name, data_dir)


def _execute(executor, units, by_id, records, results, console, done: set[str], n_total: int, stage: str,
             stop, chosen: str | None = None) -> None:
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
        bar = progress.add_task(stage, total=n_total, completed=len(done), best="")
        progress.start()
    finished = len(done)
    try:
        for unit_results in executor.run(units):
            for res in unit_results:
                trial = by_id[res.pop("trial_id")]
                if trial["id"] in done:
                    continue  # trained again only because its unit had others left; already stored
                with stop.critical():  # durable before it is reported done; a signal waits for it
                    records[trial["id"]] = results.save_trial(trial, res, stage, chosen)
                finished += 1
                s = store.summary(res)
                metric, higher = progress_metric(trial)
                val = s[metric]
                if one_dataset and isinstance(val, float) and math.isfinite(val):
                    score = val if higher else -val
                    if best is None or score > best[0]:
                        best = (score, f"best {metric}={val:.4g} ({trial_label(trial)})")
                # several datasets: say which (the same optimizer and lr mean different things on each)
                where = "" if one_dataset else f"{trial['dataset']} "
                line = (f"[{finished}/{n_total}] {where}{trial_label(trial)}: {res['status']}"
                        + (f" {metric}={val:.4g}" if isinstance(val, float) and math.isfinite(val) else "")
                        + (f" ({res['error']})" if res["error"] else ""))
                if progress is not None:
                    progress.update(bar, completed=finished, best=best[1] if best else "")
                else:
                    console.print(line, markup=False, highlight=False)
            if time.monotonic() - last_write > CONSOLIDATE_EVERY_S:
                with stop.critical():
                    results.consolidate(records)
                last_write = time.monotonic()
    finally:
        if progress is not None:
            progress.stop()


OPS = {">=": operator.ge, "<=": operator.le, "==": operator.eq, ">": operator.gt, "<": operator.lt}


def check_expectations(expect: dict[str, str], trials) -> list[str]:
    """The [expect] lines that do not hold, each as 'key: wanted OP X, got Y'.

    Counts (ok, diverged, failed) are over trials. A metric is judged on the configuration chosen
    on validation, per dataset (the mean over its seeds; dlbench.stats.best_configs across all
    optimizers, which under a [protocol] picks among the confirmed configurations and measures
    on their fresh seeds): `test_acc_at_best_val >= 0.9` asks that the chosen configuration reach
    0.9 on test. The best_test_* keys of specs written before validation splits keep their meaning:
    the best value of any trial."""
    import numpy as np

    from dlbench import stats

    if not expect:
        return []
    chosen = stats.best_configs(trials, per=()) if len(trials) else []
    failures = []
    for key, cond in expect.items():
        column, agg = EXPECT_METRICS[key]
        op, target = cond.split()
        if agg.startswith("count_"):
            got = [("", float((trials["status"] == agg[6:]).sum()) if len(trials) else 0.0)]
        elif agg == "chosen":
            got = [(b.dataset, _chosen_mean(trials, b, column)) for b in chosen] or [("", float("nan"))]
        else:
            vals = stats.usable(trials)[column].to_numpy(dtype=float) if len(trials) else np.array([])
            vals = vals[np.isfinite(vals)]
            got = [("", float(vals.max() if agg == "max" else vals.min()) if len(vals) else float("nan"))]
        for dataset, value in got:
            if not (math.isfinite(value) and OPS[op](value, float(target))):
                where = f" ({dataset})" if dataset and len(got) > 1 else ""
                failures.append(f"{key}: wanted {op} {target}, got {value:.4g}{where}")
    return failures


def _chosen_mean(trials, best, column: str) -> float:
    """The mean over seeds of `column` for the configuration `best` chose."""
    import numpy as np

    from dlbench import stats

    rows = stats.usable(stats.rows_matching(trials[trials["dataset"] == best.dataset], best.config))
    if best.confirmed:
        rows = rows[rows["stage"] == "confirm"]
    v = rows[column].to_numpy(dtype=float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if len(v) else float("nan")

