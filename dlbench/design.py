"""Sweep design beyond one cartesian grid: ranges, random and quasi-random search, and the checks
of the tune-then-confirm protocol. Pure Python and numpy (scipy.stats.qmc for Sobol points);
spec.py calls these while it validates and expands a spec. What stage 2 confirms is chosen from
the stored stage-1 results by dlbench.protocol.

Ranges (anywhere a list of values is allowed, for numeric keys):

    lr = { log = [1e-4, 1e-1], num = 16 }     geometric, both endpoints included
    batch_size = { lin = [16, 256], num = 5 }  linear
    --lr log:1e-4:1e-1:16   --batch-size lin:16:256:5   (on the command line)

Integer keys (batch_size, epochs, seed) are rounded and deduplicated, with one note saying so.
Values are kept to 10 significant digits, so that a trial's id (a hash of its values) does not
depend on the last bit of a platform's pow or exp.

Search (`[search] kind = "random" | "sobol", budget = N, seed = S`): each sub-grid is a search
space whose ranges are written without `num` (continuous) and whose lists are categorical; it
gets `budget` points, each crossed with the top-level axes (the seeds). Sobol points are
scipy.stats.qmc.Sobol(d, scramble=True, seed=S); random ones numpy's default_rng(S). The
points are stored in spec.toml (`search.points`), so a resume or a rerun elsewhere trains
exactly the same trials.

Protocol (`[protocol] select = "best_val_acc", per = ["optimizer"], confirm_seeds = 10`):
stage 1 (tune) is the sweep as declared; stage 2 (confirm) reruns the configuration with the
best mean `select` of each `per` group (always within a dataset) on `confirm_seeds` seeds that
stage 1 never used: the next integers after its largest seed.
"""

from __future__ import annotations

import math
import re
from typing import Any

from dlbench.errors import UserError, check_keys, did_you_mean
from dlbench.schema import higher_is_better, is_test_metric

INTEGER_KEYS = ("batch_size", "epochs", "seed")
RANGE_KEYS = ("lr", "batch_size", "epochs", "seed", "validation", "momentum", "dampening", "weight_decay", "eps",
              "alpha", "lr_decay", "initial_accumulator_value")
SEARCH_KINDS = ("random", "sobol", "halving", "optuna")
SAMPLED_KINDS = ("random", "sobol")  # searches whose points are drawn up front from the ranges
OPTUNA_SAMPLERS = ("tpe", "cmaes", "gp", "qmc", "random")
SIGNIFICANT = 10


def is_range(value: Any) -> bool:
    """A range table: {log = [a, b]} or {lin = [a, b]}, with or without num."""
    return isinstance(value, dict) and bool(value) and ("log" in value or "lin" in value)


def parse_flag_range(text: str) -> dict | None:
    """'log:1e-4:1e-1:16' -> {log = [1e-4, 0.1], num = 16}; 'lin:16:256' (no num: for a search);
    None when the text is not a range."""
    m = re.fullmatch(r"(log|lin):([^:]+):([^:]+)(?::([^:]+))?", text.strip())
    if not m:
        return None
    kind, a, b, num = m.groups()
    try:
        out: dict[str, Any] = {kind: [float(a), float(b)]}
        if num is not None:
            out["num"] = int(num)
    except ValueError:
        raise UserError(f"range {text!r} is not allowed; allowed: log:A:B:NUM or lin:A:B:NUM with numbers, "
                        "e.g. log:1e-4:1e-1:16") from None
    return out


