"""Ranges that reach the optimum: `lr = { log = [1e-4, 1e-2], num = 5, extend = 3 }`.

When the tuning stage chooses (by the one selection rule, stats.choose, per dataset and optimizer,
or per the protocol's groups) a value at an edge of the values a range of `extend = K` gave, the
sweep adds the next value beyond that edge on the range's own step, trains it (with every other
value of the sub-grid, and the seeds), and chooses again; up to K values beyond each edge, before
any confirm stage. The added points are written into spec.toml before they train, so a sweep
killed mid-extension resumes with the same points and trains each trial once."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from dlbench import design
from dlbench.errors import UserError
from dlbench.trials import canonical_trial

POINT_KEYS = ("grid", "key", "dataset", "optimizer", "value")  # an added point, as spec.toml's [extensions] holds it


def trials_for(sweep, point: dict) -> list[dict]:
    """The trials an extension point adds to a sweep (spec.Sweep): its sub-grid's combinations
    (every sub-grid's for a top-level range) with the point's value for its key, crossed with the
    top-level axes, those of the point's dataset and optimizer (canonical; a value a trial cannot
    take raises UserError)."""
    exp = sweep.expansion
    grids = range(1, len(exp["combos"]) + 1) if point["grid"] == 0 else [point["grid"]]
    top_axes = dict(sweep.top_axes)
    if point["grid"] == 0:
        top_axes[point["key"]] = [point["value"]]
    out, seen = [], set()
    for g in grids:
        for combo in exp["combos"][g - 1]:
            combo = {**combo, point["key"]: point["value"]} if point["grid"] else combo
            for top in itertools.product(*(top_axes[k] for k in exp["top_order"])):
                values = {**exp["base"], **dict(zip(exp["top_order"], top, strict=True)), **combo}
                t = canonical_trial(values)
                if t["dataset"] == point["dataset"] and t["optimizer"] == point["optimizer"] and t["id"] not in seen:
                    seen.add(t["id"])
                    out.append(t)
    return out


def check_points(table: Any, sweep) -> list[dict]:
    """[extensions] as dlbench writes it into spec.toml: points, each beyond an edge of a range
    with `extend` of this sweep, no more per side than its extend allows."""
    points = table.get("points") if isinstance(table, dict) else None
    if not isinstance(points, list) or not all(isinstance(p, dict) and set(p) == set(POINT_KEYS) for p in points):
        raise UserError("extensions is not allowed as given; allowed: the [extensions] points dlbench writes into "
                        "spec.toml (tables with " + ", ".join(POINT_KEYS) + "), or none")
    ranges = {(g, k): r for g, k, r in sweep.extendable()}
    count: dict[tuple, int] = {}
    for p in points:
        r = ranges.get((p["grid"], p["key"]))
        if r is None:
            raise UserError(f"extensions.points has {p['key']} in sub-grid {p['grid']}, which has no range with "
                            "extend; allowed: points of this sweep's extendable ranges")
        side = (p["grid"], p["key"], p["dataset"], p["optimizer"], p["value"] > 0)
        count[side] = count.get(side, 0) + 1
        if count[side] > 2 * r["extend"]:
            raise UserError(f"extensions.points holds more points for {p['key']} ({p['dataset']}, {p['optimizer']}) "
                            f"than extend = {r['extend']} allows; allowed: the points dlbench wrote")
    return [dict(p) for p in points]


@dataclass
class Step:
    """What one group's choice says of one extendable range."""

    grid: int
    key: str
    dataset: str
    optimizer: str
    chosen: float
    values: list  # the values of the range this group has tried, in order
    point: dict | None  # the next point beyond the edge, or None
    made: int  # points already added beyond this edge
    limit: int  # extend = K
    why_not: str | None = None  # an edge that cannot grow further: why

    @property
    def edge(self) -> str | None:
        if len(self.values) < 2:
            return None
        return "largest" if self.chosen == self.values[-1] else "smallest" if self.chosen == self.values[0] else None


def steps(sweep, records: dict[str, dict]) -> list[Step]:
    """For every extendable range and every group that tried it: where its choice lies, and the
    next point when that is an edge that may still grow. Groups with a stage-1 trial not stored, or
    failed, are left for later (their choice is not made yet)."""

    from dlbench import stats  # pandas and scipy: only where a sweep extends a range
    from dlbench.store import trial_summary

    per = tuple(sweep.protocol["per"]) if sweep.protocol else ("optimizer",)
    out = []
    for grid, key, spec in sweep.extendable():
        groups: dict[tuple, list[dict]] = {}
        for t in sweep.trials:
            groups.setdefault((t["dataset"], *(_key(t.get(p)) for p in per)), []).append(t)
        for members in groups.values():
            mine = [t for t in members if grid == 0 or sweep.origins.get(t["id"]) == grid]
            if not mine or any(t["id"] not in records or records[t["id"]]["result"]["status"] == "failed"
                               for t in members):
                continue
            rows = stats.rows_of(members, [trial_summary(records[t["id"]]["result"]) for t in members])
            first = members[0]
            sel = stats.rule_of(first, sweep.protocol)
            choice = stats.choose(rows, sel)
            if choice is None or key not in choice.config:
                continue
            chosen = choice.config[key]
            values = sorted({t[key] for t in mine if key in t})
            if chosen not in values:
                continue  # chosen in another sub-grid: not this range's to grow
            s = Step(grid, key, first["dataset"], first["optimizer"], chosen, values, None, 0, spec["extend"])
            if s.edge is not None:
                up = s.edge == "largest"
                a, b = (float(v) for v in spec["log" if "log" in spec else "lin"])
                mine = (grid, key, s.dataset, s.optimizer)
                s.made = sum(1 for p in sweep.extensions if (p["grid"], p["key"], p["dataset"], p["optimizer"]) == mine
                             and (p["value"] > b if up else p["value"] < a))
                if s.made < s.limit:
                    value = design.step_beyond(key, spec, chosen, up)
                    point = {"grid": grid, "key": key, "dataset": s.dataset, "optimizer": s.optimizer, "value": value}
                    try:
                        trials_for(sweep, point)
                        s.point = point
                    except UserError as e:
                        s.why_not = str(e)
            out.append(s)
    return out


def _key(v):
    import json

    return json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else v
