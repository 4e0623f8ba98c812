"""The contract of a kind of model, stated once in code: a kind is one module of dlbench/models
holding one subclass of `ModelKind`, which registers itself when its module is imported
(`dlbench.models` imports every module of the package). The registry asks each kind whether it
makes a model table (`recognises`) or a bare name (`from_text`), and dispatches a canonical table
to the kind that lists its `kind`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from dlbench.models.common import ModelEntry


class ModelKind(ABC):
    """One kind of model: which tables it makes, how it checks them, its record, how it builds."""

    names: ClassVar[tuple[str, ...]]  # the `kind` values of the canonical tables it makes
    order: ClassVar[int]  # kinds are asked in increasing order
    allowed: ClassVar[str]  # how a spec names it, for messages: 'linear, mlp, cnn, problem'

    _registry: ClassVar[list[type[ModelKind]]] = []

    def __init_subclass__(cls, **kw):
        """A class that names itself is a kind: registered, and instantiated when the registry is
        first read, so one that leaves an abstract method out fails there (TypeError), not mid-sweep."""
        super().__init_subclass__(**kw)
        if "names" in cls.__dict__:
            ModelKind._registry.append(cls)

    def recognises(self, value: dict) -> bool:
        """Whether a model table (as a spec writes it) is this kind's."""
        return value.get("kind") in self.names

    def from_text(self, text: str) -> dict | None:
        """The table a bare string names (`model = "mlp"`), or None when it is not this kind's."""
        return {"kind": text} if text in self.names else None

    def default(self, info) -> dict | None:
        """The model a dataset trains when a spec names none, or None when this kind has no say."""
        return None

    @abstractmethod
    def check(self, value: dict, info, where: str) -> dict:
        """The canonical table on dataset `info`, or a UserError naming what is wrong."""

    @abstractmethod
    def entry(self, model: dict, info) -> ModelEntry:
        """The record of a canonical table on a dataset."""

    @abstractmethod
    def build(self, model: dict, info) -> Any:
        """The plain nn.Module for a trial; called under the trial's seed."""


_instances: dict[type[ModelKind], ModelKind] = {}


def registered() -> list[ModelKind]:
    return [_instances.setdefault(c, c()) for c in sorted(ModelKind._registry, key=lambda c: c.order)]
