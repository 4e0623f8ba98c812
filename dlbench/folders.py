"""The rules of a results folder: one folder holds one sweep. A flag sweep is named by what it sweeps
(and a hash of its spec), a rerun of the same spec resumes, a spec that only adds trials extends
the folder, anything else is refused naming each changed key; a user's file that changed since
the folder was written is refused too. And reading a folder for the readers: the tables with every
current column, what an older schema did not record filled in from the catalogue's metadata."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from dlbench import catalogue, store
from dlbench.data import known, short_name, split_sizes
from dlbench.errors import UserError
from dlbench.schema import NOT_TRIAL_DEFINING
from dlbench.spec import DEFAULTS, Sweep, optimizer_names, toml_value
from dlbench.usercode import parse_ref


def read(path: str | Path):
    """(trials, history, env) of a results folder, finished or partial, in the current schema's
    columns (store.read_results), with each trial's task and split sizes where an older schema
    did not record them."""
    trials, history, env = store.read_results(path)
    return fill_data_columns(trials), history, env


def stored_spec(path: str | Path) -> dict:
    """The spec a results folder holds (spec.toml as a table; empty when absent or unreadable)."""
    import tomllib

    try:
        return tomllib.loads((Path(path) / "spec.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return {}


def search_kind(spec: dict) -> str:
    """How a sweep's configurations were made: "grid", or its [search] kind (random, sobol)."""
    search = spec.get("search")
    return str(search.get("kind", "sobol")) if isinstance(search, dict) else "grid"


def extended(spec: dict) -> dict[tuple[str, str, str], int]:
    """(dataset, optimizer, key) -> points a range with `extend` grew by, from a stored spec."""
    points = (spec.get("extensions") or {}).get("points") or []
    out: dict[tuple[str, str, str], int] = {}
    for p in points:
        if isinstance(p, dict) and {"dataset", "optimizer", "key"} <= set(p):
            k = (p["dataset"], p["optimizer"], p["key"])
            out[k] = out.get(k, 0) + 1
    return out


def fill_data_columns(trials):
    """task, n_train, n_val and n_test where a record predates them (schema < 3): from the dataset
    catalogue's metadata, which gives the sizes every built-in split has."""
    if not len(trials):
        return trials
    missing = trials["task"].isna() if "task" in trials else None
    if missing is None or missing.any():
        for c in ("task", "n_train", "n_val", "n_test"):
            if c not in trials:
                trials[c] = None if c == "task" else float("nan")
        rows = trials.index if missing is None else trials.index[missing]
        for i in rows:
            info = known(trials.at[i, "dataset"])
            if info is None:
                continue
            n_train, n_val = split_sizes(info, float(trials.at[i, "validation"] or 0.0))
            trials.loc[i, ["task", "n_train", "n_val", "n_test"]] = [info.task, n_train, n_val, info.n_test]
    trials["task"] = trials["task"].astype("string")
    for c in ("n_train", "n_val", "n_test"):
        trials[c] = trials[c].astype(float)
    return trials


# --------------------------------------------------------------------------------------------
# A folder's identity


def auto_name(raw: dict) -> str:
    """A name for a sweep given by flags: what it sweeps, short and readable, and a hash of the
    whole spec, so that the same flags find the same folder and different ones never share one
    (e.g. iris-sgd-adam-3f2a)."""

    def short(v: Any) -> str:
        v = short_name(v)
        ref = parse_ref(v)
        text = ref.attr if ref is not None else Path(str(v)).stem
        return re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_") or "x"

    parts: list[str] = []
    for key in ("dataset", "optimizer"):
        v = raw.get(key, DEFAULTS[key])
        parts += [short(x) for x in (v if isinstance(v, list) else [v])]
    if isinstance(raw.get("grid"), dict | list):
        parts += [short(n) for n in sorted(optimizer_names(raw) - set(parts))]
    head = "-".join(dict.fromkeys(parts))[:48].rstrip("-_.")
    digest = hashlib.sha256(json.dumps({k: v for k, v in raw.items() if k not in NOT_TRIAL_DEFINING},
                                       sort_keys=True, default=str).encode()).hexdigest()[:4]
    return f"{head}-{digest}"


