"""What users bring: their own optimizers, models and datasets, named by an import path, a file,
or an installed entry point, and treated like the built-ins.

References, as written in a spec or a flag:

    MODULE:ATTR        imported (`lion_pytorch:Lion`, `torch.optim:NAdam`, `mypkg.models:make`)
    PATH.py:ATTR       loaded from the file (relative to the spec file, or to the working folder
                       for flags): `./my_opt.py:MyOpt`
    NAME               an entry point of the group `dlbench.optimizers` (a package that registers
                       optimizers, the way pytest plugins register), unless NAME is a built-in

Everything is resolved and checked in the driver before anything runs (import, signature, a tiny
construction), each failure one line (UserError, exit 2). A reference's identity goes into the
trial (the reference as written and its keywords, so trial ids follow them), its provenance into
env.json (the distribution and its version, or a file's path and SHA-256). Workers resolve the
same reference again; a file travels with the work (`SweepFiles`), so a worker never reads a file
that changed since the driver checked it.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import re
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlbench.errors import UserError, did_you_mean

ENTRY_POINT_GROUP = "dlbench.optimizers"
REF_RE = re.compile(r"^(?P<target>[^:]+):(?P<attr>[A-Za-z_][A-Za-z0-9_.]*)$")


@dataclass(frozen=True)
class Ref:
    """A parsed reference to user code."""

    text: str  # as written
    module: str | None  # MODULE of MODULE:ATTR
    path: str | None  # PATH.py of PATH.py:ATTR, as written
    attr: str

    @property
    def is_file(self) -> bool:
        return self.path is not None


def parse_ref(text: Any) -> Ref | None:
    """A MODULE:ATTR or PATH.py:ATTR reference, or None when `text` is not one."""
    if not isinstance(text, str):
        return None
    m = REF_RE.match(text.strip())
    if not m:
        return None
    target, attr = m.group("target"), m.group("attr")
    if target.endswith(".py") or "/" in target or "\\" in target:
        return Ref(text, None, target, attr)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", target):
        return None
    return Ref(text, target, None, attr)


# --------------------------------------------------------------------------------------------
# Files that travel with the work


@dataclass
class SweepFile:
    path: str  # absolute
    sha256: str
    content: bytes | None = None  # shipped with the work (always for Python files; data files for Dask)


@dataclass
class SweepFiles:
    """The user files a sweep uses, keyed by the path as written. Units carry them to workers."""

    base_dir: str = "."
    files: dict[str, SweepFile] = field(default_factory=dict)

    def add(self, written: str, what: str, ship: bool = True) -> SweepFile:
        if written in self.files:
            return self.files[written]
        p = Path(written).expanduser()
        p = p if p.is_absolute() else Path(self.base_dir) / p
        if not p.is_file():
            raise UserError(f"{what}: file {written!r} does not exist (looked for {p}); allowed: a path relative to "
                            f"{'the spec file' if self.base_dir != '.' else 'the working folder'}, or absolute")
        data = p.read_bytes()
        f = SweepFile(str(p.resolve()), hashlib.sha256(data).hexdigest(), data if ship else None)
        self.files[written] = f
        return f

    def read(self, written: str) -> bytes:
        """A file's content in a worker: the shipped bytes, else the file itself, checked against
        the SHA-256 the driver saw."""
        f = self.files.get(written)
        if f is None:
            raise FileNotFoundError(f"{written} was not sent with this unit of work")
        if f.content is not None:
            return f.content
        data = Path(f.path).read_bytes()
        if hashlib.sha256(data).hexdigest() != f.sha256:
            raise RuntimeError(f"{f.path} changed while the sweep ran (its SHA-256 is no longer the one checked "
                               "at the start)")
        return data

    def shipped(self, everything: bool) -> SweepFiles:
        """A copy whose files all carry their content (for workers on other machines), or only the
        Python files (workers on this machine read data files from their path)."""
        out = SweepFiles(self.base_dir)
        for k, f in self.files.items():
            content = f.content
            if content is None and everything:
                content = Path(f.path).read_bytes()
            out.files[k] = SweepFile(f.path, f.sha256, content)
        return out


_MODULES: dict[str, types.ModuleType] = {}  # sha256 of a Python file -> its module, loaded once per process


def load_file_module(written: str, files: SweepFiles) -> types.ModuleType:
    f = files.files.get(written)
    if f is None:
        files.add(written, "plugin")
        f = files.files[written]
    if f.sha256 not in _MODULES:
        name = f"dlbench_user_{re.sub(r'[^A-Za-z0-9_]', '_', Path(f.path).stem)}_{f.sha256[:10]}"
        module = types.ModuleType(name)
        module.__file__ = f.path
        sys.modules[name] = module  # so that pickling what it defines (classes, functions) works
        try:
            exec(compile(files.read(written), f.path, "exec"), module.__dict__)  # noqa: S102 - the user's own code
        except Exception:
            del sys.modules[name]
            raise
        _MODULES[f.sha256] = module
    return _MODULES[f.sha256]


def load_object(ref: Ref, files: SweepFiles, what: str) -> Any:
    """The object a reference names. Errors a user can fix are one line: a module that is not
    installed, a file that does not exist or does not run, a missing attribute."""
    if ref.is_file:
        try:
            module = load_file_module(ref.path, files)
        except UserError:
            raise
        except Exception as e:  # noqa: BLE001 - the user's file failed to run
            raise UserError(f"{what} = {ref.text!r}: running {ref.path} raised {type(e).__name__}: {_line(e)}; "
                            "allowed: a Python file that imports cleanly") from None
    else:
        try:
            module = importlib.import_module(ref.module)
        except ModuleNotFoundError as e:
            missing = e.name or ref.module
            raise UserError(f"{what} = {ref.text!r}: module {missing!r} is not installed here; allowed: an "
                            f"installed module (pip install it) or a file path like ./my_code.py:{ref.attr}") from None
        except Exception as e:  # noqa: BLE001
            raise UserError(f"{what} = {ref.text!r}: importing {ref.module} raised {type(e).__name__}: {_line(e)}; "
                            "allowed: a module that imports cleanly") from None
    obj = module
    for part in ref.attr.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(module) if not n.startswith("_")]
            raise UserError(f"{what} = {ref.text!r}: {ref.module or ref.path} has no {ref.attr!r}"
                            f"{did_you_mean(ref.attr, names)}; allowed: a name it defines")
        obj = getattr(obj, part)
    return obj


def _line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[-1] if text else type(e).__name__)[:200]


def provenance(ref: Ref, files: SweepFiles) -> dict:
    """Where a reference's code comes from: its distribution and version, or its file and SHA-256."""
    if ref.is_file:
        f = files.files[ref.path]
        return {"path": f.path, "sha256": f.sha256}
    from importlib.metadata import packages_distributions, version

    top = ref.module.split(".")[0]
    dists = packages_distributions().get(top, [])
    out: dict[str, Any] = {"module": ref.module}
    if dists:
        out["distribution"] = dists[0]
        try:
            out["version"] = version(dists[0])
        except Exception:  # noqa: BLE001 - metadata without a version
            pass
    else:
        mod = sys.modules.get(ref.module)
        if mod is not None and getattr(mod, "__file__", None):
            out["path"] = str(Path(mod.__file__).resolve())
    return out


