"""Models: every kind, built-in or a user's factory, checked by the same call and described by
the same record (ModelEntry: parameters, whether the fused engine can train it, whether it
max-pools, whether it is an MLP in all but name). Kinds, one module each with one subclass of
`models.kind.ModelKind` (the contract, in code), which registers itself:

    builtin   linear, mlp, cnn, problem (models/builtin.py)
    factory   a user's function (input_shape, n_outputs, **keywords) -> nn.Module (models/factory.py)

Every module of this package is imported here, so a new kind is one file. Checking is pure Python
for the built-ins; building imports torch.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from dlbench.errors import UserError, did_you_mean
from dlbench.models.common import ACTIVATIONS, ModelEntry, activation, as_mlp, output_size  # noqa: F401
from dlbench.models.kind import ModelKind, registered

for _module in pkgutil.iter_modules(__path__):  # every kind registers itself as its module is imported
    importlib.import_module(f"{__name__}.{_module.name}")
registered()  # a kind that leaves a method of the contract out fails here, as dlbench starts


def kinds() -> list[ModelKind]:
    return registered()


def _of(model: dict) -> ModelKind:
    return next(k for k in kinds() if model["kind"] in k.names)


def default_model(info) -> dict:
    """The model a dataset trains when a spec names none."""
    return next(m for m in (k.default(info) for k in kinds()) if m is not None)


def check(value: Any, info, where: str = "model") -> dict:
    """Canonical model table for dataset `info`, or a UserError naming what is wrong. A string is a
    kind's name or what a kind makes of it (a reference to a factory)."""
    if isinstance(value, str):
        value = next((t for t in (k.from_text(value) for k in kinds()) if t is not None), {"kind": value})
    if not isinstance(value, dict):
        raise UserError(f"{where} = {value!r} is not allowed; allowed: a table like {{ kind = \"mlp\" }}")
    kind = next((k for k in kinds() if k.recognises(value)), None)
    if kind is None:
        names = [n for k in kinds() for n in k.names if k.from_text(n) is not None]
        given = value.get("kind")
        raise UserError(f"{where}.kind = {given!r} is unknown{did_you_mean(given, names)}; allowed: "
                        f"{', '.join(k.allowed for k in kinds()[:-1])}, or {kinds()[-1].allowed}")
    return kind.check(value, info, where)


def entry(model: dict, info) -> ModelEntry:
    """A model table's record on a dataset."""
    return _of(model).entry(model, info)


def build(model: dict, info):
    """The plain nn.Module for a trial; call under the trial's seed (torch.manual_seed)."""
    return _of(model).build(model, info)