NAMESPACES = ("grid", "search", "protocol", "optimizers")  # tables of a spec whose keys are compared one by one


def spec_diff(old: dict, new: dict) -> list[str]:
    """What differs between two specs as TOML tables, key by key ('epochs: 10 → 5',
    'grid.lr: [0.01, 0.1] → [0.01]'), leaving out what does not change what trials are. A value
    that is a table (a model, a schedule, a range) is compared whole."""

    def flat(d: Any, prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        if isinstance(d, list) and d and all(isinstance(x, dict) for x in d) and prefix == "grid.":
            for i, g in enumerate(d, 1):
                out.update(flat(g, f"grid[{i}]."))
            return out
        for k, v in d.items():
            if not prefix and k in NOT_TRIAL_DEFINING:
                continue
            namespace = not prefix and k in NAMESPACES or prefix == "optimizers."
            out.update(flat(v, f"{prefix}{k}.") if namespace and isinstance(v, dict | list) else {f"{prefix}{k}": v})
        return out

    a, b = flat(old), flat(new)
    return [f"{k}: {_show(a.get(k))} → {_show(b.get(k))}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def _show(v: Any) -> str:
    return "(none)" if v is None else (toml_value(v) if not isinstance(v, str) else v)


def check_same_sweep(path: Path, sweep: Sweep) -> tuple[int, int] | None:
    """A results folder holds one sweep. (trials stored, new trials) when `path` holds this sweep
    or one that this sweep only adds trials to (new grid values, sub-grids, seeds, optimizers);
    None when there is no sweep there yet. Anything else is refused in one line naming each
    changed key, so that two sweeps are never compared as one."""
    import tomllib

    spec_file = path / "spec.toml"
    stages = store.stored_stages(path) if path.is_dir() else {}
    if not stages:
        return None
    new = {t["id"] for t in sweep.trials}
    tuned = {i for i, stage in stages.items() if stage != "confirm"}
    confirmed = len(stages) - len(tuned)
    try:
        old_raw = tomllib.loads(spec_file.read_text()) if spec_file.exists() else {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        old_raw = {}
    new_raw = tomllib.loads(sweep.to_toml())
    protocol_changed = confirmed and old_raw.get("protocol") != new_raw.get("protocol")
    missing = tuned - new
    if not missing and not protocol_changed:
        return len(tuned & new), len(new - tuned)
    diff = spec_diff(old_raw, new_raw) if old_raw else []
    changes = [d for d in diff if not d.startswith("protocol.")] + [d for d in diff if d.startswith("protocol.")]
    what = "; ".join(changes[:6]) + (f"; and {len(changes) - 6} more" if len(changes) > 6 else "") if changes else \
        f"{len(missing)} of its {len(tuned)} trials are not in this sweep"
    raise UserError(f"{path} holds another sweep ({what}); allowed: the same spec, one that only adds trials, "
                    "--fresh (moves the old results aside), or another --name")


def check_user_files(path: Path) -> None:
    """A user's file (an optimizer, a model, a dataset) that changed since this results folder was
    written would mix old and new results under one name: refuse, saying which and the ways out."""
    env_file = path / "env.json"
    if not env_file.exists():
        return
    try:
        before = json.loads(env_file.read_text()).get("plugins", {})
    except ValueError:
        return  # a damaged env.json is the reader's to report; it is rewritten on this run
    now = catalogue.provenance()
    for key, was in before.items():
        sha = (now.get(key) or {}).get("sha256")
        if was.get("sha256") and sha and sha != was["sha256"]:
            raise UserError(f"{key}: {was.get('path')} changed since {path} was written (SHA-256 "
                            f"{was['sha256'][:12]}… then, {sha[:12]}… now): its results would mix with the old ones; "
                            "allowed: restore the file, --fresh (moves the old results aside), or another --name")
