"""Ranges that reach the optimum: `lr = { log = [1e-4, 1e-2], num = 5, extend = 3 }`.

When the tuning stage chooses (by the one selection rule, stats.choose, per dataset and optimizer,
or per the protocol's groups) a value at an edge of the values a range of `extend = K` gave, the
sweep adds the next value beyond that edge on the range's own step, trains it (with every other
value of the sub-grid, and the seeds), and chooses again; up to K values beyond each edge, before
any confirm stage. The added points are written into spec.toml before they train, so a sweep
killed mid-extension resumes with the same points and trains each trial once."""

from __future__ import annotations

from dataclasses import dataclass

from dlbench import design, stats
from dlbench.errors import UserError
from dlbench.spec import Sweep, extension_trials
from dlbench.store import trial_summary


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


def steps(sweep: Sweep, records: dict[str, dict]) -> list[Step]:
    """For every extendable range and every group that tried it: where its choice lies, and the
    next point when that is an edge that may still grow. Groups with a stage-1 trial not stored, or
    failed, are left for later (their choice is not made yet)."""

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
                        extension_trials(sweep, point)
                        s.point = point
                    except UserError as e:
                        s.why_not = str(e)
            out.append(s)
    return out


def _key(v):
    import json

    return json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else v


def counts(extensions: list[dict]) -> dict[tuple[str, str, str], int]:
    """(dataset, optimizer, key) -> points added beyond its range's edges (for the readers)."""
    from dlbench.folders import extended

    return extended({"extensions": {"points": extensions}})
