"""An optimizer that wraps another (Lookahead over Adam, as Zhang et al. 2019 train):

    [optimizers.la]
    class = "pytorch_optimizer:Lookahead"    # takes the inner optimizer as its first argument
    wraps = "adam"                           # any optimizer name: built-in, MODULE:ATTR, [optimizers.X]
    k = 5                                    # the wrapper's own keywords beside it
    alpha = 0.5

The inner optimizer is built with the trial's lr and its own keywords (a spec key the wrapper does
not take goes to the inner one: `betas` for adam), then handed to the wrapper. The trial holds the
wrapper's reference and keywords and, under `wraps`, the inner optimizer's fields, so its id follows
both. It trains fused wherever its inner optimizer can (one instance per trial, over per-trial
views of the stacked parameters), on the reference engine where the inner one needs a closure."""

from __future__ import annotations

import inspect
from typing import Any

from dlbench import usercode
from dlbench.errors import UserError
from dlbench.optim import by_path
from dlbench.optim.common import OptimizerEntry, check_fixed
from dlbench.schema import TRIAL_FIELDS

KIND = "wrapper"
CONSTRUCT_TO_CHECK = True
CHECK_SHAPES = ((2, 2),)  # the tiny parameters a construction check builds it over
TABLE_KEYS = ("class", "wraps")
RESERVED = ("wraps",)


def check_table(name: str, table: dict, where: str) -> None:
    by_path.check_table(name, {k: v for k, v in table.items() if k != "wraps"}, where)
    if not isinstance(table["wraps"], str) or table["wraps"] == name:
        raise UserError(f"{where}.wraps = {table['wraps']!r} is not allowed; allowed: the name of another optimizer "
                        "(built-in, MODULE:ATTR or an [optimizers.NAME] table)")


def recognises(name: str, table: dict | None) -> bool:
    return table is not None and "wraps" in table


def claims(trial: dict) -> bool:
    return "wraps" in trial


def describe(name: str, table: dict, where: str = "optimizer", resolve=None) -> OptimizerEntry:
    """The wrapper's own keywords (its signature after the optimizer it wraps) and what it needs,
    which is what its inner optimizer needs. `resolve(name, where)`: another optimizer's entry."""
    import torch

    inner = resolve(table["wraps"], f"{where}.wraps")
    reference = table["class"]
    ref = usercode.parse_ref(reference)
    if ref.is_file:
        usercode.SESSION.files.add(ref.path, f"optimizer = {name!r}")
    obj = by_path.load(reference, where)
    if not callable(obj) or (inspect.isclass(obj) and not issubclass(obj, torch.optim.Optimizer)):
        raise UserError(f"{where} = {name!r}: {reference} is not an optimizer wrapper; allowed: an Optimizer subclass "
                        "(or a function) taking the optimizer it wraps as its first argument")
    keywords, _, _ = usercode.keywords_of(obj, skip=1, reserved=("lr", "params", "optimizer"))
    fixed = {k: v for k, v in table.items() if k not in TABLE_KEYS}
    check_fixed(name, reference, fixed, keywords, False)
    return OptimizerEntry(name, KIND, reference, f"{reference.split(':')[-1]} over {inner.name}", tuple(keywords),
                          fixed=fixed, needs_closure=inner.needs_closure,
                          has_modes=callable(getattr(obj, "train", None)) and callable(getattr(obj, "eval", None)),
                          second_order=inner.second_order, parts={"wraps": inner})


def from_trial(trial: dict, resolve) -> OptimizerEntry:
    """`resolve(trial)`: the entry of a part, from its fields."""
    inner = resolve(trial["wraps"])
    return describe(trial["optimizer"], {"class": trial["optimizer_class"], "wraps": inner.name},
                    resolve=lambda name, where: inner)


def own_keywords(trial: dict) -> dict:
    return {k: v for k, v in trial.items() if k not in TRIAL_FIELDS and k not in RESERVED}


def fields(entry: OptimizerEntry, values: dict, lr: float, where: str, part) -> dict:
    """The wrapper's reference, its fixed and given keywords, and the inner optimizer's fields
    under `wraps` (its name first). `part(entry, values)`: a part's fields from the spec keys the
    wrapper does not take."""
    given = {k: v for k, v in values.items() if k in entry.keywords}
    inner_fields = part(entry.parts["wraps"], {k: v for k, v in values.items() if k not in entry.keywords})
    for k in given:
        if k in entry.fixed:
            raise UserError(f"{where}: {k} is fixed to {entry.fixed[k]!r} by [optimizers.{entry.name}]; allowed: set "
                            "it in one place")
    inner = entry.parts["wraps"]
    out: dict[str, Any] = {"optimizer_class": entry.reference, "wraps": {"optimizer": inner.name, **inner_fields}}
    out.update({k: entry.fixed[k] for k in sorted(entry.fixed)})
    out.update({k: given[k] for k in sorted(given)})
    return out


def build(entry: OptimizerEntry, params, trial: dict, build_part) -> Any:
    """The inner optimizer over the parameters (with the trial's lr), wrapped."""
    inner = build_part({**trial["wraps"], "lr": trial["lr"]}, params)
    return by_path.load(entry.reference)(inner, **usercode.as_call_keywords(own_keywords(trial)))
