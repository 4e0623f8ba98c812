"""`dlbench sweep`: check what can refuse the sweep, resume from the results folder, train what is
left (stage by stage under a protocol), store each trial atomically as it finishes, then summarize
and judge the spec's expectations. What it prints before training is dlbench.announce's."""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from dlbench import SCHEMA_VERSION, announce, catalogue, folders
from dlbench.spec import Sweep
from dlbench.store import ResultsDir, trial_label
from dlbench.timeline import mark

CONSOLIDATE_EVERY_S = 2.0


@dataclass
class Run:
    """One run of a sweep, as its stages share it: what runs, where, what is stored so far, where
    it is said, how many workers, and the signal guard."""

    sweep: Sweep
    executor: Any
    records: dict[str, dict]  # trial id -> its stored record
    results: ResultsDir
    console: Console
    workers: int
    stop: Any  # dlbench.interrupt.StopOnSignal
    scale: int = 0  # the trials the sweep declared: a log's progress lines are spaced by it in every stage


def progress_metric(trial: dict) -> tuple[str, bool]:
    """The column a finished trial is ranked by in the progress line: its selection column
    (validation, or the training set without a split), never test."""
    from dlbench.stats import rule_of

    sel = rule_of(trial)
    return sel.select, sel.select_higher


def early_pool(raw: dict, workers: int | None):
    """A local worker pool started before the spec is checked, when checking it means importing the
    user's code (and with it torch and, for any torch.optim.Optimizer, torch._dynamo: about 3 s
    here): the workers import the same while this process checks. None when there is nothing to
    overlap (one worker, Dask, only built-ins)."""
    from dlbench.executors import LocalExecutor, default_workers

    n = workers or raw.get("workers") or default_workers()
    if not isinstance(n, int) or n <= 1 or raw.get("executor", "local") != "local" or raw.get("address"):
        return None
    if not catalogue.imports_code(raw):
        return None
    # torch._dynamo only for an optimizer that does not ship: constructing any torch.optim.Optimizer imports it
    preload = ("torch._dynamo",) if catalogue.imports_optimizer_code(raw) else ()
    return LocalExecutor(n, raw.get("data_dir") if isinstance(raw.get("data_dir"), str) else None,
                         preload=preload).start()


