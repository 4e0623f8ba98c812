"""dlbench plot: the data step of each figure on hand-made tables, rendering to every format,
and bad input."""

import math

import numpy as np
import pandas as pd
import pytest

from dlbench.errors import UserError
from dlbench.plots import curves, heatmap, lr, profile, target, timing
from dlbench.plots._common import Results


def hand_made(rows, val=None):
    """rows: (trial_id, optimizer, lr, batch_size, seed, status, [test_acc per epoch 0..E]); the
    validation accuracy per epoch is the test accuracy unless `val` maps a trial id to its own."""
    trials, history = [], []
    for tid, opt, rate, bs, seed, status, accs in rows:
        div = len(accs) - 1 if status == "diverged" else None
        vals = (val or {}).get(tid, accs)
        finite = [v if np.isfinite(v) else -1 for v in vals]
        best_epoch = int(np.argmax(finite))
        trials.append(dict(trial_id=tid, sweep="s", optimizer=opt, lr=rate, batch_size=bs, seed=seed, status=status,
                           diverged_epoch=div, engine="fused", dataset="digits", best_epoch=best_epoch,
                           best_val_acc=max(finite), best_val_loss=1 - max(finite)))
        for e, (a, v) in enumerate(zip(accs, vals, strict=True)):
            history.append(dict(trial_id=tid, sweep="s", optimizer=opt, lr=rate, batch_size=bs, seed=seed,
                                status=status, diverged_epoch=div, dataset="digits", epoch=e, steps=e * 1000 // bs,
                                samples=e * 1000, test_acc=a, test_loss=1 - a if np.isfinite(a) else np.nan,
                                val_acc=v, val_loss=1 - v if np.isfinite(v) else np.nan, best_epoch=best_epoch,
                                train_time=0.0 if e == 0 else 0.5, eval_time=0.1, time=0.5 * e))
    return Results(pd.DataFrame(trials), pd.DataFrame(history))


ROWS = [
    ("a0", "sgd", 0.1, 10, 0, "ok", [0.1, 0.5, 0.7]),
    ("a1", "sgd", 0.1, 10, 1, "ok", [0.1, 0.3, 0.9]),
    ("b0", "sgd", 1.0, 10, 0, "diverged", [0.1, 0.6, np.nan]),
    ("b1", "sgd", 1.0, 10, 1, "ok", [0.1, 0.2, 0.4]),
    ("c0", "sgd", 0.1, 100, 0, "ok", [0.1, 0.2, 0.3]),
    ("c1", "sgd", 0.1, 100, 1, "ok", [0.1, 0.2, 0.5]),
    ("d0", "sgd", 1.0, 100, 0, "ok", [0.1, 0.85, 0.95]),
    ("d1", "sgd", 1.0, 100, 1, "ok", [0.1, 0.8, 0.95]),
]


def test_curves_band_is_min_max_over_seeds_and_diverged_is_marked():
    info = curves.curves_info(hand_made(ROWS), "test_acc", band="minmax")
    assert info.band_label == "band: min–max over seeds (N = 2 seeds)"
    c = next(c for c in info.curves if c.lr == 0.1 and c.style_key == "batch_size=10")
    assert c.x == [0, 1, 2] and c.mean == pytest.approx([0.1, 0.4, 0.8])
    assert c.lo == pytest.approx([0.1, 0.3, 0.7]) and c.hi == pytest.approx([0.1, 0.5, 0.9])
    d = next(c for c in info.curves if c.lr == 1.0 and c.style_key == "batch_size=10")
    # the diverged seed drops out where its value is NaN, and is marked at its last finite value
    assert d.mean == pytest.approx([0.1, 0.4, 0.4]) and d.diverged == [(2.0, 0.6)]
    assert info.style_keys == ["batch_size=10", "batch_size=100"]


