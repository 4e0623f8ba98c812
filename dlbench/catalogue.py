"""The catalogue as the rest of dlbench sees it: a trial's dataset, model and optimizer records,
whatever their kind, and what one sweep's user code needs (its files, the modules workers must
have, where each piece came from). The kinds live in data/, models/, optim/ and losses.py; nothing
above this layer asks whether something is built in or a user's: it asks its record.

A sweep's checking happens in one session (dlbench.usercode): `reset` starts one in the driver,
`use` gives a worker what a unit of work carries."""

from __future__ import annotations

from typing import Any

from dlbench import data, models, optim, usercode
from dlbench.data import DatasetInfo
from dlbench.models import ModelEntry
from dlbench.models import factory as model_factory
from dlbench.optim import OptimizerEntry


def reset(base_dir: str = ".", named_optimizers: dict | None = None, pool=None) -> usercode.Session:
    """A fresh session for a sweep the driver is about to check: its base folder (where a spec's
    files are), its [optimizers.NAME] tables, and an early pool where user code is inspected."""
    return usercode.reset(base_dir, {"optimizers": dict(named_optimizers or {})}, pool)


def use(files) -> None:
    """A worker takes the files a unit of work carries."""
    usercode.use(files)


def dataset_of(trial: dict) -> DatasetInfo:
    return data.info_of(trial)


def model_of(trial: dict) -> ModelEntry:
    return models.entry(trial["model"], data.info_of(trial))


def optimizer_of(trial: dict) -> OptimizerEntry:
    return optim.entry_of(trial)


def same_builtin(trial: dict) -> tuple[str, dict] | None:
    """The built-in optimizer (and its knobs) whose update computes this trial's optimizer's."""
    return optim.same_builtin(trial)


def optimizer_rule(builtin: str) -> str:
    """The hand-written fused update (engine/updates.py) of a built-in optimizer."""
    return optim.OPTIMIZERS[builtin].fused_rule


def files():
    """The users' files this session read (their content travels with the work)."""
    return usercode.SESSION.files


def notes() -> list[str]:
    """What checking inferred (a dataset's task, say), said once when the sweep starts."""
    return list(usercode.SESSION.notes)


def provenance() -> dict[str, dict]:
    """Where each piece of user code and data came from: distribution and version, or file and
    SHA-256 (env.json's `plugins`)."""
    out = optim.provenance()
    for text in model_factory.references():
        out[f"model {text}"] = {"reference": text, **usercode.provenance(usercode.parse_ref(text), files())}
    for label, prov in data.provenance().items():
        out[f"dataset {label}"] = prov
    return out


def modules() -> dict[str, str]:
    """The modules the sweep's user code imports (module -> the reference that needs it): what
    every worker must have installed. Files travel with the work; modules do not."""
    out = optim.modules()
    refs = [*model_factory.references(), *(p.get("loader") for p in data.provenance().values())]
    for text in refs:
        ref = usercode.parse_ref(text)
        if ref is not None and ref.module:
            out[ref.module] = text
    return out


def imports_code(raw: dict) -> bool:
    """Whether checking a raw spec imports user code (its optimizers, models or datasets): then it
    is worth inspecting in an early worker pool."""
    if raw.get("optimizers"):
        return True
    tables = [raw] + (raw["grid"] if isinstance(raw.get("grid"), list) else [raw.get("grid") or {}])
    for t in tables:
        if not isinstance(t, dict):
            continue
        for key, names_code in (("optimizer", optim.imports_code), ("model", _model_imports_code),
                                ("dataset", _data_imports_code)):
            values = t.get(key)
            if any(names_code(v) for v in (values if isinstance(values, list) else [values]) if v is not None):
                return True
    return False


def imports_optimizer_code(raw: dict) -> bool:
    """Whether a raw spec names an optimizer that will be constructed to be checked and trained
    (constructing any torch.optim.Optimizer imports torch._dynamo: the early pool's workers import
    it as they start then): one whose code does not ship with dlbench, other than one known to
    compute a built-in's update (optim.builtin_rule: `torch.optim:Adam`, or an [optimizers.NAME]
    table of it, checked by the built-in's knobs and trained by its rule)."""
    tables = [raw] + (raw["grid"] if isinstance(raw.get("grid"), list) else [raw.get("grid") or {}])
    names = [v for t in tables if isinstance(t, dict)
             for v in (t.get("optimizer") if isinstance(t.get("optimizer"), list) else [t.get("optimizer")])]
    named = raw.get("optimizers") if isinstance(raw.get("optimizers"), dict) else {}
    names += [n for n in named if n not in names]
    def table(n):
        return named.get(n) if isinstance(n, str) and isinstance(named.get(n), dict) else None

    return any(optim.imports_code(n) and not optim.builtin_rule(n, table(n)) for n in names if n is not None)


def _model_imports_code(value: Any) -> bool:
    return (isinstance(value, dict) and "factory" in value) or usercode.parse_ref(value) is not None


def _data_imports_code(value: Any) -> bool:
    return isinstance(value, dict) or usercode.looks_like_path(value)
