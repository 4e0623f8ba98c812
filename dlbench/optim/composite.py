"""What the kinds made of a class and another optimizer share (a wrapper around one, a split with
one for the rest): `CompositeKind`, whose subclass names its `part_key` and says how the class is
described and built. The class is loaded and checked, the other optimizer is a part of the entry,
and a trial's fields are the class's reference and keywords with the part's own fields nested under
the part's key (so a trial's id follows both). A new kind of composite is one file with one
subclass (tests/test_optimizer_kinds.py writes one)."""

from __future__ import annotations

import inspect
from typing import Any

from dlbench import usercode
from dlbench.errors import UserError
from dlbench.optim import by_path
from dlbench.optim.common import OptimizerEntry, check_fixed
from dlbench.optim.kind import OptimizerKind
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


class CompositeKind(OptimizerKind):
    """A class (`[optimizers.NAME] class = ...`) with another optimizer under `part_key` (any name:
    built-in, MODULE:ATTR, another table). A subclass sets `name`, `order`, `part_key`, what its
    table allows besides (`own_keys`: keys that are dlbench's, checked by `check_own`) and writes
    `describe` (with `describe_class`) and `build`."""

    part_key: str  # type: ignore[assignment]
    own_keys: tuple[str, ...] = ()  # keys of its table and trial that are the kind's own (split: rest_lr)

    @property
    def table_keys(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("class", self.part_key)

    @property
    def reserved(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.part_key, *self.own_keys)

    def recognises(self, name: str, table: dict | None) -> bool:
        return table is not None and self.part_key in table

    def claims(self, trial: dict) -> bool:
        return self.part_key in trial

    def check_table(self, name: str, table: dict, where: str) -> None:
        by_path.check_table(name, {k: v for k, v in table.items() if k not in self.reserved}, where)
        part = table[self.part_key]
        if not isinstance(part, str) or part == name:
            raise UserError(f"{where}.{self.part_key} = {part!r} is not allowed; allowed: the name of another "
                            "optimizer (built-in, MODULE:ATTR or an [optimizers.NAME] table)")
        for k in self.own_keys:
            if k in table:
                self.check_own(k, table[k], f"{where}.{k}")

    def check_own(self, key: str, value: Any, where: str) -> Any:
        """One of the kind's own keys, checked (canonical value, or UserError)."""
        return value

    def describe_class(self, name: str, table: dict, where: str, resolve, allowed: str, skip_keywords: tuple[str, ...],
                       description, modes=None) -> OptimizerEntry:
        """The entry: the class loaded and checked, its keywords (after `skip_keywords` of its
        signature), the part resolved; `description(part)` its line; `modes(obj, part)` whether it
        has train/eval modes (by default the class's or the part's)."""
        part = resolve(table[self.part_key], f"{where}.{self.part_key}")
        obj = load_class(name, table, where, allowed)
        keywords, _, _ = usercode.keywords_of(obj, skip=1, reserved=("lr", "params", *skip_keywords))
        has = modes(obj, part) if modes is not None else (has_modes(obj) or part.has_modes)
        return describe(name, table, self.name, self.part_key, part, (*keywords, *self.own_keys), self.table_keys,
                        description(part), has)

    def from_trial(self, trial: dict, resolve) -> OptimizerEntry:
        return from_trial(trial, resolve, self.part_key, lambda n, t, resolve: self.describe(n, t, "optimizer",
                                                                                            resolve))

    def fields(self, entry: OptimizerEntry, values: dict, lr: float, where: str, part) -> dict:
        out = fields(entry, values, where, self.part_key, part)
        for k in self.own_keys:
            if k in out:
                out[k] = self.check_own(k, out[k], f"{where}: {k}")
        return out

    def own(self, trial: dict) -> dict:
        """The class's own keywords in a trial, as call keywords."""
        return usercode.as_call_keywords(own_keywords(trial, self.reserved))