# --------------------------------------------------------------------------------------------
# Optimizers


def entry_points() -> dict[str, Any]:
    """The optimizers installed packages register (group `dlbench.optimizers`): name -> entry point."""
    from importlib.metadata import entry_points as eps

    return {ep.name: ep for ep in eps(group=ENTRY_POINT_GROUP)}


def torch_optimizers() -> list[str]:
    """Every torch.optim optimizer class, as `torch.optim:NAME` (what `dlbench optimizers` lists)."""
    import torch

    return sorted(f"torch.optim:{n}" for n, c in vars(torch.optim).items()
                  if inspect.isclass(c) and issubclass(c, torch.optim.Optimizer) and c is not torch.optim.Optimizer)


# torch.optim update rules that act on each element alone (given the group's hyperparameters and
# the element's own state): trials with identical hyperparameters can share one param group over
# their stacked rows and get exactly what separate optimizers give them (tests/test_plugins.py
# measures it). Anything else gets one optimizer per trial.
ELEMENTWISE = frozenset({"torch.optim.sgd.SGD", "torch.optim.adam.Adam", "torch.optim.adamw.AdamW",
                         "torch.optim.adamax.Adamax", "torch.optim.nadam.NAdam", "torch.optim.radam.RAdam",
                         "torch.optim.adagrad.Adagrad", "torch.optim.adadelta.Adadelta",
                         "torch.optim.rmsprop.RMSprop", "torch.optim.rprop.Rprop"})


