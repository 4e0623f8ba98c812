"""Loading the code users bring: references, the files that travel with the work, introspection
and provenance. It knows nothing of optimizers, models or datasets: the catalogue's kinds use it.

References, as written in a spec or a flag:

    MODULE:ATTR        imported (`lion_pytorch:Lion`, `torch.optim:NAdam`, `mypkg.models:make`)
    PATH.py:ATTR       loaded from the file (relative to the spec file, or to the working folder
                       for flags): `./my_opt.py:MyOpt`

Every call into the user's code goes through `calling`, which turns what it raises into one line
(UserError, exit 2), SystemExit included: a research script that parses its arguments or exits at
import time is refused by name, not allowed to end dlbench silently. A file's content travels with
the work (`SweepFiles`), so a worker never reads a file that changed since the driver checked it.

The `Session` is the user code of one sweep in one process: its files, the notes checking made,
the tables the catalogue's kinds need in workers (`context`), and an early worker pool where the
code may be inspected instead of in the driver (which then never imports torch for it).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import inspect
import io
import re
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlbench.errors import UserError, did_you_mean

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


def rebase(value: Any, base: Path) -> Any:
    """A flag's file (./my_opt.py:MyOpt, ../data/t.csv), rewritten relative to `base` (the spec
    file's folder, where a spec's files are resolved), so that a flag names the file it names from
    the working folder. Lists element by element; anything else as it is."""
    import os

    if isinstance(value, list):
        return [rebase(v, base) for v in value]
    if not isinstance(value, str):
        return value
    ref = parse_ref(value)
    if ref is not None and ref.is_file and not Path(ref.path).is_absolute():
        return f"{os.path.relpath(Path.cwd() / ref.path, base)}:{ref.attr}"
    if looks_like_path(value) and not Path(value).is_absolute():
        return os.path.relpath(Path.cwd() / value, base)
    return value


FILE_SUFFIXES = (".py", ".csv", ".parquet", ".npz")  # the files users bring: code, tables, arrays


def looks_like_path(value: Any) -> bool:
    """A string that names a file rather than a registered name: a folder in it, a leading '.',
    or the suffix of a file users bring."""
    return isinstance(value, str) and parse_ref(value) is None and (
        "/" in value or "\\" in value or value.startswith(".") or value.endswith(FILE_SUFFIXES))


# --------------------------------------------------------------------------------------------
# Calling the user's code


def line(e: BaseException) -> str:
    """An exception's last line, short."""
    text = str(e).strip().splitlines()
    return (text[-1] if text else type(e).__name__)[:200]


