"""Any torch.optim.Optimizer by import path: `torch.optim:NAdam`, `lion_pytorch:Lion`,
`./my_opt.py:Signum` (a class, or a function (params, lr, **keywords) returning an optimizer), an
installed package's entry point (group `dlbench.optimizers`, as pytest plugins register), or a
short name for one of these with fixed keywords:

    [optimizers.lion2]
    class = "lion_pytorch:Lion"
    betas = [0.95, 0.98]
    create_graph = true          # only for optimizers that need second-order gradients

The trial holds the reference (`optimizer_class` when the name is an alias) and every keyword it
passes, so its id follows them. The fused engine runs it unmodified over per-trial views of the
stacked parameters (engine/generic.py)."""

from __future__ import annotations

import inspect
from typing import Any

from dlbench import usercode
from dlbench.errors import UserError, did_you_mean
from dlbench.optim.builtin import KNOBS, SAME_CLASSES, as_builtin
from dlbench.optim.common import OptimizerEntry, check_fixed
from dlbench.optim.kind import OptimizerKind, Table
from dlbench.schema import TRIAL_FIELDS

ENTRY_POINT_GROUP = "dlbench.optimizers"
TABLE_KEYS = ("class", "create_graph")  # keys of an [optimizers.NAME] table that are not the optimizer's keywords
RESERVED = ("create_graph",)  # keys of a trial that are dlbench's, not the optimizer's
ALLOWED = "an Optimizer subclass, or a function (params, lr, **keywords) that returns one"

# torch.optim update rules that act on each element alone (given the group's hyperparameters and
# the element's own state): trials with identical hyperparameters can share one param group over
# their stacked rows and get exactly what separate optimizers give them (tests/test_plugins.py
# measures it). Anything else gets one optimizer per trial.
ELEMENTWISE = frozenset({"torch.optim.sgd.SGD", "torch.optim.adam.Adam", "torch.optim.adamw.AdamW",
                         "torch.optim.adamax.Adamax", "torch.optim.nadam.NAdam", "torch.optim.radam.RAdam",
                         "torch.optim.adagrad.Adagrad", "torch.optim.adadelta.Adadelta",
                         "torch.optim.rmsprop.RMSprop", "torch.optim.rprop.Rprop"})


def entry_points() -> dict[str, Any]:
    """The optimizers installed packages register (group `dlbench.optimizers`): name -> entry point."""
    from importlib.metadata import entry_points as eps

    return {ep.name: ep for ep in eps(group=ENTRY_POINT_GROUP)}


def torch_optimizers() -> list[str]:
    """Every torch.optim optimizer class, as `torch.optim:NAME` (what `dlbench optimizers` lists)."""
    import torch

    return sorted(f"torch.optim:{n}" for n, c in vars(torch.optim).items()
                  if inspect.isclass(c) and issubclass(c, torch.optim.Optimizer) and c is not torch.optim.Optimizer)


def load(reference: str, where: str = "optimizer") -> Any:
    """The class or function a reference names, loaded once per session."""
    objects = usercode.SESSION.cache("optimizer objects")
    if reference not in objects:
        objects[reference] = usercode.load_object(usercode.parse_ref(reference), usercode.SESSION.files, where)
    return objects[reference]


def check_table(name: str, table: dict, where: str) -> None:
    """What an [optimizers.NAME] table of this kind must hold: a class that is a reference."""
    if "class" not in table:
        raise UserError(f"[{where}] has no class; allowed: class = \"module:Class\" or \"./file.py:Class\"")
    if usercode.parse_ref(table["class"]) is None:
        raise UserError(f"{where}.class = {table['class']!r} is not a reference; allowed: \"module:Class\" or "
                        "\"./file.py:Class\"")
    if not isinstance(table.get("create_graph", False), bool):
        raise UserError(f"{where}.create_graph = {table['create_graph']!r} is not allowed; allowed: true or false")


