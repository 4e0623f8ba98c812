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

import functools
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


@functools.cache
def _distributions() -> dict[str, list[str]]:
    """Top-level module -> the distributions that provide it (scanning them takes a quarter second)."""
    from importlib.metadata import packages_distributions

    return packages_distributions()


def provenance(ref: Ref, files: SweepFiles) -> dict:
    """Where a reference's code comes from: its distribution and version, or its file and SHA-256."""
    if ref.is_file:
        f = files.files[ref.path]
        return {"path": f.path, "sha256": f.sha256}
    from importlib.metadata import version

    top = ref.module.split(".")[0]
    dists = _distributions().get(top, [])
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
    is_elementwise: bool | None = None  # known without the object (described in a worker)

    @property
    def elementwise(self) -> bool:
        if self.obj is None:
            return bool(self.is_elementwise)
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
        self.factories: dict[str, Any] = {}  # model factory reference -> the function
        self.model_checks: dict[str, str | None] = {}  # model (canonical JSON) + input shape -> why not fused, or None
        self.pooling: dict[str, bool] = {}  # the same key -> whether the model max-pools (slow under vmap on the CPU)
        self.datasets: dict[str, dict] = {}  # dataset label -> its provenance (file and SHA-256, or loader)
        self.notes: list[str] = []  # what checking inferred, said once when the sweep starts
        self.dataset_keys: set[str] = set()  # the dataset values this sweep has read
        self.defer = False  # collect the tiny constructions (run_constructions runs them, maybe in a worker)
        self.pending: list[tuple[str, str, dict, float, str]] = []
        # a local executor started early: the user's code is imported and inspected there, not here
        # (this process then never imports torch for it; the workers import it anyway)
        self.pool = None

    def _remote(self, fn, *args):
        return self.pool.pool.submit(fn, *args, self.files, self.named).result()

    def optimizer(self, name: str, where: str = "optimizer") -> OptimizerPlugin:
        if name in self.optimizers:
            return self.optimizers[name]
        if self.pool is not None and self.pool.pool is not None:
            self._add_file(name)
            info = self._remote(remote_describe, name, where)
            self.optimizers[name] = OptimizerPlugin(obj=None, ref=parse_ref(info.pop("ref")), **info)
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

    def _add_file(self, name: str) -> None:
        """A file reference's file, read here (its SHA-256 is this process's to record and its
        content travels with the work)."""
        text = self.named.get(name, {}).get("class", name)
        ref = parse_ref(text)
        if ref is not None and ref.is_file:
            self.files.add(ref.path, f"optimizer = {name!r}")

    def for_trial(self, trial: dict) -> OptimizerPlugin:
        """A trial's optimizer, from the trial alone (a worker knows no aliases): its reference is
        `optimizer_class` (an alias's or an entry point's target) or its name; every keyword it
        takes, fixed ones included, is a key of the trial."""
        text = trial.get("optimizer_class", trial["optimizer"])
        known = self.optimizers.get(trial["optimizer"])
        if known is not None and known.ref.text == text and known.obj is not None:
            return known
        key = f"\0{text}"
        if key not in self.optimizers:
            ref = parse_ref(text)
            if ref is None:  # an entry point's name (folders written before optimizer_class existed)
                return self.optimizer(text)
            obj = load_object(ref, self.files, "optimizer")
            self.optimizers[key] = describe_optimizer(trial["optimizer"], ref, obj, {}, "optimizer")
        return self.optimizers[key]

    def describe_trial(self, trial: dict) -> OptimizerPlugin:
        """What a trial's optimizer is (its keywords, whether it needs a closure, ...), without
        importing it here when it was described where the user's code was inspected."""
        known = self.optimizers.get(trial["optimizer"])
        if known is not None and known.ref.text == trial.get("optimizer_class", trial["optimizer"]):
            return known
        return self.for_trial(trial)

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
        self.checked.add(key)
        if self.defer:
            self.pending.append((key, name, keywords, lr, where))
        else:
            error = construct_error(plugin, keywords, lr, where)
            if error:
                raise UserError(error)

    def run_constructions(self, pool=None) -> None:
        """The tiny constructions collected while a spec was checked: in a worker of `pool` (a local
        executor started early: constructing a torch.optim.Optimizer imports torch._dynamo, a second
        and a half, which the workers import anyway) or here. Raises the first refusal."""
        items, self.pending, self.defer = self.pending, [], False
        if not items:
            return
        payload = [(name, keywords, lr, where) for _, name, keywords, lr, where in items]
        pool = pool or self.pool
        if pool is not None and pool.pool is not None:
            errors = pool.pool.submit(remote_constructions, payload, self.files, self.named).result()
        else:
            errors = [construct_error(self.optimizer(n, w), k, lr, w) for n, k, lr, w in payload]
        for e in errors:
            if e:
                raise UserError(e)

    def modules(self) -> dict[str, str]:
        """The modules the sweep's plugins import (module -> the reference that needs it): what
        every worker must have installed."""
        out = {p.ref.module: p.ref.text for p in self.optimizers.values() if p.ref.module}
        for text in self.factories:
            ref = parse_ref(text)
            if ref.module:
                out[ref.module] = text
        for d in self.datasets.values():
            ref = parse_ref(d.get("loader"))
            if ref is not None and ref.module:
                out[ref.module] = d["loader"]
        return out

    # -- models ------------------------------------------------------------------------------
    def factory(self, text: str, where: str = "model.factory"):
        """A model factory FUNC(input_shape, n_outputs, **keywords) -> nn.Module, resolved once."""
        if self.factories.get(text) is None:
            ref = parse_ref(text)
            if ref is None:
                raise UserError(f"{where} = {text!r} is not a reference; allowed: \"module:function\" or "
                                "\"./file.py:function\"")
            obj = load_object(ref, self.files, where)
            if not callable(obj):
                raise UserError(f"{where} = {text!r} is a {type(obj).__name__}, not a function; allowed: a function "
                                "(input_shape, n_outputs, **keywords) returning an nn.Module")
            self.factories[text] = obj
        return self.factories[text]

    def provenance(self) -> dict:
        out = {}
        for name, p in self.optimizers.items():
            if name.startswith("\0"):
                continue
            out[f"optimizer {name}"] = {"reference": p.ref.text, **provenance(p.ref, self.files),
                                        **({"entry_point": p.entry_point} if p.entry_point else {}),
                                        **({"fixed": p.fixed} if p.fixed else {})}
        for text in self.factories:
            out[f"model {text}"] = {"reference": text, **provenance(parse_ref(text), self.files)}
        for key in self.model_checks:
            text = json.loads(key)[0]["factory"]
            if text not in self.factories:
                out[f"model {text}"] = {"reference": text, **provenance(parse_ref(text), self.files)}
        for label, d in self.datasets.items():
            out[f"dataset {label}"] = d
        return out


