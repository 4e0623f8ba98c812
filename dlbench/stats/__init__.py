"""Statistics over the stored tables: pure functions of pandas frames (numpy and scipy inside)
that return numbers and records, never sentences, so that tests can check every number by hand
and by simulation. `dlbench show`, the end of `dlbench sweep`, `dlbench plot`, `dlbench report`,
the protocol's stage-2 choice and `[expect]` all take their numbers from here; dlbench.words says
them in words. docs/statistics.md states every rule.

Words used throughout:

- A *configuration* is a trial without its seed: the configuration columns of the table
  (dlbench.store.config_columns). Seed statistics are over the trials of one configuration.
- *Usable* trials are those that produced numbers: ok and diverged. A diverged trial counts with
  its numbers at the epoch validation chose (it was stopped there, before it diverged); it has no
  final numbers. Failed trials never count.
- *Intervals* of a mean over seeds are Student's t intervals by default (exact coverage for
  normal seed-to-seed variation at any N >= 2); `method="bootstrap"` gives BCa bootstrap
  intervals where BCa is defined, percentile ones otherwise (fit only for many seeds: see
  docs/statistics.md). A difference of two means gets Welch's interval and test (or the
  two-sample bootstrap), and the verdicts within one dataset are Holm-adjusted for the family of
  pairs.
- *Selection* (`choose`): the configuration with the best mean of the selection metric over its
  seeds; a tie (means equal up to round-off) goes to the better mean of the tie-breaker (the
  validation loss for classification, the validation R² for regression), then to the
  configuration that sorts first by its configuration columns (the smaller lr, batch size, ...).
  Every reader chooses through it. Test metrics never choose.
- P(A > B) is the probability of improvement as rliable defines it: over all pairs of one run of
  A and one run of B, the fraction where A is better, ties counting one half (the Mann-Whitney U
  statistic divided by n_A n_B). Identical samples give 0.5.
"""

from __future__ import annotations

from dlbench.schema import higher_is_better
from dlbench.stats.budget import BudgetCurve, Budgets, budgets, expected_best, ranked_configs
from dlbench.stats.comparisons import (
    NO_DIFFERENCE,
    POWER,
    SEEDS_CAP,
    Comparison,
    Difference,
    bootstrap_difference,
    compare,
    difference,
    holm,
    power,
    prob_improvement,
    seeds_needed,
    settings_between,
    welch,
)
from dlbench.stats.mean_intervals import (
    ALPHA,
    BANDS,
    BOOTSTRAP_SEED,
    CI_METHODS,
    CONFIDENCE,
    DEFAULT_CI,
    MIN_N,
    N_RESAMPLES,
    band,
    bootstrap_interval,
    bounds,
    check_ci,
    column_stats,
    describe,
    intervals,
    t_interval,
)
from dlbench.stats.profiles import (
    TARGET_FRACTION,
    ProfileCosts,
    ToTarget,
    config_costs,
    performance_profile,
    problem_target,
    profile_costs,
    reach,
    target_metric,
    to_target,
)
from dlbench.stats.scoreboard import (
    FocusRow,
    Record,
    Scoreboard,
    Standing,
    focus_rows,
    problem_of,
    profile_areas,
    scoreboard,
)
from dlbench.stats.selection import (
    EQUAL,
    Best,
    Choice,
    Selection,
    best_configs,
    best_first,
    check_chooser,
    choose,
    configurations,
    edge_keys,
    has_validation,
    order,
    range_edges,
    rows_of,
    rule_of,
    same,
    selection_for,
    selection_of,
    task_of,
    tie_classes,
)
from dlbench.stats.tables import (
    group_stats,
    is_missing,
    many_stats,
    rows_matching,
    seed_span,
    usable,
    varying,
)

__all__ = [
    "ALPHA", "BANDS", "BOOTSTRAP_SEED", "Best", "BudgetCurve", "Budgets", "CI_METHODS", "CONFIDENCE", "Choice",
    "Comparison", "DEFAULT_CI", "Difference", "EQUAL", "FocusRow", "MIN_N", "NO_DIFFERENCE", "N_RESAMPLES", "POWER",
    "ProfileCosts", "Record", "SEEDS_CAP", "Scoreboard", "Selection", "Standing", "TARGET_FRACTION", "ToTarget",
    "band", "best_configs", "best_first", "bootstrap_difference", "bootstrap_interval", "bounds", "budgets",
    "check_chooser", "check_ci", "choose", "column_stats", "compare", "config_costs", "configurations", "describe",
    "difference", "edge_keys", "expected_best", "focus_rows", "group_stats", "has_validation", "higher_is_better",
    "holm", "intervals", "is_missing", "many_stats", "order", "performance_profile", "power", "prob_improvement",
    "problem_of", "problem_target", "profile_areas", "profile_costs", "range_edges", "ranked_configs", "reach",
    "rows_matching", "rows_of", "rule_of", "same", "scoreboard", "seed_span", "seeds_needed", "selection_for",
    "selection_of", "settings_between", "t_interval", "target_metric", "task_of", "tie_classes", "to_target",
    "usable", "varying", "welch",
]
