"""The scoreboard: the answer to "is mine better?" across the problems of a sweep, from the
verdicts that are already there.

- Wins, ties, losses of each optimizer against each other: on each problem the pair's verdict
  (stats.compare: Welch's test, Holm-adjusted over the problem's pairs, 5% level) is a win for the
  better one; "not distinguishable" and "too few seeds to tell" are ties.
- Best or tied: the problems where an optimizer has the best mean reported number or is not
  distinguishable from the optimizer that has it.
- Mean rank: on each problem the optimizers are ranked by their mean reported number (1 = best;
  means equal up to round-off share the average rank); the mean over the problems an optimizer ran
  on, with a 95% Student's t interval over problems (the problems taken as a sample of problems
  like these; none below 2 problems; its coverage measured by simulation in tests/test_scoreboard.py).
- Profile area: the area under the optimizer's performance profile (stats.profiles: steps to each
  problem's validation target), over log2 τ from 0 to the largest finite ratio, divided by that
  length: 1 = fastest to the target on every problem, 0 = never reaches one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dlbench.stats.comparisons import Comparison
from dlbench.stats.mean_intervals import t_interval
from dlbench.stats.selection import Best, tie_classes


@dataclass
class Record:
    """One optimizer against another, over the problems where both ran."""

    optimizer: str
    opponent: str
    wins: int
    ties: int
    losses: int


@dataclass
class Standing:
    """One optimizer over the problems."""

    optimizer: str
    problems: int  # problems it ran on
    best_or_tied: int  # problems where it is the best or not distinguishable from the best
    mean_rank: float
    rank_low: float  # 95% t interval of the mean rank over problems (NaN below 2)
    rank_high: float
    profile_area: float = math.nan  # NaN: no profile (one problem, or no history)
    at_edge: list[str] = field(default_factory=list)  # problems where its choice is at the edge of a range


@dataclass
class FocusRow:
    """The focus optimizer against one other on one problem: mean(focus) - mean(other)."""

    problem: str
    opponent: str
    comparison: Comparison
    diff: float
    ci_low: float
    ci_high: float
    outcome: str  # "win", "tie", "loss" for the focus optimizer


@dataclass
class Scoreboard:
    problems: list[str]
    optimizers: list[str]  # by mean rank, best first
    records: list[Record]
    standings: list[Standing]
    ranks: pd.DataFrame  # problems x optimizers: the rank on each problem (NaN where it did not run)
    means: pd.DataFrame  # problems x optimizers: the mean reported number
    leaders: dict[str, set[str]]  # problem -> the optimizers best or not distinguishable from the best

    def record(self, a: str, b: str) -> Record | None:
        return next((r for r in self.records if (r.optimizer, r.opponent) == (a, b)), None)


def problem_of(x: Best | Comparison, several_sweeps: bool) -> str:
    return f"{x.sweep} {x.dataset}" if several_sweeps else x.dataset


def outcome(c: Comparison, who: str) -> str:
    """A pair's verdict from one side: win, loss, or tie (not distinguishable, or too few seeds)."""
    v = c.verdict
    if v not in ("a", "b"):
        return "tie"
    winner = c.a if v == "a" else c.b
    return "win" if winner == who else "loss"


def ranks_of(means: dict[str, float], higher: bool) -> dict[str, float]:
    """Rank 1 = the best mean; means equal up to round-off (selection.tie_classes, the one order)
    share their average rank; an optimizer without a finite mean ranks last."""
    names = list(means)
    out, i = {}, 0
    for cls in tie_classes([means[o] for o in names], higher):
        j = i + len(cls)
        for k in cls:
            out[names[k]] = (i + 1 + j) / 2  # the average of ranks i+1..j
        i = j
    return out


