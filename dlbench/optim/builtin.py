"""The optimizers that ship with dlbench: names, knobs, defaults and allowed ranges, and the
torch.optim class each one is. Each has a hand-written fused update (engine/updates.py, named by
its record's `fused_rule`) tested equal to that class.

Pure data and checks: importing it does not import torch, so `dlbench optimizers` and spec
validation stay fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dlbench.errors import UserError
from dlbench.optim.common import OptimizerEntry, check_float
from dlbench.optim.kind import OptimizerKind, Table


@dataclass(frozen=True)
class Knob:
    name: str
    default: Any
    kind: str  # "float", "bool", "pair"
    allowed: str  # human words for the allowed range
    help: str

    def check(self, value: Any, where: str) -> Any:
        """Return the value in canonical form, or raise UserError naming key, value and range."""
        bad = UserError(f"{where}: {self.name} = {value!r} is not allowed; allowed: {self.allowed}")
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise bad
            return value
        if self.kind == "pair":
            if not isinstance(value, list | tuple) or len(value) != 2:
                raise bad
            return [check_float(v, lo=0.0, hi=1.0, hi_open=True, err=bad) for v in value]
        return check_float(value, err=bad, **_RANGES[self.name])


_RANGES: dict[str, dict] = {
    "momentum": dict(lo=0.0, hi=1.0, hi_open=True),
    "dampening": dict(lo=0.0, hi=1.0, hi_open=True),
    "eps": dict(lo=0.0, lo_open=True),
    "weight_decay": dict(lo=0.0),
    "alpha": dict(lo=0.0, hi=1.0, hi_open=True),
    "lr_decay": dict(lo=0.0),
    "initial_accumulator_value": dict(lo=0.0),
}

KNOBS: dict[str, Knob] = {
    k.name: k
    for k in [
        Knob("momentum", 0.9, "float", "a number in [0, 1)", "heavy-ball momentum (the velocity decay)"),
        Knob("dampening", 0.0, "float", "a number in [0, 1)", "dampening of the momentum buffer"),
        Knob("eps", 1e-8, "float", "a number > 0", "term added to the denominator"),
        Knob("weight_decay", 0.0, "float", "a number >= 0", "L2 penalty (decoupled for adamw)"),
        Knob("alpha", 0.99, "float", "a number in [0, 1)", "decay of the squared-gradient cache"),
        Knob("centered", False, "bool", "true or false", "divide by the centered second moment"),
        Knob("amsgrad", False, "bool", "true or false", "use the running max of the second moment"),
        Knob("betas", [0.9, 0.999], "pair", "two numbers in [0, 1)", "decays of the first and second moment"),
        Knob("lr_decay", 0.0, "float", "a number >= 0", "AdaGrad's lr decay per step"),
        Knob(
            "initial_accumulator_value",
            0.0,
            "float",
            "a number >= 0",
            "AdaGrad's starting cache (0 as in Keras/PyTorch, 0.1 as in TensorFlow 1)",
        ),
    ]
}


@dataclass(frozen=True)
class Optimizer:
    name: str
    torch_class: str  # the torch.optim class the reference engine uses
    description: str
    defaults: dict[str, Any]  # knob -> default for this optimizer
    fixed: dict[str, Any] = field(default_factory=dict)  # torch kwargs that define it, not knobs
    fused_rule: str = ""  # its hand-written stacked update in engine/updates.py

    def torch_kwargs(self, trial: dict) -> dict:
        kw = dict(self.fixed)
        kw.update({k: (tuple(trial[k]) if k == "betas" else trial[k]) for k in self.defaults})
        kw["lr"] = trial["lr"]
        return kw


OPTIMIZERS: dict[str, Optimizer] = {
    o.name: o
    for o in [
        Optimizer("sgd", "SGD", "plain (stochastic) gradient descent", {"weight_decay": 0.0}, fused_rule="sgd"),
        Optimizer(
            "momentum",
            "SGD",
            "SGD with heavy-ball momentum",
            {"momentum": 0.9, "dampening": 0.0, "weight_decay": 0.0},
            fused_rule="sgd",
        ),
        Optimizer(
            "nesterov",
            "SGD",
            "SGD with Nesterov momentum",
            {"momentum": 0.9, "weight_decay": 0.0},
            fixed={"nesterov": True},
            fused_rule="sgd",
        ),
        Optimizer(
            "adagrad",
            "Adagrad",
            "AdaGrad: per-coordinate rate from the sum of squared gradients",
            {"lr_decay": 0.0, "initial_accumulator_value": 0.0, "eps": 1e-10, "weight_decay": 0.0},
            fused_rule="adagrad",
        ),
        Optimizer(
            "rmsprop",
            "RMSprop",
            "RMSProp: per-coordinate rate from a decaying average of squared gradients",
            {"alpha": 0.99, "eps": 1e-8, "centered": False, "momentum": 0.0, "weight_decay": 0.0},
            fused_rule="rmsprop",
        ),
        Optimizer(
            "adam",
            "Adam",
            "Adam: RMSProp with momentum and bias correction",
            {"betas": [0.9, 0.999], "eps": 1e-8, "amsgrad": False, "weight_decay": 0.0},
            fused_rule="adam",
        ),
        Optimizer(
            "adamw",
            "AdamW",
            "Adam with decoupled weight decay",
            {"betas": [0.9, 0.999], "eps": 1e-8, "amsgrad": False, "weight_decay": 0.01},
            fused_rule="adam",
        ),
    ]
}


def check_optimizer_knobs(name: str, knobs: dict[str, Any], where: str) -> dict[str, Any]:
    """Fill defaults and validate each knob; extra constraints between knobs are checked here."""
    out = {}
    for k, default in OPTIMIZERS[name].defaults.items():
        out[k] = KNOBS[k].check(knobs.get(k, default), where)
    if name == "nesterov" and out["momentum"] == 0:
        raise UserError(f"{where}: nesterov needs momentum > 0, got momentum = 0; allowed: a number in (0, 1)")
    return out


# --------------------------------------------------------------------------------------------
# torch.optim classes a built-in optimizer is: named by import path, they train by its rule

SAME_CLASSES = ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad")  # torch.optim classes some built-in is
# keywords that change how torch computes an update (a loop, one kernel, graph capture), not what
HOW_KEYWORDS = ("foreach", "fused", "capturable", "differentiable")


def as_builtin(torch_class: str, keywords: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(built-in name, its knobs) when torch.optim.<torch_class>(params, lr, **keywords) computes
    what that built-in's update computes, else None: a keyword no built-in knob is (maximize=True,
    say), or a value its knob refuses (which constructing the class then says in torch's words).
    The knobs not given take the built-in's defaults, which are torch's (tests/test_fused.py)."""
    if torch_class not in SAME_CLASSES:
        return None
    given = {k: v for k, v in keywords.items() if k not in HOW_KEYWORDS}
    if given.pop("maximize", False) is not False:
        return None
    if torch_class == "SGD":
        nesterov = given.pop("nesterov", False)
        if not isinstance(nesterov, bool):
            return None
        given.setdefault("momentum", 0.0)  # torch's default (the built-in momentum's is 0.9)
        if nesterov:
            if given.pop("dampening", 0.0) != 0:
                return None  # torch refuses it: said by constructing the class
            name = "nesterov"
        elif given["momentum"] == 0:
            del given["momentum"]
            given.pop("dampening", None)  # without momentum torch ignores it
            name = "sgd"
        else:
            name = "momentum"
    else:
        name = {"Adam": "adam", "AdamW": "adamw", "RMSprop": "rmsprop", "Adagrad": "adagrad"}[torch_class]
    o = OPTIMIZERS[name]
    if any(k not in o.defaults for k in given):
        return None
    try:
        return name, check_optimizer_knobs(name, given, "optimizer")
    except UserError:
        return None


