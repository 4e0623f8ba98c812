"""Plan: trials that can be trained together form a group; groups are cut into units of work.

A unit is what an executor runs: a list of trials and the engine for them. The fused engine
trains a whole unit as one stacked model; the reference engine trains its trials one by one.

The fused engine hands trials to the reference engine for a named reason only, stored per
trial (`engine`, `fallback_reason`) and printed once per sweep:
- the fused engine does not support the trial (decided when planning, with --engine auto);
- the unit ran out of memory: it is split in halves and each half retried on the fused engine;
  only a single trial that still does not fit falls back.
Any other exception in the fused engine fails the unit's trials with its message.
"""

from __future__ import annotations

import json
import math
import time
import traceback
from dataclasses import dataclass

from dlbench import catalogue, halving
from dlbench.data import validation_of
from dlbench.interrupt import Interrupted
from dlbench.output import held_stderr
from dlbench.schema import config_key
from dlbench.timeline import mark


@dataclass
class Unit:
    trials: list[dict]
    engine: str  # "fused" or "reference"
    reason: str | None = None  # why a trial --engine auto would fuse runs on the reference engine
    files: object = None  # dlbench.usercode.SweepFiles: the users' files the trials need, travelling with them

    @property
    def ids(self) -> list[str]:
        return [t["id"] for t in self.trials]


def group_key(trial: dict) -> str:
    """Trials with the same key share data shapes, step counts and schedule form."""
    keys = ("dataset", "model", "loss", "batch_size", "epochs", "device", "dtype")
    extra = [trial.get(k) for k in ("max_steps", "eval_every", "context", "p", "train_fraction")]
    return json.dumps([trial[k] for k in keys] + [trial["schedule"]["kind"], validation_of(trial), trial.get("data"),
                                                 *extra], sort_keys=True)


def choose_engine(trial: dict, engine: str) -> tuple[str, str | None]:
    """(engine, reason): 'auto' takes the fused engine wherever it supports the trial, and says
    why not elsewhere."""
    if engine == "reference":
        return "reference", None
    from dlbench.engine import fused_slower, fused_supports

    why_not = fused_supports(trial)
    if why_not is None and engine == "auto":
        slower = fused_slower(trial)
        if slower is not None:
            return "reference", f"{trial['model']['kind']} model: {slower}"
    if why_not is None:
        return "fused", None
    if engine == "fused":
        from dlbench.errors import UserError

        raise UserError(f"engine = 'fused' cannot train trial {trial['id']} ({why_not}); allowed: "
                        "engine = auto or reference")
    return "reference", f"not supported by the fused engine: {why_not}"


MAX_GROUP = 512