def scoreboard(best: list[Best], comparisons: list[Comparison], profile_areas: dict[str, float] | None = None,
               extended: dict[tuple[str, str, str], int] | None = None) -> Scoreboard:
    """The scoreboard of the optimizers at their chosen configurations (stats.best_configs) and the
    verdicts of their pairs (stats.compare). `extended`: (dataset, optimizer, key) -> the points a
    range with `extend` grew by (a choice still at its edge then says so)."""
    several = len({b.sweep for b in best}) > 1
    problems = list(dict.fromkeys(problem_of(b, several) for b in best))
    names = sorted({b.name for b in best})
    means = pd.DataFrame(np.nan, index=problems, columns=names)
    ranks = pd.DataFrame(np.nan, index=problems, columns=names)
    leaders: dict[str, set[str]] = {}
    for p in problems:
        items = [b for b in best if problem_of(b, several) == p]
        higher = items[0].selection.report_higher
        m = {b.name: b.report["mean"] for b in items}
        for o, r in ranks_of(m, higher).items():
            ranks.loc[p, o] = r
        for o, v in m.items():
            means.loc[p, o] = v
        lead = min(m, key=lambda o: ranks.loc[p, o])
        pairs = [c for c in comparisons if problem_of(c, several) == p and lead in (c.a, c.b)]
        leaders[p] = {lead} | {c.b if c.a == lead else c.a for c in pairs if outcome(c, lead) == "tie"}
    tally: dict[tuple[str, str], list[int]] = {}
    for c in comparisons:
        for me, them in ((c.a, c.b), (c.b, c.a)):
            w = tally.setdefault((me, them), [0, 0, 0])
            w[("win", "tie", "loss").index(outcome(c, me))] += 1
    standings = []
    for o in names:
        r = ranks[o].dropna().to_numpy(dtype=float)
        low = high = math.nan
        if len(r) >= 2:
            lo, hi = t_interval(r[None, :])
            low, high = float(np.clip(lo[0], 1, len(names))), float(np.clip(hi[0], 1, len(names)))
        edges = [f"{problem_of(b, several)}: " + ", ".join(
            f"{k}={v:.4g}" + (f" after {n} extension{'s' * (n != 1)}" if (n := (extended or {}).get(
                (b.dataset, o, k), 0)) else "") for k, v, _ in b.at_edge)
                 for b in best if b.name == o and b.at_edge]
        standings.append(Standing(o, len(r), sum(o in leaders[p] for p in problems), float(r.mean()) if len(r) else
                                  math.nan, low, high, (profile_areas or {}).get(o, math.nan), edges))
    standings.sort(key=lambda s: (s.mean_rank if math.isfinite(s.mean_rank) else math.inf, -s.best_or_tied,
                                  s.optimizer))
    order = [s.optimizer for s in standings]
    records = [Record(a, b, *tally[(a, b)]) for a in order for b in order if (a, b) in tally]
    return Scoreboard(problems, order, records, standings, ranks[order], means[order], leaders)


def focus_rows(comparisons: list[Comparison], focus: str) -> list[FocusRow]:
    """The focus optimizer against each other one on each problem, from its side (the difference
    mean(focus) - mean(other) with its interval, and the outcome)."""
    several = len({c.sweep for c in comparisons}) > 1
    out = []
    for c in comparisons:
        if focus not in (c.a, c.b):
            continue
        sign = 1.0 if c.a == focus else -1.0
        low, high = (c.ci_low, c.ci_high) if sign > 0 else (-c.ci_high, -c.ci_low)
        out.append(FocusRow(problem_of(c, several), c.b if c.a == focus else c.a, c, sign * c.diff, low, high,
                            outcome(c, focus)))
    return out


def profile_areas(profile: pd.DataFrame) -> dict[str, float]:
    """Each solver's area under its performance profile (the steps of stats.performance_profile),
    over log2 τ from 0 to the largest finite τ, divided by that length; with every ratio 1 (one
    problem, say), the share of problems where it is the fastest."""
    out = {}
    if not len(profile):
        return out
    top = float(profile["tau"].max())
    length = math.log2(top) if top > 1 else 0.0
    for solver, g in profile.groupby("solver", sort=True):
        g = g.sort_values("tau")
        if length == 0:
            out[str(solver)] = float(g["rho"].iloc[0])
            continue
        u = np.log2(g["tau"].to_numpy(dtype=float))
        rho = g["rho"].to_numpy(dtype=float)
        ends = np.append(u[1:], length)  # rho[i] holds from u[i] to the next step
        out[str(solver)] = float(np.sum(rho * (ends - u)) / length)
    return out
