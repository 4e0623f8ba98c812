"""[expect]: what a sweep must show, judged on its stored results (`dlbench sweep` exits 1 naming
each line that does not hold): counts of trials by status, a metric of the configuration chosen
on validation (the mean over its seeds; under a [protocol] on its fresh seeds), or a verdict:
`better = ["adam > momentum on shakespeare"]` holds when the pair's Holm-adjusted verdict (each at
its chosen configuration, as `dlbench show` says it) is that A is better, on that dataset (on
every dataset both ran on, without `on`)."""

from __future__ import annotations

import math
import operator

from dlbench import stats
from dlbench.schema import EXPECT_METRICS

OPS = {">=": operator.ge, "<=": operator.le, "==": operator.eq, ">": operator.gt, "<": operator.lt}


def check_expectations(expect: dict[str, str], trials) -> list[str]:
    """The [expect] lines that do not hold, each as 'key: wanted OP X, got Y'.

    Counts (ok, diverged, failed) are over trials. A metric is judged on the configuration chosen
    on validation, per dataset (the mean over its seeds; dlbench.stats.best_configs across all
    optimizers, which under a [protocol] picks among the confirmed configurations and measures
    on their fresh seeds): `test_acc_at_best_val >= 0.9` asks that the chosen configuration reach
    0.9 on test. The best_test_* keys of specs written before validation splits keep their meaning:
    the best value of any trial."""
    import numpy as np


    if not expect:
        return []
    chosen = stats.best_configs(trials, per=()) if len(trials) else []
    failures = _verdicts(expect.get("better", []), trials)
    for key, cond in expect.items():
        if key == "better":
            continue
        column, agg = EXPECT_METRICS[key]
        op, target = cond.split()
        if agg.startswith("count_"):
            got = [("", float((trials["status"] == agg[6:]).sum()) if len(trials) else 0.0)]
        elif agg == "chosen":
            got = [(b.dataset, _chosen_mean(trials, b, column)) for b in chosen] or [("", float("nan"))]
        else:
            vals = stats.usable(trials)[column].to_numpy(dtype=float) if len(trials) else np.array([])
            vals = vals[np.isfinite(vals)]
            got = [("", float(vals.max() if agg == "max" else vals.min()) if len(vals) else float("nan"))]
        for dataset, value in got:
            if not (math.isfinite(value) and OPS[op](value, float(target))):
                where = f" ({dataset})" if dataset and len(got) > 1 else ""
                failures.append(f"{key}: wanted {op} {target}, got {value:.4g}{where}")
    return failures


def _chosen_mean(trials, best, column: str) -> float:
    """The mean over seeds of `column` for the configuration `best` chose."""
    import numpy as np


    rows = stats.usable(stats.rows_matching(trials[trials["dataset"] == best.dataset], best.config))
    if best.confirmed:
        rows = rows[rows["stage"] == "confirm"]
    v = rows[column].to_numpy(dtype=float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if len(v) else float("nan")



def _verdicts(lines: list[str], trials) -> list[str]:
    """The `better` lines whose verdict is not 'A is better' (on their dataset, or on each)."""
    import re

    if not lines:
        return []
    comparisons = stats.compare(stats.best_configs(trials)) if len(trials) else []
    failures = []
    for line in lines:
        a, b, dataset = re.fullmatch(r"(\S+) > (\S+)(?: on (\S+))?", line).groups()
        pairs = [c for c in comparisons if {c.a, c.b} == {a, b} and (dataset is None or c.dataset == dataset)]
        if not pairs:
            failures.append(f"better: {line}: no comparison of {a} and {b}" + (f" on {dataset}" if dataset else ""))
        for c in pairs:
            if c.verdict != ("a" if c.a == a else "b"):
                got = {"none": "not distinguishable", "n/a": "too few seeds", "a": f"{c.a} better",
                       "b": f"{c.b} better"}[c.verdict]
                failures.append(f"better: {line}: wanted {a} better, got {got} on {c.dataset} (mean({c.a}) - "
                                f"mean({c.b}) {c.diff:+.3g} [{c.ci_low:+.3g}, {c.ci_high:+.3g}], Holm p "
                                f"{c.p_adjusted:.3g})")
    return failures
