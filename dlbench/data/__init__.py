"""Datasets: one record type (DatasetInfo) for every kind, built-in or brought by a user, and one
way to load any of them with its validation split.

Kinds, each one module with the same few functions (`recognises(value)`, `arrays(info, data_dir)`,
and for kinds a spec may name by value, `check(value, where)` and `from_spec(spec)`):

    builtin   the datasets that ship with dlbench (data/builtin.py; their families: tabular,
              mnist1d, synthetic, deepobs, files)
    user      a table (.csv, .parquet), arrays (.npz) or a loader function (data/user.py)

Metadata is plain data (no torch, no loading), so a spec is checked without touching a dataset;
`load` builds the arrays, memoized per process (workers load each dataset once).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from dlbench.data import builtin, user
from dlbench.data.common import (  # noqa: F401 - the package's public names
    ARRAY_KEYS,
    DATA_VERSION,
    DEFAULT_VALIDATION,
    SPLIT_SEED,
    TASKS,
    VALIDATION_SEED,
    Dataset,
    DatasetInfo,
    DataShapeError,
    cache_dir,
    carve_validation,
    check_counts,
    check_shapes,
    check_validation,
    split,
    split_sizes,
    standardize,
    validation_of,
    validation_size,
)
from dlbench.errors import UserError, did_you_mean
from dlbench.schema import DATA_KNOBS

KINDS = {builtin.KIND: builtin, user.KIND: user}
DATASETS = builtin.DATASETS
generate = builtin.generate
# the knobs of sequence datasets: trial keys of the datasets that take them (schema.DATA_KNOBS)
KNOBS = DATA_KNOBS


def dataset_info(name: str) -> DatasetInfo:
    """A dataset's record by name: a built-in, or a user dataset checked in this session."""
    if isinstance(name, str) and name in DATASETS:
        return DATASETS[name]
    if isinstance(name, str) and name in user.registered():
        return user.registered()[name]
    raise UserError(
        f"dataset = {name!r} is unknown{did_you_mean(name, DATASETS)}; allowed: {', '.join(DATASETS)}, or your own: "
        "a path (./table.csv, .parquet, .npz) or { loader = \"module:function\" }"
    )


def known(name: Any) -> DatasetInfo | None:
    """A dataset's record by name when this process knows it (a built-in, or a user dataset checked
    in this session), else None: what a reader of a stored folder may ask without failing."""
    try:
        return dataset_info(name)
    except UserError:
        return None


def listing() -> list[DatasetInfo]:
    """The datasets `dlbench datasets` lists: every one a spec can name without bringing it."""
    return list(DATASETS.values())


def check(value: Any, where: str = "dataset") -> DatasetInfo:
    """The record of a dataset as a spec names it (a name, a path, a table): checked, and for a
    user's data read, prepared and registered. Its `spec` (None for a built-in) is what a trial
    carries as `data`."""
    kind = next((k for k in KINDS.values() if k.recognises(value)), None)
    return dataset_info(value) if kind is None else kind.check(value, where)


def info_of(trial: dict) -> DatasetInfo:
    """A trial's dataset record, from the trial alone (a worker knows nothing else): for a dataset
    with knobs, the record for the trial's values (a text's windows for its context)."""
    info = _from(trial["dataset"], trial.get("data"))
    return specialize(info, {k: trial[k] for k in KNOBS if k in trial}) if info.knobs else info


def with_knobs(info: DatasetInfo, values: dict) -> tuple[DatasetInfo, dict]:
    """(the record for these values, the knob fields a canonical trial holds): every knob of the
    dataset with its value, the default where `values` sets none. A knob given to a dataset that
    does not take it is refused, naming the datasets that do."""
    given = {k: values[k] for k in KNOBS if k in values}
    mine = dict(info.knobs)
    for k in given:
        if k not in mine:
            takes = [d.name for d in DATASETS.values() if k in dict(d.knobs)] + (["a text file"] if k == "context"
                                                                                 else [])
            raise UserError(f"{k} does not apply to dataset {info.name!r}; allowed: {k} with {', '.join(takes)}")
    if not mine:
        return info, {}
    out = specialize(info, {**mine, **given})
    return out, dict(out.knobs)


