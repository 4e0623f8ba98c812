"""What a trial is: one combination of a sweep's values, checked against the catalogue and written
in its canonical form (every default filled in), with a stable id (a hash of that form). The id is
what makes resume exact: trials.parquet and the per-trial records are keyed by it.

Built-in names keep the canonical forms (and ids) they always had: a key added later stays out of
the form at its old default (`validation = 0` is absent), so old results folders still resume."""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any

from dlbench import data, models, optim
from dlbench.errors import UserError, did_you_mean
from dlbench.losses import check_loss
from dlbench.schedules import check_schedule, units
from dlbench.schema import DATA_KNOBS, RUN_KEYS, TABLE_KEYS, TRIAL_KEYS

DTYPES = ("float32", "float64")
DECAY_ON = ("all", "matrices")  # weight decay on every parameter, or on those of two or more dimensions only
DEVICE_RE = re.compile(r"^(cpu|cuda|cuda:\d+|mps)$")
# keys of a trial's values that are never an optimizer's keyword
NOT_KEYWORDS = {*TRIAL_KEYS, *DATA_KNOBS, "seeds", *RUN_KEYS, *TABLE_KEYS, "id"}


def canonical_trial(values: dict) -> dict:
    """One trial's canonical config (every default filled in, validated) plus its id."""
    if not isinstance(values["dataset"], str | dict):
        raise UserError(f"dataset = {values['dataset']!r} is not allowed; allowed: a dataset name, a path, or a table")
    info, knobs = data.with_knobs(data.check(values["dataset"]), values)
    t: dict[str, Any] = {**data.trial_fields(info), **knobs}
    validation = data.check_validation(values.get("validation", data.DEFAULT_VALIDATION), info)
    if validation:  # absent when 0: a trial without a split keeps the id it had before splits existed
        t["validation"] = validation
    t["model"] = models.check(values.get("model") or models.default_model(info), info)
    t["loss"] = check_loss(values.get("loss"), info.task, info.name)
    opt = values["optimizer"]
    if not isinstance(opt, str):
        raise UserError(f"optimizer = {opt!r} is not allowed; allowed: a name, MODULE:ATTR or ./file.py:ATTR")
    t["optimizer"] = opt
    t["lr"] = check_lr(values["lr"])
    n_train = data.split_sizes(info, validation)[0]
    t["batch_size"] = check_batch_size(values["batch_size"], n_train, info.name)
    t.update(budget(values))
    t["seed"] = whole(values["seed"], "seed", 0)
    t["schedule"] = check_schedule(values["schedule"], units(t), unit="max_steps" if "max_steps" in t else "epochs")
    t["device"] = check_device_name(values["device"])
    t["dtype"] = choice(values["dtype"], DTYPES, "dtype")
    if values.get("clip_grad_norm") is not None:
        t["clip_grad_norm"] = check_clip(values["clip_grad_norm"])
    decay_on = values.get("weight_decay_on")
    if decay_on is not None and choice(decay_on, DECAY_ON, "weight_decay_on") != "all":
        t["weight_decay_on"] = decay_on  # absent at "all": the trials of before keep their ids
    where = f"optimizer {opt}"
    keywords = {k: v for k, v in values.items() if k not in NOT_KEYWORDS}
    t.update(optim.fields(opt, keywords, t["lr"], where))
    if t.get("weight_decay_on") == "matrices" and not optim.takes_anywhere(opt, "weight_decay"):
        raise UserError(f"weight_decay_on = 'matrices': {where} takes no weight_decay; allowed: an optimizer with a "
                        "weight_decay keyword (adam, adamw, sgd, ..., torch.optim:AdamW), or weight_decay_on = \"all\"")
    if optim.entry(opt).needs_closure and t["batch_size"] != n_train:
        raise UserError(f"{where}: {optim.entry(opt).reference} needs a closure (its step re-evaluates the loss), "
                        "which dlbench runs on the whole training set; allowed: batch_size = \"full\" for it")
    t["id"] = trial_id(t)
    return t


def budget(values: dict) -> dict:
    """How long a trial trains: `epochs`, or `max_steps` optimizer steps with an evaluation every
    `eval_every` (default: a tenth of the steps), whose periods then count as its epochs (one
    history row each, plus the one before training)."""
    steps = values.get("max_steps")
    if steps is None:
        if values.get("eval_every") is not None:
            raise UserError(f"eval_every = {values['eval_every']!r} needs a step budget; allowed: max_steps = N "
                            "with it, or epochs alone")
        return {"epochs": whole(values["epochs"], "epochs", 1)}
    steps = whole(steps, "max_steps", 1)
    every = values.get("eval_every")
    every = max(1, steps // 10) if every is None else whole(every, "eval_every", 1)
    if every > steps:
        raise UserError(f"eval_every = {every} is more than max_steps = {steps}; allowed: a whole number from 1 to "
                        f"{steps}")
    return {"max_steps": steps, "eval_every": every, "epochs": math.ceil(steps / every)}


def check_clip(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
        raise UserError(f"clip_grad_norm = {v!r} is not allowed; allowed: a number > 0 (the largest global "
                        "gradient norm, e.g. 1.0)")
    return float(v)


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


def check_device_name(v: Any) -> str:
    if not isinstance(v, str) or not DEVICE_RE.match(v):
        raise UserError(f"device = {v!r} is unknown; allowed: cpu, cuda, cuda:N, mps")
    return v


def choice(v: Any, allowed, key: str) -> str:
    if not isinstance(v, str) or v not in allowed:
        raise UserError(f"{key} = {v!r} is unknown{did_you_mean(v, allowed)}; allowed: {', '.join(allowed)}")
    return v


def whole(v: Any, key: str, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise UserError(f"{key} = {v!r} is not allowed; allowed: a whole number >= {lo}")
    return v