# --------------------------------------------------------------------------------------------
# The kind: what the catalogue asks of it


class Builtin(OptimizerKind):
    """sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw: named by a spec, their knobs checked
    one by one (constructing them would import torch), each trained by its hand-written update."""

    name = "builtin"
    order = 30
    construct_to_check = False
    check_shapes = ((2,),)

    def recognises(self, name: str, table: dict | None) -> bool:
        return table is None and name in OPTIMIZERS

    def builtin_rule(self, name: str, table: dict | None) -> bool:
        return True

    def claims(self, trial: dict) -> bool:
        return trial["optimizer"] in OPTIMIZERS and "optimizer_class" not in trial

    def describe(self, name: str, table: dict | None = None, where: str = "optimizer", resolve=None) -> OptimizerEntry:
        o = OPTIMIZERS[name]
        return OptimizerEntry(name, self.name, f"torch.optim:{o.torch_class}", o.description,
                              keywords=tuple(o.defaults), defaults=dict(o.defaults), elementwise=True, shipped=True)

    def from_trial(self, trial: dict, resolve=None) -> OptimizerEntry:
        return self.describe(trial["optimizer"])

    def fields(self, entry: OptimizerEntry, values: dict, lr: float, where: str, part=None) -> dict:
        """Every knob of the optimizer, checked, with its default where the spec sets none."""
        return check_optimizer_knobs(entry.name, {k: values[k] for k in KNOBS if k in values}, where)

    def same_builtin(self, entry: OptimizerEntry, trial: dict) -> tuple[str, dict[str, Any]] | None:
        return entry.name, {k: trial[k] for k in OPTIMIZERS[entry.name].defaults}

    def build(self, entry: OptimizerEntry, params, trial: dict, build_part=None, roles=None):
        import torch

        o = OPTIMIZERS[entry.name]
        return getattr(torch.optim, o.torch_class)(params, **o.torch_kwargs(trial))

    def tables(self) -> list[Table]:
        rows = [[o.name, f"torch.optim.{o.torch_class}" + (" (nesterov=True)" if o.fixed else ""), o.description,
                 "\n".join(f"{k} = {v} ({KNOBS[k].allowed})" for k, v in o.defaults.items())]
                for o in OPTIMIZERS.values()]
        return [("built-in optimizers (fused by hand-written updates)",
                 ["name", "torch class", "what it is", "knobs (default; allowed)"], rows)]
