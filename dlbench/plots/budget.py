"""Tuning budget (Dodge et al. 2019; Sivaprasad et al. 2020): for each problem, one line per
optimizer, the expected best validation number of k configurations drawn at random without
replacement from those swept (dlbench.stats.budget: exact, from the stored results), with its 95%
band shaded. Where the lines cross, the ranking depends on how much tuning one can afford."""

from __future__ import annotations

from dataclasses import dataclass, field

from dlbench import stats
from dlbench.plots._common import (
    COLUMN_IN,
    MAX_PANELS,
    PAGE_IN,
    Results,
    fig_title,
    grid_of,
    legend_below,
    log_scale,
    optimizer_styles,
    panel_title,
    style,
    styled,
    tuning_stage,
)
from dlbench.words import column_label, search_short


@dataclass
class BudgetInfo:
    panels: list[str]  # one per problem
    curves: dict[str, list[stats.BudgetCurve]]  # problem -> its optimizers' curves
    metrics: dict[str, str]  # problem -> the selection metric the curves are on
    leaders: dict[str, list[tuple[int, str]]]
    search: str = "grid"
    left_out: int = 0
    tunability: dict[str, dict[str, int]] = field(default_factory=dict)  # problem -> optimizer -> k within 1%


def budget_info(results: Results, search: str = "grid") -> BudgetInfo:
    b = stats.budgets(tuning_stage(results).trials)
    problems = list(dict.fromkeys(c.problem for c in b.curves))
    shown = problems[:MAX_PANELS]
    curves = {p: [c for c in b.curves if c.problem == p] for p in shown}
    return BudgetInfo(shown, curves, {p: cs[0].metric for p, cs in curves.items()},
                      {p: b.leaders[p] for p in shown}, search, max(0, len(problems) - MAX_PANELS),
                      {p: {c.optimizer: c.tunability for c in cs} for p, cs in curves.items()})


@styled
def draw(info: BudgetInfo):
    plt = style()
    several = len(info.panels) > 1
    rows, cols = grid_of(len(info.panels), 3)
    size = (PAGE_IN, 1.9 * rows + 1.3) if several else (COLUMN_IN + 0.6, 2.9)
    fig, axes = plt.subplots(rows, cols, figsize=size, squeeze=False)
    names = sorted({c.optimizer for cs in info.curves.values() for c in cs})
    styles = optimizer_styles(names)
    for ax, problem in zip(axes.flat, info.panels, strict=False):
        top = 1
        for c in info.curves[problem]:
            color, marker, ls = styles[c.optimizer]
            ax.fill_between(c.k, c.low, c.high, color=color, alpha=0.15, lw=0)
            ax.plot(c.k, c.expected, color=color, ls=ls, marker=marker, ms=3, label=c.optimizer)
            top = max(top, c.n)
        log_scale(ax, "x", base=2)
        ax.set_xlim(0.9, top * 1.1)
        ax.set_xlabel("configurations tried (k)")
        ax.set_ylabel(f"expected best {column_label(info.metrics[problem])}")
        if several:
            ax.set_title(panel_title(problem, 32))
    for ax in axes.flat[len(info.panels):]:
        ax.set_visible(False)
    more = f"; {info.left_out} more problems: --dataset" if info.left_out else ""
    fig.suptitle(fig_title("tuning budget: the expected best validation number of k configurations drawn at random "
                           "from those swept; band: 95% (jackknife t) up to half of them; "
                           f"{search_short(info.search)}{more}", size[0]))
    handles = [plt.Line2D([], [], color=c, marker=m, ls=ls, ms=3, label=n) for n, (c, m, ls) in styles.items()]
    legend_below(fig, handles)
    return fig