def run_sweep(sweep: Sweep, out: str | Path, *, fresh: bool = False, dry_run: bool = False,
              workers: int | None = None, console: Console | None = None, pool=None, warmed: bool = False) -> int:
    """Run a validated sweep; the exit code: 0; 1 when a trial failed or an expectation did not
    hold; 128 + N when signal N ended it (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP).

    Every check that can refuse the sweep (devices, dataset files, the Dask scheduler, the
    results folder) runs before anything is printed. `warmed`: the caller started the forkserver
    (dlbench.forkserver.warm), so even a one-trial sweep trains on the pool, where torch is being
    imported already, rather than importing it a second time in this process."""
    from dlbench.executors import LocalExecutor, default_workers
    from dlbench.output import console as make_console
    from dlbench.plan import make_units

    console = console or make_console()
    err = make_console(stderr=True)
    # on SLURM the units are cut for as many jobs as run at once, whatever the login node has
    workers = workers or sweep.workers or (sweep.slurm["array_parallelism"] if sweep.executor == "slurm"
                                           else default_workers())
    path = Path(out) / sweep.name
    if not fresh:
        _stored_extensions(sweep, path)  # an earlier run grew its ranges: those trials are this sweep's too
        if asks(sweep):  # and the points an earlier run's Optuna search asked
            from dlbench import optuna_search

            sweep.with_points(optuna_search.stored_points(sweep, path))
    units = make_units(sweep.trials, sweep.engine, workers)  # refuses trials --engine fused cannot train
    wanted_devices = sorted({t["device"] for t in sweep.trials})
    if wanted_devices != ["cpu"]:  # only then is torch needed in this process before training
        from dlbench import devices

        available = devices.available_devices()
        for d in wanted_devices:
            devices.check_device(d, available)
    _check_files(sweep, sweep.data_dir)
    if not fresh:
        folders.check_user_files(path)
    extends = None if fresh else folders.check_same_sweep(path, sweep)
    if sweep.executor == "slurm" and not dry_run:
        from dlbench import slurm

        sweep.slurm = slurm.check(sweep.slurm, path)  # may refuse (no SLURM, a partition, resources, the folder)
        if fresh:
            slurm.check_no_jobs_left(path)  # an earlier run's jobs would write into the new folder
    if pool is not None and (dry_run or sweep.executor != "local" or pool.workers != workers
                             or pool.data_dir != sweep.data_dir):
        pool.kill()  # started early for nothing: the sweep runs elsewhere, or not at all
        pool = None
    if dry_run:
        announce.print_grid(sweep, console, dry_run=True)
        announce.say_extends(extends, path, console)
        announce.print_plan(units, console, workers, sweep.executor)
        console.print(f"dry run: nothing trained, nothing written (results would go to {path})")
        return 0

    from dlbench.interrupt import StopOnSignal

    if sweep.executor == "dask":
        from dlbench.executors import DaskExecutor

        executor = DaskExecutor(sweep.address, workers, sweep.data_dir)
    elif sweep.executor == "slurm":
        from dlbench.slurm_jobs import SlurmExecutor

        executor = SlurmExecutor(path, sweep.slurm, sweep.name, sweep.data_dir)
    else:
        executor = pool or LocalExecutor(workers, sweep.data_dir)
    with StopOnSignal(on_second=executor.kill) as stop:
        if sweep.executor != "dask":
            executor.stop = stop
        try:
            if sweep.executor == "dask":
                executor.start()  # may refuse (unreachable scheduler): before anything is written
            results = _open_results(path, fresh, console)  # may refuse (locked, unwritable)
            try:
                if sweep.executor == "local" and workers > 1 and (len(sweep.trials) > 1 or warmed):
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
    """What the end of a sweep needs (tables, and the statistics of its summary), imported while
    the workers train and this process waits."""
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    import scipy.special  # noqa: F401

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
    from dlbench import store
    from dlbench.interrupt import Interrupted
    from dlbench.plan import TRAIN_THREADS

    path = results.path
    all_trials = list(sweep.trials)
    records: dict[str, dict] = {}
    code = 0
    try:
        announce.print_grid(sweep, console)
        announce.say_extends(extends, path, console)
        with stop.critical():
            results.write_spec(sweep.to_toml())
            results.write_env(store.environment(wanted_devices, workers, threads=TRAIN_THREADS,
                                                plugins=catalogue.provenance()))
            records, damaged = results.load_records()
        for name in damaged:
            err.print("[yellow]warning:[/] " + escape(f"damaged record {name} in {path / 'trials'}: moved aside as "
                                                      f"{Path(name).with_suffix('.damaged')}, its trial runs again"))
        run = Run(sweep, executor, records, results, console, workers, stop, len(sweep.trials))
        if asks(sweep):
            _ask_and_tell(run)
        else:
            _run_stage(run, sweep.trials, "tune")
        _extend(run)
        all_trials = list(sweep.trials)  # with what extending the ranges added
        if sweep.protocol:
            from dlbench import protocol

            finalists, confirm, why_not = protocol.confirm_trials(sweep.trials, records, sweep.protocol)
            if confirm is None:
                err.print(f"[red]stage 2 (confirm) not started:[/] {escape(why_not)}")
                code = 1
            else:
                all_trials += confirm
                how = chosen_by(sweep, finalists)
                for note in dict.fromkeys(n.split("; ", 1)[1] for n in how.values() if "; " in n):
                    console.print(f"[yellow]note:[/] stage 1 broke a tie: {escape(note)}")
                _run_stage(run, confirm, "confirm", how)
    except Interrupted as e:
        executor.kill()
        if records:
            with stop.critical():
                results.consolidate(records)
        from dlbench.protocol import confirm_size

        stored = sum(1 for t in all_trials if t["id"] in records)
        total = len(all_trials) + (confirm_size(sweep.trials, sweep.protocol)
                                   if sweep.protocol and len(all_trials) == len(sweep.trials) else 0)
        err.print(f"interrupted: {stored} of {total} trials stored in {path}; run the same command to resume",
                  markup=False, highlight=False)
        if sweep.executor == "slurm":
            err.print(f"the SLURM jobs go on: the same command collects what they finish (`dlbench jobs {path}` "
                      "says where each is; scancel stops them)", markup=False, highlight=False)
        return e.exit_code
    mark("trained")
    with stop.critical():
        results.consolidate(records)
    mark("tables written")

    from dlbench.summary import render_summary

    current = [records[t["id"]] for t in all_trials if t["id"] in records]
    trials, history = store.tables(current)
    if not trials.empty:
        render_summary(trials, console, {"schema_version": SCHEMA_VERSION}, short=True, where=str(path),
                       history=history, focus=sweep.focus, search=sweep.search["kind"] if sweep.search else "grid",
                       extended=folders.extended({"extensions": {"points": sweep.extensions}}))
    mark("summary printed")
    console.print(f"results: {path}  (trials.parquet, history.parquet; `dlbench plot {path}`)")
    statuses = Counter(r["result"]["status"] for r in current)
    if statuses["failed"]:
        err.print(f"[red]{statuses['failed']} trial(s) failed[/]; their errors are in trials.parquet (column error)")
        code = 1
    fell_back = Counter(r["result"].get("fallback_reason") for r in current
                        if (r["result"].get("fallback_reason") or "").startswith("out of memory"))
    for reason, k in fell_back.items():
        err.print(f"[yellow]note:[/] {k} trial{'s' * (k != 1)} fell back to the reference engine: {escape(reason)}")
    from dlbench.expect import check_expectations

    failures = check_expectations(sweep.expect, trials)
    for f in failures:
        err.print(f"[red]expectation failed:[/] {escape(f)}")
    if sweep.expect and not failures:
        console.print(f"expectations met: {', '.join(f'{k} {v}' for k, v in sweep.expect.items())}")
    return 1 if failures else code