@dataclass
class OptimizerPlugin:
    name: str  # as used in the spec (an alias, a reference, or an entry point's name)
    ref: Ref  # what it resolves to
    obj: Any  # the class, or a callable (params, lr, **keywords) -> Optimizer
    fixed: dict[str, Any]  # keywords a named [optimizers.NAME] table fixes
    keywords: list[str]  # keywords it accepts (besides params and lr)
    open_keywords: bool  # it takes **kwargs: keywords are checked by constructing it
    needs_closure: bool  # step(closure) without a default (LBFGS)
    has_modes: bool  # train() / eval() methods (schedule-free optimizers)
    entry_point: str | None = None  # "dist version" when it came from an entry point

    @property
    def elementwise(self) -> bool:
        return inspect.isclass(self.obj) and f"{self.obj.__module__}.{self.obj.__qualname__}" in ELEMENTWISE

    def construct(self, params, lr: float, keywords: dict):
        kw = {**self.fixed, **keywords}
        return self.obj(params, lr=lr, **{k: tuple(v) if isinstance(v, list) else v for k, v in kw.items()})


class PluginRegistry:
    """The plugins of one sweep (driver) or one worker process, resolved once each."""

    def __init__(self, files: SweepFiles | None = None, named: dict[str, dict] | None = None):
        self.files = files or SweepFiles()
        self.named = named or {}  # [optimizers.NAME] tables: NAME -> {"class": ref, **fixed keywords}
        self.optimizers: dict[str, OptimizerPlugin] = {}
        self.checked: set[str] = set()  # (optimizer, keywords) already constructed once

    def optimizer(self, name: str, where: str = "optimizer") -> OptimizerPlugin:
        if name in self.optimizers:
            return self.optimizers[name]
        fixed: dict[str, Any] = {}
        ep_info = None
        if name in self.named:
            table = dict(self.named[name])
            text = table.pop("class")
            fixed = table
            ref = parse_ref(text)
        else:
            ref = parse_ref(name)
            if ref is None:
                eps = entry_points()
                if name not in eps:
                    raise KeyError(name)
                ep = eps[name]
                ref = parse_ref(ep.value)
                dist = getattr(ep, "dist", None)
                ep_info = f"{dist.name} {dist.version}" if dist is not None else None
        obj = load_object(ref, self.files, where)
        plugin = describe_optimizer(name, ref, obj, fixed, where)
        plugin.entry_point = ep_info
        self.optimizers[name] = plugin
        return plugin

    def for_trial(self, trial: dict) -> OptimizerPlugin:
        """A trial's optimizer, from the trial alone (a worker knows no aliases): its reference is
        `optimizer_class` (an alias's or an entry point's target) or its name; every keyword it
        takes, fixed ones included, is a key of the trial."""
        text = trial.get("optimizer_class", trial["optimizer"])
        key = f"\0{text}"
        if key not in self.optimizers:
            ref = parse_ref(text)
            if ref is None:  # an entry point's name (folders written before optimizer_class existed)
                return self.optimizer(text)
            self.optimizers[key] = describe_optimizer(trial["optimizer"], ref, load_object(ref, self.files, "optimizer"),
                                                      {}, "optimizer")
        return self.optimizers[key]

    def check_keywords(self, name: str, keywords: dict, lr: float, where: str) -> None:
        """Each keyword is one the optimizer takes, and a tiny construction with them works."""
        plugin = self.optimizer(name, where)
        if not plugin.open_keywords:
            for k in keywords:
                if k not in plugin.keywords:
                    raise UserError(f"{where}: {name} takes no keyword {k!r}{did_you_mean(k, plugin.keywords)}; "
                                    f"allowed: {', '.join(plugin.keywords) or 'none besides lr'}")
        for k in keywords:
            if k in plugin.fixed:
                raise UserError(f"{where}: {k} is fixed to {plugin.fixed[k]!r} by [optimizers.{name}]; allowed: set it "
                                "in one place")
        key = json.dumps([name, lr, keywords], sort_keys=True, default=str)
        if key in self.checked:
            return
        import torch

        try:
            opt = plugin.construct([torch.nn.Parameter(torch.zeros(2, 2))], lr, keywords)
        except Exception as e:  # noqa: BLE001 - the user's constructor refused: say it in one line
            raise UserError(f"{where}: constructing {plugin.ref.text}(lr={lr:g}"
                            + "".join(f", {k}={v!r}" for k, v in {**plugin.fixed, **keywords}.items())
                            + f") raised {type(e).__name__}: {_line(e)}; allowed: arguments it accepts") from None
        if not isinstance(opt, torch.optim.Optimizer):
            raise UserError(f"{where}: {plugin.ref.text}(params, lr, ...) returned {type(opt).__name__}, not a "
                            "torch.optim.Optimizer; allowed: an Optimizer subclass or a function returning one")
        self.checked.add(key)

    def provenance(self) -> dict:
        out = {}
        for name, p in self.optimizers.items():
            if name.startswith("\0"):
                continue
            out[f"optimizer {name}"] = {"reference": p.ref.text, **provenance(p.ref, self.files),
                                        **({"entry_point": p.entry_point} if p.entry_point else {}),
                                        **({"fixed": p.fixed} if p.fixed else {})}
        return out