def remote_describe(name: str, where: str, files: SweepFiles, named: dict) -> dict:
    """What the driver needs to know of an optimizer, found in a worker (everything but the object)."""
    p = use(files, named).optimizer(name, where)
    return {"name": p.name, "ref": p.ref.text, "fixed": p.fixed, "keywords": p.keywords, "open_keywords":
            p.open_keywords, "needs_closure": p.needs_closure, "has_modes": p.has_modes, "entry_point": p.entry_point,
            "is_elementwise": p.elementwise}


def construct_error(plugin: OptimizerPlugin, keywords: dict, lr: float, where: str) -> str | None:
    """Construct the optimizer once on a tiny parameter with these keywords: None when it works,
    else the one-line refusal."""
    import torch

    try:
        opt = plugin.construct([torch.nn.Parameter(torch.zeros(2, 2))], lr, keywords)
    except Exception as e:  # noqa: BLE001 - the user's constructor refused: say it in one line
        return (f"{where}: constructing {plugin.ref.text}(lr={lr:g}"
                + "".join(f", {k}={v!r}" for k, v in {**plugin.fixed, **keywords}.items())
                + f") raised {type(e).__name__}: {_line(e)}; allowed: arguments it accepts")
    if not isinstance(opt, torch.optim.Optimizer):
        return (f"{where}: {plugin.ref.text}(params, lr, ...) returned {type(opt).__name__}, not a "
                "torch.optim.Optimizer; allowed: an Optimizer subclass or a function returning one")
    return None


def remote_constructions(items, files: SweepFiles, named: dict) -> list[str | None]:
    """construct_error for each (name, keywords, lr, where), in a worker process."""
    registry = use(files, named)
    return [construct_error(registry.optimizer(name, where), keywords, lr, where)
            for name, keywords, lr, where in items]


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