def test_curves_band_by_default_is_a_t_interval_and_says_so():
    rows = [(f"t{s}", "adam", 0.1, 10, s, "ok", [0.1, 0.5 + s / 100, 0.8 + s / 50]) for s in range(4)]
    info = curves.curves_info(hand_made(rows), "test_acc")
    (c,) = info.curves
    # by hand: mean 0.83, s = 0.025820, t_{0.975, 3} = 3.182446: 0.83 ± 0.041085
    vals = np.array([0.8 + s / 50 for s in range(4)])
    half = 3.182446305284263 * vals.std(ddof=1) / 2
    assert c.lo[2] == pytest.approx(0.83 - half, abs=1e-12) and c.hi[2] == pytest.approx(0.83 + half, abs=1e-12)
    assert (c.lo[2], c.hi[2]) == pytest.approx((0.788915, 0.871085), abs=1e-6)
    assert info.band_label == "band: 95% Student's t interval of the mean (N = 4 seeds)"
    few = curves.curves_info(hand_made([r for r in ROWS if r[4] == 0]), "test_acc")
    assert "none below 2" in few.band_label and all(math.isnan(v) for c in few.curves for v in c.lo)
    std = curves.curves_info(hand_made(rows), "test_acc", band="std").curves[0]
    vals = np.array([0.8 + s / 50 for s in range(4)])
    assert std.hi[2] == pytest.approx(vals.mean() + vals.std(ddof=1))
    boot = curves.curves_info(hand_made(rows), "test_acc", method="bootstrap")
    assert boot.band_label == "band: 95% bootstrap interval of the mean (BCa) (N = 4 seeds)"


def test_lr_sensitivity_follows_the_tables_rule_for_diverged_seeds():
    # final numbers: a diverged seed has none
    info = lr.lr_info(hand_made(ROWS), "test_acc", "final", band="minmax")
    line = next(ln for ln in info.lines if "10" in ln.name.split())
    assert line.lr == [0.1, 1.0]
    assert line.mean == pytest.approx([0.8, 0.4])  # lr 1.0: only the seed that did not diverge
    assert line.diverged_lr == [1.0] and line.diverged == [(1, 2)]
    # at the validation-chosen epoch (the default, as in the tables): it counts, stopped before it diverged
    best = lr.lr_info(hand_made(ROWS), "test_acc", band="minmax")
    line = next(ln for ln in best.lines if "10" in ln.name.split())
    assert best.stat == "best"
    assert line.n == [2, 2] and line.hi[1] == pytest.approx(0.6) and line.diverged == [(1, 2)]
    # "best" is the test value at the epoch validation chose, not the best test value over epochs
    chosen = lr.lr_info(hand_made(ROWS, val={"a1": [0.1, 0.9, 0.2]}), "test_acc", "best", band="minmax")
    assert next(ln for ln in chosen.lines if "10" in ln.name.split()).hi[0] == pytest.approx(0.7)  # a0 @ 2, a1 @ 1
    # the lr validation chose is ringed: per line, the tables' choice
    assert {ln.name: ln.chosen_lr for ln in info.lines} == {"sgd bs 10": 0.1, "sgd bs 100": 1.0}


def test_heatmap_cells_hatches_and_best_cell():
    info = heatmap.heatmap_info(hand_made(ROWS), "test_acc", ("lr", "batch_size"))
    (p,) = info.panels
    assert p.cols == [0.1, 1.0] and p.rows == [10, 100]
    assert p.values[0, 0] == pytest.approx(0.8) and p.values[1, 1] == pytest.approx(0.95)
    assert p.diverged.tolist() == [[False, True], [False, False]]
    assert p.best == (1, 1)
    loss = heatmap.heatmap_info(hand_made(ROWS), "test_loss", ("lr", "batch_size"))
    assert loss.panels[0].best == (1, 1)  # lowest loss is the same cell
    assert info.chosen_by == "best_val_acc"


