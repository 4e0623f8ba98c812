"""Optimizer and schedule registry: names, knobs, defaults and allowed ranges.

Pure data and checks: importing it does not import torch, so `dlbench optimizers` and spec
validation stay fast. The engines turn a validated trial config into torch objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from dlbench.errors import UserError, did_you_mean


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
            return [_check_float(v, lo=0.0, hi=1.0, hi_open=True, err=bad) for v in value]
        return _check_float(value, err=bad, **_RANGES[self.name])


def _check_float(v, err, lo=None, hi=None, lo_open=False, hi_open=False) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise err
    v = float(v)
    if not math.isfinite(v):
        raise err
    if lo is not None and (v < lo or (lo_open and v == lo)):
        raise err
    if hi is not None and (v > hi or (hi_open and v == hi)):
        raise err
    return v


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

    def torch_kwargs(self, trial: dict) -> dict:
        kw = dict(self.fixed)
        kw.update({k: (tuple(trial[k]) if k == "betas" else trial[k]) for k in self.defaults})
        kw["lr"] = trial["lr"]
        return kw


OPTIMIZERS: dict[str, Optimizer] = {
    o.name: o
    for o in [
        Optimizer("sgd", "SGD", "plain (stochastic) gradient descent", {"weight_decay": 0.0}),
        Optimizer(
            "momentum",
            "SGD",
            "SGD with heavy-ball momentum",
            {"momentum": 0.9, "dampening": 0.0, "weight_decay": 0.0},
        ),
        Optimizer(
            "nesterov",
            "SGD",
            "SGD with Nesterov momentum",
            {"momentum": 0.9, "weight_decay": 0.0},
            fixed={"nesterov": True},
        ),
        Optimizer(
            "adagrad",
            "Adagrad",
            "AdaGrad: per-coordinate rate from the sum of squared gradients",
            {"lr_decay": 0.0, "initial_accumulator_value": 0.0, "eps": 1e-10, "weight_decay": 0.0},
        ),
        Optimizer(
            "rmsprop",
            "RMSprop",
            "RMSProp: per-coordinate rate from a decaying average of squared gradients",
            {"alpha": 0.99, "eps": 1e-8, "centered": False, "momentum": 0.0, "weight_decay": 0.0},
        ),
        Optimizer(
            "adam",
            "Adam",
            "Adam: RMSProp with momentum and bias correction",
            {"betas": [0.9, 0.999], "eps": 1e-8, "amsgrad": False, "weight_decay": 0.0},
        ),
        Optimizer(
            "adamw",
            "AdamW",
            "Adam with decoupled weight decay",
            {"betas": [0.9, 0.999], "eps": 1e-8, "amsgrad": False, "weight_decay": 0.01},
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


# ---------------------------------------------------------------------------------------------
# Schedules: stepped once per epoch. `warmup` (epochs) is a linear ramp that combines with any.

@dataclass(frozen=True)
class Schedule:
    name: str
    description: str
    defaults: dict[str, Any]


SCHEDULES: dict[str, Schedule] = {
    s.name: s
    for s in [
        Schedule("constant", "the lr stays as given", {}),
        Schedule("step", "lr × gamma every step_size epochs", {"step_size": 10, "gamma": 0.1}),
        Schedule("exponential", "lr × gamma every epoch", {"gamma": 0.95}),
        Schedule("cosine", "cosine from lr down to eta_min over the run (after warmup)", {"eta_min": 0.0}),
    ]
}
SCHEDULE_COMMON = {"warmup": 0}


def check_schedule(value: Any, epochs: int, where: str = "schedule") -> dict[str, Any]:
    """Canonical schedule table {kind, ...params, warmup} from a string or a table."""
    if isinstance(value, str):
        value = {"kind": value}
    if not isinstance(value, dict):
        raise UserError(f"{where} = {value!r} is not allowed; allowed: a name or a table like {{ kind = \"step\" }}")
    kind = value.get("kind", "constant")
    if not isinstance(kind, str) or kind not in SCHEDULES:
        raise UserError(
            f"{where}.kind = {kind!r} is unknown{did_you_mean(kind, SCHEDULES)}; allowed: {', '.join(SCHEDULES)}"
        )
    sched = SCHEDULES[kind]
    allowed_keys = {"kind", *sched.defaults, *SCHEDULE_COMMON}
    for k in value:
        if k not in allowed_keys:

            raise UserError(
                f"{where}.{k} is not a parameter of schedule {kind!r}{did_you_mean(k, allowed_keys)}; "
                f"allowed: {', '.join(sorted(allowed_keys))}"
            )
    out: dict[str, Any] = {"kind": kind}
    for k, default in {**sched.defaults, **SCHEDULE_COMMON}.items():
        v = value.get(k, default)
        if k in ("step_size", "warmup"):
            lo = 1 if k == "step_size" else 0
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise UserError(f"{where}.{k} = {v!r} is not allowed; allowed: a whole number >= {lo}")
        elif k == "gamma":
            v = _check_float(v, lo=0.0, hi=1.0, lo_open=True, err=UserError(
                f"{where}.gamma = {v!r} is not allowed; allowed: a number in (0, 1]"))
        elif k == "eta_min":
            v = _check_float(v, lo=0.0, err=UserError(
                f"{where}.eta_min = {v!r} is not allowed; allowed: a number >= 0"))
        out[k] = v
    if out["warmup"] >= epochs:
        raise UserError(
            f"{where}.warmup = {out['warmup']} is not allowed with epochs = {epochs}; allowed: fewer warmup "
            "epochs than epochs"
        )
    return out


def lr_schedule(trial: dict) -> list[float]:
    """The lr in effect during each training epoch 1..E, in closed form (pure Python).

    The same schedule torch.optim.lr_scheduler gives the reference engine (LinearLR warmup from
    lr/(warmup+1), then StepLR / ExponentialLR / CosineAnnealingLR over the remaining epochs,
    joined by SequentialLR); tests/test_catalogue.py holds it to torch's own schedulers. Closed
    form keeps torch.optim (and the second it takes to import) out of the fused engine."""
    s, base, epochs = trial["schedule"], trial["lr"], trial["epochs"]
    warm = s["warmup"]
    out = []
    for e in range(epochs):
        if e < warm:
            start = 1.0 / (warm + 1)
            out.append(base * (start + (1.0 - start) * e / warm))
            continue
        m = e - warm
        if s["kind"] == "step":
            out.append(base * s["gamma"] ** (m // s["step_size"]))
        elif s["kind"] == "exponential":
            out.append(base * s["gamma"] ** m)
        elif s["kind"] == "cosine":
            span = epochs - warm
            out.append(s["eta_min"] + (base - s["eta_min"]) * (1 + math.cos(math.pi * m / span)) / 2)
        else:
            out.append(base)
    return out