def check_range(key: str, value: dict, where: str, continuous_ok: bool) -> dict:
    """A validated range table; `num` may be left out only where a search samples it."""
    if key not in RANGE_KEYS:
        raise UserError(f"{where} = {_show(value)} is a range, which {key} cannot take; allowed: a range for "
                        f"{', '.join(RANGE_KEYS)}, or a list of values")
    kinds = [k for k in ("log", "lin") if k in value]
    extra = [k for k in value if k not in ("log", "lin", "num", "extend")]
    if len(kinds) != 1 or extra:
        raise UserError(f"{where} = {_show(value)} is not allowed; allowed: {{ log = [a, b], num = n }} or "
                        "{ lin = [a, b], num = n } (and extend = K)")
    kind = kinds[0]
    bounds = value[kind]
    if (not isinstance(bounds, list) or len(bounds) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in bounds)):
        raise UserError(f"{where}.{kind} = {bounds!r} is not allowed; allowed: two finite numbers [a, b]")
    a, b = float(bounds[0]), float(bounds[1])
    if kind == "log" and (a <= 0 or b <= 0):
        raise UserError(f"{where} = {_show(value)} has a bound <= 0; allowed: a log range with 0 < a <= b")
    if a > b:
        raise UserError(f"{where} = {_show(value)} has a > b; allowed: a range with a <= b")
    out = {kind: [bounds[0], bounds[1]]}
    if "num" in value:
        num = value["num"]
        if isinstance(num, bool) or not isinstance(num, int) or num < 1:
            raise UserError(f"{where}.num = {num!r} is not allowed; allowed: a whole number >= 1")
        out["num"] = num
    elif not continuous_ok:
        raise UserError(f"{where} = {_show(value)} has no num; allowed: num = N (N values), or a [search] table "
                        "that samples the range")
    if "extend" in value:
        k = value["extend"]
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise UserError(f"{where}.extend = {k!r} is not allowed; allowed: a whole number >= 1 (points the range "
                            "may grow by beyond each edge)")
        if out.get("num", 0) < 2 or continuous_ok:
            raise UserError(f"{where} = {_show(value)}: extend grows a grid's range step by step; allowed: extend with "
                            "num >= 2, in a grid (not a [search])")
        out["extend"] = k
    return out


def step_beyond(key: str, spec: dict, edge: float, up: bool) -> float:
    """The next value of a range beyond `edge` on the range's own step: × (b/a)^(1/(num-1)) for a
    log range, + (b-a)/(num-1) for a lin one (rounded as the range's values are)."""
    kind = "log" if "log" in spec else "lin"
    a, b = (float(v) for v in spec[kind])
    n = spec["num"]
    if kind == "log":
        ratio = (b / a) ** (1 / (n - 1)) if b > a else 10.0
        raw = edge * ratio if up else edge / ratio
    else:
        step = (b - a) / (n - 1) if b > a else 1.0
        raw = edge + step if up else edge - step
    if key in INTEGER_KEYS:
        v = int(round(raw))
        return v if v != edge else int(edge) + (1 if up else -1)
    return _round(raw)


def resolve(key: str, value: dict, where: str, continuous_ok: bool, notes: list[str]) -> tuple[dict, Any]:
    """(the checked range table, what it stands for): its values when it has num (a note added
    when rounding changed them), else the table itself, for a search to sample."""
    spec = check_range(key, value, where, continuous_ok)
    if "num" not in spec:
        return spec, spec
    values, note = range_values(key, spec)
    notes += [note] if note else []
    return spec, values


def range_values(key: str, spec: dict) -> tuple[list, str | None]:
    """The values of a range with num, and a note when integer rounding merged or moved some."""
    kind = "log" if "log" in spec else "lin"
    a, b = (float(v) for v in spec[kind])
    n = spec["num"]
    if n == 1:
        raw = [a]
    else:
        raw = [_at(kind, a, b, i / (n - 1)) for i in range(n)]
        raw[0], raw[-1] = a, b  # both endpoints exactly
    return _finish(key, raw, f"{key} {kind}:{_num(a)}:{_num(b)}:{n}")


def _at(kind: str, a: float, b: float, u: float) -> float:
    """The point at fraction u in [0, 1] of a range."""
    if kind == "log":
        return math.exp(math.log(a) + u * (math.log(b) - math.log(a)))
    return a + u * (b - a)


def _finish(key: str, raw: list[float], label: str) -> tuple[list, str | None]:
    if key in INTEGER_KEYS:
        values = list(dict.fromkeys(int(round(v)) for v in raw))
        moved = [v for v in raw if v != int(round(v))]
        if len(values) < len(raw) or moved:
            merged = f", {len(raw) - len(values)} duplicate(s) dropped" if len(values) < len(raw) else ""
            return values, f"{label}: {key} is a whole number, so the values are rounded to " \
                           f"{', '.join(map(str, values))}{merged}"
        return values, None
    return list(dict.fromkeys(_round(v) for v in raw)), None


def _round(v: float) -> float:
    return float(f"{v:.{SIGNIFICANT}g}")


def _num(v: float) -> str:
    return f"{v:g}"


