"""What the kinds made of a class and another optimizer share (a wrapper around one, a split with
one for the rest): the class loaded and checked, its keywords, the other optimizer as a part of
the entry, and a trial's fields: the class's reference and keywords, and the part's own fields
nested under the part's key (so a trial's id follows both)."""

from __future__ import annotations

import inspect
from typing import Any

from dlbench import usercode
from dlbench.errors import UserError
from dlbench.optim import by_path
from dlbench.optim.common import OptimizerEntry, check_fixed
from dlbench.schema import TRIAL_FIELDS


def load_class(name: str, table: dict, where: str, allowed: str):
    """The class a table names (its file read here: it travels with the work), checked to be an
    optimizer or a function."""
    import torch

    reference = table["class"]
    ref = usercode.parse_ref(reference)
    if ref.is_file:
        usercode.SESSION.files.add(ref.path, f"optimizer = {name!r}")
    obj = by_path.load(reference, where)
    if not callable(obj) or (inspect.isclass(obj) and not issubclass(obj, torch.optim.Optimizer)):
        raise UserError(f"{where} = {name!r}: {reference} is not an optimizer; allowed: {allowed}")
    return obj


def has_modes(obj) -> bool:
    return callable(getattr(obj, "train", None)) and callable(getattr(obj, "eval", None))


def describe(name: str, table: dict, kind: str, part_key: str, part: OptimizerEntry, keywords: tuple[str, ...],
             table_keys: tuple[str, ...], description: str, modes: bool) -> OptimizerEntry:
    """The entry: the class's keywords (the fixed ones checked against them), what it needs (what
    its part needs), the part under `parts[part_key]`."""
    fixed = {k: v for k, v in table.items() if k not in table_keys}
    check_fixed(name, table["class"], fixed, keywords, False)
    return OptimizerEntry(name, kind, table["class"], description, keywords, fixed=fixed,
                          needs_closure=part.needs_closure, has_modes=modes, second_order=part.second_order,
                          parts={part_key: part})


def from_trial(trial: dict, resolve, part_key: str, describe_kind) -> OptimizerEntry:
    """A trial's entry from its fields: the part's entry from its own nested fields."""
    part = resolve(trial[part_key])
    return describe_kind(trial["optimizer"], {"class": trial["optimizer_class"], part_key: part.name},
                         resolve=lambda name, where: part)


def own_keywords(trial: dict, reserved: tuple[str, ...]) -> dict:
    """The class's keywords in a trial: every key that is neither dlbench's nor the kind's own."""
    return {k: v for k, v in trial.items() if k not in TRIAL_FIELDS and k not in reserved}


def fields(entry: OptimizerEntry, values: dict, where: str, part_key: str, part) -> dict[str, Any]:
    """The class's reference, its fixed and given keywords, and the part's fields under `part_key`
    (its name first), from the spec keys the class does not take. `part(entry, values)`: a part's
    fields."""
    given = {k: v for k, v in values.items() if k in entry.keywords}
    for k in given:
        if k in entry.fixed:
            raise UserError(f"{where}: {k} is fixed to {entry.fixed[k]!r} by [optimizers.{entry.name}]; allowed: set "
                            "it in one place")
    inner = entry.parts[part_key]
    inner_fields = part(inner, {k: v for k, v in values.items() if k not in entry.keywords})
    out: dict[str, Any] = {"optimizer_class": entry.reference, part_key: {"optimizer": inner.name, **inner_fields}}
    out.update({k: entry.fixed[k] for k in sorted(entry.fixed)})
    out.update({k: given[k] for k in sorted(given)})
    return out
