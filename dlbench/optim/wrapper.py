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

from typing import Any

from dlbench import usercode
from dlbench.errors import UserError
from dlbench.optim import by_path, composite
from dlbench.optim.common import OptimizerEntry

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
    inner = resolve(table["wraps"], f"{where}.wraps")
    obj = composite.load_class(name, table, where, "an Optimizer subclass (or a function) taking the optimizer it "
                                                   "wraps as its first argument")
    keywords, _, _ = usercode.keywords_of(obj, skip=1, reserved=("lr", "params", "optimizer"))
    return composite.describe(name, table, KIND, "wraps", inner, tuple(keywords), TABLE_KEYS,
                              f"{table['class'].split(':')[-1]} over {inner.name}", composite.has_modes(obj))


def from_trial(trial: dict, resolve) -> OptimizerEntry:
    return composite.from_trial(trial, resolve, "wraps", describe)


def fields(entry: OptimizerEntry, values: dict, lr: float, where: str, part) -> dict:
    """The wrapper's reference and keywords; the inner optimizer's fields under `wraps`."""
    return composite.fields(entry, values, where, "wraps", part)


def build(entry: OptimizerEntry, params, trial: dict, build_part) -> Any:
    """The inner optimizer over the parameters (with the trial's lr), wrapped."""
    inner = build_part({**trial["wraps"], "lr": trial["lr"]}, params)
    return by_path.load(entry.reference)(inner, **usercode.as_call_keywords(composite.own_keywords(trial, RESERVED)))