def specialize(info: DatasetInfo, values: dict) -> DatasetInfo:
    from dlbench.data import text

    return text.specialize(info, {**dict(info.knobs), **values})


def _from(name: str, spec: dict | None) -> DatasetInfo:
    if spec is None:
        return dataset_info(name)
    return next(k for k in KINDS.values() if k.recognises(spec)).from_spec(spec)


def trial_fields(info: DatasetInfo) -> dict:
    """What a canonical trial holds of its dataset: the name, and a user dataset's spec."""
    return {"dataset": info.name, **({"data": info.spec} if info.spec is not None else {})}


def provenance() -> dict[str, dict]:
    """This session's user datasets and where their arrays came from (for env.json)."""
    return dict(user.provenances())


def short_name(value: Any) -> str:
    """A dataset as a spec gives it, in a word (for a flag sweep's name): its name, or a table's
    name, file or loader."""
    if isinstance(value, dict):
        return value.get("name") or value.get("path") or value.get("loader") or "data"
    return str(value)


def with_flags(value: Any, target: str | None, task: str | None) -> Any:
    """A dataset value qualified by --target and --task (files only; None: not a file)."""
    return user.with_flags(value, target, task)


_BASE: dict[str, Dataset] = {}
_CACHE: dict[tuple, Dataset] = {}


def load(name: str, data_dir: str | None = None, validation: float = 0.0, source: dict | None = None,
         knobs: dict | None = None) -> Dataset:
    """Arrays for a dataset with its validation split, memoized per process. `source`: a user
    dataset's canonical spec (the trial's `data`); `knobs`: a sequence dataset's values (context...)."""
    key = (name, data_dir, float(validation), json.dumps(source, sort_keys=True) if source else None,
           json.dumps(knobs, sort_keys=True) if knobs else None)
    if key not in _CACHE:
        base = _load_base(name, data_dir, source, knobs)
        info = base.info
        if not validation:
            ds = Dataset(info, base.x_train, base.y_train, base.x_test, base.y_test)
        elif info.own_validation:
            ds = base
        else:
            stratify = info.task in ("binary", "multiclass")
            if info.needs_files:  # a user's files may hold fewer samples than the standard ones
                counts = np.unique(base.y_train, return_counts=True)[1] if stratify else [len(base.y_train)]
                check_counts(tuple(int(c) for c in counts), float(validation), name, "training samples in the files")
            x_tr, y_tr, x_val, y_val = carve_validation(base.x_train, base.y_train, float(validation), stratify)
            ds = Dataset(info, x_tr, y_tr, base.x_test, base.y_test, x_val, y_val)
        _CACHE[key] = ds
    return _CACHE[key]


def load_for(trial: dict, data_dir: str | None = None) -> Dataset:
    """A trial's data with its validation split."""
    knobs = {k: trial[k] for k in KNOBS if k in trial}
    return load(trial["dataset"], data_dir, validation_of(trial), trial.get("data"), knobs or None)


def _load_base(name: str, data_dir: str | None, source: dict | None = None, knobs: dict | None = None) -> Dataset:
    """The train and test splits as the source defines them (and its own validation set, if it
    has one), before any validation carve."""
    key = json.dumps([name, data_dir, source, knobs], sort_keys=True)
    if key not in _BASE:
        info = _from(name, source)
        if info.knobs:
            info = specialize(info, knobs or {})
        a = KINDS[info.kind].arrays(info, data_dir)
        ds = Dataset(info, a["x_train"], a["y_train"], a["x_test"], a["y_test"], a.get("x_val"), a.get("y_val"))
        check_shapes(ds)
        _BASE[key] = ds
    return _BASE[key]