def _show(value) -> str:
    return "{ " + ", ".join(f"{k} = {v!r}" for k, v in value.items()) + " }"


# --------------------------------------------------------------------------------------------
# Search


def check_search(search: Any) -> dict | None:
    """[search] checked, by kind: sobol and random draw `budget` points per sub-grid; halving trains
    the grid's configurations by successive halving (`eta`, `min_epochs`, `per`); optuna asks an
    Optuna sampler for `budget` points per sub-grid, `batch` at a time."""
    if search is None:
        return None
    if not isinstance(search, dict):
        raise UserError(f"search = {search!r} is not allowed; allowed: a table [search] with kind and its keys")
    kind = search.get("kind", "sobol")
    if kind not in SEARCH_KINDS:
        raise UserError(f"search.kind = {kind!r} is unknown{did_you_mean(kind, SEARCH_KINDS)}; allowed: "
                        f"{', '.join(SEARCH_KINDS)}")
    if kind == "halving":
        check_keys(search, ("kind", "eta", "min_epochs", "per"), "search.")
        out = {"kind": kind,
               "eta": _whole(search.get("eta", 3), "search.eta", 2, "(the 1/eta best go on at each rung)"),
               "min_epochs": _whole(search.get("min_epochs", 1), "search.min_epochs", 1, "(the first rung)")}
        if "per" in search:
            per = [search["per"]] if isinstance(search["per"], str) else search["per"]
            if not isinstance(per, list) or not all(isinstance(p, str) for p in per):
                raise UserError(f"search.per = {search['per']!r} is not allowed; allowed: a list of config keys, e.g. "
                                "[\"optimizer\"]")
            out["per"] = per
        return out
    keys = ("kind", "budget", "seed", "points") if kind in SAMPLED_KINDS else (
        "kind", "sampler", "budget", "batch", "seed")
    check_keys(search, keys, "search.")
    budget = search.get("budget")
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise UserError(f"search.budget = {budget!r} is not allowed; allowed: a whole number >= 1 (points per "
                        "sub-grid)")
    seed = search.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UserError(f"search.seed = {seed!r} is not allowed; allowed: a whole number >= 0")
    out = {"kind": kind, "budget": budget, "seed": seed}
    if kind == "optuna":
        sampler = search.get("sampler", "tpe")
        if sampler not in OPTUNA_SAMPLERS:
            raise UserError(f"search.sampler = {sampler!r} is unknown{did_you_mean(str(sampler), OPTUNA_SAMPLERS)}; "
                            f"allowed: {', '.join(OPTUNA_SAMPLERS)}")
        out["sampler"] = sampler
        require_optuna(sampler)
        if "batch" in search:
            out["batch"] = _whole(search["batch"], "search.batch", 1, "(points asked and trained together)")
        return out
    if "points" in search:
        points = search["points"]
        if not isinstance(points, list) or not all(isinstance(p, dict) for p in points):
            raise UserError("search.points is not allowed; allowed: the list of tables that dlbench wrote into "
                            "spec.toml (or leave it out to sample)")
        out["points"] = points
    return out


def require_optuna(sampler: str) -> None:
    """Optuna (and cmaes for its CMA-ES sampler) importable, else one line saying how to get them."""
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise UserError("search.kind = 'optuna' needs the optuna package; allowed: pip install 'dlbench[optuna]', "
                        "or another search kind (sobol, random, halving)") from None
    if sampler == "cmaes":
        try:
            import cmaes  # noqa: F401
        except ImportError:
            raise UserError("search.sampler = 'cmaes' needs the cmaes package; allowed: pip install "
                            "'dlbench[optuna]', or another sampler") from None


def probe(space: dict[str, Any]) -> dict[str, Any]:
    """A point of a sub-grid's space that checks its trials can be made (the low end of each range,
    the first value of each list): the spec is checked before anything is asked."""
    out = {}
    for k, v in space.items():
        if is_range(v):
            kind = "log" if "log" in v else "lin"
            out[k] = int(v[kind][0]) if k in INTEGER_KEYS else float(v[kind][0])
        else:
            out[k] = v[0] if isinstance(v, list) else v
    return out


