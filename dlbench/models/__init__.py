"""Models: every kind, built-in or a user's factory, checked by the same call and described by
the same record (ModelEntry: parameters, whether the fused engine can train it, whether it
max-pools, whether it is an MLP in all but name). Kinds, one module each with `KINDS`, `check`,
`entry` and `build`:

    builtin   linear, mlp, cnn, problem (models/builtin.py)
    factory   a user's function (input_shape, n_outputs, **keywords) -> nn.Module (models/factory.py)

Checking is pure Python for the built-ins; building imports torch.
"""

from __future__ import annotations

from typing import Any

from dlbench import usercode
from dlbench.errors import UserError, did_you_mean
from dlbench.models import builtin, factory
from dlbench.models.common import ACTIVATIONS, ModelEntry, activation, as_mlp, output_size  # noqa: F401

KINDS = {k: module for module in (builtin, factory) for k in module.KINDS}
default_model = builtin.default_model
layer_sizes = builtin.layer_sizes


def check(value: Any, info, where: str = "model") -> dict:
    """Canonical model table for dataset `info`, or a UserError naming what is wrong. A string is a
    kind's name or a reference to a factory."""
    if isinstance(value, str):
        value = {"factory": value} if usercode.parse_ref(value) else {"kind": value}
    if not isinstance(value, dict):
        raise UserError(f"{where} = {value!r} is not allowed; allowed: a table like {{ kind = \"mlp\" }}")
    kind = "factory" if "factory" in value else value.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        names = [k for k in KINDS if k != "factory"]
        raise UserError(
            f"{where}.kind = {kind!r} is unknown{did_you_mean(kind, names)}; allowed: {', '.join(names)}, "
            "or factory = \"module:function\" (your own nn.Module)"
        )
    return KINDS[kind].check(value, info, where)


def entry(model: dict, info) -> ModelEntry:
    """A model table's record on a dataset."""
    return KINDS[model["kind"]].entry(model, info)


def build(model: dict, info):
    """The plain nn.Module for a trial; call under the trial's seed (torch.manual_seed)."""
    return KINDS[model["kind"]].build(model, info)
