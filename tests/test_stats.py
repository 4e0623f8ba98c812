"""The statistics layer on hand-made tables: every number checked against scipy or a hand
calculation."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from dlbench import stats


def trials_table(rows):
    """A trials table from (optimizer, lr, seed, best_val_acc, test_acc_at_best_val[, status])."""
    out = []
    for i, r in enumerate(rows):
        opt, lr, seed, val, test = r[:5]
        out.append({"trial_id": f"t{i}", "dataset": "digits", "validation": 0.1, "stage": "tune", "optimizer": opt,
                    "lr": lr, "batch_size": 32, "epochs": 10, "seed": seed, "status": r[5] if len(r) > 5 else "ok",
                    "best_val_loss": 1 - val, "best_val_acc": val, "test_acc_at_best_val": test})
    return pd.DataFrame(out)


def test_interval_equals_scipy_bootstrap_with_the_same_random_state():
    values = np.array([0.91, 0.95, 0.93, 0.97, 0.90])
    t = trials_table([("adam", 0.01, s, 0.9, v) for s, v in enumerate(values)])
    g = stats.group_stats(t, "test_acc_at_best_val")
    ref = sps.bootstrap((values,), np.mean, n_resamples=9999, confidence_level=0.95, method="percentile",
                        random_state=np.random.default_rng(0)).confidence_interval
    row = g.iloc[0]
    assert (row.n, row["mean"], row["median"]) == (5, pytest.approx(values.mean()), 0.93)
    assert row["std"] == pytest.approx(values.std(ddof=1))
    assert (row.ci_low, row.ci_high) == (ref.low, ref.high)
    # the same folder always gives the same interval
    again = stats.group_stats(t, "test_acc_at_best_val").iloc[0]
    assert (again.ci_low, again.ci_high) == (row.ci_low, row.ci_high)


def test_groups_bootstrapped_together_equal_groups_bootstrapped_alone():
    rng = np.random.default_rng(3)
    groups = [rng.normal(size=4) for _ in range(5)] + [rng.normal(size=6)]
    low, high = stats.intervals(groups)
    for g, lo, hi in zip(groups, low, high, strict=True):
        ci = sps.bootstrap((g,), np.mean, method="percentile",
                           random_state=np.random.default_rng(0)).confidence_interval
        assert (lo, hi) == (ci.low, ci.high)


def test_below_three_seeds_there_is_no_interval_and_failed_trials_never_count():
    t = trials_table([("sgd", 0.1, 0, 0.8, 0.7), ("sgd", 0.1, 1, 0.9, 0.8), ("sgd", 0.1, 2, 0.0, 0.0, "failed"),
                      ("sgd", 0.1, 3, 0.9, float("nan"))])
    row = stats.group_stats(t, "test_acc_at_best_val").iloc[0]
    assert row.n == 2 and row["mean"] == pytest.approx(0.75) and math.isnan(row.ci_low) and math.isnan(row.ci_high)
    assert row.seeds == "0,1,3"  # the NaN run is a run (counted in seeds), its value is not a number
    d = stats.describe([0.5, 0.5, 0.5])
    assert (d["ci_low"], d["ci_high"]) == (0.5, 0.5)  # identical seeds: a zero-width interval


@pytest.mark.parametrize("a,b,expected", [
    ([0.9, 0.9, 0.9], [0.9, 0.9, 0.9], 0.5),  # identical samples
    ([0.1, 0.2], [0.3, 0.4, 0.5], 0.0),  # every run of A below every run of B
    ([0.6, 0.7, 0.8], [0.1, 0.2], 1.0),
    ([1, 2, 3], [2, 2, 2], 0.5),  # 3 wins, 3 ties (1.5), 3 losses of 9
    ([3, 4], [1, 3, 5], 3.5 / 6),  # by hand: 3>1, 3=3 (1/2), 4>1, 4>3 out of 6 pairs
])
def test_probability_of_improvement_counts_pairs(a, b, expected):
    assert stats.prob_improvement(a, b) == pytest.approx(expected)
    # for a loss (lower is better) the same values read the other way round
    assert stats.prob_improvement(a, b, higher=False) == pytest.approx(1 - expected)


def test_difference_interval_equals_scipy_two_sample_bootstrap():
    a, b = np.array([0.9, 0.8, 0.85, 0.95]), np.array([0.7, 0.75, 0.72])
    ref = sps.bootstrap((a, b), lambda x, y, axis=-1: x.mean(axis=axis) - y.mean(axis=axis), method="percentile",
                        random_state=np.random.default_rng(0)).confidence_interval
    assert stats.diff_ci(a, b) == (ref.low, ref.high)
    assert all(math.isnan(v) for v in stats.diff_ci(a, b[:2]))


def test_seeds_needed_follows_the_two_sample_formula():
    a, b = np.array([0.90, 0.92, 0.94]), np.array([0.89, 0.91, 0.93])  # both std 0.02, difference 0.01
    z = sps.norm.ppf(0.975) + sps.norm.ppf(0.8)
    assert stats.seeds_needed(a, b, 0.01) == math.ceil(2 * z * z * 0.02**2 / 0.01**2) == 63
    assert stats.seeds_needed(a, b, 0.0) is None and stats.seeds_needed(a[:1], b, 0.01) is None


def test_best_configuration_is_chosen_on_validation_never_on_test():
    # adam lr 0.01 is best on validation; lr 0.1 would win on test
    t = trials_table([("adam", 0.01, s, 0.95, 0.90) for s in range(3)]
                     + [("adam", 0.1, s, 0.93, 0.99) for s in range(3)]
                     + [("sgd", 0.1, s, 0.90, v) for s, v in enumerate([0.80, 0.82, 0.84])])
    best = {b.name: b for b in stats.best_configs(t)}
    assert best["adam"].config["lr"] == 0.01 and best["adam"].report["mean"] == pytest.approx(0.90)
    assert best["adam"].selection.select == "best_val_acc" and best["adam"].configs_tried == 2
    assert best["sgd"].report["n"] == 3 and not best["adam"].confirmed
    (c,) = stats.compare(list(best.values()))
    assert (c.a, c.b, c.verdict) == ("adam", "sgd", "a") and c.p_better == 1.0
    assert c.diff == pytest.approx(0.08)
    assert c.line().startswith("adam vs sgd: +8.00 pts [")
    assert "P(adam > sgd) = 1.00: adam is better (the interval excludes 0)" in c.line()
    assert "the same seeds (0-2) chose each configuration" in stats.seeds_note(list(best.values()))


def test_verdict_says_when_seeds_cannot_tell():
    t = trials_table([("adam", 0.01, s, 0.9, v) for s, v in enumerate([0.90, 0.94, 0.92])]
                     + [("rmsprop", 0.01, s, 0.9, v) for s, v in enumerate([0.91, 0.93, 0.89])])
    (c,) = stats.compare(stats.best_configs(t))
    assert c.verdict == "none"
    assert "not distinguishable with 3 seeds; about" in c.line()
    assert "would separate a difference of this size" in c.line()
    two = trials_table([("adam", 0.01, s, 0.9, 0.9 + s / 100) for s in range(2)]
                       + [("sgd", 0.01, s, 0.9, 0.8) for s in range(2)])
    (c,) = stats.compare(stats.best_configs(two))
    assert c.verdict == "n/a" and "too few seeds to tell (2; an interval needs at least 3)" in c.line()


def test_a_confirm_stage_gives_the_result_and_tuning_stays_apart():
    t = trials_table([("adam", 0.01, s, 0.95, 0.90) for s in range(2)]
                     + [("adam", 0.1, s, 0.93, 0.99) for s in range(2)]
                     + [("adam", 0.01, s, 0.94, 0.91) for s in range(2, 6)])
    t.loc[t.seed >= 2, "stage"] = "confirm"
    (b,) = stats.best_configs(t)
    assert b.confirmed and b.seeds == [2, 3, 4, 5] and b.report["mean"] == pytest.approx(0.91)
    assert b.tuning["n"] == 2 and b.tuning["mean"] == pytest.approx(0.90)
    assert "confirmed on fresh seeds (2-5)" in stats.seeds_note([b])


def test_without_validation_the_training_set_chooses_and_readers_are_told():
    t = trials_table([("adam", 0.01, 0, 0.9, 0.9)]).assign(best_val_loss=float("nan"), best_val_acc=float("nan"))
    sel = stats.selection_of(t)
    assert (sel.select, sel.report, sel.validation) == ("final_train_acc", "final_test_acc", False)
    assert "schema 1" in stats.no_validation_note(t, {"schema_version": 1})
    assert "validation = 0" in stats.no_validation_note(t, {"schema_version": 2})
    assert stats.no_validation_note(trials_table([("adam", 0.01, 0, 0.9, 0.9)])) is None
    assert stats.selection_for("regression", True).report == "test_r2_at_best_val"
    assert stats.selection_for("objective", True).select == "best_val_loss"


def test_performance_profile_equals_a_hand_calculation():
    costs = pd.DataFrame({"adam": [10, 30, math.inf, 5], "sgd": [20, 10, 40, math.inf]},
                         index=["p1", "p2", "p3", "p4"])
    # ratios: adam 1, 3, inf, 1; sgd 2, 1, 1, inf (p3: only sgd reaches; p4: only adam)
    prof = stats.performance_profile(costs)
    rho = {(r.solver, r.tau): r.rho for r in prof.itertuples()}
    assert sorted(prof.tau.unique()) == [1.0, 2.0, 3.0]
    assert rho[("adam", 1.0)] == 0.5 and rho[("adam", 2.0)] == 0.5 and rho[("adam", 3.0)] == 0.75
    assert rho[("sgd", 1.0)] == 0.5 and rho[("sgd", 2.0)] == 0.75 and rho[("sgd", 3.0)] == 0.75
    # a problem no solver reaches counts against every solver
    none = stats.performance_profile(pd.DataFrame({"a": [1.0, math.inf], "b": [2.0, math.inf]}))
    assert none[none.solver == "a"].rho.max() == 0.5 and none[none.solver == "b"].rho.max() == 0.5


def test_profile_costs_from_hand_made_histories():
    # one problem, two optimizers; val_acc per epoch, 2 seeds each; 10 steps per epoch
    curves = {("adam", 0): [0.1, 0.8, 0.9], ("adam", 1): [0.1, 0.7, 0.9],
              ("sgd", 0): [0.1, 0.3, 0.5], ("sgd", 1): [0.1, 0.4, 0.6]}
    trows, hrows = [], []
    for (opt, seed), accs in curves.items():
        tid = f"{opt}{seed}"
        trows.append({"trial_id": tid, "dataset": "digits", "validation": 0.1, "stage": "tune", "optimizer": opt,
                      "lr": 0.01, "seed": seed, "status": "ok", "best_val_loss": 0.1})
        hrows += [{"trial_id": tid, "epoch": e, "steps": 10 * e, "val_acc": a} for e, a in enumerate(accs)]
    pc = stats.profile_costs(pd.DataFrame(trows), pd.DataFrame(hrows))
    # v* = 0.9 (adam's median at epoch 2), v0 = 0.1: target = 0.1 + 0.95 × 0.8 = 0.86
    assert pc.targets["digits"] == pytest.approx(0.86)
    assert pc.costs.loc["digits", "adam"] == 20 and pc.costs.loc["digits", "sgd"] == math.inf


def test_bands():
    groups = [np.array([1.0, 2.0, 3.0]), np.array([5.0])]
    lo, hi = stats.band(groups, "minmax")
    assert lo.tolist() == [1.0, 5.0] and hi.tolist() == [3.0, 5.0]
    lo, hi = stats.band(groups, "std")
    assert lo[0] == pytest.approx(1.0) and hi[0] == pytest.approx(3.0) and math.isnan(lo[1])
    lo, hi = stats.band(groups, "ci")
    assert lo[0] >= 1.0 and hi[0] <= 3.0 and math.isnan(lo[1])
    assert all(math.isnan(v) for v in stats.band(groups, "none")[0])


def test_direction_from_the_name():
    assert stats.higher_is_better("best_val_acc") and stats.higher_is_better("test_r2_at_best_val")
    assert stats.higher_is_better("best_val_loss") is False and stats.higher_is_better("wall_time") is False
    assert stats.higher_is_better("momentum") is None


def test_a_choice_at_the_edge_of_the_range_is_noted():
    t = trials_table([("adam", lr, s, v, v) for lr, v in ((0.001, 0.8), (0.01, 0.85), (0.1, 0.9)) for s in range(3)]
                     + [("sgd", lr, s, v, v) for lr, v in ((0.01, 0.7), (0.1, 0.9), (1.0, 0.6)) for s in range(3)])
    best = {b.name: b for b in stats.best_configs(t)}
    assert best["adam"].at_edge == [("lr", 0.1, "largest")] and best["sgd"].at_edge == []
    assert stats.edge_note(best["adam"]) == ("adam: lr=0.1 is the largest value tried; the best may lie beyond the "
                                             "range swept")
    assert stats.edge_note(best["sgd"]) is None


def test_means_equal_up_to_round_off_are_equal():
    a, b = np.array([0.9579, 0.9526, 0.9632]), np.array([0.9632, 0.9526, 0.9579])
    diff = a.mean() - b.mean()  # may be ~1e-17, not 0
    assert stats.seeds_needed(a, b, diff) is None
    t = trials_table([("adam", 0.01, s, 0.9, v) for s, v in enumerate(a)]
                     + [("sgd", 0.01, s, 0.9, v) for s, v in enumerate(b)])
    (c,) = stats.compare(stats.best_configs(t))
    assert c.line().endswith("not distinguishable with 3 seeds; the means are equal")