@contextlib.contextmanager
def calling(what: str, allowed: str):
    """Around a call into the user's code: what it raises becomes one line, 'WHAT raised
    ValueError: ...; allowed: ALLOWED'; a SystemExit (sys.exit, argparse) says so; what it prints
    meanwhile is held back and shown after it returns (a refusal stays one line)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield
    except UserError:
        raise
    except SystemExit as e:
        printed = [s for s in (err.getvalue() + out.getvalue()).strip().splitlines() if s.strip()]
        said = f"; it printed {printed[-1].strip()[:160]!r}" if printed else ""
        raise UserError(f"{what} exited (SystemExit {e.code!r}){said}; allowed: code that returns instead of exiting "
                        "(a script's own code under `if __name__ == \"__main__\":`)") from None
    except Exception as e:  # noqa: BLE001 - the user's code refused: one line
        raise UserError(f"{what} raised {type(e).__name__}: {line(e)}; allowed: {allowed}") from None
    sys.stdout.write(out.getvalue())
    sys.stderr.write(err.getvalue())


def keywords_of(fn: Any, skip: int, reserved: tuple[str, ...] = ()) -> tuple[list[str], bool, Any]:
    """(the keywords a callable takes after its first `skip` parameters, whether it takes
    **kwargs, its signature or None): what a spec may pass it. Uninspectable callables take
    anything (they are checked by calling them)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return [], True, None
    params = list(sig.parameters.values())
    open_keywords = any(p.kind is p.VAR_KEYWORD for p in params)
    names = [p.name for p in params[skip:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
             and p.name not in reserved]
    return names, open_keywords, sig


def as_call_keywords(kw: dict) -> dict:
    """A spec's keywords as Python values: TOML lists become tuples (betas = [0.9, 0.99])."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in kw.items()}


# --------------------------------------------------------------------------------------------
# Files that travel with the work


@dataclass
class SweepFile:
    path: str  # absolute
    sha256: str
    content: bytes | None = None  # shipped with the work (always for Python files; data files for Dask and SLURM)


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
    f = files.files.get(written) or files.add(written, "code")
    if f.sha256 not in _MODULES:
        name = f"dlbench_user_{re.sub(r'[^A-Za-z0-9_]', '_', Path(f.path).stem)}_{f.sha256[:10]}"
        module = types.ModuleType(name)
        module.__file__ = f.path
        sys.modules[name] = module  # so that pickling what it defines (classes, functions) works
        try:
            exec(compile(files.read(written), f.path, "exec"), module.__dict__)  # noqa: S102 - the user's own code
        except BaseException:
            del sys.modules[name]
            raise
        _MODULES[f.sha256] = module
    return _MODULES[f.sha256]


def load_object(ref: Ref, files: SweepFiles, what: str) -> Any:
    """The object a reference names. Errors a user can fix are one line: a module that is not
    installed, a file that does not exist, does not run or exits, a missing attribute."""
    if ref.is_file:
        with calling(f"{what} = {ref.text!r}: running {ref.path}", "a Python file that imports cleanly"):
            module = load_file_module(ref.path, files)
    else:
        try:
            with calling(f"{what} = {ref.text!r}: importing {ref.module}", "a module that imports cleanly"):
                module = importlib.import_module(ref.module)
        except UserError:
            missing = _missing_module(ref.module)
            if missing is None:
                raise
            raise UserError(f"{what} = {ref.text!r}: module {missing!r} is not installed here; allowed: an "
                            f"installed module (pip install it) or a file path like ./my_code.py:{ref.attr}") from None
    obj = module
    for part in ref.attr.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(module) if not n.startswith("_")]
            raise UserError(f"{what} = {ref.text!r}: {ref.module or ref.path} has no {ref.attr!r}"
                            f"{did_you_mean(ref.attr, names)}; allowed: a name it defines")
        obj = getattr(obj, part)
    return obj


def _missing_module(module: str) -> str | None:
    """The first module on the way to `module` that is not installed, or None when all are."""
    import importlib.util

    parts = module.split(".")
    for i in range(1, len(parts) + 1):
        name = ".".join(parts[:i])
        try:
            if importlib.util.find_spec(name) is None:
                return name
        except (ImportError, ValueError):
            return name
    return None


def missing_modules(modules: list[str]) -> list[str]:
    """The modules of `modules` that cannot be imported here (run on each Dask worker)."""
    return [m for m in modules if _missing_module(m) is not None]


@functools.cache
def _distributions() -> dict[str, list[str]]:
    """Top-level module -> the distributions that provide it (scanning them takes a quarter second)."""
    from importlib.metadata import packages_distributions

    return packages_distributions()


def _named_like(top: str) -> list[str]:
    """[the distribution] when one named like the module provides it (torch, numpy, lion_pytorch:
    found at once, where the scan of every distribution takes a quarter second); else []."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution(top)
    except (PackageNotFoundError, ValueError):
        return []
    provides = (dist.read_text("top_level.txt") or "").split()
    if not provides:  # no top_level.txt (some build backends): the files it installs say
        provides = [str(f).split("/")[0].removesuffix(".py") for f in dist.files or []]
    return [dist.metadata["Name"]] if top in provides else []


def provenance(ref: Ref, files: SweepFiles) -> dict:
    """Where a reference's code comes from: its distribution and version, or its file and SHA-256."""
    if ref.is_file:
        f = files.files.get(ref.path) or files.add(ref.path, "code")
        return {"path": f.path, "sha256": f.sha256}
    from importlib.metadata import version

    top = ref.module.split(".")[0]
    dists = _named_like(top) or _distributions().get(top, [])
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
# The session: one sweep's user code in this process


@dataclass
class Session:
    files: SweepFiles = field(default_factory=SweepFiles)
    # what the catalogue's kinds need to know in a worker too (e.g. the [optimizers.NAME] tables)
    context: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what checking inferred, said once when the sweep starts
    pool: Any = None  # a local executor started early: the user's code is inspected there (see `remote`)
    caches: dict[str, dict] = field(default_factory=dict)  # each kind's cache, emptied with the session

    def cache(self, name: str) -> dict:
        return self.caches.setdefault(name, {})

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    @property
    def inspects_remotely(self) -> bool:
        return self.pool is not None and self.pool.started

    def remote(self, fn, *args):
        """fn(*args) in a worker of the early pool (which then knows this session's files and
        context), else here. fn must be a module-level function."""
        if not self.inspects_remotely:
            return fn(*args)
        from dlbench.timeline import mark

        mark(f"remote {fn.__name__}")
        return self.pool.call(_in_worker, fn, args, self.files, self.context)


SESSION = Session()


def reset(base_dir: str = ".", context: dict | None = None, pool=None) -> Session:
    """A fresh session for a sweep the driver is about to check: its own base folder and context
    (two sweeps may mean two files by one name), and the early pool where code is inspected."""
    global SESSION
    SESSION = Session(SweepFiles(base_dir), dict(context or {}), pool=pool)
    return SESSION


def use(files: SweepFiles | None, context: dict | None = None) -> Session:
    """Make this process's session know a sweep's files and context (a worker calls this with what
    its unit carries)."""
    if files is not None:
        for k, f in files.files.items():
            SESSION.files.files.setdefault(k, f)
        if SESSION.files.base_dir == ".":
            SESSION.files.base_dir = files.base_dir
    for k, v in (context or {}).items():
        if isinstance(v, dict):
            for name, table in v.items():
                SESSION.context.setdefault(k, {}).setdefault(name, table)
        else:
            SESSION.context.setdefault(k, v)
    return SESSION


def _in_worker(fn, args, files: SweepFiles, context: dict):
    use(files, context)
    return fn(*args)
