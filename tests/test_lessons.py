"""One test per lesson: a CI-sized run asserting what the data showed on every seed tried
(measured first at full size; see docs/lessons.md)."""

import math

import pandas as pd
import pytest

from dlbench.errors import UserError
from dlbench.lessons import all_lessons, load_lesson
from dlbench.runner import run_sweep


def run(name, tmp_path, *overrides):
    from rich.console import Console

    sweep = load_lesson(name, list(overrides))
    assert run_sweep(sweep, tmp_path, workers=1, console=Console(file=open("/dev/null", "w"))) == 0
    d = tmp_path / sweep.name
    trials = pd.read_parquet(d / "trials.parquet")
    history = pd.read_parquet(d / "history.parquet").merge(
        trials.drop(columns=[c for c in trials if c in ("optimizer", "lr", "batch_size", "seed", "dataset", "epochs")]
                    + ["status", "diverged_epoch"], errors="ignore"), on="trial_id", suffixes=("", "_t"))
    return trials, history


def test_every_lesson_has_a_claim_and_figures():
    assert len(all_lessons()) >= 7
    for name in all_lessons():
        lesson = load_lesson(name).lesson
        assert lesson["claim"] and lesson["figures"] and lesson["metric"]


def test_gd_vs_sgd(tmp_path):
    trials, history = run("gd-vs-sgd", tmp_path, "epochs=4")
    per_epoch = trials.set_index("batch_size").steps / 4
    assert per_epoch.loc[1].tolist() == [1437] * 3 and per_epoch.loc[32].tolist() == [45] * 3
    assert per_epoch.loc[1437].tolist() == [1] * 3
    final = trials.pivot_table(index="seed", columns="batch_size", values="final_train_loss")
    assert (final[1] < final[32]).all() and (final[32] < final[1437]).all()  # more updates, lower loss per epoch
    for _, g in history[history.batch_size == 1437].groupby("trial_id"):
        assert g.sort_values("epoch").train_eval_loss.is_monotonic_decreasing  # the exact gradient never goes up


def test_learning_rate(tmp_path):
    trials, history = run("learning-rate", tmp_path, "epochs=3", "grid.lr=[1e-4, 0.1, 10.0]")
    by = trials.groupby("lr")
    assert (by.get_group(10.0).status == "diverged").all()
    start = history[history.epoch == 0].train_eval_loss.iloc[0]
    assert (by.get_group(1e-4).final_train_loss > 0.98 * start).all()  # crawls: under 2% in 3 epochs
    assert (by.get_group(0.1).final_train_loss < 0.5 * start).all()


def test_optimizers(tmp_path):
    trials, _ = run("optimizers", tmp_path, "epochs=3", "grid.lr=[1e-3, 1e-2]")
    final = trials.pivot_table(index=["seed", "lr"], columns="optimizer", values="final_test_loss")
    assert (final.adagrad > final.rmsprop).all()  # the decaying cache keeps its steps from shrinking
    assert (final.xs(1e-3, level="lr").momentum < final.xs(1e-3, level="lr").sgd).all()


def test_epochs_and_iterations(tmp_path):
    trials, history = run("epochs-and-iterations", tmp_path, "epochs=2")
    first = history[history.epoch == 1].set_index("batch_size")
    for b in (1, 7, 32, 119):
        assert first.loc[b, "steps"] == math.ceil(119 / b)
        assert first.loc[b, "samples"] == 119  # one epoch = one pass over the data


def test_linear_stack_cannot_solve_xor(tmp_path):
    trials, _ = run("linear-stack-xor", tmp_path, "epochs=15")
    acc = trials.groupby("model").final_test_acc
    assert acc.min()["mlp[16-16] relu"] >= 0.9
    assert acc.max()["mlp[16-16] none"] <= 0.7
    assert acc.max()["mlp[16-16] none"] == pytest.approx(acc.max()["linear"], abs=0.02)


