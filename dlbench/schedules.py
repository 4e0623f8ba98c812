"""Learning-rate schedules: stepped once per epoch, or once per optimizer step for a trial whose
length is `max_steps` (nanoGPT's warmup and cosine decay count steps); `warmup` (in the same unit) is
a linear ramp that combines with any. Pure data, checks and the closed form the fused engine
uses; the reference engine builds the same schedule from torch.optim.lr_scheduler."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from dlbench.errors import UserError, did_you_mean
from dlbench.optim.common import check_float


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


def units(trial: dict) -> int:
    """How many times a trial's schedule steps: once per optimizer step with a step budget, else
    once per epoch."""
    return trial.get("max_steps") or trial["epochs"]


def check_schedule(value: Any, epochs: int, where: str = "schedule", unit: str = "epochs") -> dict[str, Any]:
    """Canonical schedule table {kind, ...params, warmup} from a string or a table. `epochs`: how
    many times it steps (`unit`: epochs, or steps for a step budget)."""
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
            v = check_float(v, lo=0.0, hi=1.0, lo_open=True, err=UserError(
                f"{where}.gamma = {v!r} is not allowed; allowed: a number in (0, 1]"))
        elif k == "eta_min":
            v = check_float(v, lo=0.0, err=UserError(
                f"{where}.eta_min = {v!r} is not allowed; allowed: a number >= 0"))
        out[k] = v
    if out["warmup"] >= epochs:
        raise UserError(
            f"{where}.warmup = {out['warmup']} is not allowed with {unit} = {epochs}; allowed: fewer warmup "
            f"{unit} than {unit}"
        )
    return out


def lr_schedule(trial: dict) -> list[float]:
    """The lr in effect during each training epoch 1..E (each step 1..S with a step budget), in
    closed form (pure Python).

    The same schedule torch.optim.lr_scheduler gives the reference engine (LinearLR warmup from
    lr/(warmup+1), then StepLR / ExponentialLR / CosineAnnealingLR over the remaining epochs,
    joined by SequentialLR); tests/test_catalogue.py holds it to torch's own schedulers. Closed
    form keeps torch.optim (and the second it takes to import) out of the fused engine."""
    s, base, epochs = trial["schedule"], trial["lr"], units(trial)
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