def reset(base_dir: str = ".", named: dict[str, dict] | None = None, pool=None) -> PluginRegistry:
    """A fresh registry for a sweep the driver is about to check (its own base folder and names;
    `pool`: a local executor started early, where the user's code is imported and inspected)."""
    global REGISTRY
    REGISTRY = PluginRegistry(SweepFiles(base_dir), dict(named or {}))
    REGISTRY.pool = pool
    from dlbench.data import user

    user.USER_INFOS.clear()  # a sweep's dataset names are its own (two sweeps may mean two files by one name)
    user.USER_SPECS.clear()
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


def missing_modules(modules: list[str]) -> list[str]:
    """The modules of `modules` that cannot be imported here (run on each Dask worker)."""
    import importlib.util

    out = []
    for m in modules:
        try:
            if importlib.util.find_spec(m) is None:
                out.append(m)
        except (ImportError, ValueError):
            out.append(m)
    return out


# --------------------------------------------------------------------------------------------
# Models


def factory_keywords(model: dict) -> dict:
    return {k: v for k, v in model.items() if k not in ("kind", "factory")}


def build_model(model: dict, info):
    """The user's nn.Module for a trial (call under the trial's seed, as for the built-ins)."""
    from dlbench.models import output_size

    fn = REGISTRY.factory(model["factory"])
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in factory_keywords(model).items()}
    return fn(tuple(info.input_shape), output_size(info), **kw)


def describe_factory(value: dict, info, where: str = "model") -> dict:
    """A user's model table checked (the function resolves, takes the keywords, builds an
    nn.Module with the right output): its canonical form. Where the user's code is inspected in a
    worker (REGISTRY.pool), there; the checks' results (why it cannot run fused, its parameter
    count) are kept here."""
    ref = parse_ref(value.get("factory"))
    if ref is not None and ref.is_file:
        REGISTRY.files.add(ref.path, f"{where}.factory")
    if REGISTRY.pool is not None and REGISTRY.pool.pool is not None:
        out, key, reason, pooling, n = REGISTRY._remote(remote_factory, value, info, where)
    else:
        out, key, reason, pooling, n = _describe_factory(value, info, where)
    REGISTRY.model_checks[key] = reason
    REGISTRY.pooling[key] = pooling
    _PARAMETERS[key] = n
    if ref is not None and not ref.is_file:
        REGISTRY.factories.setdefault(out["factory"], None)  # for the modules workers must have, and provenance
    return out


def remote_factory(value: dict, info, where: str, files: SweepFiles, named: dict):
    use(files, named)
    return _describe_factory(value, info, where)