def asks(sweep: Sweep) -> bool:
    """Whether the sweep's points are asked as it goes (an Optuna search)."""
    return sweep.search is not None and sweep.search["kind"] == "optuna"


def _ask_and_tell(run: Run) -> None:
    """The tuning stage of an Optuna search (dlbench.optuna_search): the points asked before (a
    resumed sweep) trained batch by batch as they were asked, then ask a batch, train it fused, tell
    the sampler, until every study has its budget."""
    from dlbench import optuna_search
    from dlbench.plan import max_unit_size

    sweep, records, results, console, workers = run.sweep, run.records, run.results, run.console, run.workers
    s = sweep.search
    probe = sweep.point_trials(1, optuna_search.probe(sweep.space(1)), {})
    seeds = len({t["seed"] for t in probe})
    # without `batch`: the points the fused engine trains at once on these workers, at most a quarter
    # of the budget (the sampler is told what most of its points reached before it asks them)
    width = max_unit_size(probe[0]) * workers // max(1, seeds)
    search = optuna_search.Search(sweep, results.path, max(1, min(width, s["budget"] // 4)))
    repaired = search.repair()
    if repaired:
        console.print(f"[yellow]note:[/] {repaired} point(s) of a batch cut short while it was asked are asked again")
    batches: dict[int, list[dict]] = {}
    for study, tr, point in search.asked():
        batches.setdefault(tr.user_attrs.get(optuna_search.BATCH_ATTR, 0), []).extend(
            search.trials_of(study, point))
    n_studies = len(search.studies)
    console.print(f"optuna {s['sampler']} search: {len(search.asked())} of {s['budget'] * n_studies} points asked "
                  f"({s['budget']} per study, {n_studies} stud{'ies' if n_studies != 1 else 'y'}, "
                  f"{search.batch_size()} at a time); journal: {results.path / optuna_search.JOURNAL}")
    if batches:
        asked = [t for b in sorted(batches) for t in batches[b]]
        done = sum(1 for t in asked if t["id"] in records and records[t["id"]]["result"]["status"] != "failed")
        prefix = "stage 1 (tune): " if sweep.protocol else ""
        console.print(f"{prefix}{done} done, {len(asked) - done} to run of the points asked; results in {results.path}")
    for b in sorted(batches):  # as they were asked: the same units, the same numbers
        _run_stage(run, batches[b], "tune", say=False)
    while True:
        with run.stop.critical():
            search.tell(records)
            asked = search.ask()
        if not asked:
            return
        new = sweep.with_points(asked)
        console.print(f"optuna {s['sampler']}: asked {len(asked)} point(s), {len(search.asked())} of "
                      f"{s['budget'] * n_studies}", markup=False, highlight=False)
        _run_stage(run, new, "tune")


def _run_stage(run: Run, trials: list[dict], stage: str, chosen: dict[str, str] | None = None, say: bool = True,
               plan: bool = True) -> None:
    """Train what is left of one stage's trials, storing each as it finishes (`say`: print how many
    are done and left; `plan`: print the plan of units and its engine notes)."""
    from dlbench.plan import make_units

    sweep, records = run.sweep, run.records
    wanted = {t["id"] for t in trials}
    done = {i for i, r in records.items() if i in wanted and r["result"]["status"] in ("ok", "diverged", "stopped")}
    retry = {i for i, r in records.items() if i in wanted and r["result"]["status"] == "failed"}
    todo = [t for t in trials if t["id"] not in done]
    msg = f"{len(done)} done, {len(todo)} to run"
    if retry:
        msg += f" ({len(retry)} failed earlier, retried)"
    prefix = "" if not sweep.protocol else ("stage 1 (tune): " if stage == "tune" else "stage 2 (confirm): ")
    if say:
        run.console.print(f"{prefix}{msg}; results in {run.results.path}")
    # Units are cut from the whole stage, not from what is left: a trial is always trained in
    # the same group, so a resumed sweep reproduces an uninterrupted one bit for bit. A unit
    # with any trial left runs whole; only its missing trials are stored.
    units = [u for u in make_units(trials, sweep.engine, run.workers, ship_all=sweep.executor != "local")
             if any(i not in done for i in u.ids)]
    if units and plan:
        announce.print_plan(units, run.console, run.workers, sweep.executor)
    _execute(run, units, {t["id"]: t for t in trials}, done, len(trials), stage, chosen)
    note = run.executor.note() if hasattr(run.executor, "note") else None
    if note:
        run.console.print(note, markup=False, highlight=False)


def _stored_extensions(sweep: Sweep, path: Path) -> None:
    """The points an earlier run of this sweep added beyond its ranges' edges (spec.toml), so that
    a resumed sweep has them from the start. A folder of another sweep keeps them to itself (the
    folder check then names what differs)."""
    from dlbench.errors import UserError
    from dlbench.extension import check_points

    table = folders.stored_spec(path).get("extensions")
    if table is None or not sweep.extendable():
        return
    try:
        points = check_points(table, sweep)
    except UserError:
        return
    sweep.with_extensions([p for p in points if p not in sweep.extensions])


def _extend(run: Run) -> None:
    """While the tuning stage chooses a value at the edge of a range with `extend`, add the next
    value beyond it (stored in spec.toml first), train it, and choose again (dlbench.extension)."""
    sweep, console = run.sweep, run.console
    if not sweep.extendable():
        return
    from dlbench import extension, words

    rounds = 0
    while True:
        steps = extension.steps(sweep, run.records)
        grow = [s for s in steps if s.point is not None]
        blocked = [s for s in steps if s.point is None and s.why_not and s.edge]
        if not grow:
            if blocked and not rounds:  # nothing grew: say why once (show and the report name each)
                console.print(f"[yellow]note:[/] {escape(words.extension_round(0, [], blocked))}")
            return
        rounds += 1
        console.print(words.extension_round(rounds, grow, blocked), markup=False, highlight=False)
        new = sweep.with_extensions([s.point for s in grow])
        with run.stop.critical():
            run.results.write_spec(sweep.to_toml())
        _run_stage(run, new, "tune", say=False, plan=False)


def chosen_by(sweep: Sweep, finalists: list) -> dict[str, str]:
    """How stage 1 chose what stage 2 confirms, in words stored with each confirm trial (keyed by
    its configuration): the rule, and a tie it broke (what it tied with, and what decided)."""
    from dlbench import stats, words
    from dlbench.schema import config_key

    pr = sweep.protocol
    seeds = sorted({t["seed"] for t in sweep.trials})
    rule = (f"the {'highest' if pr['direction'] == 'max' else 'lowest'} mean {pr['select']} over tuning seeds "
            f"{stats.seed_span(seeds)}, per {', '.join(['dataset', *pr['per']])}")
    out = {}
    for f in finalists:
        name = " ".join(str(g) for g in (f.trial["dataset"], *f.group[1:]))
        tie = words.choice_tie_note(name, f.choice, f.selection, list(f.choice.config))
        out[config_key(f.trial)] = rule + (f"; {tie}" if tie else "")
    return out


def _check_files(sweep: Sweep, data_dir: str | None = None) -> None:
    """Datasets that need files must have them before training starts."""
    names = {t["dataset"] for t in sweep.trials if catalogue.dataset_of(t).needs_files}
    if names:
        from dlbench.data import files

        for name in sorted(names):
            files.check_present(name, data_dir)


class PlainProgress:
    """Progress where stdout is no terminal (CI, nohup, a log file): a line per trial in a sweep of
    up to 1/STEP trials; in a larger one a line at every STEP of the trials and, while a sweep is
    slow, at most one a minute (no more than 1/STEP of those), so a sweep of any size prints at
    most about 40; a failed trial is named on a line of its own with
    its error, and every trial that diverged since the last line is named in it."""

    STEP = 0.05  # a line each 5% of the trials
    EVERY_S = 60.0  # and one after a minute without a line, at most 1/STEP times

    def __init__(self, console: Console, total: int, done: int, scale: int = 0):
        """`scale`: the size of the whole sweep, when this stage is a part of it (an extension round,
        a confirm stage): lines come every STEP of that, so the whole sweep stays near 40 lines."""
        self.console, self.total, self.start_done, self.scale = console, total, done, max(total, scale)
        self.next = self._step_after(done)
        self.last = time.monotonic()
        self.timed = 0  # lines printed for time, not for a step
        self.diverged: list[str] = []

    def _step(self) -> int:
        return max(1, math.ceil(self.scale * self.STEP))

    def _step_after(self, finished: int) -> int:
        return (finished // self._step() + 1) * self._step()

    def add(self, label: str, status: str, error: str | None, finished: int, best: str, result: str = "") -> None:
        """One stored trial: its label, status, error, the trials stored so far, the best so far,
        and what it reached (' best_val_acc=0.97'), said where every trial gets a line."""
        if self._step() == 1:  # a small sweep: a line per trial, naming it
            self._print(f"[{finished}/{self.total}] {label}: {status}{result}" + (f" ({error})" if error else ""))
            return
        said = False
        if status == "failed":
            self._print(f"[{finished}/{self.total}] {label}: failed ({error})")
            said = True
        elif status == "diverged":
            self.diverged.append(label)
        slow = time.monotonic() - self.last >= self.EVERY_S and self.timed < 1 / self.STEP
        if finished >= self.next or finished == self.total or slow:
            self.timed += int(slow and finished < self.next and finished < self.total)
            self.next = self._step_after(finished)
            if not said or self.diverged:  # the failed trial's line already gave the count
                self._line(finished, best)

    def flush(self, finished: int) -> None:
        """A last line for diverged trials the last line did not name (a sweep interrupted between steps)."""
        if self.diverged:
            self._line(finished, "")

    def _line(self, finished: int, best: str) -> None:
        pct = 100 * finished / max(1, self.total)
        text = f"[{finished}/{self.total}] {pct:.0f}%" + (f" {best}" if best else "")
        if self.diverged:
            text += f"; diverged: {', '.join(self.diverged)}"
            self.diverged = []
        self._print(text)

    def _print(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)
        self.last = time.monotonic()


def _execute(run: Run, units, by_id: dict[str, dict], done: set[str], n_total: int, stage: str,
             chosen: dict[str, str] | None = None) -> None:
    from dlbench import store
    from dlbench.schema import config_key

    executor, records, results, console, stop = run.executor, run.records, run.results, run.console, run.stop
    mark(f"{stage}: {len(units)} units to run")
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
    plain = PlainProgress(console, n_total, len(done), run.scale)
    finished = len(done)
    try:
        for unit_results in executor.run(units):
            for res in unit_results:
                trial = by_id[res.pop("trial_id")]
                if trial["id"] in done:
                    continue  # trained again only because its unit had others left; already stored
                with stop.critical():  # durable before it is reported done; a signal waits for it
                    how = (chosen or {}).get(config_key(trial))
                    records[trial["id"]] = results.save_trial(trial, res, stage, how)
                finished += 1
                s = store.trial_summary(res)
                metric, higher = progress_metric(trial)
                val = s[metric]
                if one_dataset and isinstance(val, float) and math.isfinite(val):
                    score = val if higher else -val
                    if best is None or score > best[0]:
                        best = (score, f"best {metric}={val:.4g} ({trial_label(trial)})")
                # several datasets: say which (the same optimizer and lr mean different things on each)
                where = "" if one_dataset else f"{trial['dataset']} "
                if progress is not None:
                    progress.update(bar, completed=finished, best=best[1] if best else "")
                else:
                    said = (f" {metric}={val:.4g}" if isinstance(val, float) and math.isfinite(val) else "")
                    plain.add(f"{where}{trial_label(trial)}", res["status"], res["error"], finished,
                              best[1] if best else "", said)
            if time.monotonic() - last_write > CONSOLIDATE_EVERY_S:
                with stop.critical():
                    results.consolidate(records)
                last_write = time.monotonic()
    finally:
        if progress is not None:
            progress.stop()
        else:
            plain.flush(finished)
