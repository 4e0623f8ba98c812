"""An optimizer that wraps another (Lookahead over Adam, as Zhang et al. 2019 train):

    [optimizers.la]
    class = "pytorch_optimizer:Lookahead"    # takes the inner optimizer as its first argument
    wraps = "adam"                           # any optimizer name: built-in, MODULE:ATTR, [optimizers.X]
    k = 5                                    # the wrapper's own keywords beside it
    alpha = 0.5

The inner optimizer is built with the trial's lr and its own keywords (a spec key the wrapper does
not take goes to the inner one: `betas` for adam), then handed to the wrapper. The trial holds the
wrapper's reference and keywords and, under `wraps`, the inner optimizer's fields, so its id follows
both. It trains fused wherever its inner optimizer can (one instance per trial, over per-trial
views of the stacked parameters), on the reference engine where the inner one needs a closure."""

from __future__ import annotations

from typing import Any

from dlbench.optim import by_path, composite
from dlbench.optim.common import OptimizerEntry


class Wrapper(composite.CompositeKind):
    name = "wrapper"
    order = 10
    part_key = "wraps"
    examples = (('class = "pytorch_optimizer:Lookahead", wraps = "adam"', "the wrapper around another optimizer "
                 "(any name); the wrapper's keywords beside it, the others go to the inner one"),)

    def describe(self, name: str, table: dict, where: str = "optimizer", resolve=None) -> OptimizerEntry:
        """The wrapper's own keywords (its signature after the optimizer it wraps) and what it needs,
        which is what its inner optimizer needs (its modes are its own)."""
        return self.describe_class(name, table, where, resolve, "an Optimizer subclass (or a function) taking the "
                                   "optimizer it wraps as its first argument", ("optimizer",),
                                   lambda inner: f"{table['class'].split(':')[-1]} over {inner.name}",
                                   lambda obj, inner: composite.has_modes(obj))

    def build(self, entry: OptimizerEntry, params, trial: dict, build_part, roles=None) -> Any:
        """The inner optimizer over the parameters (with the trial's lr), wrapped."""
        inner = build_part({**trial["wraps"], "lr": trial["lr"]}, params, roles)
        return by_path.load(entry.reference)(inner, **self.own(trial))
