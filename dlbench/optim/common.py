"""The optimizer record every kind makes (OptimizerEntry) and the number checks they share."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class OptimizerEntry:
    """Everything the rest of dlbench needs to know of an optimizer, whoever wrote it: the spec
    checks its keywords against it, the planner asks whether it can run fused, the engines build
    it from it, env.json records its provenance. Plain data: it travels between processes (a
    worker that inspected the user's code sends it back)."""

    name: str  # as a spec names it: adam, torch.optim:NAdam, ./my_opt.py:Signum, an [optimizers.NAME] name
    kind: str  # the kind module that made it (optim/<kind>.py)
    reference: str  # the code it runs: torch.optim:Adam for adam, the import path for the others
    description: str = ""
    keywords: tuple[str, ...] = ()  # the keywords a spec may set for it (besides lr)
    open_keywords: bool = False  # it takes **kwargs: keywords are checked by constructing it
    defaults: dict[str, Any] = field(default_factory=dict)  # keyword -> default every trial holds (built-in knobs)
    fixed: dict[str, Any] = field(default_factory=dict)  # keywords its [optimizers.NAME] table fixes
    needs_closure: bool = False  # step(closure) without a default (LBFGS): the reference engine, whole batches
    has_modes: bool = False  # train() and eval() methods (schedule-free): evaluation in eval mode
    # trials with identical hyperparameters may share one instance over their stacked rows (the
    # update acts on each element alone); else one instance per trial
    elementwise: bool = False
    second_order: bool = False  # needs backward(create_graph=True) (Hessian-vector products)
    parts: dict[str, OptimizerEntry] = field(default_factory=dict)  # what it is made of: {"wraps": ...}, {"rest": ...}
    entry_point: str | None = None  # "distribution version" when an installed package registered it
    shipped: bool = False  # its code ships with dlbench (its version in env.json says which)

    def takes(self, key: str) -> bool:
        """Whether a spec key may be one of its keywords."""
        return key in self.keywords or self.open_keywords


def check_float(v, err: Exception, lo=None, hi=None, lo_open=False, hi_open=False) -> float:
    """A finite number within bounds, as a float; else raise `err`."""
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


def check_fixed(name: str, reference: str, fixed: dict, keywords, open_keywords: bool) -> None:
    """The keywords an [optimizers.NAME] table fixes must be ones the class takes."""
    from dlbench.errors import UserError, did_you_mean

    for k in fixed:
        if not open_keywords and k not in keywords:
            raise UserError(f"optimizers.{name}: {reference} takes no keyword {k!r}{did_you_mean(k, keywords)}; "
                            f"allowed: {', '.join(keywords) or 'none besides lr'}")