def _describe_factory(value: dict, info, where: str):
    import inspect

    value = dict(value)
    if value.pop("kind", "factory") != "factory":
        raise UserError(f"{where}: kind and factory together; allowed: one of the two")
    text = value.pop("factory")
    if info.task == "objective":
        raise UserError(f"{where}.factory does not fit dataset {info.name!r} (its problem defines the model); "
                        "allowed: kind = \"problem\"")
    fn = REGISTRY.factory(text, f"{where}.factory")
    try:
        params = list(inspect.signature(fn).parameters.values())
        open_kw = any(p.kind is p.VAR_KEYWORD for p in params)
        names = [p.name for p in params[2:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    except (TypeError, ValueError):
        open_kw, names = True, []
    for k in value:
        if not open_kw and k not in names:
            raise UserError(f"{where}: {text} takes no keyword {k!r}{did_you_mean(k, names)}; allowed: "
                            f"{', '.join(names) or 'none besides input_shape and n_outputs'}")
    out = {"kind": "factory", "factory": text, **{k: value[k] for k in sorted(value)}}
    check_model(out, info, where)
    key = _model_key(out, info)
    return out, key, REGISTRY.model_checks[key], REGISTRY.pooling[key], parameter_count(out, info)


def _model_key(model: dict, info) -> str:
    from dlbench.models import output_size

    return json.dumps([model, list(info.input_shape), output_size(info)], sort_keys=True)


def check_model(model: dict, info, where: str = "model") -> None:
    """Build the user's model once and run it on two samples: an nn.Module, and an output the
    loss can take ([2, n_outputs]). Also decides, once, whether the fused engine can train it."""
    import torch

    from dlbench.models import output_size

    key = _model_key(model, info)
    if key in REGISTRY.model_checks:
        return
    torch.manual_seed(0)
    try:
        module = build_model(model, info)
    except Exception as e:  # noqa: BLE001 - the user's factory refused: one line
        raise UserError(f"{where}: {model['factory']}({_call_text(info, model)}) raised {type(e).__name__}: "
                        f"{_line(e)}; allowed: a function (input_shape, n_outputs, **keywords) returning an "
                        "nn.Module") from None
    if not isinstance(module, torch.nn.Module):
        raise UserError(f"{where}: {model['factory']} returned {type(module).__name__}, not an nn.Module; allowed: "
                        "a function returning an nn.Module")
    if not any(p.requires_grad for p in module.parameters()):
        raise UserError(f"{where}: the model {model['factory']} builds has no trainable parameter; allowed: a module "
                        "with parameters")
    want = (2, output_size(info))
    try:
        with torch.no_grad():
            out = module.eval()(torch.zeros(2, *info.input_shape))
    except Exception as e:  # noqa: BLE001
        raise UserError(f"{where}: {model['factory']}'s forward on a batch of shape {[2, *info.input_shape]} raised "
                        f"{type(e).__name__}: {_line(e)}; allowed: a module that takes inputs of shape "
                        f"[batch, {', '.join(map(str, info.input_shape))}]") from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != want:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise UserError(f"{where}: {model['factory']} outputs {shape} for a batch of 2, not {want}; allowed: one "
                        f"output per sample of size n_outputs = {want[1]} ({info.task})")
    REGISTRY.model_checks[key] = fused_reason(model, info)
    REGISTRY.pooling[key] = any(isinstance(m, (torch.nn.MaxPool1d, torch.nn.MaxPool2d, torch.nn.MaxPool3d))
                                for m in module.modules())


def _call_text(info, model) -> str:
    from dlbench.models import output_size

    kw = "".join(f", {k}={v!r}" for k, v in factory_keywords(model).items())
    return f"{tuple(info.input_shape)}, {output_size(info)}{kw}"


def fused_reason(model: dict, info) -> str | None:
    """Why the fused engine (torch.func: stack_module_state, functional_call, vmap) cannot train
    this model, or None when it can. Two copies are built and run stacked on a tiny batch in
    training mode, forward and backward: a module that updates buffers in place while training
    (BatchNorm's running statistics) or draws random numbers (dropout, which the reference engine
    draws per model in another order) cannot be stacked exactly."""
    import copy

    import torch
    from torch.func import functional_call, vmap

    torch.manual_seed(0)
    copies = [build_model(model, info) for _ in range(2)]
    before = {n: b.clone() for n, b in copies[0].named_buffers()}
    copies[0].train()(torch.randn(3, *info.input_shape))
    if any(not torch.equal(before[n], b) for n, b in copies[0].named_buffers()):
        return "it updates buffers in place while training (BatchNorm's running statistics, say)"
    base = copy.deepcopy(copies[1]).to("meta").train()
    params = {n: torch.stack([dict(c.named_parameters())[n].detach() for c in copies]).requires_grad_()
              for n, _ in copies[1].named_parameters()}
    buffers = {n: torch.stack([dict(c.named_buffers())[n] for c in copies]) for n, _ in copies[1].named_buffers()}
    try:
        out = vmap(lambda p, b, x: functional_call(base, (p, b), (x,)))(params, buffers,
                                                                        torch.randn(2, 3, *info.input_shape))
        out.sum().backward()
    except Exception as e:  # noqa: BLE001 - whatever vmap cannot batch
        text = _line(e)
        if "random" in text.lower():
            return "it draws random numbers while training (dropout, say), which the reference engine draws per model"
        return f"torch.func cannot batch it ({type(e).__name__}: {text[:120]})"
    return None


def _checked(model: dict, info) -> str:
    """The key of a user's model whose check (check_model) has run in this process."""
    key = _model_key(model, info)
    if key not in REGISTRY.model_checks:
        check_model(model, info)
    return key


def model_fused_reason(model: dict, info) -> str | None:
    return REGISTRY.model_checks[_checked(model, info)]


def model_max_pools(model: dict, info) -> bool:
    return REGISTRY.pooling[_checked(model, info)]


_PARAMETERS: dict[str, int] = {}


def parameter_count(model: dict, info) -> int:
    """How many parameters the model has for this dataset (built once per process)."""
    key = _model_key(model, info)
    if key not in _PARAMETERS:
        import torch

        from dlbench import models

        torch.manual_seed(0)
        _PARAMETERS[key] = sum(p.numel() for p in models.build(model, info).parameters())
    return _PARAMETERS[key]
