"""The contract of a kind of optimizer, stated once in code (as Optuna's BaseSampler states a
sampler's): a kind is one module of dlbench/optim holding one subclass of `OptimizerKind`. Every
concrete subclass registers itself when its module is imported, and `dlbench.optim` imports every
module of the package, so a new kind is that one file: its place among the kinds (`order`), the
keys it adds to a trial (`part_key`, `reserved`), what `dlbench optimizers` shows of it
(`examples`, `tables`) all come from the class.

The registry asks the kinds in increasing `order`; the first that `recognises` a name (and its
[optimizers.NAME] table, if any) makes its entry, and the first that `claims` a trial's fields
remakes it from the trial alone (a worker knows no aliases). The methods without a default are
abstract: a kind that leaves one out cannot be instantiated, so it fails at import, not mid-sweep."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from dlbench.optim.common import OptimizerEntry

# a listing table: (title, column names, rows)
Table = tuple[str, list[str], list[list[str]]]


class OptimizerKind(ABC):
    """One kind of optimizer: how a spec names it, what a trial holds of it, how it is built."""

    name: ClassVar[str]  # the entry's `kind`, e.g. "wrapper"
    order: ClassVar[int]  # kinds are asked in increasing order: the catch-all last
    construct_to_check: ClassVar[bool] = True  # its keywords are checked by a tiny construction (else one by one)
    check_shapes: ClassVar[tuple[tuple[int, ...], ...]] = ((2, 2),)  # the tiny parameters that construction uses
    table_keys: ClassVar[tuple[str, ...]] = ("class",)  # keys of its [optimizers.NAME] table that are not keywords
    reserved: ClassVar[tuple[str, ...]] = ()  # keys of a trial that are the kind's, not the optimizer's keywords
    part_key: ClassVar[str | None] = None  # a composite's key holding another optimizer's fields, nested
    # what `dlbench optimizers` shows of it in the table of [optimizers.NAME] kinds: (an example table, what it does)
    examples: ClassVar[tuple[tuple[str, str], ...]] = ()

    _registry: ClassVar[list[type[OptimizerKind]]] = []

    def __init_subclass__(cls, **kw):
        """A class that names itself is a kind: registered, and instantiated when the registry is
        first read, so one that leaves an abstract method out fails there (TypeError), not mid-sweep."""
        super().__init_subclass__(**kw)
        if "name" in cls.__dict__:
            OptimizerKind._registry.append(cls)

    # ------------------------------------------------------------------ how a spec names it

    @abstractmethod
    def recognises(self, name: str, table: dict | None) -> bool:
        """Whether this kind makes the entry of `name` (with its [optimizers.NAME] table, or None)."""

    def check_table(self, name: str, table: dict, where: str) -> None:
        """Refuse (UserError, one line) an [optimizers.NAME] table this kind cannot take."""
        from dlbench.errors import UserError

        raise UserError(f"[{where}] is not allowed: {self.name} optimizers take no table")

    @abstractmethod
    def describe(self, name: str, table: dict | None, where: str, resolve) -> OptimizerEntry:
        """The entry of `name`, found by importing its code where it has any. `resolve(name, where)`
        gives another optimizer's entry (a composite's part)."""

    def builtin_rule(self, name: str, table: dict | None) -> bool:
        """Whether `name` (with its table) is known, without importing its code, to compute what a
        built-in update computes: then checking it constructs nothing and imports no torch._dynamo."""
        return False

    # ------------------------------------------------------------------ what a trial holds

    @abstractmethod
    def claims(self, trial: dict) -> bool:
        """Whether a trial's fields are this kind's (asked in order)."""

    @abstractmethod
    def from_trial(self, trial: dict, resolve) -> OptimizerEntry:
        """The entry from a trial's fields alone; `resolve(fields)` gives a nested part's entry."""

    @abstractmethod
    def fields(self, entry: OptimizerEntry, values: dict, lr: float, where: str, part) -> dict:
        """The trial's optimizer fields from the spec's `values` (checked); `part(entry, values)`
        gives a nested part's fields."""

    def same_builtin(self, entry: OptimizerEntry, trial: dict) -> tuple[str, dict[str, Any]] | None:
        """(built-in name, its knobs) when this trial's optimizer computes what that built-in's
        hand-written fused update computes; else None."""
        return None

    # ------------------------------------------------------------------ building it

    @abstractmethod
    def build(self, entry: OptimizerEntry, params, trial: dict, build_part, roles: list[str] | None = None) -> Any:
        """The torch optimizer over `params` with the trial's lr and keywords; `build_part(fields,
        params, roles)` builds a nested part. `roles`: each parameter's role in its model where the
        engine knows it (models.common.roles_of: embedding, hidden, head, vector), for a kind that
        gives parameters to optimizers by role (the split's on = "hidden")."""

    # ------------------------------------------------------------------ what `dlbench optimizers` shows

    def tables(self) -> list[Table]:
        """Tables of its own (the built-ins with their knobs, every torch.optim class...)."""
        return []


_instances: dict[type[OptimizerKind], OptimizerKind] = {}


def registered() -> list[OptimizerKind]:
    """One instance of every registered kind, in the order they are asked."""
    return [_instances.setdefault(cls, cls()) for cls in sorted(OptimizerKind._registry, key=lambda c: c.order)]