def _resolve(name: str, table: dict | None) -> tuple[str, dict, str | None]:
    """(reference, fixed keywords, entry point) of a name."""
    if table is not None:
        return table["class"], {k: v for k, v in table.items() if k not in TABLE_KEYS}, None
    if usercode.parse_ref(name) is not None:
        return name, {}, None
    ep = entry_points()[name]
    dist = getattr(ep, "dist", None)
    return ep.value, {}, (f"{dist.name} {dist.version}" if dist is not None else None)


def keywords_of(trial: dict) -> dict:
    """The keywords a trial passes to the constructor: every key of the trial that is not dlbench's
    own (the spec put exactly those there)."""
    return {k: v for k, v in trial.items() if k not in TRIAL_FIELDS and k not in RESERVED}


class ByPath(OptimizerKind):
    """Any torch.optim.Optimizer by import path, file, entry point or [optimizers.NAME] table: the
    kind asked last, which takes whatever the others do not."""

    name = "by path"
    order = 90
    table_keys = TABLE_KEYS
    reserved = RESERVED
    examples = (
        ('class = "lion_pytorch:Lion", betas = [0.95, 0.98]', "any optimizer under a short name, with fixed keywords"),
        ('class = "pytorch_optimizer:AdaHessian", create_graph = true', "backward keeps the gradient's graph "
         "(second-order optimizers; reference engine)"),
    )

    def recognises(self, name: str, table: dict | None) -> bool:
        if table is not None:
            return True
        return usercode.parse_ref(name) is not None or name in entry_points()

    def check_table(self, name: str, table: dict, where: str) -> None:
        check_table(name, table, where)

    def builtin_rule(self, name: str, table: dict | None) -> bool:
        """A torch.optim class some built-in is, with fixed keywords its knobs take (as_builtin):
        `[optimizers.tadam] class = "torch.optim:Adam"` is checked as adam is, with no construction."""
        text = (table or {}).get("class", name)
        ref = usercode.parse_ref(text) if isinstance(text, str) else None
        if ref is None or ref.is_file or ref.module != "torch.optim" or ref.attr not in SAME_CLASSES:
            return False
        fixed = {k: v for k, v in (table or {}).items() if k not in TABLE_KEYS}
        return not (table or {}).get("create_graph") and as_builtin(ref.attr, fixed) is not None

    def claims(self, trial: dict) -> bool:
        return True  # the last kind asked: whatever the others do not claim

    def describe(self, name: str, table: dict | None = None, where: str = "optimizer", resolve=None) -> OptimizerEntry:
        """What an optimizer is, found by importing it: its keywords, whether it needs a closure, has
        train/eval modes, acts on each element alone."""
        import torch

        reference, fixed, ep = _resolve(name, table)
        ref = usercode.parse_ref(reference)
        if ref.is_file:
            usercode.SESSION.files.add(ref.path, f"optimizer = {name!r}")
        obj = load(reference, where)
        is_class = inspect.isclass(obj)
        if is_class and not issubclass(obj, torch.optim.Optimizer):
            raise UserError(f"{where} = {name!r}: {reference} is a class but not a torch.optim.Optimizer; allowed: "
                            f"{ALLOWED}")
        if not callable(obj) or isinstance(obj, torch.optim.Optimizer):
            raise UserError(f"{where} = {name!r}: {reference} is a {type(obj).__name__}, not an optimizer; allowed: "
                            f"{ALLOWED}")
        keywords, open_keywords, sig = usercode.keywords_of(obj, skip=1, reserved=("lr", "params"))
        if sig is not None and "lr" not in sig.parameters and not open_keywords:
            raise UserError(f"{where} = {name!r}: {reference} takes no lr; allowed: an optimizer whose constructor "
                            "takes (params, lr, ...)")
        step = getattr(obj, "step", None) if is_class else None
        needs_closure = False
        if step is not None:
            try:
                c = inspect.signature(step).parameters.get("closure")
                needs_closure = c is not None and c.default is inspect.Parameter.empty
            except (TypeError, ValueError):
                pass
        check_fixed(name, reference, fixed, keywords, open_keywords)
        has_modes = is_class and callable(getattr(obj, "train", None)) and callable(getattr(obj, "eval", None))
        elementwise = is_class and f"{obj.__module__}.{obj.__qualname__}" in ELEMENTWISE
        return OptimizerEntry(name, self.name, reference, (inspect.getdoc(obj) or "").split("\n")[0][:80],
                              tuple(keywords), open_keywords, fixed=fixed, needs_closure=needs_closure,
                              has_modes=has_modes, elementwise=elementwise,
                              second_order=bool((table or {}).get("create_graph", False)), entry_point=ep)

    def from_trial(self, trial: dict, resolve=None) -> OptimizerEntry:
        """The entry of a trial's optimizer from the trial alone (a worker knows no aliases): its
        reference is `optimizer_class` (an alias's or an entry point's target) or its name."""
        text = trial.get("optimizer_class", trial["optimizer"])
        if usercode.parse_ref(text) is None:  # an entry point's name (folders written before optimizer_class existed)
            return self.describe(text)
        table = {"class": text, **({"create_graph": True} if trial.get("create_graph") else {})}
        return self.describe(trial["optimizer"], table)

    def fields(self, entry: OptimizerEntry, values: dict, lr: float, where: str, part=None) -> dict:
        """The trial's optimizer fields: its reference when the name is an alias, the fixed keywords,
        and each spec key it takes (checked against its signature; an open signature takes any key that
        is not a built-in optimizer's knob)."""
        given = {k: v for k, v in values.items() if k in entry.keywords or (entry.open_keywords and k not in KNOBS)}
        if not entry.open_keywords:
            for k in given:
                if k not in entry.keywords:
                    raise UserError(f"{where}: {entry.name} takes no keyword {k!r}{did_you_mean(k, entry.keywords)}; "
                                    f"allowed: {', '.join(entry.keywords) or 'none besides lr'}")
        for k in given:
            if k in entry.fixed:
                raise UserError(f"{where}: {k} is fixed to {entry.fixed[k]!r} by [optimizers.{entry.name}]; "
                                "allowed: set it in one place")
        out: dict[str, Any] = {}
        if entry.reference != entry.name:
            out["optimizer_class"] = entry.reference
        out.update({k: entry.fixed[k] for k in sorted(entry.fixed)})
        out.update({k: given[k] for k in sorted(given)})
        if entry.second_order:
            out["create_graph"] = True
        return out

    def same_builtin(self, entry: OptimizerEntry, trial: dict) -> tuple[str, dict[str, Any]] | None:
        """The built-in optimizer this trial's optimizer is (a torch.optim class some built-in is, with
        keywords its knobs take: builtin.as_builtin), with its knobs; else None."""
        ref = usercode.parse_ref(entry.reference)
        if ref is None or ref.is_file or ref.module != "torch.optim":
            return None
        return as_builtin(ref.attr, keywords_of(trial))

    def build(self, entry: OptimizerEntry, params, trial: dict, build_part=None, roles=None):
        """The optimizer exactly as its constructor builds it, with the trial's lr and keywords."""
        return load(entry.reference)(params, lr=trial["lr"], **usercode.as_call_keywords(keywords_of(trial)))

    def tables(self) -> list[Table]:
        notes = {"torch.optim:LBFGS": "reference engine (needs a closure)", "torch.optim:Muon": "2-D parameters only",
                 "torch.optim:SparseAdam": "sparse gradients only"}
        rows = [[ref, "torch", notes.get(ref, "fused")] for ref in torch_optimizers()]
        for name, ep in entry_points().items():
            dist = getattr(ep, "dist", None)
            rows.append([name, f"{dist.name} {dist.version}" if dist else "?", f"entry point: {ep.value}"])
        return [("any torch.optim.Optimizer, by import path (MODULE:ATTR, ./file.py:ATTR) or entry point",
                 ["optimizer", "from", "engine"], rows)]
