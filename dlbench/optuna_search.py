"""Optuna's samplers as a search (`[search] kind = "optuna"`, `sampler = "tpe" | "cmaes" | "gp" |
"qmc" | "random"`, `budget = N`, `batch = K`, `seed = S`): the sampler proposes each sub-grid's
points K at a time; dlbench trains the K points' trials (each point × the seeds and other
top-level axes) together, fused, then tells the sampler what each point reached: the mean over its
seeds of the selection metric of the one selection rule (validation accuracy, validation loss...;
a protocol's `select`), in the rule's direction.

One study per sub-grid and per combination of the top-level axes other than the seed (a dataset,
say), in Optuna's journal file `optuna-journal.log` in the results folder. The study is the record
of what was asked: a killed sweep reads it back, trains only the asked points whose trials are not
stored, tells what is finished, and asks on. Each batch's sampler is seeded from `seed` and the
batch's number, so two folders made from the same spec ask the same points, and a resumed sweep
asks what an uninterrupted one asks. A batch cut short by a kill while it was being asked (a few
milliseconds, between two asks) is marked failed in the study and asked again whole.

Optuna is an optional extra: `pip install 'dlbench[optuna]'` (with `cmaes` for the CMA-ES sampler)."""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlbench.design import INTEGER_KEYS, is_range, probe

JOURNAL = "optuna-journal.log"
BATCH_ATTR = "dlbench_batch"


def axes_of(space: dict[str, Any]) -> dict[str, Any]:
    """The keys a sampler chooses: ranges and lists of several values (the rest is fixed)."""
    return {k: v for k, v in space.items() if is_range(v) or (isinstance(v, list) and len(v) > 1)}


def distributions(space: dict[str, Any]) -> dict[str, Any]:
    """Optuna's distribution of each axis: a float range (log or linear), a whole-number range, or a
    list as the index of its value (Optuna's categories must be plain values; a list may hold tables)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out = {}
    for k, v in axes_of(space).items():
        if isinstance(v, list):
            out[k] = CategoricalDistribution(list(range(len(v))))
            continue
        kind = "log" if "log" in v else "lin"
        a, b = v[kind]
        out[k] = (IntDistribution(int(a), int(b), log=kind == "log") if k in INTEGER_KEYS
                  else FloatDistribution(float(a), float(b), log=kind == "log"))
    return out


def point_of(space: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The sub-grid point an Optuna trial's params stand for (fixed keys included)."""
    from dlbench.design import _round

    out = {}
    for k, v in space.items():
        if k in params:
            out[k] = v[params[k]] if isinstance(v, list) else (int(params[k]) if k in INTEGER_KEYS
                                                                else _round(float(params[k])))
        else:
            out[k] = v[0] if isinstance(v, list) else v
    return out


@contextlib.contextmanager
def quiet():
    """Optuna's own log lines (a study created, a trial finished) held below ERROR while dlbench
    calls it, and its verbosity given back after: dlbench says what happens, once, and a user's
    own Optuna in the same process logs as it did."""
    import optuna

    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)


def make_sampler(kind: str, seed: int):
    """Optuna's sampler of that kind, seeded (TPE with the constant liar: the points of one batch are
    asked before any is told)."""
    import inspect

    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ExperimentalWarning for the newer samplers: said in the docs instead
        cls = {"tpe": optuna.samplers.TPESampler, "cmaes": optuna.samplers.CmaEsSampler,
               "gp": optuna.samplers.GPSampler, "qmc": optuna.samplers.QMCSampler,
               "random": optuna.samplers.RandomSampler}[kind]
        kw: dict[str, Any] = {"seed": seed}
        if "constant_liar" in inspect.signature(cls).parameters:
            kw["constant_liar"] = True
        return cls(**kw)


@dataclass
class Study:
    """One study: a sub-grid (1-based), the top-level values it runs at (the seed aside), its name."""

    grid: int
    at: dict[str, Any]
    name: str


def studies_of(sweep) -> list[Study]:
    exp = sweep.expansion
    others = [k for k in exp["top_order"] if k != "seed"]
    combos = list(itertools.product(*(sweep.top_axes[k] for k in others)))
    out = []
    for g in range(1, len(sweep.grids) + 1):
        for combo in combos:
            at = dict(zip(others, combo, strict=True))
            out.append(Study(g, at, f"grid{g}" + "".join(f" {k}={json.dumps(v, sort_keys=True)}"
                                                          for k, v in at.items())))
    return out