def describe_optimizer(name: str, ref: Ref, obj: Any, fixed: dict, where: str) -> OptimizerPlugin:
    import torch

    is_class = inspect.isclass(obj)
    if is_class and not issubclass(obj, torch.optim.Optimizer):
        raise UserError(f"{where} = {name!r}: {ref.text} is a class but not a torch.optim.Optimizer; allowed: an "
                        "Optimizer subclass, or a function (params, lr, **keywords) that returns one")
    if not callable(obj) or isinstance(obj, torch.optim.Optimizer):
        raise UserError(f"{where} = {name!r}: {ref.text} is a {type(obj).__name__}, not an optimizer; allowed: an "
                        "Optimizer subclass, or a function (params, lr, **keywords) that returns one")
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        sig = None
    params = list(sig.parameters.values()) if sig else []
    open_keywords = sig is None or any(p.kind is p.VAR_KEYWORD for p in params)
    keywords = [p.name for p in params[1:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                and p.name not in ("lr", "params")]
    if sig is not None and "lr" not in sig.parameters and not open_keywords:
        raise UserError(f"{where} = {name!r}: {ref.text} takes no lr; allowed: an optimizer whose constructor "
                        "takes (params, lr, ...)")
    step = getattr(obj, "step", None) if is_class else None
    needs_closure = False
    if step is not None:
        try:
            c = inspect.signature(step).parameters.get("closure")
            needs_closure = c is not None and c.default is inspect.Parameter.empty
        except (TypeError, ValueError):
            pass
    has_modes = is_class and callable(getattr(obj, "train", None)) and callable(getattr(obj, "eval", None))
    return OptimizerPlugin(name, ref, obj, fixed, keywords, open_keywords, needs_closure, has_modes)


# The registry of this process: the driver fills it while it checks the spec; a worker fills it
# from the files its units carry.
REGISTRY = PluginRegistry()


def use(files: SweepFiles | None, named: dict[str, dict] | None = None) -> PluginRegistry:
    """Make the registry of this process know a sweep's files and named optimizers (a worker calls
    this with what its unit carries)."""
    if files is not None:
        for k, f in files.files.items():
            REGISTRY.files.files.setdefault(k, f)
        if REGISTRY.files.base_dir == ".":
            REGISTRY.files.base_dir = files.base_dir
    for k, v in (named or {}).items():
        REGISTRY.named.setdefault(k, v)
    return REGISTRY


def reset(base_dir: str = ".", named: dict[str, dict] | None = None) -> PluginRegistry:
    """A fresh registry for a sweep the driver is about to check (its own base folder and names)."""
    global REGISTRY
    REGISTRY = PluginRegistry(SweepFiles(base_dir), dict(named or {}))
    return REGISTRY


def is_plugin_optimizer(name: str) -> bool:
    from dlbench.optim import OPTIMIZERS

    return name not in OPTIMIZERS


# keys of a canonical trial that are never an optimizer's keyword
TRIAL_FIELDS = ("id", "dataset", "data", "validation", "model", "loss", "optimizer", "optimizer_class", "lr",
                "batch_size", "epochs", "seed", "schedule", "device", "dtype")


def optimizer_keywords(trial: dict) -> dict:
    """The keywords a plugin optimizer's trial passes to its constructor: every key of the trial
    that is not one of dlbench's own (the spec put exactly those there)."""
    return {k: v for k, v in trial.items() if k not in TRIAL_FIELDS}


def optimizer_name(trial: dict) -> str:
    """The registry name of a trial's optimizer: its alias or reference as written."""
    return trial["optimizer"]


def make_optimizer(trial: dict, params):
    """The torch optimizer of a plugin trial, exactly as its constructor builds it."""
    return REGISTRY.for_trial(trial).construct(params, trial["lr"], optimizer_keywords(trial))