def test_heatmap_outlines_the_cell_validation_chose_not_the_best_test_cell():
    val = {"a0": [0.1, 0.99, 0.99], "a1": [0.1, 0.99, 0.99]}  # lr 0.1, bs 10 is best on validation
    info = heatmap.heatmap_info(hand_made(ROWS, val=val), "test_acc", ("lr", "batch_size"))
    assert info.panels[0].best == (0, 0) and info.panels[0].values[1, 1] > info.panels[0].values[0, 0]


def test_steps_to_target_takes_the_best_lr_and_keeps_not_reached():
    info = target.target_info(hand_made(ROWS), "val_acc", target=0.85)
    (line,) = info.lines
    assert line.batch_size == [10, 100]
    # bs 10: lr 0.1 reaches 0.85 with one seed at epoch 2 (200 steps), the other never: median is inf,
    # lr 1.0 never: not reached. bs 100: lr 1.0 reaches at epoch 1 (10 steps) with seed 0 and at
    # epoch 2 (20 steps) with seed 1: the median is 15 steps, 1.5 epochs, 0.75 s.
    assert math.isnan(line.steps[0]) and math.isnan(line.best_lr[0])
    assert line.steps[1] == 15 and line.epochs[1] == 1.5 and line.best_lr[1] == 1.0 and line.seconds[1] == 0.75
    easy = target.target_info(hand_made(ROWS), "val_acc", target=0.3)
    assert easy.lines[0].steps == [100.0, 10.0]
    with pytest.raises(UserError, match="test numbers never choose"):
        target.target_info(hand_made(ROWS), "test_acc", target=0.3)


def test_default_target_and_timing_records():
    info = target.target_info(hand_made(ROWS), "val_acc")
    # the profile's rule: v0 = 0.1 (epoch 0), v* = 0.95 (lr 1.0, bs 100 at epoch 2): 0.1 + 0.95 × 0.85
    assert info.default_target and info.target == pytest.approx(0.1 + 0.95 * 0.85)
    t = timing.timing_info(hand_made(ROWS))
    assert t.configs == ["sgd bs 10", "sgd bs 100"] and t.train_s == [0.5, 0.5] and t.eval_s == [0.1, 0.1]


MAGIC = {"png": b"\x89PNG", "svg": b"<?xml", "pdf": b"%PDF"}


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    from dlbench.cli import main

    out = tmp_path_factory.mktemp("plots")
    try:
        main(["sweep", "--dataset", "iris", "--optimizer", "sgd,adam", "--lr", "0.01,0.1,3", "--batch-size", "8,full",
              "--epochs", "3", "--seeds", "0,1", "--name", "p", "--out", str(out), "--workers", "1"])
    except SystemExit as e:
        assert e.code == 0
    return out / "p"


@pytest.mark.parametrize("fmt", ["png", "svg", "pdf"])
def test_every_kind_renders_to_every_format(cli, sweep_dir, tmp_path, fmt):
    r = cli("plot", sweep_dir, "--format", fmt, "--out", tmp_path)
    assert r.code == 0, r.err
    files = sorted(tmp_path.glob(f"*.{fmt}"))
    kinds = {f.name.split("-")[0].split(".")[0] for f in files}
    assert kinds == {"curves", "lr", "heatmap", "target", "budget", "timing"}
    for f in files:
        assert f.read_bytes().startswith(MAGIC[fmt]), f
        assert f"wrote {f}" in r.out


def test_curves_by_other_x_and_two_sweeps_compared(cli, sweep_dir, tmp_path):
    import shutil

    other = tmp_path / "q"
    shutil.copytree(sweep_dir, other)
    for x in ("step", "samples", "time"):
        r = cli("plot", sweep_dir, "--kind", "curves", "--x", x, "--out", tmp_path)
        assert r.code == 0 and (tmp_path / f"curves-test_acc-by-{x}.png").exists()
    r = cli("plot", sweep_dir, other, "--kind", "lr", "--out", tmp_path)
    assert r.code == 0 and (tmp_path / "lr-test_acc-p-vs-q.png").exists()