def _whole(value: Any, where: str, low: int, why: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UserError(f"{where} = {value!r} is not allowed; allowed: a whole number >= {low} {why}")
    return value


def sample(space: dict[str, Any], search: dict, where: str) -> tuple[list[dict], list[str]]:
    """`budget` points of one sub-grid's search space: ranges without num are continuous, lists
    categorical, single values fixed. Returns (points, notes)."""
    import numpy as np

    axes = [k for k, v in space.items() if is_range(v) or (isinstance(v, list) and len(v) > 1)]
    if not axes:
        raise UserError(f"[search] over {where} has no axis to sample (every value there is fixed); allowed: a range "
                        "like lr = { log = [1e-4, 1e-1] } or a list of several values")
    n = search["budget"]
    if search["kind"] == "sobol":
        import warnings

        from scipy.stats import qmc

        with warnings.catch_warnings():  # budgets that are not powers of 2: noted in the dry run instead
            warnings.simplefilter("ignore", UserWarning)
            unit = qmc.Sobol(d=len(axes), scramble=True, seed=search["seed"]).random(n)
    else:
        unit = np.random.default_rng(search["seed"]).random((n, len(axes)))
    points = []
    for row in unit:
        point = {k: v for k, v in space.items() if k not in axes}
        for k, u in zip(axes, row, strict=True):
            point[k] = _sample_one(k, space[k], float(u))
        points.append(point)
    unique = list({repr(sorted(p.items(), key=lambda kv: kv[0])): p for p in points}.values())
    notes = []
    if len(unique) < len(points):
        notes.append(f"{where}: {len(points) - len(unique)} of {len(points)} sampled points repeat another after "
                     "rounding whole-number keys; each is trained once")
    return unique, notes


def _sample_one(key: str, value: Any, u: float):
    """The point at u in [0, 1) of a list (categorical; a range with num comes resolved to its
    list) or of a continuous range."""
    if isinstance(value, list):
        return value[min(int(u * len(value)), len(value) - 1)]
    kind = "log" if "log" in value else "lin"
    a, b = (float(v) for v in value[kind])
    v = _at(kind, a, b, u)
    return int(round(v)) if key in INTEGER_KEYS else _round(v)


# --------------------------------------------------------------------------------------------
# Protocol: tune, then confirm on fresh seeds


def check_protocol(protocol: Any, select_columns: tuple[str, ...], config_keys: tuple[str, ...]) -> dict | None:
    if protocol is None:
        return None
    if not isinstance(protocol, dict):
        raise UserError(f"protocol = {protocol!r} is not allowed; allowed: a table [protocol] with select, per and "
                        "confirm_seeds")
    check_keys(protocol, ("select", "direction", "per", "confirm_seeds"), "protocol.")
    select = protocol.get("select", "best_val_acc")
    if isinstance(select, str) and is_test_metric(select):
        raise UserError(f"protocol.select = {select!r} is a test metric, and test numbers never choose; allowed: "
                        f"{', '.join(select_columns)}")
    if select not in select_columns:
        raise UserError(f"protocol.select = {select!r} is not a summary column{did_you_mean(select, select_columns)}; "
                        f"allowed: {', '.join(select_columns)}")
    direction = protocol.get("direction")
    if direction is None:
        higher = higher_is_better(select)
        if higher is None:
            raise UserError(f"protocol.select = {select!r} does not say which way is better; allowed: direction = "
                            "\"max\" or \"min\"")
        direction = "max" if higher else "min"
    elif direction not in ("max", "min"):
        raise UserError(f"protocol.direction = {direction!r} is unknown; allowed: max, min")
    per = protocol.get("per", ["optimizer"])
    if isinstance(per, str):
        per = [per]
    if not isinstance(per, list) or not all(isinstance(p, str) for p in per):
        raise UserError(f"protocol.per = {per!r} is not allowed; allowed: a list of config keys, e.g. [\"optimizer\"]")
    for p in per:
        if p not in config_keys:
            raise UserError(f"protocol.per has {p!r}, which is not a config key{did_you_mean(p, config_keys)}; "
                            f"allowed: {', '.join(config_keys)}")
    confirm = protocol.get("confirm_seeds", 10)
    if isinstance(confirm, bool) or not isinstance(confirm, int) or confirm < 1:
        raise UserError(f"protocol.confirm_seeds = {confirm!r} is not allowed; allowed: a whole number >= 1")
    return {"select": select, "direction": direction, "per": per, "confirm_seeds": confirm}