def test_losses_by_task(tmp_path):
    trials, _ = run("losses-by-task", tmp_path, "epochs=10")
    t = trials.set_index("dataset")
    assert set(zip(trials.dataset, trials.loss, strict=True)) == {("diabetes", "mse"), ("breast_cancer", "bce"),
                                                     ("digits", "cross_entropy")}
    assert (t.loc["breast_cancer"].final_test_acc >= 0.9).all() and (t.loc["digits"].final_test_acc >= 0.9).all()
    assert (t.loc["diabetes"].final_test_r2 >= 0.2).all()
    with pytest.raises(UserError, match="does not fit dataset 'diabetes'"):
        load_lesson("losses-by-task", ["loss='cross_entropy'", "dataset='diabetes'"])


def test_accumulator_start_changes_early_training(tmp_path):
    trials, history = run("accumulator-start", tmp_path, "epochs=2")
    first = history[history.epoch == 1].pivot_table(index=["seed", "lr"], columns="initial_accumulator_value",
                                                    values="train_eval_loss")
    assert (first[0.0] < first[0.1]).all()  # a cache that starts at 0 takes bigger first steps


def test_a_lesson_stopped_by_a_signal_draws_nothing(tmp_path, monkeypatch):
    import dlbench.plots
    import dlbench.runner
    from dlbench.lessons import run_lesson

    drawn = []
    monkeypatch.setattr(dlbench.runner, "run_sweep", lambda *a, **k: 130)
    monkeypatch.setattr(dlbench.plots, "make_plots", lambda *a, **k: drawn.append(a) or [])
    assert run_lesson("gd-vs-sgd", str(tmp_path)) == (130, []) and drawn == []


def _raw(name: str) -> dict:
    import tomllib

    from dlbench.lessons import all_lessons

    return tomllib.loads(all_lessons()[name].read_text())


def _sweep(raw: dict, tmp_path):
    from rich.console import Console

    from dlbench.spec import build_sweep

    raw = {k: v for k, v in raw.items() if k not in ("expect", "lesson")}
    s = build_sweep({**raw, "name": "ci"})
    assert run_sweep(s, tmp_path, workers=1, console=Console(file=open("/dev/null", "w"))) == 0
    return pd.read_parquet(tmp_path / "ci" / "trials.parquet")


@pytest.mark.slow
def test_grokking(tmp_path):
    """CI size (p = 31, 800 steps, lr 3e-3, seed 0; seeds 1 and 2 measured too): both fit the
    training pairs, only weight decay lifts the held-out accuracy; full size: docs/lessons.md."""
    raw = {**_raw("grokking"), "p": 31, "max_steps": 800, "eval_every": 200, "seeds": [0], "lr": [3e-3]}
    t = _sweep(raw, tmp_path).set_index("optimizer")
    assert t.loc["nodecay", "final_train_acc"] == 1.0 and t.loc["nodecay", "best_val_acc"] < 0.6
    assert t.loc["decay", "best_val_acc"] > t.loc["nodecay", "best_val_acc"] + 0.3


@pytest.mark.slow
def test_adam_vs_sgd_transformer(tmp_path):
    """CI size: the text problem alone at each optimizer's best lr of the full run, 300 steps."""
    grids = [g for g in _raw("adam-vs-sgd-transformer")["grid"] if g["dataset"] == "shakespeare"]
    for g, lr in zip(grids, (3e-3, 0.3), strict=True):
        g.update(lr=[lr], max_steps=300, eval_every=100)
    t = _sweep({**_raw("adam-vs-sgd-transformer"), "grid": grids, "seeds": [0, 1]}, tmp_path)
    loss = t.pivot_table(index="seed", columns="optimizer", values="best_val_loss")
    assert (loss.adam < loss.momentum).all()


@pytest.mark.slow
def test_muon_vs_adamw(tmp_path):
    """CI size: each at its best lr of the full run, 300 steps: Muon on the hidden matrices is ahead."""
    raw = {k: v for k, v in _raw("muon-vs-adamw").items() if k != "optimizer"}
    raw.update(grid=[{"optimizer": "adamw", "lr": [3e-3]}, {"optimizer": "muon", "lr": [9.487e-3]}], max_steps=300,
               eval_every=100, seeds=[0, 1])
    t = _sweep(raw, tmp_path)
    best = t.groupby(["optimizer", "seed"]).best_val_loss.min().unstack("optimizer")
    assert (best.muon < best.adamw).all()
