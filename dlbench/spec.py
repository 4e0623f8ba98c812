"""Sweep specs: read (TOML with tomllib), merge CLI overrides, validate everything up front,
expand into trial configs with stable ids.

A spec is a TOML table. Any trial key may be fixed at top level or be a list under [grid];
every combination of the [grid] lists is a trial. Example:

    name = "optimizers-on-digits"
    dataset = "digits"
    model = { kind = "mlp", hidden = [128, 128], activation = "relu" }
    epochs = 10
    batch_size = 32
    seeds = [0, 1]
    [grid]
    optimizer = ["sgd", "momentum", "rmsprop", "adam"]
    lr = [1e-3, 3e-3, 1e-2, 3e-2]
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlbench.data import DATASETS, DEFAULT_VALIDATION, check_validation, dataset_info, split_sizes
from dlbench.errors import UserError, check_keys, did_you_mean
from dlbench.losses import check_loss
from dlbench.models import check_model, default_model
from dlbench.optim import KNOBS, OPTIMIZERS, check_optimizer_knobs, check_schedule

# Keys that make a trial what it is (part of its id), in display order.
TRIAL_KEYS = ("dataset", "validation", "model", "loss", "optimizer", "lr", "batch_size", "epochs", "seed",
              "schedule", "device", "dtype")
KNOB_KEYS = tuple(KNOBS)
# Keys about how or where a sweep runs, not what it computes (not part of trial ids).
RUN_KEYS = ("name", "description", "engine", "workers", "data_dir", "executor", "address")
TABLE_KEYS = ("grid", "search", "protocol", "expect", "lesson", "optimizers")
AXIS_KEYS = (*TRIAL_KEYS, *KNOB_KEYS)  # what a trial is made of, in display order
ALL_KEYS = (*TRIAL_KEYS, "seeds", *KNOB_KEYS, *RUN_KEYS, *TABLE_KEYS)

DEFAULTS: dict[str, Any] = {
    "dataset": "digits",
    "validation": DEFAULT_VALIDATION,
    "loss": "auto",
    "optimizer": "sgd",
    "lr": 0.01,
    "batch_size": 32,
    "epochs": 10,
    "seed": 0,
    "schedule": "constant",
    "device": "cpu",
    "dtype": "float32",
    "engine": "auto",
}
ENGINES = ("auto", "fused", "reference")
DTYPES = ("float32", "float64")
EXECUTORS = ("local", "dask")
EXPECT_METRICS = {
    # name -> (trials column, how): "chosen" = the mean over seeds of the configuration chosen on
    # validation (runner.check_expectations); max/min over trials for the keys of older specs
    "test_acc_at_best_val": ("test_acc_at_best_val", "chosen"),
    "test_loss_at_best_val": ("test_loss_at_best_val", "chosen"),
    "test_r2_at_best_val": ("test_r2_at_best_val", "chosen"),
    "best_val_acc": ("best_val_acc", "chosen"),
    "best_val_loss": ("best_val_loss", "chosen"),
    "best_val_r2": ("best_val_r2", "chosen"),
    "best_test_acc": ("best_test_acc", "max"),
    "best_test_loss": ("best_test_loss", "min"),
    "best_test_r2": ("best_test_r2", "max"),
    "best_train_loss": ("best_train_loss", "min"),
    "ok": ("status", "count_ok"),
    "diverged": ("status", "count_diverged"),
    "failed": ("status", "count_failed"),
}
EXPECT_OPS = (">=", "<=", "==", ">", "<")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
MAX_TRIALS = 100_000
# numeric columns of trials.parquet that a [protocol] may select on (dlbench.store.summary): never a
# test metric (design.check_protocol names those apart)
SELECT_COLUMNS = ("best_val_acc", "best_val_loss", "best_val_r2", "final_train_loss", "final_train_eval_loss",
                  "final_train_acc", "final_val_loss", "final_val_acc", "best_train_loss", "best_epoch", "steps",
                  "epochs_run", "train_time", "eval_time", "wall_time")


@dataclass
class SubGrid:
    """One [grid] or [[grid]] table: its values as written (ranges kept as range tables), and the
    values each key resolves to (a range with num becomes its list)."""

    given: dict[str, Any]
    values: dict[str, list]  # key -> the values it takes (for a search: the lists and fixed values)
    ranges: dict[str, dict] = field(default_factory=dict)  # key -> range table, as given


@dataclass
class Sweep:
    """A validated sweep: its name, the trials it expands to, and how to run them."""

    name: str
    trials: list[dict]  # canonical trial configs of stage 1, each with "id"
    axes: dict[str, list]  # every axis (top level and one [grid]) with its values, for printing
    fixed: dict[str, Any]  # fixed keys as given
    engine: str = "auto"
    workers: int | None = None
    data_dir: str | None = None
    executor: str = "local"
    address: str | None = None
    expect: dict[str, str] = field(default_factory=dict)
    description: str = ""
    lesson: dict[str, Any] = field(default_factory=dict)
    grids: list[SubGrid] = field(default_factory=list)  # several: [[grid]] tables
    optimizers: dict[str, dict] = field(default_factory=dict)  # [optimizers.NAME] tables: named plugin optimizers
    base_dir: str = "."  # where file references (./my_opt.py:MyOpt) are resolved: the spec file's folder
    top_axes: dict[str, list] = field(default_factory=dict)  # top-level lists, crossed with every sub-grid
    search: dict | None = None  # [search] with its sampled points
    protocol: dict | None = None  # [protocol]
    notes: list[str] = field(default_factory=list)  # what expansion rounded or merged, said once

    @property
    def sub_grids(self) -> bool:
        return len(self.grids) > 1 or self.search is not None

    def to_toml(self) -> str:
        """The fully expanded spec, as TOML that `dlbench sweep` reads back to the same trials
        (a search's sampled points included)."""
        lines = [f"# {len(self.trials)} trials" + (" in stage 1 (tune)" if self.protocol else ""),
                 f"name = {_toml(self.name)}"]
        if self.description:
            lines.append(f"description = {_toml(self.description)}")
        run = {"engine": self.engine, "executor": self.executor}
        if self.address:
            run["address"] = self.address
        if self.workers:
            run["workers"] = self.workers
        for k, v in {**self.fixed, **run}.items():
            lines.append(f"{k} = {_toml(v)}")
        if not self.sub_grids:
            if self.axes:
                lines += ["", "[grid]"] + [f"{k} = {_toml(v)}" for k, v in self.axes.items()]
        else:
            for k, v in self.top_axes.items():
                lines.append(f"{k} = {_toml(v)}")
            for g in self.grids:
                lines += ["", "[[grid]]"] + [f"{k} = {_toml(v)}" for k, v in g.given.items()]
        if self.search:
            lines += ["", "[search]"] + [f"{k} = {_toml(self.search[k])}" for k in ("kind", "budget", "seed")]
            lines.append("# the sampled points: a rerun of this file trains exactly these")
            lines.append("points = [\n" + "".join(f"  {_toml(p)},\n" for p in self.search["points"]) + "]")
        if self.protocol:
            lines += ["", "[protocol]"] + [f"{k} = {_toml(v)}" for k, v in self.protocol.items()]
        if self.expect:
            lines += ["", "[expect]"] + [f"{k} = {_toml(v)}" for k, v in self.expect.items()]
        if self.lesson:
            lines += ["", "[lesson]"] + [f"{k} = {_toml(v)}" for k, v in self.lesson.items()]
        for name, table in self.optimizers.items():
            lines += ["", f"[optimizers.{_toml_key(name)}]"] + [f"{k} = {_toml(v)}" for k, v in table.items()]
        return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Reading


def read_spec_file(path: str | Path) -> dict:
    """Parse a TOML spec; errors name the file and the line."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"spec file {str(p)!r} does not exist; allowed: a path to a .toml file")
    if p.is_dir():
        raise UserError(f"spec file {str(p)!r} is a folder; allowed: a path to a .toml file")
    raw = p.read_bytes()
    if b"\x00" in raw:
        raise UserError(f"spec file {str(p)!r} is not a text file; allowed: a TOML text file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"spec file {str(p)!r} is not UTF-8 text (byte {e.start}); allowed: a TOML text file") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        if re.search(r"^\s*\[grid\]", text, re.M) and re.search(r"^\s*\[\[grid\]\]", text, re.M):
            raise UserError(f"spec file {str(p)!r} has both [grid] and [[grid]]; allowed: one [grid] table, or "
                            "several [[grid]] sub-grids") from None
        raise UserError(f"spec file {str(p)!r} is not valid TOML: {e}") from None


def parse_value(text: str, flag: str | None = None) -> Any:
    """A CLI value in TOML value syntax (1e-3, [1, 2], "x", {kind="mlp"}); bare words and paths
    (adam, lion_pytorch:Lion, ./my_opt.py:MyOpt, ../data/t.csv) are strings."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        if re.fullmatch(r"[A-Za-z0-9_.~/][A-Za-z0-9_.:/~+=-]*", text):
            return text
        where = f"{flag} " if flag else "value "
        raise UserError(f"{where}{text!r} is not valid TOML; allowed: a TOML value like 1e-3, [1, 2] or \"x\", a name, "
                        "or a path") from None


def apply_set(raw: dict, assignment: str) -> None:
    """--set key=value, where key may be dotted (grid.lr, schedule.gamma, model.hidden)."""
    if "=" not in assignment:
        raise UserError(f"--set {assignment!r} has no '='; allowed: key=value, e.g. --set epochs=3")
    key, text = assignment.split("=", 1)
    parts = [k.strip() for k in key.strip().split(".")]
    if not all(parts):
        raise UserError(f"--set {assignment!r}: empty key; allowed: key=value, e.g. --set epochs=3")
    value = parse_value(text.strip(), f"--set {key.strip()}")
    target = raw
    if parts[0] == "grid" and isinstance(raw.get("grid"), list) and len(parts) > 1:
        raise UserError(f"--set {assignment!r}: this spec has several [[grid]] tables, so grid.{'.'.join(parts[1:])} "
                        f"names none of them; allowed: --set {'.'.join(parts[1:])}=... (replaces it everywhere)")
    for k in parts[:-1]:
        if k == "schedule" and isinstance(target.get(k), str):
            target[k] = {"kind": target[k]}
        if k == "model" and isinstance(target.get(k), str):
            target[k] = {"kind": target[k]}
        target = target.setdefault(k, {})
        if not isinstance(target, dict):
            raise UserError(f"--set {assignment!r}: {k} is not a table")
    if len(parts) == 1:
        override(raw, parts[0], None)  # a top-level key set here wins over a [grid] axis
    target[parts[-1]] = value


def override(raw: dict, key: str, value: Any) -> None:
    """A flag replaces a key wherever the file had it (top level, [grid] or every [[grid]])."""
    grid = raw.get("grid")
    for table in (grid if isinstance(grid, list) else [grid]):
        if isinstance(table, dict):
            table.pop(key, None)
            if key == "seed":
                table.pop("seeds", None)
    if key == "seed":
        raw.pop("seeds", None)
    if value is not None:
        raw[key] = value


def relative_to(value: Any, base: Path) -> Any:
    """A flag's file reference (./my_opt.py:MyOpt, ../data/t.csv), rewritten relative to `base`
    (the spec file's folder, where references in a spec are resolved), so that a flag names the
    file it names from the working folder."""
    import os

    if isinstance(value, list):
        return [relative_to(v, base) for v in value]
    if not isinstance(value, str):
        return value
    from dlbench import plugins
    from dlbench.data import user

    ref = plugins.parse_ref(value)
    if ref is not None and ref.is_file and not Path(ref.path).is_absolute():
        return f"{os.path.relpath(Path.cwd() / ref.path, base)}:{ref.attr}"
    if user.is_user_dataset(value) and not Path(value).is_absolute():
        return os.path.relpath(Path.cwd() / value, base)
    return value


def apply_table_flags(raw: dict, target: str | None, task: str | None) -> None:
    """--target and --task qualify every file dataset the spec (or --dataset) names."""
    from dlbench.data import user

    values = raw.get("dataset")
    items = values if isinstance(values, list) else [values]
    out, hit = [], False
    for v in items:
        if user.is_user_dataset(v) and (isinstance(v, str) or "path" in v):
            v = {"path": v} if isinstance(v, str) else dict(v)
            v.update({k: x for k, x in (("target", target), ("task", task)) if x is not None})
            hit = True
        out.append(v)
    if not hit:
        flag = "--target" if target is not None else "--task"
        raise UserError(f"{flag} applies to a dataset file (--dataset ./table.csv), and this sweep names none; "
                        "allowed: "
                        "--dataset with a .csv, .parquet or .npz path")
    raw["dataset"] = out if isinstance(values, list) else out[0]


def flag_list(text: str, key: str) -> Any:
    """`--lr 1e-3,1e-2` -> [0.001, 0.01] (a grid axis); `--lr 1e-3` -> 0.001;
    `--lr log:1e-4:1e-1:16` -> a range (design.parse_flag_range)."""
    from dlbench import design

    as_range = design.parse_flag_range(text)
    if as_range is not None:
        return as_range
    items = [t.strip() for t in text.split(",")]
    if any(not t for t in items):
        raise UserError(f"--{key.replace('_', '-')} {text!r} has an empty item; allowed: comma-separated values")
    values = [parse_value(t, f"--{key.replace('_', '-')}") for t in items]
    return values if len(values) > 1 else values[0]


# --------------------------------------------------------------------------------------------
# Validation and expansion


def build_sweep(raw: dict, default_name: str = "sweep", base_dir: str | None = None, pool=None) -> Sweep:
    """Validate a raw spec (file + overrides) and expand it. Raises UserError on any bad input.
    `base_dir`: where file references in it are resolved (the spec file's folder; the working
    folder for flags). `pool`: a local executor started early, where the tiny constructions of
    the users' optimizers run (see plugins.PluginRegistry.run_constructions)."""
    from dlbench import design, plugins

    if not isinstance(raw, dict):
        raise UserError("spec is not a table; allowed: a TOML document of key = value lines")
    raw = {k: v for k, v in raw.items()}
    named = _check_named_optimizers(raw.pop("optimizers", None))
    registry = plugins.reset(base_dir or ".", named, pool)
    registry.defer = True
    extra = _extra_keys(raw, named)  # keys no built-in knows: keywords of the users' optimizers
    _check_keys({k: v for k, v in raw.items() if k not in extra}, ALL_KEYS, "")
    for key, value in raw.items():
        if _has_none(value):  # TOML has no null; only a spec built in Python can hold one
            raise UserError(f"{key} = {value!r} holds an empty value (None); allowed: a value TOML can write")
    raw_grid = raw.pop("grid", None)
    grid_tables = _grid_tables(raw_grid)
    search = design.check_search(raw.pop("search", None))
    protocol = design.check_protocol(raw.pop("protocol", None), SELECT_COLUMNS,
                                     tuple(k for k in AXIS_KEYS if k != "seed"))
    expect = _check_expect(raw.pop("expect", {}) or {})
    lesson = _check_lesson(raw.pop("lesson", {}) or {})

    name = raw.pop("name", default_name)
    check_name(name)
    description = raw.pop("description", "")
    if not isinstance(description, str):
        raise UserError(f"description = {description!r} is not allowed; allowed: a string")
    engine = _choice(raw.pop("engine", DEFAULTS["engine"]), ENGINES, "engine")
    executor = _choice(raw.pop("executor", "local"), EXECUTORS, "executor")
    address = raw.pop("address", None)
    if address is not None and (not isinstance(address, str) or not address):
        raise UserError(f"address = {address!r} is not allowed; allowed: tcp://host:port or local")
    if address is not None:
        executor = "dask"  # an address only means something to the dask executor
    if executor == "dask" and address is None:
        raise UserError("executor = 'dask' needs an address; allowed: address = \"tcp://host:8786\" or \"local\"")
    workers = raw.pop("workers", None)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise UserError(f"workers = {workers!r} is not allowed; allowed: a whole number >= 1")
    data_dir = raw.pop("data_dir", None)
    if data_dir is not None and not isinstance(data_dir, str):
        raise UserError(f"data_dir = {data_dir!r} is not allowed; allowed: a folder path")

    # seeds: a list at top level or in a grid table is the seed axis
    if "seeds" in raw:
        raw["seed"] = raw.pop("seeds")
        if not isinstance(raw["seed"], list | dict):
            raw["seed"] = [raw["seed"]]
    notes: list[str] = []

    # top level: lists and ranges are axes crossed with every sub-grid; the rest is fixed
    top_axes: dict[str, list] = {}
    fixed: dict[str, Any] = {}
    for key, value in raw.items():
        if design.is_range(value) and key not in ("model", "schedule"):
            _, value = design.resolve(key, value, key, False, notes)
        if isinstance(value, list) and _is_axis(key, value):
            if not value:
                raise UserError(f"{key} = [] is empty; allowed: a list with at least one value")
            top_axes[key] = value
        else:
            fixed[key] = value

    grids: list[SubGrid] = []
    array = isinstance(raw_grid, list)  # [[grid]] tables may also fix a key (optimizer = "adam")
    for i, table in enumerate(grid_tables):
        where = f"grid[{i + 1}]" if array else "grid"
        grids.append(_sub_grid(table, where, raw, search is not None, array, notes, extra))

    # each sub-grid's combinations (or sampled points), crossed with the top-level axes
    top_order = [k for k in (*AXIS_KEYS, *sorted(extra)) if k in top_axes]
    if search is not None:
        combos_per_grid = _search_points(grids, search, notes)
    else:
        combos_per_grid = []
        for g in grids:
            order = [k for k in (*AXIS_KEYS, *sorted(extra)) if k in g.values]
            combos_per_grid.append([dict(zip(order, c, strict=True))
                                    for c in itertools.product(*(g.values[k] for k in order))])
    n = sum(len(c) for c in combos_per_grid) * math.prod(len(top_axes[k]) for k in top_order)
    if n > MAX_TRIALS:
        raise UserError(f"the grid has {n} combinations; allowed: at most {MAX_TRIALS}")

    trials: list[dict] = []
    seen: set[str] = set()
    used_knobs: set[str] = set()
    for combos in combos_per_grid:
        for combo in combos:
            for top in itertools.product(*(top_axes[k] for k in top_order)):
                values = {**DEFAULTS, **fixed, **dict(zip(top_order, top, strict=True)), **combo}
                trial = canonical_trial(values)
                used_knobs |= {k for k in (*KNOB_KEYS, *extra) if k in trial}
                if trial["id"] not in seen:  # a trial in several sub-grids is one trial
                    seen.add(trial["id"])
                    trials.append(trial)
    given_knobs = {k for k in (*KNOB_KEYS, *extra)
                   if k in top_axes or k in fixed or any(k in g.values for g in grids)}
    for k in sorted(given_knobs - used_knobs):
        opts = sorted({t["optimizer"] for t in trials})
        if k in extra:
            takes = {o: registry.optimizer(o).keywords for o in opts if o not in OPTIMIZERS}
            words = sorted({w for ws in takes.values() for w in ws})
            raise UserError(f"unknown key {k!r}: no optimizer of this sweep takes it"
                            f"{did_you_mean(k, [*ALL_KEYS, *words])}; allowed: the spec's keys, or a keyword of "
                            + "; ".join(f"{o} ({', '.join(ws) or 'none'})" for o, ws in takes.items()))
        users = [o for o, spec in OPTIMIZERS.items() if k in spec.defaults]
        plugin_users = [o for o in opts if o not in OPTIMIZERS and k in registry.optimizer(o).keywords]
        raise UserError(f"{k} does not apply to optimizer {', '.join(opts)}; allowed: {k} with "
                        f"{', '.join(users + plugin_users)}")
    axes = dict(top_axes)
    if len(grids) == 1 and search is None:
        axes.update(grids[0].values)
    axes = {k: axes[k] for k in (*AXIS_KEYS, *sorted(extra)) if k in axes}
    registry.run_constructions()
    registry.pool = None  # the pool is the runner's from here on (it may even be replaced)
    notes += registry.notes
    return Sweep(name=name, trials=trials, axes=axes, fixed=fixed, engine=engine, workers=workers, data_dir=data_dir,
                 executor=executor, address=address, expect=expect, description=description, lesson=lesson,
                 grids=grids, top_axes={k: top_axes[k] for k in top_order}, search=search, protocol=protocol,
                 notes=notes, optimizers=named, base_dir=base_dir or ".")


def _grid_tables(grid: Any) -> list[dict]:
    """[grid] (one table) or [[grid]] (a list of tables) as a list of tables; none: one empty."""
    if grid is None or grid == {}:
        return [{}]
    if isinstance(grid, dict):
        return [grid]
    if isinstance(grid, list) and grid and all(isinstance(g, dict) for g in grid):
        return grid
    raise UserError(f"grid = {grid!r} is not allowed; allowed: a table [grid] of lists, or several [[grid]] tables")


def _sub_grid(table: dict, where: str, top: dict, search: bool, array: bool, notes: list[str],
              extra: set[str] = frozenset()) -> SubGrid:
    from dlbench import design

    table = dict(table)
    _check_keys({k: v for k, v in table.items() if k not in extra}, (*TRIAL_KEYS, "seeds", *KNOB_KEYS), f"{where}.")
    if "seeds" in table:
        table["seed"] = table.pop("seeds")
    if search and "seed" in table:
        raise UserError(f"{where}.seeds: a [search] samples the grid and crosses the seeds; allowed: seeds at top "
                        "level")
    given, values, ranges = {}, {}, {}
    for key, value in table.items():
        if key in top:
            raise UserError(f"{key} is set both at top level and in [{where.split('[')[0]}]; allowed: one of the two")
        if design.is_range(value) and key not in ("model", "schedule"):
            ranges[key], values[key] = design.resolve(key, value, f"{where}.{key}", search, notes)
            given[key] = ranges[key]
            continue
        if isinstance(value, list) and _is_axis(key, value):
            if not value:
                raise UserError(f"{where}.{key} = [] is empty; allowed: a list with at least one value")
            given[key] = values[key] = value
        elif array or search:
            given[key], values[key] = value, [value]  # a sub-grid may fix a key: optimizer = "adam"
        else:
            raise UserError(f"{where}.{key} = {value!r} is not allowed; allowed: a list of values, e.g. [1, 2]")
    return SubGrid(given, values, ranges)


def _search_points(grids: list[SubGrid], search: dict, notes: list[str]) -> list[list[dict]]:
    """Each sub-grid's sampled points: read back from spec.toml when stored, else sampled."""
    from dlbench import design

    stored = search.get("points")
    if stored is not None:
        if len(stored) > search["budget"] * len(grids):
            raise UserError(f"search.points holds {len(stored)} points, more than budget = {search['budget']} × "
                            f"{len(grids)} sub-grid(s); allowed: the points dlbench wrote, or none (to sample)")
        for p in stored:
            for k in p:
                if k not in AXIS_KEYS or k == "seed":
                    raise UserError(f"search.points has key {k!r}; allowed: keys of the sub-grids "
                                    f"({', '.join(sorted({k for g in grids for k in g.values}))})")
        return [stored]
    per_grid, points = [], []
    for i, g in enumerate(grids):
        space = {k: (v if isinstance(v, dict) else (v if len(v) > 1 else v[0])) for k, v in g.values.items()}
        where = "[grid]" if len(grids) == 1 else f"[[grid]] {i + 1}"
        got, more = design.sample(space, search, where)
        notes += more
        per_grid.append(got)
        points += got
    search["points"] = points
    return per_grid


def _check_named_optimizers(table: Any) -> dict[str, dict]:
    """[optimizers.NAME] tables: a plugin optimizer under a short name, with fixed keywords:

        [optimizers.lion2]
        class = "lion_pytorch:Lion"
        betas = [0.95, 0.98]
    """
    from dlbench import plugins

    if table is None:
        return {}
    if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
        raise UserError("optimizers is not allowed as given; allowed: tables like [optimizers.lion2] with class = "
                        "\"module:Class\" and fixed keywords")
    out = {}
    for name, spec in table.items():
        where = f"optimizers.{name}"
        if name in OPTIMIZERS:
            raise UserError(f"[{where}] reuses the built-in name {name!r}; allowed: another name (built-ins take their "
                            "knobs in the grid, e.g. betas = [[0.9, 0.95]])")
        if not NAME_RE.match(name) or ":" in name:
            raise UserError(f"[{where}]: {name!r} is not allowed as a name; allowed: letters, digits, '.', '_', '-'")
        if "class" not in spec:
            raise UserError(f"[{where}] has no class; allowed: class = \"module:Class\" or \"./file.py:Class\"")
        if plugins.parse_ref(spec["class"]) is None:
            raise UserError(f"{where}.class = {spec['class']!r} is not a reference; allowed: \"module:Class\" or "
                            "\"./file.py:Class\"")
        for k in spec:
            if k in ("params", "lr") or k in TRIAL_KEYS:
                raise UserError(f"{where}.{k} is not allowed: {k} is dlbench's to set; allowed: the optimizer's own "
                                "keywords")
        out[name] = dict(spec)
    return out


# top-level keys that do not change what the trials are: left out of a sweep's auto name and of
# what counts as a changed spec
IGNORED_IN_DIFF = ("name", "description", "engine", "workers", "executor", "address", "data_dir", "expect", "lesson")


def _tables(raw: dict) -> list:
    """The spec's top level and each of its grid tables."""
    return [raw] + (raw["grid"] if isinstance(raw.get("grid"), list) else [raw.get("grid") or {}])


def _names_of_optimizers(raw: dict) -> set:
    """Every optimizer name the spec mentions, at top level or in any grid table."""
    out: set = set()
    for t in _tables(raw):
        if not isinstance(t, dict):
            continue
        v = t.get("optimizer")
        for x in v if isinstance(v, list) else [v]:
            if isinstance(x, str):
                out.add(x)
    return out


def mentions_user_optimizer(raw: dict) -> bool:
    return bool(raw.get("optimizers")) or any(n not in OPTIMIZERS for n in _names_of_optimizers(raw))


def mentions_user_code(raw: dict) -> bool:
    """Whether a raw spec names an optimizer, a model or a dataset of the user's (checking those
    imports torch and constructs them in this process)."""
    if mentions_user_optimizer(raw):
        return True
    text = json.dumps(raw, default=str)
    return '"factory"' in text or '"loader"' in text or bool(re.search(r'"dataset": \[?"[^"]*[./]', text))


def auto_name(raw: dict) -> str:
    """A name for a sweep given by flags: what it sweeps, short and readable, and a hash of the
    whole spec, so that the same flags find the same folder and different ones never share one
    (e.g. iris-sgd-adam-3f2a)."""
    from dlbench import plugins

    def short(v: Any) -> str:
        if isinstance(v, dict):
            v = v.get("name") or v.get("path") or v.get("loader") or "data"
        ref = plugins.parse_ref(v)
        text = ref.attr if ref is not None else Path(str(v)).stem
        return re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_") or "x"

    parts: list[str] = []
    for key in ("dataset", "optimizer"):
        v = raw.get(key, DEFAULTS[key])
        parts += [short(x) for x in (v if isinstance(v, list) else [v])]
    if isinstance(raw.get("grid"), dict | list):
        parts += [short(n) for n in sorted(_names_of_optimizers(raw) - set(parts))]
    head = "-".join(dict.fromkeys(parts))[:48].rstrip("-_.")
    digest = hashlib.sha256(json.dumps({k: v for k, v in raw.items() if k not in IGNORED_IN_DIFF}, sort_keys=True,
                                       default=str).encode()).hexdigest()[:4]
    return f"{head}-{digest}"


def spec_diff(old: dict, new: dict) -> list[str]:
    """What differs between two specs as TOML tables, key by key ('epochs: 10 → 5',
    'grid.lr: [0.01, 0.1] → [0.01]'), leaving out what does not change what trials are."""
    def flat(d: Any, prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        if isinstance(d, dict) and not ("kind" in d or "log" in d or "lin" in d or "factory" in d or "path" in d
                                        or "loader" in d) or prefix == "":
            for k, v in d.items():
                if prefix == "" and k in IGNORED_IN_DIFF:
                    continue
                out.update(flat(v, f"{prefix}{k}."))
            return out
        if isinstance(d, list) and d and all(isinstance(x, dict) for x in d) and prefix.rstrip(".") == "grid":
            for i, g in enumerate(d, 1):
                out.update(flat(g, f"grid[{i}]."))
            return out
        return {prefix.rstrip("."): d}

    a, b = flat(old), flat(new)
    return [f"{k}: {_show_value(a.get(k))} → {_show_value(b.get(k))}" for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k)]


def _show_value(v: Any) -> str:
    return "(none)" if v is None else (_toml(v) if not isinstance(v, str) else v)


def _extra_keys(raw: dict, named: dict) -> set[str]:
    """Keys at top level or in a grid table that dlbench does not know. They are kept, as keywords
    of the users' optimizers, only when the spec names an optimizer that is not built in; each
    must then be taken by one of them (checked once the trials are expanded)."""
    known = {*ALL_KEYS, *TRIAL_KEYS, *KNOB_KEYS}
    keys = {k for t in _tables(raw) if isinstance(t, dict) for k in t if k not in known}
    plugins_named = any(n not in OPTIMIZERS for n in _names_of_optimizers(raw)) or bool(named)
    return keys if plugins_named else set()


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_string(key)


def _has_none(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, list | tuple):
        return any(_has_none(v) for v in value)
    if isinstance(value, dict):
        return any(_has_none(v) for v in value.values())
    return False


def _is_axis(key: str, value: list) -> bool:
    """A top-level list is a grid axis, except where a list is one value (betas = [0.9, 0.999])."""
    if key == "betas":
        return bool(value) and all(isinstance(v, list) for v in value)
    return True


def canonical_trial(values: dict) -> dict:
    """One trial's canonical config (every default filled in, validated) plus its id."""
    from dlbench.data import user

    t: dict[str, Any] = {}
    if user.is_user_dataset(values["dataset"]) and not (isinstance(values["dataset"], str)
                                                         and values["dataset"] in DATASETS):
        info, t["data"] = _user_dataset(values["dataset"])
        t["dataset"] = info.name
    else:
        info = dataset_info(_type(values["dataset"], str, "dataset", "a dataset name"))
        t["dataset"] = info.name
    validation = check_validation(values.get("validation", DEFAULT_VALIDATION), info)
    if validation:  # absent when 0: a trial without a split keeps the id it had before splits existed
        t["validation"] = validation
    t["model"] = check_model(values.get("model") or default_model(info), info)
    t["loss"] = check_loss(values.get("loss"), info.task, info.name)
    opt = values["optimizer"]
    if not isinstance(opt, str):
        raise UserError(f"optimizer = {opt!r} is not allowed; allowed: a name, MODULE:ATTR or ./file.py:ATTR")
    t["optimizer"] = opt
    t["lr"] = check_lr(values["lr"])
    n_train = split_sizes(info, validation)[0]
    t["batch_size"] = check_batch_size(values["batch_size"], n_train, info.name)
    t["epochs"] = _whole(values["epochs"], "epochs", 1)
    t["seed"] = _whole(values["seed"], "seed", 0)
    t["schedule"] = check_schedule(values["schedule"], t["epochs"])
    t["device"] = check_device_name(values["device"])
    t["dtype"] = _choice(values["dtype"], DTYPES, "dtype")
    if opt in OPTIMIZERS:
        t.update(check_optimizer_knobs(opt, {k: values[k] for k in KNOB_KEYS if k in values}, f"optimizer {opt}"))
    else:
        t.update(_plugin_optimizer(opt, values, t, n_train))
    t["id"] = trial_id(t)
    return t


_USER_DATASETS: dict[str, tuple] = {}  # a dataset value (JSON) -> (DatasetInfo, canonical spec), per sweep


def _user_dataset(value: Any):
    """A user's dataset, read and checked once per sweep (dlbench.data.user)."""
    from dlbench import plugins
    from dlbench.data import user

    key = json.dumps([plugins.REGISTRY.files.base_dir, value], sort_keys=True, default=str)
    if key not in _USER_DATASETS or key not in plugins.REGISTRY.dataset_keys:
        label, spec, info = user.check(value, plugins.REGISTRY.files)
        _USER_DATASETS[key] = (info, spec)
        plugins.REGISTRY.dataset_keys.add(key)
    return _USER_DATASETS[key]


def _plugin_optimizer(name: str, values: dict, trial: dict, n_train: int) -> dict:
    """A user's optimizer in a trial: its reference (when the name is an alias or an entry point)
    and the keywords of this trial it takes, each checked against its signature and by a tiny
    construction."""
    from dlbench import plugins

    registry = plugins.REGISTRY
    try:
        plugin = registry.optimizer(name)
    except KeyError:
        eps = sorted(plugins.entry_points())
        names = [*OPTIMIZERS, *registry.named, *eps]
        raise UserError(f"optimizer = {name!r} is unknown{did_you_mean(name, names)}; allowed: "
                        f"{', '.join(names)}, MODULE:ATTR (e.g. torch.optim:NAdam), ./file.py:ATTR, or "
                        "[optimizers.NAME]") from None
    where = f"optimizer {name}"
    out: dict[str, Any] = {}
    if plugin.ref.text != name:
        out["optimizer_class"] = plugin.ref.text
    skip = set(TRIAL_KEYS) | {"seeds", *RUN_KEYS, *TABLE_KEYS, "id"}
    given = {k: v for k, v in values.items() if k not in skip and (k in plugin.keywords or (
        plugin.open_keywords and k not in KNOB_KEYS))}
    registry.check_keywords(name, given, trial["lr"], where)
    if plugin.needs_closure and trial["batch_size"] != n_train:
        raise UserError(f"{where}: {plugin.ref.text} needs a closure (its step re-evaluates the loss), which dlbench "
                        f"runs on the whole training set; allowed: batch_size = \"full\" for it")
    out.update({k: plugin.fixed[k] for k in sorted(plugin.fixed)})
    out.update({k: given[k] for k in sorted(given)})
    return out


def trial_id(trial: dict) -> str:
    """Short hash of the canonical config: independent of key order, stable across machines."""
    body = {k: v for k, v in trial.items() if k != "id"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def check_lr(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
        raise UserError(f"lr = {v!r} is not allowed; allowed: a finite number > 0, e.g. 1e-3")
    return float(v)


def check_batch_size(v: Any, n_train: int, dataset: str) -> int:
    if v == "full":
        return n_train
    if isinstance(v, bool) or not isinstance(v, int) or v < 1 or v > n_train:
        raise UserError(f"batch_size = {v!r} is not allowed for {dataset} ({n_train} training samples); "
                        f"allowed: a whole number from 1 to {n_train}, or \"full\"")
    return v


DEVICE_RE = re.compile(r"^(cpu|cuda|cuda:\d+|mps)$")


def check_device_name(v: Any) -> str:
    if not isinstance(v, str) or not DEVICE_RE.match(v):
        raise UserError(f"device = {v!r} is unknown; allowed: cpu, cuda, cuda:N, mps")
    return v


def check_name(name: Any) -> str:
    """A sweep name is one plain folder name: it can never leave the results folder."""
    if not isinstance(name, str) or not NAME_RE.match(name) or name in (".", ".."):
        raise UserError(f"name = {name!r} is not allowed; allowed: letters, digits, '.', '_' and '-', "
                        "starting with a letter or digit (one folder name, no path)")
    return name


def _check_keys(d: dict, allowed, prefix: str) -> None:
    # [lesson] is accepted (the lessons' specs carry one) but is not something to suggest
    check_keys(d, allowed, prefix, [a for a in allowed if (a not in TABLE_KEYS or not prefix) and a != "lesson"])


def _check_expect(expect: Any) -> dict[str, str]:
    if not isinstance(expect, dict):
        raise UserError(f"expect = {expect!r} is not allowed; allowed: a table [expect]")
    out = {}
    for k, v in expect.items():
        if k not in EXPECT_METRICS:
            raise UserError(f"unknown key expect.{k!r}{did_you_mean(k, EXPECT_METRICS)}; allowed: "
                            f"{', '.join(EXPECT_METRICS)}")
        m = re.fullmatch(r"\s*(>=|<=|==|>|<)\s*(\S+)\s*", v) if isinstance(v, str) else None
        try:
            ok = m is not None and math.isfinite(float(m.group(2)))
        except ValueError:
            ok = False
        if not ok:
            raise UserError(f"expect.{k} = {v!r} is not allowed; allowed: a comparison like \">= 0.9\" "
                            f"(operators {', '.join(EXPECT_OPS)})")
        out[k] = f"{m.group(1)} {m.group(2)}"
    return out


LESSON_KEYS = {"claim": str, "figures": list, "metric": str, "x": list}


def _check_lesson(lesson: Any) -> dict[str, Any]:
    """[lesson]: the claim a lesson spec tests, and the figures `dlbench lessons run` draws."""
    if not isinstance(lesson, dict):
        raise UserError(f"lesson = {lesson!r} is not allowed; allowed: a table [lesson]")
    for k, v in lesson.items():
        if k not in LESSON_KEYS:
            raise UserError(f"unknown key lesson.{k!r}{did_you_mean(k, LESSON_KEYS)}; allowed: "
                            f"{', '.join(LESSON_KEYS)}")
        if not isinstance(v, LESSON_KEYS[k]) or (isinstance(v, list) and not all(isinstance(i, str) for i in v)):
            raise UserError(f"lesson.{k} = {v!r} is not allowed; allowed: "
                            f"{'a string' if LESSON_KEYS[k] is str else 'a list of strings'}")
    return lesson


def _choice(v: Any, allowed, key: str) -> str:
    if not isinstance(v, str) or v not in allowed:
        raise UserError(f"{key} = {v!r} is unknown{did_you_mean(v, allowed)}; allowed: {', '.join(allowed)}")
    return v


def _whole(v: Any, key: str, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise UserError(f"{key} = {v!r} is not allowed; allowed: a whole number >= {lo}")
    return v


def _type(v: Any, t: type, key: str, allowed: str):
    if not isinstance(v, t):
        raise UserError(f"{key} = {v!r} is not allowed; allowed: {allowed}")
    return v


def _toml(v: Any) -> str:
    """A TOML value for str, bool, int, float, list and (inline) dict."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if v != v else ("inf" if v > 0 else "-inf"))
    if isinstance(v, str):
        return _toml_string(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml(x)}" for k, x in v.items()) + " }"
    raise TypeError(type(v))


def _toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped, the rest as is."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'
