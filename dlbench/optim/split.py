"""An optimizer for the matrices and another for the rest (Muon on the hidden matrices with AdamW
on everything else, as modded-nanogpt trains):

    [optimizers.muon]
    class = "torch.optim:Muon"   # takes the parameters with two or more dimensions
    rest = "adamw"               # any optimizer name: built-in, MODULE:ATTR, [optimizers.X]; the others
    rest_lr = 3e-4               # the rest's own lr (or sweep it: [grid] rest_lr = [...]); default: lr
    on = "hidden"                # which go to the class: "matrices" (default: every parameter of two or
                                 # more dimensions) or "hidden" (those, but not the embeddings nor the
                                 # output head: modded-nanogpt's and nanochat's split for a transformer)
    momentum = 0.95              # the class's own keywords beside it

Both are stepped every step, each with its own lr (the schedule scales both). A spec key the class
does not take goes to the rest optimizer (`betas` for adamw). The trial holds the class's reference
and keywords, `rest_lr` when set, and under `rest` the rest optimizer's fields, so its id follows
all of them. It trains fused wherever its parts can (one instance per trial, over per-trial views of
the stacked parameters, which have the reference's shapes)."""

from __future__ import annotations

import functools
from typing import Any

from dlbench.errors import UserError
from dlbench.optim import by_path, composite
from dlbench.optim.common import OptimizerEntry, check_float


class Split(composite.CompositeKind):
    name = "split"
    order = 20
    part_key = "rest"
    own_keys = ("rest_lr", "on")
    check_shapes = ((2, 2), (2,))
    examples = (('class = "torch.optim:Muon", rest = "adamw", rest_lr = 3e-4', "the class on parameters with two "
                 "or more dimensions, the rest optimizer on the others, each with its own lr"),
                ('class = "torch.optim:Muon", rest = "adamw", on = "hidden"', "the class on the hidden matrices "
                 "only: a transformer's embeddings and output head go to the rest optimizer"))
    ON = ("matrices", "hidden")

    def check_own(self, key: str, value: Any, where: str) -> Any:
        if key == "on":
            if value not in self.ON:
                raise UserError(f"{where} = {value!r} is not allowed; allowed: {', '.join(map(repr, self.ON))}")
            return value
        return check_float(value, UserError(f"{where} = {value!r} is not allowed; allowed: a finite number > 0, "
                                            "e.g. 3e-4"), lo=0.0, lo_open=True)

    def describe(self, name: str, table: dict, where: str = "optimizer", resolve=None) -> OptimizerEntry:
        return self.describe_class(name, table, where, resolve, by_path.ALLOWED, (),
                                   lambda rest: f"{table['class'].split(':')[-1]} on matrices, {rest.name} on the rest")

    def build(self, entry: OptimizerEntry, params, trial: dict, build_part, roles=None) -> Any:
        """The class over the parameters with two or more dimensions (with on = "hidden", those of
        role hidden: not an embedding, not the output head), the rest optimizer over the others
        (with rest_lr, else the trial's lr), stepped together as one optimizer."""
        params = list(params)
        roles = roles or ["hidden" if p.dim() >= 2 else "vector" for p in params]
        hidden_only = trial.get("on") == "hidden"
        mine = [r != "vector" and (not hidden_only or r == "hidden") for r in roles]
        matrices = [p for p, m in zip(params, mine, strict=True) if m]
        others = [p for p, m in zip(params, mine, strict=True) if not m]
        rest_roles = [r for r, m in zip(roles, mine, strict=True) if not m]
        main = by_path.load(entry.reference)(matrices, lr=trial["lr"], **self.own(trial)) if matrices else None
        rest = build_part({**trial["rest"], "lr": trial.get("rest_lr", trial["lr"])}, others,
                          rest_roles) if others else None
        if main is None or rest is None:
            return main or rest
        return _split_class()(main, rest)


@functools.cache
def _split_class():
    import torch

    class Split(torch.optim.Optimizer):
        """Two optimizers stepped as one: their param groups side by side (a scheduler scales each
        group from its own initial lr), one step, one zero_grad, the modes of either."""

        def __init__(self, main, rest):
            self.parts = (main, rest)
            super().__init__([p for o in self.parts for g in o.param_groups for p in g["params"]], {})
            self.param_groups = [g for o in self.parts for g in o.param_groups]

        def step(self, closure=None):
            loss = None
            if closure is not None:
                with torch.enable_grad():
                    loss = closure()
            for o in self.parts:
                o.step()
            return loss

        def zero_grad(self, set_to_none: bool = True) -> None:
            for o in self.parts:
                o.zero_grad(set_to_none)

        def train(self) -> None:
            for o in self.parts:
                if callable(getattr(o, "train", None)):
                    o.train()

        def eval(self) -> None:
            for o in self.parts:
                if callable(getattr(o, "eval", None)):
                    o.eval()

    return Split
