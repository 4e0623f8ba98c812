"""Optimizers: one record type (OptimizerEntry) for every kind, built-in or brought by a user, made
by one registry and asked the same questions everywhere (its keywords, whether it needs a closure,
one instance per trial, second-order gradients, a hand-written fused update, its provenance).

Kinds, one module each with one subclass of `optim.kind.OptimizerKind` (the contract, in code),
asked in their `order` (the first that recognises a name makes its entry):

    wrapper   an optimizer around another: [optimizers.X] class = ..., wraps = NAME (optim/wrapper.py)
    split     one optimizer for the matrices, another for the rest: rest = NAME (optim/split.py)
    builtin   sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw (optim/builtin.py)
    by path   any torch.optim.Optimizer: MODULE:ATTR, ./file.py:ATTR, an entry point, or an
              [optimizers.X] table with a class (optim/by_path.py)

Every module of this package is imported here, so a new kind is one file: the registry, the keys
a trial's entry is cached by and the listing come from the classes. Entries are described where
the user's code is inspected (the session's early worker pool when there is one, so the driver
never imports torch for them) and travel back as plain data.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from typing import Any

from dlbench import usercode
from dlbench.errors import UserError, did_you_mean
from dlbench.optim import by_path
from dlbench.optim.builtin import KNOBS, OPTIMIZERS, Knob, check_optimizer_knobs  # noqa: F401
from dlbench.optim.common import OptimizerEntry
from dlbench.optim.kind import OptimizerKind, registered
from dlbench.schema import NAME_RE, TRIAL_KEYS

for _module in pkgutil.iter_modules(__path__):  # every kind registers itself as its module is imported
    importlib.import_module(f"{__name__}.{_module.name}")
registered()  # a kind that leaves a method of the contract out fails here, as dlbench starts

KNOB_KEYS = tuple(KNOBS)
entry_points = by_path.entry_points
torch_optimizers = by_path.torch_optimizers


def kinds() -> list[OptimizerKind]:
    """Every kind, in the order they are asked."""
    return registered()


def kind(name: str) -> OptimizerKind:
    """The kind that made an entry (its `kind`)."""
    return next(k for k in kinds() if k.name == name)


def part_keys() -> tuple[str, ...]:
    """Trial keys that hold a part of a composite optimizer (its own fields, nested)."""
    return tuple(k.part_key for k in kinds() if k.part_key)


def named() -> dict[str, dict]:
    """This session's [optimizers.NAME] tables."""
    return usercode.SESSION.context.get("optimizers", {})


def check_named(tables: Any) -> dict[str, dict]:
    """[optimizers.NAME] tables: an optimizer under a short name, with its kind's keys and fixed
    keywords. Each one is checked as a table here; its code when a sweep names it."""
    if tables is None:
        return {}
    if not isinstance(tables, dict) or not all(isinstance(v, dict) for v in tables.values()):
        raise UserError("optimizers is not allowed as given; allowed: tables like [optimizers.lion2] with class = "
                        "\"module:Class\" and fixed keywords")
    out = {}
    for name, table in tables.items():
        where = f"optimizers.{name}"
        if name in OPTIMIZERS:
            raise UserError(f"[{where}] reuses the built-in name {name!r}; allowed: another name (built-ins take their "
                            "knobs in the grid, e.g. betas = [[0.9, 0.95]])")
        if not NAME_RE.match(name) or ":" in name:
            raise UserError(f"[{where}]: {name!r} is not allowed as a name; allowed: letters, digits, '.', '_', '-'")
        for k in table:
            if k in ("params", "lr") or k in TRIAL_KEYS:
                raise UserError(f"{where}.{k} is not allowed: {k} is dlbench's to set; allowed: the optimizer's own "
                                "keywords")
        _kind_of(name, table).check_table(name, table, where)
        out[name] = dict(table)
    return out


def _kind_of(name: str, table: dict | None) -> OptimizerKind | None:
    return next((k for k in kinds() if k.recognises(name, table)), None)


def imports_code(name: Any) -> bool:
    """Whether describing this optimizer imports code (anything that does not ship with dlbench)."""
    return not (isinstance(name, str) and name in OPTIMIZERS and name not in named())


def builtin_rule(name: Any, table: dict | None = None) -> bool:
    """Whether an optimizer a spec names is known, without importing its code, to compute what a
    built-in update computes (a built-in; `torch.optim:Adam`, or a table of it with keywords its
    knobs take): checking it constructs nothing, so no worker need import torch._dynamo for it."""
    if not isinstance(name, str):
        return False
    k = _kind_of(name, table)
    return k is not None and k.builtin_rule(name, table)


# --------------------------------------------------------------------------------------------
# Entries


