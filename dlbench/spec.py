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

import itertools
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlbench import catalogue, data, design, extension, halving, optim, slurm, usercode
from dlbench.errors import UserError, check_keys, did_you_mean
from dlbench.schema import (
    DATA_KNOBS,
    EXPECT_METRICS,
    NAME_RE,
    READING_KEYS,
    RUN_KEYS,
    SELECT_COLUMNS,
    TABLE_KEYS,
    TRIAL_KEYS,
)
from dlbench.trials import canonical_trial, choice

KNOB_KEYS = optim.KNOB_KEYS
AXIS_KEYS = (*TRIAL_KEYS, *KNOB_KEYS, *DATA_KNOBS)  # what a trial is made of, in display order
CONFIG_KEYS = tuple(k for k in AXIS_KEYS if k != "seed")  # what a configuration is made of
ALL_KEYS = (*TRIAL_KEYS, "seeds", *KNOB_KEYS, *DATA_KNOBS, *RUN_KEYS, *READING_KEYS, *TABLE_KEYS)

DEFAULTS: dict[str, Any] = {
    "dataset": "digits",
    "validation": data.DEFAULT_VALIDATION,
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
EXECUTORS = ("local", "dask", "slurm")
EXPECT_OPS = (">=", "<=", "==", ">", "<")
MAX_TRIALS = 100_000


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
    slurm: dict | None = None  # the [slurm] table, checked (dlbench.slurm.settings), where the spec has one
    expect: dict[str, str] = field(default_factory=dict)
    description: str = ""
    lesson: dict[str, Any] = field(default_factory=dict)
    grids: list[SubGrid] = field(default_factory=list)  # several: [[grid]] tables
    optimizers: dict[str, dict] = field(default_factory=dict)  # [optimizers.NAME] tables: named plugin optimizers
    base_dir: str = "."  # where file references (./my_opt.py:MyOpt) are resolved: the spec file's folder
    top_axes: dict[str, list] = field(default_factory=dict)  # top-level lists, crossed with every sub-grid
    search: dict | None = None  # [search] with its sampled points
    protocol: dict | None = None  # [protocol]
    focus: str | None = None  # the optimizer readers put against each other one
    notes: list[str] = field(default_factory=list)  # what expansion rounded or merged, said once
    top_ranges: dict[str, dict] = field(default_factory=dict)  # top-level key -> its range table, as given
    # points the tuning stage added beyond the edge of a range with `extend` (dlbench.extension)
    extensions: list[dict] = field(default_factory=list)
    origins: dict[str, int] = field(default_factory=dict)  # trial id -> the sub-grid it came from (1-based)
    expansion: dict = field(default_factory=dict, repr=False)  # what generating more trials of a sub-grid needs

    def extendable(self) -> list[tuple[int, str, dict]]:
        """(sub-grid, key, range table) of every range with `extend` (sub-grid 0: top level, every sub-grid)."""
        out = [(0, k, r) for k, r in self.top_ranges.items() if "extend" in r]
        return out + [(i, k, r) for i, g in enumerate(self.grids, 1) for k, r in g.ranges.items() if "extend" in r]

    def with_extensions(self, points: list[dict]) -> list[dict]:
        """Add extension points (their trials, after the others: stage 1 grows); returns the new trials."""
        new = []
        seen = {t["id"] for t in self.trials}
        for p in points:
            for t in extension.trials_for(self, p):
                if t["id"] not in seen:
                    seen.add(t["id"])
                    self.origins[t["id"]] = p["grid"] or self.origins.get(t["id"], 1)
                    new.append(t)
            self.extensions.append(p)
        self.trials += new
        return new

    @property
    def one_grid(self) -> bool:
        """One cartesian [grid] (else several [[grid]] tables, or a search's points)."""
        return len(self.grids) == 1 and not self.sampled

    def space(self, grid: int) -> dict[str, Any]:
        """A sampled sub-grid's space (1-based): its ranges and lists, and its fixed values."""
        values = self.grids[grid - 1].values
        return {k: (v if isinstance(v, dict) else (v if len(v) > 1 else v[0])) for k, v in values.items()}

    def point_trials(self, grid: int, point: dict, at: dict) -> list[dict]:
        """The trials of one point of a sub-grid: crossed with the top-level axes, those at `at`'s
        values (an Optuna study's: everything but the seed)."""
        exp = self.expansion
        out = []
        for top in itertools.product(*(self.top_axes[k] for k in exp["top_order"])):
            combo = dict(zip(exp["top_order"], top, strict=True))
            if all(combo[k] == v for k, v in at.items()):
                out.append(canonical_trial({**exp["base"], **combo, **point}))
        return out

    def with_points(self, asked: list[tuple[Any, dict]]) -> list[dict]:
        """Add points a search asked ((its study, the point)); returns the new trials."""
        seen = {t["id"] for t in self.trials}
        new = []
        for study, point in asked:
            for t in self.point_trials(study.grid, point, study.at):
                if t["id"] not in seen:
                    seen.add(t["id"])
                    self.origins[t["id"]] = study.grid
                    new.append(t)
        self.trials += new
        return new

    @property
    def sampled(self) -> bool:
        """A search whose points are drawn from the ranges (sobol, random, optuna), not a grid's crossing."""
        return self.search is not None and self.search["kind"] != "halving"

    def to_toml(self) -> str:
        """The fully expanded spec, as TOML that `dlbench sweep` reads back to the same trials
        (a search's sampled points included)."""
        lines = [f"# {len(self.trials)} trials" + (" in stage 1 (tune)" if self.protocol else ""),
                 f"name = {toml_value(self.name)}"]
        if self.description:
            lines.append(f"description = {toml_value(self.description)}")
        if self.focus:
            lines.append(f"focus = {toml_value(self.focus)}")
        run = {"engine": self.engine, "executor": self.executor}
        if self.address:
            run["address"] = self.address
        if self.workers:
            run["workers"] = self.workers
        if self.slurm is not None:
            run["slurm"] = {k: v for k, v in self.slurm.items() if v is not None}
        for k, v in {**self.fixed, **run}.items():
            lines.append(f"{k} = {toml_value(v)}")
        top = {k: self.top_ranges.get(k, v) for k, v in self.top_axes.items()}  # a range with extend stays a range
        top = {k: (v if isinstance(v, list) or "extend" in v else self.top_axes[k]) for k, v in top.items()}
        if self.one_grid:
            at_top = {k: v for k, v in top.items() if isinstance(v, dict)}  # a top-level range with extend stays there
            lines += [f"{k} = {toml_value(v)}" for k, v in at_top.items()]
            rest = {k: v for k, v in self.axes.items() if k not in at_top}
            if rest:
                lines += ["", "[grid]"] + [f"{k} = {toml_value(v)}" for k, v in rest.items()
                                           if k not in self.grids[0].ranges]
                lines += [f"{k} = {toml_value(v)}" for k, v in self.grids[0].given.items() if k in self.grids[0].ranges]
        else:
            for k, v in top.items():
                lines.append(f"{k} = {toml_value(v)}")
            for g in self.grids:
                lines += ["", "[[grid]]"] + [f"{k} = {toml_value(v)}" for k, v in g.given.items()]
        if self.search:
            lines += ["", "[search]"] + [f"{k} = {toml_value(v)}" for k, v in self.search.items() if k != "points"]
            if "points" in self.search:
                lines.append("# the sampled points: a rerun of this file trains exactly these")
                lines.append("points = [\n" + "".join(f"  {toml_value(p)},\n" for p in self.search["points"]) + "]")
        if self.protocol:
            lines += ["", "[protocol]"] + [f"{k} = {toml_value(v)}" for k, v in self.protocol.items()]
        if self.expect:
            lines += ["", "[expect]"] + [f"{k} = {toml_value(v)}" for k, v in self.expect.items()]
        if self.lesson:
            lines += ["", "[lesson]"] + [f"{k} = {toml_value(v)}" for k, v in self.lesson.items()]
        for name, table in self.optimizers.items():
            lines += ["", f"[optimizers.{_toml_key(name)}]"] + [f"{k} = {toml_value(v)}" for k, v in table.items()]
        if self.extensions:
            lines += ["", "[extensions]", "# points the tuning stage added beyond the edge of a range with extend",
                      "points = [\n" + "".join(f"  {toml_value(p)},\n" for p in self.extensions) + "]"]
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
    """A flag's file reference rewritten relative to `base` (the spec file's folder, where a spec's
    files are resolved), so that a flag names the file it names from the working folder."""
    return usercode.rebase(value, base)


def apply_table_flags(raw: dict, target: str | None, task: str | None) -> None:
    """--target and --task qualify every file dataset the spec (or --dataset) names."""
    values = raw.get("dataset")
    items = values if isinstance(values, list) else [values]
    out, hit = [], False
    for v in items:
        qualified = data.with_flags(v, target, task)
        hit |= qualified is not None
        out.append(v if qualified is None else qualified)
    if not hit:
        flag = "--target" if target is not None else "--task"
        raise UserError(f"{flag} applies to a dataset file (--dataset ./table.csv), and this sweep names none; "
                        "allowed: "
                        "--dataset with a .csv, .parquet or .npz path")
    raw["dataset"] = out if isinstance(values, list) else out[0]


def flag_list(text: str, key: str) -> Any:
    """`--lr 1e-3,1e-2` -> [0.001, 0.01] (a grid axis); `--lr 1e-3` -> 0.001;
    `--lr log:1e-4:1e-1:16` -> a range (design.parse_flag_range)."""

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
    the users' code is inspected and their optimizers' tiny constructions run (optim.run_constructions).

    In steps: the tables and keys checked; how and where it runs; the top level's axes and fixed
    values; each sub-grid's combinations (or sampled or probe points); the trials, crossed with the
    top-level axes; a search's own shape (halving); the stored extensions."""
    if not isinstance(raw, dict):
        raise UserError("spec is not a table; allowed: a TOML document of key = value lines")
    raw = {k: v for k, v in raw.items()}
    named = optim.check_named(raw.pop("optimizers", None))
    session = catalogue.reset(base_dir or ".", named, pool)
    extra = _extra_keys(raw, named)  # keys no built-in knows: keywords of the users' optimizers
    _check_keys({k: v for k, v in raw.items() if k not in extra}, ALL_KEYS, "")
    for key, value in raw.items():
        if _has_none(value):  # TOML has no null; only a spec built in Python can hold one
            raise UserError(f"{key} = {value!r} holds an empty value (None); allowed: a value TOML can write")
    raw_grid = raw.pop("grid", None)
    search = design.check_search(raw.pop("search", None))
    sampled = search is not None and search["kind"] != "halving"  # points drawn from ranges, not a grid's crossing
    asks = search is not None and search["kind"] == "optuna"  # points asked as the sweep goes
    protocol = design.check_protocol(raw.pop("protocol", None), SELECT_COLUMNS, CONFIG_KEYS)
    expect = _check_expect(raw.pop("expect", {}) or {})
    raw_extensions = raw.pop("extensions", None)
    lesson = _check_lesson(raw.pop("lesson", {}) or {})
    run = _run_settings(raw, default_name)
    if "seeds" in raw:  # seeds: a list at top level or in a grid table is the seed axis
        raw["seed"] = raw.pop("seeds")
        if not isinstance(raw["seed"], list | dict):
            raw["seed"] = [raw["seed"]]
    notes: list[str] = []
    top_axes, top_ranges, fixed = _top_level(raw, notes)
    array = isinstance(raw_grid, list)  # [[grid]] tables may also fix a key (optimizer = "adam")
    grids = [_sub_grid(table, f"grid[{i + 1}]" if array else "grid", raw, sampled, array, notes, extra)
             for i, table in enumerate(_grid_tables(raw_grid))]
    top_order = [k for k in (*AXIS_KEYS, *sorted(extra)) if k in top_axes]
    combos_per_grid = (_probe_points(grids) if asks else _search_points(grids, search, notes) if sampled
                       else _combinations(grids, extra))
    n = sum(len(c) for c in combos_per_grid) * math.prod(len(top_axes[k]) for k in top_order)
    if n > MAX_TRIALS:
        raise UserError(f"the grid has {n} combinations; allowed: at most {MAX_TRIALS}")
    trials, origins = _trials(combos_per_grid, top_axes, top_order, fixed, sampled, extra, grids)
    if search is not None and search["kind"] == "halving":
        extends = any("extend" in r for r in top_ranges.values()) or any(
            "extend" in r for g in grids for r in g.ranges.values())
        trials = halving.with_halving(trials, search, protocol, extends, origins, CONFIG_KEYS)
    if asks:  # the probes were checks: the trials are the points Optuna asks (dlbench.optuna_search)
        trials, origins = [], {}
    axes = dict(top_axes)
    if len(grids) == 1 and not sampled:
        axes.update(grids[0].values)
    axes = {k: axes[k] for k in (*AXIS_KEYS, *sorted(extra)) if k in axes}
    if run["focus"] is not None:
        check_focus(run["focus"], sorted({t["optimizer"] for t in trials}))
    optim.run_constructions()
    session.pool = None  # the pool is the runner's from here on (it may even be replaced)
    notes += catalogue.notes()
    sweep = Sweep(**run, trials=trials, axes=axes, fixed=fixed, expect=expect, lesson=lesson, grids=grids,
                  top_axes={k: top_axes[k] for k in top_order}, search=search, protocol=protocol, notes=notes,
                  optimizers=named, base_dir=base_dir or ".", top_ranges=top_ranges, origins=origins,
                  expansion={"combos": combos_per_grid, "top_order": top_order, "base": {**DEFAULTS, **fixed},
                             "declared": len(trials)})
    if raw_extensions is not None:
        sweep.with_extensions(extension.check_points(raw_extensions, sweep))
    return sweep


def _run_settings(raw: dict, default_name: str) -> dict[str, Any]:
    """How and where a sweep runs, and what is said of it (not what it computes), taken out of `raw`."""
    name = raw.pop("name", default_name)
    check_name(name)
    description = raw.pop("description", "")
    if not isinstance(description, str):
        raise UserError(f"description = {description!r} is not allowed; allowed: a string")
    engine = choice(raw.pop("engine", DEFAULTS["engine"]), ENGINES, "engine")
    executor = choice(raw.pop("executor", "local"), EXECUTORS, "executor")
    address = raw.pop("address", None)
    if address is not None and (not isinstance(address, str) or not address):
        raise UserError(f"address = {address!r} is not allowed; allowed: tcp://host:port or local")
    if address is not None:
        executor = "dask"  # an address only means something to the dask executor
    if executor == "dask" and address is None:
        raise UserError("executor = 'dask' needs an address; allowed: address = \"tcp://host:8786\" or \"local\"")
    table = raw.pop("slurm", None)
    slurm_settings = slurm.settings(table) if table is not None or executor == "slurm" else None
    workers = raw.pop("workers", None)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise UserError(f"workers = {workers!r} is not allowed; allowed: a whole number >= 1")
    data_dir = raw.pop("data_dir", None)
    if data_dir is not None and not isinstance(data_dir, str):
        raise UserError(f"data_dir = {data_dir!r} is not allowed; allowed: a folder path")
    return {"name": name, "description": description, "engine": engine, "executor": executor, "address": address,
            "workers": workers, "data_dir": data_dir, "focus": raw.pop("focus", None), "slurm": slurm_settings}


def _top_level(raw: dict, notes: list[str]) -> tuple[dict[str, list], dict[str, dict], dict[str, Any]]:
    """(axes, ranges, fixed values) of the top level: lists and ranges are axes crossed with every
    sub-grid; the rest is fixed."""
    top_axes: dict[str, list] = {}
    top_ranges: dict[str, dict] = {}
    fixed: dict[str, Any] = {}
    for key, value in raw.items():
        if design.is_range(value) and key not in ("model", "schedule"):
            top_ranges[key], value = design.resolve(key, value, key, False, notes)
        if isinstance(value, list) and _is_axis(key, value):
            if not value:
                raise UserError(f"{key} = [] is empty; allowed: a list with at least one value")
            top_axes[key] = value
        else:
            fixed[key] = value
    return top_axes, top_ranges, fixed


def _probe_points(grids: list[SubGrid]) -> list[list[dict]]:
    """An Optuna search has asked nothing yet: a probe point per sub-grid checks that its trials can be made."""
    for i, g in enumerate(grids):
        if not any(design.is_range(v) or (isinstance(v, list) and len(v) > 1) for v in g.values.values()):
            raise UserError(f"[search] over {'[grid]' if len(grids) == 1 else f'[[grid]] {i + 1}'} has no axis to "
                            "sample (every value there is fixed); allowed: a range like lr = { log = [1e-4, 1e-1] } "
                            "or a list of several values")
    return [[design.probe({k: (v if isinstance(v, dict) else (v if len(v) > 1 else v[0]))
                           for k, v in g.values.items()})] for g in grids]


def _combinations(grids: list[SubGrid], extra: set[str]) -> list[list[dict]]:
    """Each sub-grid's crossing of its values."""
    out = []
    for g in grids:
        order = [k for k in (*AXIS_KEYS, *sorted(extra)) if k in g.values]
        out.append([dict(zip(order, c, strict=True)) for c in itertools.product(*(g.values[k] for k in order))])
    return out


def _trials(combos_per_grid: list[list[dict]], top_axes: dict, top_order: list[str], fixed: dict, sampled: bool,
            extra: set[str], grids: list[SubGrid]) -> tuple[list[dict], dict[str, int]]:
    """The canonical trials: each sub-grid's combinations crossed with the top-level axes (a trial
    in several sub-grids is one trial), with the sub-grid each came from; a knob given but taken by
    no optimizer of the sweep is refused."""
    trials: list[dict] = []
    seen: set[str] = set()
    used_knobs: set[str] = set()
    origins: dict[str, int] = {}
    for g, combos in enumerate(combos_per_grid, 1):
        for combo in combos:
            for top in itertools.product(*(top_axes[k] for k in top_order)):
                values = {**DEFAULTS, **fixed, **dict(zip(top_order, top, strict=True)), **combo}
                trial = canonical_trial(values)
                used_knobs |= optim.spec_keys(trial) & {*KNOB_KEYS, *extra}
                if trial["id"] not in seen:
                    seen.add(trial["id"])
                    trials.append(trial)
                    origins[trial["id"]] = g if not sampled else 1
    given_knobs = {k for k in (*KNOB_KEYS, *extra)
                   if k in top_axes or k in fixed or any(k in g.values for g in grids)}
    for k in sorted(given_knobs - used_knobs):
        opts = sorted({t["optimizer"] for t in trials})
        if k in extra:
            takes = optim.keywords_of(opts)
            words = sorted({w for ws in takes.values() for w in ws})
            raise UserError(f"unknown key {k!r}: no optimizer of this sweep takes it"
                            f"{did_you_mean(k, [*ALL_KEYS, *words])}; allowed: the spec's keys, or a keyword of "
                            + "; ".join(f"{o} ({', '.join(ws) or 'none'})" for o, ws in takes.items()))
        raise UserError(f"{k} does not apply to optimizer {', '.join(opts)}; allowed: {k} with "
                        f"{', '.join(optim.who_takes(k, opts))}")
    return trials, origins


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

    table = dict(table)
    _check_keys({k: v for k, v in table.items() if k not in extra}, (*TRIAL_KEYS, "seeds", *KNOB_KEYS, *DATA_KNOBS),
                f"{where}.")
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


def tables_of(raw: dict) -> list:
    """The spec's top level and each of its grid tables."""
    return [raw] + (raw["grid"] if isinstance(raw.get("grid"), list) else [raw.get("grid") or {}])


def optimizer_names(raw: dict) -> set:
    """Every optimizer name the spec mentions, at top level or in any grid table."""
    out: set = set()
    for t in tables_of(raw):
        if not isinstance(t, dict):
            continue
        v = t.get("optimizer")
        for x in v if isinstance(v, list) else [v]:
            if isinstance(x, str):
                out.add(x)
    return out


def _extra_keys(raw: dict, named: dict) -> set[str]:
    """Keys at top level or in a grid table that dlbench does not know. They are kept, as keywords
    of the optimizers, only when the spec names one whose code does not ship with dlbench; each
    must then be taken by one of them (checked once the trials are expanded)."""
    known = {*ALL_KEYS, *TRIAL_KEYS, *KNOB_KEYS, *DATA_KNOBS}
    keys = {k for t in tables_of(raw) if isinstance(t, dict) for k in t if k not in known}
    brought = any(optim.imports_code(n) for n in optimizer_names(raw)) or bool(named)
    return keys if brought else set()


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


def check_focus(focus: Any, optimizers: list[str], flag: str = "focus = ") -> str:
    """The optimizer a reader puts against each other one: one of the sweep's."""
    if focus not in optimizers:
        raise UserError(f"{flag}{focus!r} is not an optimizer of this sweep{did_you_mean(str(focus), optimizers)}; "
                        f"allowed: {', '.join(optimizers)}")
    return focus


def check_name(name: Any) -> str:
    """A sweep name is one plain folder name: it can never leave the results folder."""
    if not isinstance(name, str) or not NAME_RE.match(name) or name in (".", ".."):
        raise UserError(f"name = {name!r} is not allowed; allowed: letters, digits, '.', '_' and '-', "
                        "starting with a letter or digit (one folder name, no path)")
    return name


def _check_keys(d: dict, allowed, prefix: str) -> None:
    # [lesson] is accepted (the lessons' specs carry one) but is not something to suggest
    check_keys(d, allowed, prefix, [a for a in allowed if (a not in TABLE_KEYS or not prefix) and a != "lesson"])


BETTER_RE = re.compile(r"\s*(\S+)\s+>\s+(\S+)(?:\s+on\s+(\S+))?\s*")


def _check_expect(expect: Any) -> dict[str, Any]:
    if not isinstance(expect, dict):
        raise UserError(f"expect = {expect!r} is not allowed; allowed: a table [expect]")
    out: dict[str, Any] = {}
    for k, v in expect.items():
        if k == "better":  # verdicts: "adam > momentum" (on every dataset) or "adam > momentum on shakespeare"
            if not isinstance(v, list) or not all(isinstance(x, str) and BETTER_RE.fullmatch(x) for x in v):
                raise UserError(f"expect.better = {v!r} is not allowed; allowed: a list of \"A > B\" or "
                                "\"A > B on DATASET\" (optimizer names)")
            out[k] = [" ".join(x.split()) for x in v]
            continue
        if k not in EXPECT_METRICS:
            raise UserError(f"unknown key expect.{k!r}{did_you_mean(k, [*EXPECT_METRICS, 'better'])}; allowed: "
                            f"{', '.join(EXPECT_METRICS)}, better")
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


def toml_value(v: Any) -> str:
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
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
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
