"""Performance profile across problems (Dolan & Moré 2002; the scoring of AlgoPerf): for each
optimizer, the fraction of problems on which its cost is within a factor τ of the best
optimizer's cost. The cost is steps to a validation target, each problem's target set from the
best result in the sweep (dlbench.stats.profile_costs states the rule); an optimizer that never
reaches a target counts as ∞ there. The numbers come from dlbench.stats; this module draws them."""

from __future__ import annotations

import math
from dataclasses import dataclass

from dlbench import stats
from dlbench.errors import UserError
from dlbench.plots._common import (
    COLUMN_IN,
    LINESTYLES,
    MARKERS,
    OKABE_ITO,
    Results,
    fig_title,
    legend_below,
    log_scale,
    style,
    styled,
)


@dataclass
class ProfileInfo:
    solvers: list[str]
    taus: dict[str, list[float]]  # per solver, the step points of its profile
    rhos: dict[str, list[float]]
    costs: stats.ProfileCosts
    problems: list[str]


def profile_info(results: Results, fraction: float = stats.TARGET_FRACTION) -> ProfileInfo:
    pc = stats.profile_costs(results.trials, results.history, fraction=fraction)
    if len(pc.costs) < 2:
        dropped = (f" ({len(pc.dropped)} more left out: their target is met before any step)" if pc.dropped else "")
        raise UserError(f"--kind profile compares optimizers across problems; these results hold {len(pc.costs)} "
                        f"(dataset, model){dropped}; allowed: results with at least 2 problems (several datasets, or "
                        "several folders)")
    prof = stats.performance_profile(pc.costs)
    solvers = [str(s) for s in pc.costs.columns]
    taus = {s: prof[prof.solver == s].tau.tolist() for s in solvers}
    rhos = {s: prof[prof.solver == s].rho.tolist() for s in solvers}
    return ProfileInfo(solvers, taus, rhos, pc, [str(p) for p in pc.costs.index])


@styled
def draw(info: ProfileInfo):
    plt = style()
    fig, ax = plt.subplots(figsize=(COLUMN_IN + 0.6, 3.0))
    top = max([t for s in info.solvers for t in info.taus[s]] + [1.0])
    right = top * 1.5 if top > 1 else 2.0
    for i, s in enumerate(info.solvers):
        # line styles and markers tell apart profiles that coincide over a stretch
        c, m, ls = OKABE_ITO[i % len(OKABE_ITO)], MARKERS[i % len(MARKERS)], LINESTYLES[i % len(LINESTYLES)]
        ax.step([*info.taus[s], right], [*info.rhos[s], info.rhos[s][-1]], where="post", color=c, ls=ls, lw=1.4,
                label=s)
        rises = [0] + [j for j in range(1, len(info.rhos[s])) if info.rhos[s][j] > info.rhos[s][j - 1]]
        ax.plot([info.taus[s][j] for j in rises], [info.rhos[s][j] for j in rises], marker=m, color=c, ms=3.5,
                ls="none")
    log_scale(ax, "x", base=2)
    ax.set_xlim(1, right)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("τ (cost within τ × the best optimizer's)")
    ax.set_ylabel("fraction of problems")
    never = int(sum(math.isinf(v) for v in info.costs.costs.to_numpy().ravel()))
    missed = (f"{never} (optimizer, problem) never reached it (cost ∞)" if never
              else "every optimizer reached every target")
    dropped = info.costs.dropped
    left = (f"\nleft out (target met before any step): {', '.join(dropped)}" if dropped else "")
    fig.suptitle(fig_title(f"performance profile over {len(info.problems)} problems: steps to a validation "
                           f"target, {100 * info.costs.fraction:g}% of the way from the start to the best result; "
                           f"{missed}{left.replace(chr(10), '; ')}", COLUMN_IN + 0.6))
    legend_below(fig)
    return fig