def entry(name: str, where: str = "optimizer") -> OptimizerEntry:
    """The entry of an optimizer a spec names: described once per session, where the session
    inspects user code."""
    entries = usercode.SESSION.cache("optimizer entries")
    if name not in entries:
        table = named().get(name)
        kind = _kind_of(name, table) if isinstance(name, str) else None
        if kind is None:
            names = [*OPTIMIZERS, *named(), *sorted(entry_points())]
            raise UserError(f"optimizer = {name!r} is unknown{did_you_mean(name, names)}; allowed: "
                            f"{', '.join(names)}, MODULE:ATTR (e.g. torch.optim:NAdam), ./file.py:ATTR, or "
                            "[optimizers.NAME]")
        _add_files(name, table)
        if kind.construct_to_check:
            entries[name] = usercode.SESSION.remote(_describe, name, where)
        else:
            entries[name] = kind.describe(name, table, where, entry)
        stack = list(entries[name].parts.values())
        while stack:  # a composite's parts are optimizers of the sweep too (provenance, modules)
            part = stack.pop()
            entries.setdefault(part.name, part)
            stack += part.parts.values()
    return entries[name]


def _describe(name: str, where: str) -> OptimizerEntry:
    """An entry described here (in the early pool's worker, or in the driver)."""
    table = named().get(name)
    return _kind_of(name, table).describe(name, table, where, entry)


def _add_files(name: str, table: dict | None) -> None:
    """A file reference's file, read here: its SHA-256 is this process's to record, and its content
    travels with the work."""
    ref = usercode.parse_ref((table or {}).get("class", name))
    if ref is not None and ref.is_file:
        usercode.SESSION.files.add(ref.path, f"optimizer = {name!r}")


def entry_of(trial: dict) -> OptimizerEntry:
    """The entry of a trial's optimizer from the trial alone (a worker knows no aliases): the kind
    that claims its fields describes it; a composite's parts from their own fields."""
    cache = usercode.SESSION.cache("optimizer entries by trial")
    key = json.dumps({k: trial.get(k) for k in ("optimizer", "optimizer_class", "create_graph", *part_keys())},
                     sort_keys=True)
    if key not in cache:
        known = usercode.SESSION.cache("optimizer entries").get(trial["optimizer"])
        if known is not None and _same(known, trial):
            cache[key] = known
        else:
            cache[key] = next(k for k in kinds() if k.claims(trial)).from_trial(trial, entry_of)
    return cache[key]


def _same(e: OptimizerEntry, trial: dict) -> bool:
    """Whether an entry described by name (here, or where the code was inspected) is the one a
    trial's fields describe: then it is used, and the user's code is not imported here for it."""
    return (e.reference == trial.get("optimizer_class", e.reference if e.shipped else trial["optimizer"])
            and e.second_order == bool(trial.get("create_graph")) and set(e.parts) == {p for p in part_keys()
                                                                                      if p in trial})


def fields(name: str, values: dict, lr: float, where: str) -> dict:
    """The optimizer's fields of one trial: every keyword it takes from the spec's `values`
    (checked), with its kind's own keys (a reference, parts); a tiny construction with them is
    queued (run_constructions), unless a built-in optimizer is what they make (its knobs are
    checked then: same_builtin)."""
    e = entry(name)
    out = _fields(e, values, lr, where)
    if kind(e.kind).construct_to_check and _same_builtin(e, {"optimizer": name, "lr": lr, **out}) is None:
        _queue_construction(name, out, lr, where)
    return out


def same_builtin(trial: dict) -> tuple[str, dict] | None:
    """(built-in name, its knobs) when the trial's optimizer computes what a built-in optimizer
    computes (a built-in itself, or a torch.optim class some built-in is, with keywords its knobs
    take): the fused engine then trains it by that built-in's update. Else None."""
    return _same_builtin(entry_of(trial), trial)


def _same_builtin(e: OptimizerEntry, trial: dict) -> tuple[str, dict] | None:
    return kind(e.kind).same_builtin(e, trial)


def _fields(e: OptimizerEntry, values: dict, lr: float, where: str) -> dict:
    return kind(e.kind).fields(e, values, lr, where, lambda part, vals: _fields(part, vals, lr, where))


def spec_keys(fields_: dict) -> set[str]:
    """The spec keys a trial's optimizer fields took (a composite's parts included)."""
    out = set(fields_)
    for p in part_keys():
        if isinstance(fields_.get(p), dict):
            out |= spec_keys(fields_[p]) - {"optimizer"}
    return out


def who_takes(key: str, names: list[str]) -> list[str]:
    """The optimizers that take a spec key: built-ins with that knob, and those of `names`."""
    return [o for o, spec in OPTIMIZERS.items() if key in spec.defaults] + [
        n for n in names if n not in OPTIMIZERS and key in _all_keywords(entry(n))]


def takes_anywhere(name: str, key: str) -> bool:
    """Whether an optimizer, or a part of it, takes a keyword (an open signature takes any)."""
    def walk(e: OptimizerEntry) -> bool:
        return e.takes(key) or any(walk(p) for p in e.parts.values())

    return walk(entry(name))


def _all_keywords(e: OptimizerEntry) -> set[str]:
    return set(e.keywords).union(*(_all_keywords(p) for p in e.parts.values()))


def keywords_of(names: list[str]) -> dict[str, list[str]]:
    """name -> the keywords each of these optimizers (not built in) takes, for messages."""
    return {n: sorted(_all_keywords(entry(n))) for n in names if n not in OPTIMIZERS}


