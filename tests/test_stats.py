"""The statistics layer: every number checked against a hand calculation or scipy, and every
promise (coverage, false-positive rate, family-wise rate, power) checked by simulation where the
truth is known. Seeds are fixed, and each simulation has enough repetitions that its Monte-Carlo
error is under one percentage point."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from dlbench import stats, words
from dlbench.errors import UserError


def trials_table(rows):
    """A trials table from (optimizer, lr, seed, best_val_acc, test_acc_at_best_val[, status])."""
    out = []
    for i, r in enumerate(rows):
        opt, lr, seed, val, test = r[:5]
        out.append({"trial_id": f"t{i}", "dataset": "digits", "validation": 0.1, "stage": "tune", "optimizer": opt,
                    "lr": lr, "batch_size": 32, "epochs": 10, "seed": seed, "status": r[5] if len(r) > 5 else "ok",
                    "best_val_loss": 1 - val, "best_val_acc": val, "test_acc_at_best_val": test})
    return pd.DataFrame(out)


# --------------------------------------------------------------------------------------------
# Intervals: by hand, and against scipy


def test_the_default_interval_is_students_t_by_hand():
    values = np.array([0.91, 0.95, 0.93, 0.97, 0.90])
    g = stats.group_stats(trials_table([("adam", 0.01, s, 0.9, v) for s, v in enumerate(values)]),
                          "test_acc_at_best_val").iloc[0]
    half = sps.t.ppf(0.975, 4) * values.std(ddof=1) / math.sqrt(5)  # t_{0.975, 4} = 2.776
    assert (g.n, g["mean"], g["median"]) == (5, pytest.approx(values.mean()), 0.93)
    assert g.ci_low == pytest.approx(values.mean() - half, abs=1e-15)
    assert g.ci_high == pytest.approx(values.mean() + half, abs=1e-15)
    ref = sps.t.interval(0.95, 4, loc=values.mean(), scale=sps.sem(values))
    assert (g.ci_low, g.ci_high) == pytest.approx(ref, abs=1e-15)


def test_two_seeds_give_a_t_interval_and_one_gives_none():
    d = stats.describe([0.8, 0.9])
    assert d["ci_low"] == pytest.approx(0.85 - 12.7062047 * 0.05, abs=1e-6)  # t_{0.975, 1} × s / √2, s = 0.0707
    assert math.isnan(stats.describe([0.8])["ci_low"])
    assert math.isnan(stats.describe([0.8, 0.9], method="bootstrap")["ci_low"])  # the bootstrap needs 3


def test_an_interval_is_clipped_to_the_metrics_range():
    values = [1.0, 1.0, 0.9]  # t interval [0.68, 1.2]: an accuracy never exceeds 1
    t = trials_table([("adam", 0.01, s, 0.9, v) for s, v in enumerate(values)])
    g = stats.group_stats(t, "test_acc_at_best_val").iloc[0]
    assert g.ci_high == 1.0 and g.ci_low == pytest.approx(np.mean(values) - sps.t.ppf(0.975, 2) * np.std(
        values, ddof=1) / math.sqrt(3))
    assert stats.bounds("best_val_loss", "cross_entropy") == (0.0, math.inf)
    assert stats.bounds("momentum") == (-math.inf, math.inf)
    # a loss is clipped only to what that loss can take: a DeepOBS objective goes below 0
    assert stats.bounds("best_val_loss", "problem") == (-math.inf, math.inf)
    assert stats.bounds("best_val_loss", None) == (-math.inf, math.inf)  # unknown or mixed: not clipped


def test_the_bootstrap_option_is_scipys_bca_with_a_percentile_fallback(monkeypatch):
    values = np.array([0.91, 0.95, 0.93, 0.97, 0.90])
    lo, hi = stats.bootstrap_interval(values[None, :])
    ref = sps.bootstrap((values,), np.mean, n_resamples=9999, method="BCa",
                        random_state=np.random.default_rng(0)).confidence_interval
    assert (lo[0], hi[0]) == (ref.low, ref.high)
    # where BCa is not defined (older scipy returns NaN when seeds tie): the percentile interval
    from dlbench.stats import mean_intervals as intervals

    real = intervals._scipy_bootstrap

    def nan_bca(data, statistic, method):
        low, high = real(data, statistic, method)
        return (np.full_like(low, np.nan), high) if method == "BCa" else (low, high)

    monkeypatch.setattr(intervals, "_scipy_bootstrap", nan_bca)
    lo, hi = stats.bootstrap_interval(values[None, :])
    pct = sps.bootstrap((values,), np.mean, n_resamples=9999, method="percentile",
                        random_state=np.random.default_rng(0)).confidence_interval
    assert (lo[0], hi[0]) == (pct.low, pct.high)


def test_groups_computed_together_equal_groups_computed_alone():
    rng = np.random.default_rng(3)
    groups = [rng.normal(size=4) for _ in range(5)] + [rng.normal(size=6)]
    for method in stats.CI_METHODS:
        low, high = stats.intervals(groups, method)
        for g, lo, hi in zip(groups, low, high, strict=True):
            alone = stats.intervals([g], method)
            assert (lo, hi) == (alone[0][0], alone[1][0])


def test_failed_trials_never_count_and_identical_seeds_give_a_zero_width_interval():
    t = trials_table([("sgd", 0.1, 0, 0.8, 0.7), ("sgd", 0.1, 1, 0.9, 0.8), ("sgd", 0.1, 2, 0.0, 0.0, "failed"),
                      ("sgd", 0.1, 3, 0.9, float("nan"))])
    row = stats.group_stats(t, "test_acc_at_best_val").iloc[0]
    assert row.n == 2 and row["mean"] == pytest.approx(0.75)
    assert row.seeds == "0,1,3" and row.runs == 3  # the NaN run is a run, its value is not a number
    for method in stats.CI_METHODS:
        d = stats.describe([0.5, 0.5, 0.5], method)
        assert (d["ci_low"], d["ci_high"]) == (0.5, 0.5)


# --------------------------------------------------------------------------------------------
# Differences, p-values and the Holm adjustment


def test_the_difference_is_welchs_t_as_scipy_computes_it():
    a, b = np.array([0.9, 0.8, 0.85, 0.95]), np.array([0.7, 0.75, 0.72])
    d = stats.welch(a, b)
    ref = sps.ttest_ind(a, b, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert d.diff == pytest.approx(a.mean() - b.mean())
    assert (d.ci_low, d.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-12)
    assert d.p_value == pytest.approx(ref.pvalue, rel=1e-12)
    # the interval excludes 0 exactly when p < 0.05
    assert (d.ci_low > 0) == (d.p_value < 0.05)
    assert stats.welch([1.0, 1.0], [1.0, 1.0]).p_value == 1.0 and stats.welch([1.0, 1.0], [0.5, 0.5]).p_value == 0.0
    assert math.isnan(stats.welch([1.0], [0.5, 0.6]).p_value)


def test_the_bootstrap_difference_and_its_p_value():
    a, b = np.array([0.9, 0.8, 0.85, 0.95]), np.array([0.7, 0.75, 0.72])
    d = stats.bootstrap_difference(a, b)
    ref = sps.bootstrap((a, b), lambda x, y, axis=-1: x.mean(axis=axis) - y.mean(axis=axis), method="BCa",
                        random_state=np.random.default_rng(0)).confidence_interval
    assert (d.ci_low, d.ci_high) == (ref.low, ref.high)
    assert d.p_value == 0.0  # every resampled difference is above 0
    assert math.isnan(stats.bootstrap_difference(a, b[:2]).p_value)


def test_holm_by_hand():
    # sorted p: 0.01 (×4), 0.02 (×3), 0.03 (×2), 0.5 (×1); then non-decreasing
    adjusted = stats.holm([0.03, 0.5, 0.01, float("nan"), 0.02])
    assert adjusted[[2, 4, 0, 1]] == pytest.approx([0.04, 0.06, 0.06, 0.5])
    assert math.isnan(adjusted[3])
    assert stats.holm([0.9, 0.8]).tolist() == [1.0, 1.0]  # 0.8 × 2 = 1.6, capped; then non-decreasing


def test_power_is_the_noncentral_t_and_agrees_with_a_simulation():
    rng = np.random.default_rng(11)
    n, effect, reps = 6, 1.2, 20000
    a = rng.normal(size=(reps, n))
    b = rng.normal(size=(reps, n)) + effect
    rejected = (sps.ttest_ind(a, b, axis=1).pvalue < 0.05).mean()
    assert float(stats.power(n, effect)) == pytest.approx(rejected, abs=0.01)  # MC error 0.35 pts


def test_seeds_needed_is_the_fewest_with_80_percent_power():
    a, b = np.array([0.90, 0.92, 0.94]), np.array([0.89, 0.91, 0.93])  # both std 0.02, difference 0.01
    n = stats.seeds_needed(a, b, 0.01)
    assert stats.power(n, 0.5) >= 0.8 > stats.power(n - 1, 0.5)
    assert n == 64  # one more than the normal approximation's 2 (z + z)² / d² = 63
    assert stats.seeds_needed(a, b, 0.0) is None and stats.seeds_needed(a[:1], b, 0.01) is None
    # a stricter level (the family's) needs more
    assert stats.seeds_needed(a, b, 0.01, alpha=0.05 / 6) > n


# --------------------------------------------------------------------------------------------
# Simulations where the truth is known


@pytest.mark.parametrize("n", [3, 5, 10])
def test_the_default_interval_covers_the_true_mean_95_percent_of_the_time(n):
    rng = np.random.default_rng(n)
    reps = 20000  # Monte-Carlo error of a 95% share: 0.15 points
    samples = rng.normal(0.9, 0.02, size=(reps, n))
    low, high = stats.intervals(list(samples))
    coverage = ((low <= 0.9) & (0.9 <= high)).mean()
    assert coverage >= 0.93, coverage
    assert coverage == pytest.approx(0.95, abs=0.006)


def test_the_percentile_bootstrap_at_3_seeds_is_what_the_default_replaced():
    """Why t: at 3 seeds a 95% bootstrap interval covers about 3 times in 4 (docs/statistics.md)."""
    rng = np.random.default_rng(5)
    samples = rng.normal(0, 1, size=(2000, 3))  # MC error 1 point at 75%
    low, high = stats.intervals(list(samples), "bootstrap")
    coverage = ((low <= 0) & (0 <= high)).mean()
    assert coverage < 0.85, coverage


def _verdicts(k: int, n: int, reps: int, seed: int, method: str = "t") -> np.ndarray:
    """Simulate `reps` sweeps of `k` optimizers with identical seed distributions, n seeds each, through
    stats.compare (the Holm-adjusted verdicts every reader prints): [reps, pairs] True where 'better'."""
    rng = np.random.default_rng(seed)
    sel = stats.selection_for("multiclass", True)
    out = []
    for _ in range(reps):
        best = [stats.Best("d", {"optimizer": f"o{i}"}, {}, sel, 0.9, {"mean": float(v.mean())}, v, list(range(n)),
                           False) for i, v in enumerate(rng.normal(0.9, 0.02, size=(k, n)))]
        out.append([c.verdict in ("a", "b") for c in stats.compare(best, method)])
    return np.array(out)


@pytest.mark.parametrize("n", [3, 5])
def test_under_identical_distributions_a_pair_is_called_better_at_most_5_percent_of_the_time(n):
    called = _verdicts(2, n, reps=2000, seed=n)[:, 0]  # one pair per sweep: no adjustment; MC error 0.5 pts
    assert called.mean() <= 0.05 + 0.01, called.mean()


def test_with_holm_the_chance_of_any_false_better_among_six_pairs_stays_at_5_percent():
    any_false = _verdicts(4, 3, reps=1000, seed=7).any(axis=1)  # 4 optimizers: 6 pairs; MC error 0.7 pts
    assert any_false.mean() <= 0.05 + 0.01, any_false.mean()


def _shown_intervals(means, n: int, reps: int, seed: int, method: str = "t", sd: float = 0.02):
    """Simulated sweeps of optimizers with these true means through stats.compare: per pair, whether
    the interval shown beside its verdict covers the true difference, whether it excludes 0, and
    whether the verdict says 'better'."""
    rng = np.random.default_rng(seed)
    sel = stats.selection_for("multiclass", True)
    rows = []
    for r in range(reps):
        vals = [rng.normal(m, sd, size=n) for m in means]
        best = [stats.Best("d", {"optimizer": f"o{i}"}, {}, sel, 0.9, {"mean": float(v.mean())}, v, list(range(n)),
                           False) for i, v in enumerate(vals)]
        for c in stats.compare(best, method):
            true = means[int(c.a[1:])] - means[int(c.b[1:])]
            rows.append((r, c.ci_low <= true <= c.ci_high, c.ci_low > 0 or c.ci_high < 0, c.verdict in ("a", "b"),
                         c.ci95_low <= true <= c.ci95_high))
    return pd.DataFrame(rows, columns=["rep", "covers", "excludes_0", "better", "covers95"])


@pytest.mark.parametrize("method,reps", [("t", 400), ("bootstrap", 40)])
def test_the_interval_beside_a_verdict_excludes_zero_exactly_when_the_verdict_says_better(method, reps):
    """388528c showed the unadjusted 95% interval beside the Holm-adjusted verdict: 'wine: +2.78 pts
    [+0.34, +5.22] — not distinguishable'. The interval shown is now at the level Holm's procedure
    tested the pair (stats.verdict_alpha), so the two never disagree."""
    r = _shown_intervals([0.9, 0.91, 0.92, 0.93], 5, reps, 11, method)
    assert (r.excludes_0 == r.better).all()
    assert r.better.any() and (~r.better).any()
    # the case of the issue: a p-value under 5% that Holm does not call better
    a, b, c = (np.array(x) for x in ([0.97, 0.99, 0.98], [0.95, 0.96, 0.94], [0.955, 0.965, 0.95]))
    sel = stats.selection_for("multiclass", True)
    best = [stats.Best("d", {"optimizer": k}, {}, sel, 0.9, {"mean": float(v.mean())}, v, [0, 1, 2], False)
            for k, v in (("a", a), ("b", b), ("c", c))]
    pair = next(x for x in stats.compare(best) if {x.a, x.b} == {"a", "c"})
    assert pair.p_value < 0.05 <= pair.p_adjusted and pair.verdict == "none"
    assert pair.ci95_low > 0 and pair.ci_low <= 0 <= pair.ci_high and pair.ci_level > 0.95


@pytest.mark.parametrize("means", [[0.9] * 4, [0.9, 0.91, 0.92, 0.93], [0.9, 0.93, 0.96, 0.99]])
def test_the_shown_intervals_cover_their_true_difference_at_least_95_percent_of_the_time(means):
    """Each interval beside a verdict is at 95% or more, so it covers its pair's true difference at
    least 95% of the time (measured 98-99% at 3-10 seeds); all six of a problem's intervals together
    cover 90-97% of the time, where the unadjusted 95% ones cover 80-84% (docs/statistics.md)."""
    r = _shown_intervals(means, 5, 600, 3)  # 3,600 intervals: MC error 0.4 pts at 95%
    assert r.covers.mean() >= 0.965, r.covers.mean()
    together, unadjusted = r.groupby("rep").covers.all().mean(), r.groupby("rep").covers95.all().mean()
    assert together >= 0.88 and together > unadjusted + 0.05, (together, unadjusted)


# --------------------------------------------------------------------------------------------
# Choosing


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
    assert (c.a, c.b, c.verdict) == ("adam", "sgd", "a") and c.p_better == 1.0 and c.family == 1
    assert c.diff == pytest.approx(0.08)
    line = words.comparison_line(c)
    assert line.startswith("adam vs sgd: +8.00 pts [")
    assert "P(adam > sgd) = 1.00, p = 0.020: adam is better" in line  # Welch: t = 0.08 / 0.0115 = 6.93, 2 df
    assert "the same seeds (0-2) chose each configuration" in words.seeds_note(list(best.values()))


def test_test_metrics_never_choose():
    with pytest.raises(UserError, match="test numbers never choose"):
        stats.selection_for("multiclass", True, select="best_test_acc")
    with pytest.raises(UserError, match="test numbers never choose"):
        stats.choose(trials_table([("adam", 0.01, 0, 0.9, 0.9)]),
                     stats.Selection("test_acc_at_best_val", True, "test_acc_at_best_val", True, True))


def test_verdict_words_never_contradict_the_seed_count():
    t = trials_table([("adam", 0.01, s, 0.9, v) for s, v in enumerate([0.90, 0.94, 0.92])]
                     + [("rmsprop", 0.01, s, 0.9, v) for s, v in enumerate([0.91, 0.93, 0.89])])
    (c,) = stats.compare(stats.best_configs(t))
    assert c.verdict == "none" and c.seeds_needed > 3
    line = words.comparison_line(c)
    assert "not distinguishable with 3 seeds; about" in line and "at 80% power" in line
    # two seeds a side: a t test exists, and the seeds it asks for are more than the two shown
    two = trials_table([("adam", 0.01, s, 0.9, 0.9 + s / 100) for s in range(2)]
                       + [("sgd", 0.01, s, 0.9, 0.895 + s / 100) for s in range(2)])
    (c,) = stats.compare(stats.best_configs(two))
    assert c.verdict == "none" and c.seeds_needed >= 3
    assert f"not distinguishable with 2 seeds; about {c.seeds_needed} seeds each" in words.comparison_line(c)
    one = trials_table([("adam", 0.01, 0, 0.9, 0.9), ("sgd", 0.01, 0, 0.9, 0.8), ("sgd", 0.01, 1, 0.9, 0.7)])
    (c,) = stats.compare(stats.best_configs(one))
    assert c.verdict == "n/a" and "too few seeds to tell (1; a test needs at least 2 a side)" in words.conclusion(c)


def test_a_confirm_stage_gives_the_result_and_tuning_stays_apart():
    t = trials_table([("adam", 0.01, s, 0.95, 0.90) for s in range(2)]
                     + [("adam", 0.1, s, 0.93, 0.99) for s in range(2)]
                     + [("adam", 0.01, s, 0.94, 0.91) for s in range(2, 6)])
    t.loc[t.seed >= 2, "stage"] = "confirm"
    (b,) = stats.best_configs(t)
    assert b.confirmed and b.seeds == [2, 3, 4, 5] and b.report["mean"] == pytest.approx(0.91)
    assert b.tuning["n"] == 2 and b.tuning["mean"] == pytest.approx(0.90)
    assert "confirmed on fresh seeds (2-5)" in words.seeds_note([b])


def test_across_optimizers_under_a_protocol_the_best_finalist_is_judged_on_its_fresh_seeds():
    """[expect] takes best_configs(per=()): adam confirmed at 0.94 and sgd at 0.70 must give adam."""
    t = trials_table([("adam", 0.01, s, 0.95, 0.93) for s in range(3)] + [("adam", 0.1, s, 0.5, 0.5) for s in range(3)]
                     + [("sgd", 0.1, s, 0.80, 0.75) for s in range(3)]
                     + [("adam", 0.01, s, 0.95, 0.94) for s in range(3, 6)]
                     + [("sgd", 0.1, s, 0.80, 0.70) for s in range(3, 6)])
    t["trial_id"] = [f"{9 - i % 10}{i}" for i in range(len(t))]  # ids in no helpful order
    t.loc[t.seed >= 3, "stage"] = "confirm"
    (b,) = stats.best_configs(t, per=())
    assert b.config["optimizer"] == "adam" and b.confirmed and b.report["mean"] == pytest.approx(0.94)


def test_without_validation_the_training_set_chooses_and_readers_are_told():
    t = trials_table([("adam", 0.01, 0, 0.9, 0.9)]).assign(best_val_loss=float("nan"), best_val_acc=float("nan"))
    sel = stats.selection_of(t)
    assert (sel.select, sel.report, sel.validation) == ("final_train_acc", "final_test_acc", False)
    assert "schema 1" in words.no_validation_note(t, {"schema_version": 1})
    assert "validation = 0" in words.no_validation_note(t, {"schema_version": 2})
    assert words.no_validation_note(trials_table([("adam", 0.01, 0, 0.9, 0.9)])) is None
    assert stats.selection_for("regression", True).report == "test_r2_at_best_val"
    assert stats.selection_for("regression", True).tie_breakers == (("best_val_r2", True),)
    assert stats.selection_for("objective", True).select == "best_val_loss"


def test_diverged_seeds_count_at_the_chosen_epoch_and_are_said():
    t = trials_table([("sgd", 1.0, 0, 0.95, 0.90), ("sgd", 1.0, 1, 0.96, 0.91, "diverged"), ("sgd", 1.0, 2, 0.94, 0.9)])
    (b,) = stats.best_configs(t)
    assert b.report["n"] == 3 and (b.diverged, b.runs) == (1, 3)
    assert words.diverged_text(b) == "1 of 3 diverged"


def test_the_test_split_resolution_is_said():
    t = trials_table([("adam", 0.01, s, 0.9, 0.9722) for s in range(3)]).assign(n_test=36.0)
    (b,) = stats.best_configs(t)
    assert b.test_size == 36
    assert words.resolution_note(b).startswith("test split: 36 samples (1 sample = 2.8 pts); the intervals cover "
                                               "seed-to-seed variation on this one split")


# --------------------------------------------------------------------------------------------
# Performance profiles and steps to a target


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
    with pytest.raises(ValueError):
        stats.performance_profile(pd.DataFrame({"a": [0.0], "b": [3.0]}))


def _profile_tables(curves, dataset="digits"):
    trows, hrows = [], []
    for (opt, seed), accs in curves.items():
        tid = f"{dataset}{opt}{seed}"
        trows.append({"trial_id": tid, "dataset": dataset, "validation": 0.1, "stage": "tune", "optimizer": opt,
                      "lr": 0.01, "seed": seed, "status": "ok", "best_val_loss": 0.1})
        hrows += [{"trial_id": tid, "epoch": e, "steps": 10 * e, "val_acc": a, "train_time": 0.5 * (e > 0)}
                  for e, a in enumerate(accs)]
    return pd.DataFrame(trows), pd.DataFrame(hrows)


def test_profile_costs_from_hand_made_histories():
    # one problem, two optimizers; val_acc per epoch, 2 seeds each; 10 steps per epoch
    t, h = _profile_tables({("adam", 0): [0.1, 0.8, 0.9], ("adam", 1): [0.1, 0.7, 0.9],
                            ("sgd", 0): [0.1, 0.3, 0.5], ("sgd", 1): [0.1, 0.4, 0.6]})
    pc = stats.profile_costs(t, h)
    # v* = 0.9 (adam's median at epoch 2), v0 = 0.1: target = 0.1 + 0.95 × 0.8 = 0.86
    assert pc.targets["digits"] == pytest.approx(0.86)
    assert pc.costs.loc["digits", "adam"] == 20 and pc.costs.loc["digits", "sgd"] == math.inf


def test_a_problem_whose_target_is_met_before_any_step_leaves_the_profile():
    # wine: nothing improves on the start, so its target is met at epoch 0 (cost 0)
    t1, h1 = _profile_tables({("adam", 0): [0.1, 0.88, 0.9], ("sgd", 0): [0.1, 0.5, 0.9]})
    t2, h2 = _profile_tables({("adam", 0): [0.9, 0.9, 0.9], ("sgd", 0): [0.9, 0.5, 0.4]}, dataset="wine")
    pc = stats.profile_costs(pd.concat([t1, t2]), pd.concat([h1, h2]))
    assert pc.dropped == ["wine"] and list(pc.costs.index) == ["digits"]
    assert pc.costs.loc["digits"].tolist() == [10.0, 20.0]


def test_bands():
    groups = [np.array([1.0, 2.0, 3.0]), np.array([5.0])]
    lo, hi = stats.band(groups, "minmax")
    assert lo.tolist() == [1.0, 5.0] and hi.tolist() == [3.0, 5.0]
    lo, hi = stats.band(groups, "std")
    assert lo[0] == pytest.approx(1.0) and hi[0] == pytest.approx(3.0) and math.isnan(lo[1])
    lo, hi = stats.band(groups, "ci")
    assert (lo[0], hi[0]) == pytest.approx((2 - sps.t.ppf(0.975, 2) / math.sqrt(3), 2 + sps.t.ppf(0.975, 2) / 3 ** .5))
    assert math.isnan(lo[1])
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
    assert words.edge_note(best["adam"]) == ("adam: lr=0.1 is the largest value tried; the best may lie beyond the "
                                             "range swept")
    assert words.edge_note(best["sgd"]) is None


def test_means_equal_up_to_round_off_are_equal():
    a, b = np.array([0.9579, 0.9526, 0.9632]), np.array([0.9632, 0.9526, 0.9579])
    t = trials_table([("adam", 0.01, s, 0.9, v) for s, v in enumerate(a)]
                     + [("sgd", 0.01, s, 0.9, v) for s, v in enumerate(b)])
    (c,) = stats.compare(stats.best_configs(t))
    assert c.seeds_needed is None
    assert words.comparison_line(c).endswith("not distinguishable with 3 seeds; the means are equal")


@pytest.mark.parametrize("a,b,expected", [
    ([0.9, 0.9, 0.9], [0.9, 0.9, 0.9], 0.5),  # identical samples
    ([0.1, 0.2], [0.3, 0.4, 0.5], 0.0),  # every run of A below every run of B
    ([0.6, 0.7, 0.8], [0.1, 0.2], 1.0),
    ([1, 2, 3], [2, 2, 2], 0.5),  # 3 wins, 3 ties (1.5), 3 losses of 9
    ([3, 4], [1, 3, 5], 3.5 / 6),  # by hand: 3>1, 3=3 (1/2), 4>1, 4>3 out of 6 pairs
])
def test_probability_of_improvement_counts_pairs(a, b, expected):
    assert stats.prob_improvement(a, b) == pytest.approx(expected)
    u = sps.mannwhitneyu(a, b, alternative="two-sided").statistic  # rliable's definition: U / (n_A n_B)
    assert stats.prob_improvement(a, b) == pytest.approx(u / (len(a) * len(b)))
    # for a loss (lower is better) the same values read the other way round
    assert stats.prob_improvement(a, b, higher=False) == pytest.approx(1 - expected)


def test_a_loss_that_goes_negative_keeps_its_interval_below_zero():
    """DeepOBS rosenbrock's validation loss has a noise term: seed means near -0.0146. Clipped at 0
    (the old rule for every loss), its interval printed as [0, 0]; only cross-entropy and its kin
    cannot go below 0."""
    values = [-0.0151, -0.0139, -0.0149]
    t = trials_table([("adam", 0.01, s, 0.9, 0.9) for s in range(3)]).assign(loss="problem", best_val_loss=values)
    g = stats.group_stats(t, "best_val_loss").iloc[0]
    assert g.ci_high < 0 and g.ci_low < g["mean"] < g.ci_high
    assert g.ci_low == pytest.approx(np.mean(values) - sps.t.ppf(0.975, 2) * np.std(values, ddof=1) / math.sqrt(3))
    ce = stats.group_stats(t.assign(loss="cross_entropy", best_val_loss=[0.01, 0.02, 0.30]), "best_val_loss").iloc[0]
    assert ce.ci_low == 0.0  # a cross-entropy mean is never below 0: clipped there
    best = stats.best_configs(t.assign(dataset="rosenbrock", task="objective", best_val_acc=np.nan,
                                       test_loss_at_best_val=values))[0]
    assert best.report["ci_high"] < 0  # what show and report print


def test_ties_are_relative_at_every_scale():
    """Means equal up to round-off tie (1e-12 relative); 1e-13 and 9e-13 are 9 times apart, not tied
    (the old absolute floor of 1e-12 called every pair of means below 1e-12 tied)."""
    assert not stats.same(1e-13, 9e-13) and stats.same(1e-13, 1e-13 * (1 + 1e-15))
    assert stats.same(0.0, 0.0) and not stats.same(0.0, 1e-300)
    assert stats.same(0.1 + 0.2, 0.3) and not stats.same(0.3, 0.3 + 1e-10)
    t = trials_table([("adam", lr, s, 0.9, 0.9) for lr in (0.01, 0.1) for s in range(2)])
    t["best_val_loss"] = [1e-13, 1e-13, 9e-13, 9e-13]
    t["task"] = "objective"
    sel = stats.Selection("best_val_loss", False, "test_acc_at_best_val", True, True)
    choice = stats.choose(t, sel)
    assert choice.config["lr"] == 0.01 and choice.tied == [] and choice.decided_by is None