class Search:
    """The studies of one sweep in its results folder's journal."""

    def __init__(self, sweep, folder: Path, default_batch: int = 1):
        import optuna
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        self.sweep = sweep
        self.spec = sweep.search
        self.default_batch = default_batch  # without `batch`: what the fused engine trains at once (the runner's)
        self.storage = JournalStorage(JournalFileBackend(str(Path(folder) / JOURNAL)))
        self.studies = studies_of(sweep)
        self._rules: dict[str, Any] = {}
        self.spaces = {g: sweep.space(g) for g in range(1, len(sweep.grids) + 1)}
        with quiet():
            self.loaded = {s.name: optuna.create_study(study_name=s.name, storage=self.storage, load_if_exists=True,
                                                       direction=self._direction(s))
                           for s in self.studies}

    def _direction(self, s: Study) -> str:
        return "maximize" if self.selection(s).select_higher else "minimize"

    def selection(self, s: Study):
        """The rule a study's points are told by (the same for all its points: one dataset)."""
        if s.name not in self._rules:
            from dlbench import stats

            self._rules[s.name] = stats.rule_of(self.trials_of(s, probe(self.spaces[s.grid]))[0], self.sweep.protocol)
        return self._rules[s.name]

    def trials_of(self, s: Study, point: dict) -> list[dict]:
        return self.sweep.point_trials(s.grid, point, s.at)

    def asked(self) -> list[tuple[Study, Any, dict]]:
        """Every point asked so far, in order: (study, its Optuna trial, the point); the trial's
        user attribute BATCH_ATTR says which batch asked it."""
        return _asked(self.sweep, self.studies, self.loaded.get)

    def tell(self, records: dict[str, dict]) -> int:
        """Tell each study the value of its asked points whose trials are all stored: the mean over
        seeds of the selection metric (failed when no trial has a finite one). How many were told."""
        import optuna

        from dlbench.store import trial_summary

        told = 0
        for s, tr, point in self.asked():
            if tr.state != optuna.trial.TrialState.RUNNING:
                continue
            trials = self.trials_of(s, point)
            if not all(t["id"] in records for t in trials):
                continue
            sel = self.selection(s)
            values = [trial_summary(records[t["id"]]["result"])[sel.select] for t in trials]
            values = [float(v) for v in values if isinstance(v, int | float) and math.isfinite(v)]
            study = self.loaded[s.name]
            with quiet():
                if values:
                    study.tell(tr.number, sum(values) / len(values))
                else:
                    study.tell(tr.number, state=optuna.trial.TrialState.FAIL)
            told += 1
        return told

    def ask(self) -> list[tuple[Study, dict]]:
        """The next batch of every study (none once a study has its budget): a partial batch a kill
        left (asked, none told) is marked failed and asked again whole; each batch's sampler seeded
        from the spec's seed and the batch's number."""
        import optuna

        out = []
        for s in self.studies:
            study = self.loaded[s.name]
            live = [tr for tr in study.get_trials(deepcopy=False) if tr.state != optuna.trial.TrialState.FAIL]
            if any(tr.state == optuna.trial.TrialState.RUNNING for tr in live):
                continue  # its batch is still training
            batch = len({tr.user_attrs.get(BATCH_ATTR) for tr in live})
            size = min(self.batch_size(), self.spec["budget"] - len(live))
            if size <= 0:
                continue
            study.sampler = make_sampler(self.spec["sampler"], self.spec["seed"] * 1_000_003 + batch)
            dists = distributions(self.spaces[s.grid])
            for _ in range(size):
                with quiet():
                    tr = study.ask(dists)
                tr.set_user_attr(BATCH_ATTR, batch)
                out.append((s, point_of(self.spaces[s.grid], tr.params)))
        return out

    def repair(self) -> int:
        """A batch a kill cut short while it was being asked: its trials marked failed (asked again
        whole by `ask`). How many."""
        import optuna

        failed = 0
        for s in self.studies:
            study = self.loaded[s.name]
            live = [tr for tr in study.get_trials(deepcopy=False) if tr.state != optuna.trial.TrialState.FAIL]
            if not live:
                continue
            last = max(tr.user_attrs.get(BATCH_ATTR, 0) for tr in live)
            mine = [tr for tr in live if tr.user_attrs.get(BATCH_ATTR, 0) == last]
            before = len(live) - len(mine)
            want = min(self.batch_size(), self.spec["budget"] - before)
            if len(mine) < want and all(tr.state == optuna.trial.TrialState.RUNNING for tr in mine):
                for tr in mine:
                    with quiet():
                        study.tell(tr.number, state=optuna.trial.TrialState.FAIL)
                failed += len(mine)
        return failed

    def batch_size(self) -> int:
        return self.spec.get("batch") or self.default_batch


def stored_points(sweep, folder: Path) -> list[tuple[Study, dict]]:
    """The points an earlier run of this sweep asked, read from the journal without writing to it
    (studies it does not hold are none of this sweep's)."""
    path = Path(folder) / JOURNAL
    if not path.exists():
        return []
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(path)))
    names = {s.study_name for s in storage.get_all_studies()}
    studies = [s for s in studies_of(sweep) if s.name in names]
    with quiet():
        return [(s, point) for s, _, point in _asked(sweep, studies,
                                                    lambda name: optuna.load_study(study_name=name, storage=storage))]


def _asked(sweep, studies: list[Study], study_of) -> list[tuple[Study, Any, dict]]:
    """(study, Optuna trial, point) of each point the studies asked and did not fail, in order."""
    import optuna

    return [(s, tr, point_of(sweep.space(s.grid), tr.params)) for s in studies
            for tr in study_of(s.name).get_trials(deepcopy=False) if tr.state != optuna.trial.TrialState.FAIL]