def build(trial: dict, params, roles: list[str] | None = None):
    """The trial's torch optimizer over `params`, as its entry builds it. With weight_decay_on =
    "matrices" each optimizer it builds gets two param groups: the parameters of two or more
    dimensions (weight decay as given), and the others with weight_decay 0 (nanoGPT's
    configure_optimizers); a composite's parts are built the same way."""
    e = entry_of(trial)
    k = kind(e.kind)
    only = trial.get("weight_decay_on") == "matrices"
    if only and k.part_key is None:  # a composite hands its parameters on to the parts it builds
        params = list(params)
        # a matrix by its role in the model (a trial's rows stacked for a shared instance have a
        # dimension more than the parameter); by its own dimensions where no role is known
        matrix = [r != "vector" for r in roles] if roles is not None else [p.dim() >= 2 for p in params]
        params = [g for g in ({"params": [p for p, m in zip(params, matrix, strict=True) if m]},
                              {"params": [p for p, m in zip(params, matrix, strict=True) if not m],
                               "weight_decay": 0.0}) if g["params"]]
    inherit = {"weight_decay_on": "matrices"} if only else {}
    return k.build(e, params, trial, lambda part, ps, rs=None: build({**part, **inherit}, ps, rs), roles)


# --------------------------------------------------------------------------------------------
# Tiny constructions: every keyword set is tried once before anything trains


def _queue_construction(name: str, fields_: dict, lr: float, where: str) -> None:
    done = usercode.SESSION.cache("constructions checked")
    key = json.dumps([name, lr, fields_], sort_keys=True, default=str)
    if key not in done:
        done[key] = True
        usercode.SESSION.cache("constructions pending")[key] = (name, fields_, lr, where)


def run_constructions() -> None:
    """The tiny constructions queued while a spec was checked, in the session's early pool (a
    torch.optim.Optimizer imports torch._dynamo on its first construction, a second and a half,
    which the workers import anyway) or here. Raises the first refusal."""
    pending = usercode.SESSION.cache("constructions pending")
    items = list(pending.values())
    pending.clear()
    if items:
        for error in usercode.SESSION.remote(_constructions, items):
            if error:
                raise UserError(error)


def _constructions(items) -> list[str | None]:
    return [construct_error(name, fields_, lr, where) for name, fields_, lr, where in items]


def construct_error(name: str, fields_: dict, lr: float, where: str) -> str | None:
    """Construct the optimizer once over a tiny matrix and a tiny vector with these fields: None
    when it works, else the one-line refusal."""
    import torch

    e = entry(name, where)
    trial = {"optimizer": name, "lr": lr, **fields_}
    kw = "".join(f", {k}={v!r}" for k, v in fields_.items() if k != "optimizer_class")
    try:
        with usercode.calling(f"{where}: constructing {e.reference}(lr={lr:g}{kw})", "arguments it accepts"):
            shapes = kind(e.kind).check_shapes
            opt = build(trial, [torch.nn.Parameter(torch.zeros(*shape)) for shape in shapes],
                        ["hidden" if len(shape) >= 2 else "vector" for shape in shapes])
    except UserError as err:
        return str(err)
    if not isinstance(opt, torch.optim.Optimizer):
        return (f"{where}: {e.reference}(params, lr, ...) returned {type(opt).__name__}, not a "
                "torch.optim.Optimizer; allowed: an Optimizer subclass or a function returning one")
    return None


# --------------------------------------------------------------------------------------------
# What a sweep's optimizers need and where they come from


def described() -> dict[str, OptimizerEntry]:
    """The optimizers this session described by name."""
    return dict(usercode.SESSION.cache("optimizer entries"))


def provenance() -> dict[str, dict]:
    """Where each optimizer whose code does not ship with dlbench comes from (for env.json): its
    reference, distribution and version or file and SHA-256, entry point and fixed keywords."""
    out = {}
    for name, e in described().items():
        if e.shipped:
            continue
        out[f"optimizer {name}"] = {"reference": e.reference,
                                    **usercode.provenance(usercode.parse_ref(e.reference), usercode.SESSION.files),
                                    **({"entry_point": e.entry_point} if e.entry_point else {}),
                                    **({"fixed": e.fixed} if e.fixed else {}),
                                    **({p: part.name for p, part in e.parts.items()})}
    return out


def modules() -> dict[str, str]:
    """Module -> the reference that imports it, for every optimizer described (workers must have them)."""
    out = {}
    for e in described().values():
        ref = usercode.parse_ref(e.reference)
        if not e.shipped and ref is not None and ref.module:
            out[ref.module] = e.reference
    return out


def listing() -> list[tuple[str, list[str], list[list[str]]]]:
    """What `dlbench optimizers` shows, as (title, columns, rows) tables: each kind's own tables (the
    built-ins with their knobs, every torch.optim class and every optimizer an installed package
    registers), then what an [optimizers.NAME] table can make, kind by kind."""
    tables = [t for k in kinds() for t in k.tables()]
    examples = [[k.name, table, what] for k in kinds() for table, what in k.examples]
    return [*tables, ("in an [optimizers.NAME] table", ["kind", "table", "what it does"], examples)]