@pytest.mark.parametrize("args,message", [
    (["--metric", "test_accuracy"], "did you mean 'test_acc'"),
    (["--metric", "test_r2"], "has no values in these results"),
    (["--kind", "violin"], "--kind 'violin' is unknown"),
    (["--format", "jpg"], "--format 'jpg'"),
    (["--x", "wallclock"], "--x 'wallclock'"),
    (["--axes", "lr"], "is not two names"),
    (["--axes", "lr,colour"], "--axes 'colour'"),
    (["--band", "iqr"], "--band 'iqr' is unknown; allowed: ci, std, minmax, none"),
    (["--stat", "max"], "--stat 'max' is unknown; allowed: best, final"),
    (["--ci", "wilson"], "--ci 'wilson' is unknown; allowed: t, bootstrap"),
    (["--kind", "target", "--metric", "test_acc"], "test numbers never choose"),
    (["--kind", "profile"], "at least 2 problems"),
])
def test_bad_plot_input(cli, sweep_dir, tmp_path, args, message):
    r = cli("plot", sweep_dir, *args, "--out", tmp_path / "x")
    assert r.code == 2 and message in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert not (tmp_path / "x").exists()


def test_a_kind_the_data_cannot_support(cli, tmp_path):
    from dlbench.cli import main

    try:
        main(["sweep", "--dataset", "iris", "--epochs", "1", "--name", "one", "--out", str(tmp_path), "--workers", "1"])
    except SystemExit:
        pass
    for kind, message in (("heatmap", "needs two axes"), ("target", "needs several batch sizes"),
                          ("lr", "needs several learning rates")):
        r = cli("plot", tmp_path / "one", "--kind", kind)
        assert r.code == 2 and message in r.err, (kind, r.err)
    r = cli("plot", tmp_path)
    assert r.code == 2 and "not a dlbench results folder" in r.err


def test_performance_profile_over_problems_from_one_folder_or_several(cli, tmp_path):
    from dlbench.cli import main
    from dlbench.plots import _common

    for name, datasets in (("two", "iris,wine"), ("third", "breast_cancer")):
        try:
            main(["sweep", "--dataset", datasets, "--optimizer", "sgd,adam", "--lr", "0.01,0.1", "--epochs", "3",
                  "--seeds", "0,1", "--name", name, "--out", str(tmp_path), "--workers", "1"])
        except SystemExit as e:
            assert e.code == 0
    r = cli("plot", tmp_path / "two", "--kind", "profile", "--out", tmp_path / "p")
    assert r.code == 0, r.err
    assert (tmp_path / "p" / "profile.png").exists()
    info = profile.profile_info(_common.load([str(tmp_path / "two")]))
    assert info.problems == ["iris mlp[128] relu", "wine mlp[128] relu"] and info.solvers == ["adam", "sgd"]
    costs = info.costs.costs.to_numpy()
    # on each problem the cheapest optimizer has ratio 1: ρ(1) summed over optimizers covers every problem
    assert sum(info.rhos[s][0] for s in info.solvers) * len(info.problems) >= len(info.problems)
    assert (costs > 0).all() and set(info.costs.metrics.values()) == {"val_acc"}
    both = profile.profile_info(_common.load([str(tmp_path / "two"), str(tmp_path / "third")]))
    assert len(both.problems) == 3 and both.problems[0].startswith("third breast_cancer")
    r = cli("plot", tmp_path / "two", "--out", tmp_path / "all")  # 'all' draws it when there are 2+ problems
    assert r.code == 0 and (tmp_path / "all" / "profile.png").exists()


def test_out_that_is_a_file_is_one_line_not_a_traceback(cli, sweep_dir, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    for out in (blocker, blocker / "plots"):
        r = cli("plot", sweep_dir, "--kind", "timing", "--out", out)
        assert r.code == 2 and "is a file" in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert blocker.read_text() == "keep me"


def test_the_timing_figure_says_evaluation_covers_the_validation_set_too():
    fig = timing.draw(timing.timing_info(hand_made(ROWS)))
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "eval (train, validation and test sets)" in labels