def max_unit_size(trial: dict) -> int:
    """How many trials one fused unit may stack: a cache budget on the CPU, MAX_GROUP elsewhere.

    Units whose stacked weights, gradients and optimizer state stay near the caches train faster
    per trial (measured, MLP 64-128-128-10 on digits, 64 trials on one core: as one unit 6.3 s,
    units of 32 5.8 s, of 16 5.0 s, of 8 4.9 s)."""
    if trial["device"] != "cpu":
        return MAX_GROUP
    from dlbench.engine import CPU_CACHE_PARAMETERS

    params = catalogue.model_of(trial).parameters
    return max(1, min(MAX_GROUP, CPU_CACHE_PARAMETERS // max(1, params)))


def make_units(trials: list[dict], engine: str, workers: int, ship_all: bool = False) -> list[Unit]:
    """Group trials, then cut fused groups into units small enough to train fast and numerous
    enough to keep every worker busy."""
    fused: dict[str, list[dict]] = {}
    units: list[Unit] = []
    competitions: dict[tuple, list[dict]] = {}
    for t in trials:
        chosen, reason = choose_engine(t, engine)
        if "halving" in t:  # on the reference engine too: its trials then go on epoch by epoch in turn
            competitions.setdefault((group_key(t), chosen, reason, *halving.competition(t)), []).append(t)
        elif chosen == "fused":
            fused.setdefault(group_key(t), []).append(t)
        else:
            units.append(Unit([t], "reference", reason))
    # a halving competition is one unit, whatever its size: its rungs rank all its configurations
    units += [Unit(members, key[1], key[2]) for key, members in competitions.items()]
    for group in fused.values():
        units += [Unit(chunk, "fused") for chunk in pack(group, max_unit_size(group[0]), workers)]
    # big units first, so that the last ones to finish are short
    units.sort(key=lambda u: -cost(u))
    files = sweep_files(ship_all)
    for u in units:
        u.files = files
    return units


def pack(group: list[dict], cap: int, workers: int) -> list[list[dict]]:
    """A fused group cut into units. What the plan promises (tests/test_plan.py):
    - no unit holds more than `cap` trials (the cache budget of max_unit_size);
    - the seeds of a configuration are in one unit where they fit (an elementwise optimizer then
      updates them in one call: engine.generic); more seeds than `cap` are cut into the fewest
      blocks that fit, of near-equal sizes (16 seeds, cap 10: 8 and 8), each block in one unit;
    - no unit is empty, and there are at least as many units as workers where there are as many
      blocks, to keep every worker busy.
    Blocks are dealt in the group's order to the unit with the fewest trials that has room (a new
    unit when none has), so each unit gets a share of every optimizer (their updates cost
    differently); with blocks of one size this is dealing them out in turn."""
    configs: dict[str, list[dict]] = {}
    for t in group:
        configs.setdefault(config_key(t), []).append(t)
    blocks = []
    for seeds in configs.values():
        parts = math.ceil(len(seeds) / cap)
        size, extra = divmod(len(seeds), parts)
        start = 0
        for i in range(parts):
            n = size + (i < extra)
            blocks.append(seeds[start:start + n])
            start += n
    chunks: list[list[dict]] = [[] for _ in range(min(len(blocks), max(math.ceil(len(group) / cap), workers)))]
    for b in blocks:
        room = [c for c in chunks if len(c) + len(b) <= cap]
        if room:
            min(room, key=len).extend(b)
        else:
            chunks.append(list(b))
    return [c for c in chunks if c]


def sweep_files(ship_all: bool = False):
    """The users' files this sweep's trials use, or None: their Python files with their content,
    and with `ship_all` (workers on other machines) their data files' too."""
    files = catalogue.files()
    return files.shipped(everything=ship_all) if files.files else None


def cost(unit: Unit) -> float:
    t = unit.trials[0]
    return len(unit.trials) * t["epochs"] * (1.0 if unit.engine == "fused" else 8.0)


TRAIN_THREADS = 1  # intra-op threads for training, wherever it runs


def prepare_worker() -> None:
    """A worker process before its first unit: training's modules imported, its thread count set."""
    import torch

    import dlbench.engine.fused  # noqa: F401

    torch.set_num_threads(TRAIN_THREADS)
    mark("worker ready")


def run_unit(unit: Unit, data_dir: str | None = None) -> list[dict]:
    """Train a unit; errors become `failed` results rather than exceptions. Runs in workers (or in
    the driver, whose thread count is put back afterwards).

    Always with TRAIN_THREADS intra-op threads: CPU kernels round differently with other thread
    counts, and chaotic (high-lr) trials amplify that, so a trial's numbers must not depend on
    --workers or the executor. Parallelism comes from workers, one per core."""
    import torch

    from dlbench import data as datasets

    mark(f"unit start {len(unit.trials)} {unit.engine}")
    threads = torch.get_num_threads()
    if threads != TRAIN_THREADS:
        torch.set_num_threads(TRAIN_THREADS)
    try:
        if unit.files is not None:
            catalogue.use(unit.files)
        try:
            ds = datasets.load_for(unit.trials[0], data_dir)
        except BaseException as e:  # reported per trial, the sweep goes on
            if not is_trial_failure(e):
                raise
            return [failed(t, e, unit.engine) for t in unit.trials]
        at_epoch = halving.decider(unit.trials)
        # what the trials' code and torch write to stderr (warnings, torch.compile's logging) is
        # held back: a failed trial keeps it in its record (`log`), the terminal gets one line
        with held_stderr() as held:
            results = (_run_fused(unit.trials, ds, at_epoch) if unit.engine == "fused"
                       else _run_reference(unit.trials, ds, unit.reason, at_epoch))
        if held.text.strip():
            for r in results:
                if r["status"] == "failed":
                    r["log"] = held.text
    finally:
        if threads != TRAIN_THREADS:
            torch.set_num_threads(threads)
    sizes = data_record(ds)
    for r in results:
        r["data"] = sizes
    mark("unit end")
    return results


def is_trial_failure(e: BaseException) -> bool:
    """An exception that fails the trial (anything its code raised, a SystemExit included), not one
    that stops the sweep (a signal, Ctrl-C)."""
    return isinstance(e, Exception | SystemExit) and not isinstance(e, Interrupted)


def data_record(ds) -> dict:
    """What a trial's numbers were measured on: the task and the size of each split (a test
    accuracy moves in steps of 1 / n_test)."""
    return {"task": ds.task, "n_train": len(ds.x_train), "n_val": 0 if ds.x_val is None else len(ds.x_val),
            "n_test": len(ds.x_test)}


def _run_fused(trials: list[dict], ds, at_epoch=None) -> list[dict]:
    """The fused engine on `trials`; out of memory: halves, down to single trials, then the
    reference engine for a single trial that still does not fit. A halving competition (at_epoch)
    is never cut: ranked apart, its configurations would compete with fewer others; its trials
    fail together, saying why."""
    from dlbench.engine import fused

    start = time.perf_counter()
    try:
        results = fused.train(trials, ds, at_epoch)
    except BaseException as e:  # sorted below: out of memory, or the unit fails
        if not is_trial_failure(e):
            raise
        if at_epoch is not None:
            return [failed(t, e, "fused") for t in trials]
        if not is_out_of_memory(e):
            if len(trials) == 1:
                return [failed(trials[0], e, "fused")]
            # one trial's code raised (a user's optimizer or model, say): find it by training the
            # trials one by one; the others are results, and only the one that raises fails
            return [r for t in trials for r in _run_fused([t], ds)]
        _release_memory(trials[0]["device"])
        if len(trials) == 1:
            return _run_reference(trials, ds, f"out of memory on the fused engine even alone ({_short(e)})")
        half = len(trials) // 2
        return _run_fused(trials[:half], ds) + _run_fused(trials[half:], ds)
    per_trial = (time.perf_counter() - start) / len(trials)
    return [as_dict(r, per_trial, len(trials)) for r in results]


def _run_reference(trials: list[dict], ds, reason: str | None = None, at_epoch=None) -> list[dict]:
    """The reference engine, trial by trial; a halving competition (at_epoch) epoch by epoch in
    turn, failing together as on the fused engine."""
    from dlbench.engine import reference

    if at_epoch is not None:
        t0 = time.perf_counter()
        try:
            results = reference.train_together(trials, ds, at_epoch)
        except BaseException as e:
            if not is_trial_failure(e):
                raise
            return [failed(t, e, "reference", reason) for t in trials]
        return [as_dict(r, (time.perf_counter() - t0) / len(trials), 1, reason) for r in results]
    out = []
    for t in trials:
        t0 = time.perf_counter()
        try:
            out.append(as_dict(reference.train(t, ds), time.perf_counter() - t0, 1, reason))
        except BaseException as e:
            if not is_trial_failure(e):
                raise
            out.append(failed(t, e, "reference", reason))
    return out


OOM_MESSAGES = ("out of memory", "can't allocate memory", "cannot allocate memory", "not enough memory")


def is_out_of_memory(e: BaseException) -> bool:
    """An allocation failure: torch.OutOfMemoryError (CUDA and others), MemoryError, or a CPU
    allocator RuntimeError ("DefaultCPUAllocator: can't allocate memory")."""
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if isinstance(e, MemoryError) or (oom is not None and isinstance(e, oom)):
        return True
    return isinstance(e, RuntimeError) and any(m in str(e).lower() for m in OOM_MESSAGES)


def _release_memory(device: str) -> None:
    import gc

    gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


def _short(e: BaseException) -> str:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return text[:120]


def as_dict(result, wall_time: float, unit_size: int, fallback_reason: str | None = None) -> dict:
    return {"trial_id": result.trial_id, "status": result.status, "history": result.history,
            "diverged_epoch": result.diverged_epoch, "rung": result.rung, "error": result.error,
            "engine": result.engine,
            "fallback_reason": fallback_reason, "wall_time": wall_time, "unit_size": unit_size}


# what autograd says when an optimizer differentiates a gradient that kept no graph
SECOND_ORDER_SIGNS = ("does not require grad and does not have a grad_fn",
                      "One of the differentiated Tensors appears to not have been used in the graph",
                      "Trying to backward through the graph a second time")


def failed(trial: dict, exc: BaseException, engine: str, fallback_reason: str | None = None) -> dict:
    """A failed trial's result: the exception's type and first line, and where it was raised; an
    autograd error that shows the optimizer needs second-order gradients says how to give them."""
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else ""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    # the message's first line says what went wrong (torch.compile's go on for pages, with advice last)
    error = f"{type(exc).__name__}: {lines[0][:300] if lines else ''}{where}"
    if any(sign in str(exc) for sign in SECOND_ORDER_SIGNS) and not _second_order(trial):
        error += (f"; optimizer {trial['optimizer']} seems to need second-order gradients: give it "
                  "create_graph = true in its [optimizers.NAME] table")
    return {"trial_id": trial["id"], "status": "failed", "history": [], "diverged_epoch": None,
            "error": error, "engine": engine, "fallback_reason": fallback_reason, "wall_time": 0.0, "unit_size": 1}


def _second_order(trial: dict) -> bool:
    try:
        return catalogue.optimizer_of(trial).second_order
    except Exception:  # noqa: BLE001 - its code cannot even be described here: the message stands as it is
        return False
