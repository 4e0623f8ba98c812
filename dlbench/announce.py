"""What `dlbench sweep` says as it starts and runs, before its summary: the grid it trains (fixed
keys, each sub-grid's axes with their ranges resolved, a search's points, the stages of a
protocol, expansion notes), the plan (engines, units, why some trials run on the reference
engine), and that it extends an existing folder."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dlbench import design
from dlbench.schema import DATA_KNOBS, model_label, schedule_label
from dlbench.spec import Sweep


def print_grid(sweep: Sweep, console: Console, dry_run: bool = False) -> None:
    """What the sweep trains: fixed keys, axes (each sub-grid's, with its ranges resolved), the
    search's points (all of them on a dry run), the stages of a protocol, and expansion notes."""
    n = len(sweep.trials)
    if not sweep.one_grid:
        parts = [" × ".join(f"{k} {len(v) if isinstance(v, list) else 'range'}" for k, v in g.values.items())
                 or "defaults" for g in sweep.grids]
        factors = " + ".join(f"({p})" for p in parts) if len(parts) > 1 else parts[0]
        if sweep.sampled:
            factors = (f"an Optuna {sweep.search['sampler']} search" if sweep.search["kind"] == "optuna"
                       else f"{sweep.search['kind']} search") + f", {sweep.search['budget']} points per sub-grid"
        factors += "".join(f" × {k} {len(v)}" for k, v in sweep.top_axes.items())
    else:
        factors = " × ".join(f"{k} {len(v)}" for k, v in sweep.axes.items()) or "no grid axes"
    if sweep.extensions:
        grown = sum(1 for t in sweep.trials if t["id"] in _extension_ids(sweep))
        keys = ", ".join(sorted({p["key"] for p in sweep.extensions}))
        factors += f" + {grown} from {len(sweep.extensions)} point{'s' * (len(sweep.extensions) != 1)} beyond the " \
                   f"edges of {keys}"
    if sweep.search and sweep.search["kind"] == "optuna":
        console.print(f"[bold]{sweep.name}[/]: {escape(factors)}, asked as the sweep goes"
                      + (f" ({n} trials asked so far)" if n else ""))
    else:
        console.print(f"[bold]{sweep.name}[/]: {n} trial{'s' * (n != 1)} ({escape(factors)})")
    table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
    table.add_column("key")
    table.add_column("values")
    if sweep.trials:
        first = sweep.trials[0]
    else:  # nothing asked yet: what the first point's trials will be
        first = sweep.point_trials(1, design.probe(sweep.space(1)), {})[0]
    shown = {"model": model_label(first["model"]), "schedule": schedule_label(first["schedule"]),
             "validation": first.get("validation", 0.0)}
    varying = set(sweep.axes) | {k for g in sweep.grids for k in g.values}
    # a step budget says its steps and evaluations (its epochs count evaluation periods); a sequence
    # dataset its knobs; the training keys where a trial sets them
    length = ("max_steps", "eval_every") if "max_steps" in first else ("epochs",)
    for k in ("dataset", *DATA_KNOBS, "validation", "model", "loss", *length, "batch_size", "schedule",
              "clip_grad_norm", "weight_decay_on", "device", "dtype"):
        if k not in varying and (k in first or k in shown):
            table.add_row(k, str(shown.get(k, first.get(k))))
    if sweep.one_grid:
        ranges = {**sweep.top_ranges, **sweep.grids[0].ranges}
        for k, values in sweep.axes.items():
            table.add_row(f"{k} (grid)", _range_text(ranges.get(k), values, k))
    else:
        for k, values in sweep.top_axes.items():
            table.add_row(f"{k} (every sub-grid)", ", ".join(_short(v, k) for v in values))
        for i, g in enumerate(sweep.grids, 1):
            for k, values in g.values.items():
                label = f"grid {i}: {k}" if len(sweep.grids) > 1 else f"{k} (search space)"
                table.add_row(label, _range_text(g.ranges.get(k), values, k))
    console.print(table)
    if sweep.search and sweep.search["kind"] == "halving":
        console.print(halving_plan(sweep), markup=False, highlight=False)
    if sweep.search and "points" in sweep.search:
        pts = sweep.search["points"]
        console.print(f"search: {sweep.search['kind']}, seed {sweep.search['seed']}, {len(pts)} points"
                      + (" (Sobol points balance best when the budget is a power of 2)"
                         if sweep.search["kind"] == "sobol" and sweep.search["budget"] & (sweep.search["budget"] - 1)
                         else ""))
        for i, p in enumerate(pts if dry_run else pts[:4], 1):
            console.print(f"  point {i}: " + " ".join(f"{k}={_short(v, k)}" for k, v in p.items()), markup=False)
        if not dry_run and len(pts) > 4:
            console.print(f"  ... {len(pts) - 4} more (all of them in spec.toml; --dry-run lists them)")
    if sweep.protocol:
        console.print(stage_sizes(sweep))
    for note in sweep.notes:
        console.print(f"[yellow]note:[/] {escape(note)}")


def halving_plan(sweep: Sweep) -> str:
    """'search: successive halving (eta 3) in 2 competitions (dataset, optimizer): 27 → 9 → 3
    configurations at epochs 1, 3, 9; 135 of 243 trial-epochs (1.8× fewer)'."""
    from dlbench import halving
    from dlbench.plan import make_units

    competitions = [u.trials for u in make_units(sweep.trials, sweep.engine, 1) if "halving" in u.trials[0]]
    plans = [halving.schedule(c) for c in competitions]
    shapes = list(dict.fromkeys((tuple(p), tuple(c)) for p, c, _ in plans))
    trained = sum(e for _, _, e in plans)
    full = sum(t["epochs"] for t in sweep.trials)
    s = sweep.search
    per = ", ".join(["dataset", *s["per"]])
    how = "; ".join(f"{' → '.join(map(str, c))} configurations at epochs {', '.join(map(str, p))}" for p, c in shapes)
    return (f"search: successive halving (eta {s['eta']}) in {len(competitions)} competition"
            f"{'s' * (len(competitions) != 1)} ({per}, trained together): {how}; {trained} of {full} trial-epochs "
            f"({full / max(trained, 1):.1f}× fewer)")


def stage_sizes(sweep: Sweep) -> str:
    from dlbench import protocol  # its statistics (pandas, scipy) only when a sweep has one

    pr = sweep.protocol
    if not sweep.trials:  # an Optuna search before its first ask
        return (f"stage 1 (tune): the points the search asks; stage 2 (confirm): the best configuration of each "
                f"({', '.join(['dataset', *pr['per']])}) by {pr['direction']} mean {pr['select']} on "
                f"{pr['confirm_seeds']} fresh seeds")
    seeds = protocol.confirm_seeds({t["seed"] for t in sweep.trials}, pr["confirm_seeds"])
    per = ", ".join(["dataset", *pr["per"]])
    n = protocol.confirm_size(sweep.trials, pr)
    return (f"stage 1 (tune): {len(sweep.trials)} trials; stage 2 (confirm): the best configuration of each "
            f"({per}) by {pr['direction']} mean {pr['select']}: {n // pr['confirm_seeds']} × {pr['confirm_seeds']} "
            f"fresh seeds ({seeds[0]}-{seeds[-1]}) = {n} trials")


def _range_text(spec: dict | None, values, key: str) -> str:
    if spec is None:
        return ", ".join(_short(v, key) for v in values)
    kind = "log" if "log" in spec else "lin"
    a, b = spec[kind]
    head = f"{kind} {a:g}..{b:g}"
    if "num" not in spec:
        return f"{head} (continuous)"
    grows = f"; extends by up to {spec['extend']} beyond an edge the tuning stage chooses" if "extend" in spec else ""
    return f"{head} ({spec['num']}): " + ", ".join(_short(v, key) for v in values) + grows


def _extension_ids(sweep: Sweep) -> set[str]:
    """The trials that points beyond ranges' edges added (after those the spec declares)."""
    return {t["id"] for t in sweep.trials[sweep.expansion.get("declared", len(sweep.trials)):]}


def _short(v, key: str) -> str:
    """A value as the grid printout shows it: a model table by its results label, numbers short."""
    if isinstance(v, dict) and key == "model":
        try:
            return model_label(v)
        except KeyError:  # a table as written, some keys left to their defaults
            return str(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def print_plan(units, console: Console, workers: int, executor: str = "local") -> None:
    counts = Counter(u.engine for u in units)
    trials = Counter()
    for u in units:
        trials[u.engine] += len(u.trials)
    parts = [f"{trials[e]} trial{'s' * (trials[e] != 1)} on the {e} engine in {counts[e]} "
             f"unit{'s' * (counts[e] != 1)}" for e in ("fused", "reference") if counts[e]]
    where = (f"SLURM array tasks, {workers} at once" if executor == "slurm"
             else f"{workers} worker{'s' * (workers != 1)}")
    console.print(f"plan: {'; '.join(parts) or 'nothing to run'}; {where}")
    reasons = Counter(u.reason for u in units if u.reason for _ in u.trials)
    for reason, k in reasons.items():  # once per sweep: why trials do not run fused
        console.print(f"[yellow]note:[/] {k} trial{'s' * (k != 1)} on the reference engine, {escape(reason)}")




def say_extends(extends: tuple[int, int] | None, path: Path, console) -> None:
    if extends is not None and extends[0] and extends[1]:
        console.print(f"extends {path}: {extends[0]} done, {extends[1]} new", markup=False, highlight=False)
