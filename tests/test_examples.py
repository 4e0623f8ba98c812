"""The examples of docs/your-own.md run as written (made small with --set), and the recipe "Is my
optimizer better than Adam?" does what it says: tuned then confirmed, reported, and extended by
one more optimizer without training anything twice."""

import shutil
import tomllib

import pandas as pd
import pytest

from tests.conftest import ROOT, run_dlbench

EXAMPLES = ROOT / "experiments" / "examples"
SMALL = ["--set", "epochs=2", "--seeds", "0,1"]


@pytest.mark.slow
@pytest.mark.parametrize("spec,datasets", [("own-optimizer", {"digits"}), ("own-model", {"mnist1d"}),
                                           ("own-data", {"breast_cancer.csv"})])
def test_each_example_runs_from_the_checkout(tmp_path, spec, datasets):
    r = run_dlbench("sweep", EXAMPLES / f"{spec}.toml", *SMALL, "--out", tmp_path, cwd=tmp_path)
    assert r.code == 0, r.err
    t = pd.read_parquet(tmp_path / spec / "trials.parquet")
    assert set(t.dataset) == datasets and (t.status == "ok").all() and (t.engine == "fused").all()


def test_the_example_csv_is_scikit_learns_breast_cancer():
    from sklearn.datasets import load_breast_cancer

    table = pd.read_csv(EXAMPLES / "breast_cancer.csv")
    frame = load_breast_cancer(as_frame=True).frame
    assert table.shape == frame.shape and (table.diagnosis.to_numpy() == frame.target.to_numpy()).all()
    assert abs(table.drop(columns="diagnosis").to_numpy() - frame.drop(columns="target").to_numpy()).max() < 1e-3


def test_the_recipe_is_the_small_suite_plus_your_optimizer():
    recipe = tomllib.loads((EXAMPLES / "better-than-adam.toml").read_text())
    suite = tomllib.loads((ROOT / "experiments" / "benchmarks" / "small-suite.toml").read_text())
    yours = recipe["grid"].pop()
    assert yours["optimizer"] == "./my_optimizer.py:Signum"
    assert recipe.pop("focus") == yours["optimizer"]
    for key in ("name", "description"):
        recipe.pop(key), suite.pop(key)
    assert recipe == suite


@pytest.mark.slow
def test_the_recipe_tunes_confirms_reports_and_extends_without_training_twice(tmp_path):
    """On two of its problems and few epochs and seeds: the mechanics, not the verdicts."""
    spec = tmp_path / "better.toml"
    shutil.copy(EXAMPLES / "my_optimizer.py", tmp_path)
    text = (EXAMPLES / "better-than-adam.toml").read_text()
    spec.write_text(text)
    args = ["--dataset", "wine,breast_cancer", "--set", "epochs=2", "--set", "protocol.confirm_seeds=2", "--seeds",
            "0,1", "--out", tmp_path]
    r = run_dlbench("sweep", spec, *args)
    assert r.code == 0, r.err
    t = pd.read_parquet(tmp_path / "better-than-adam" / "trials.parquet")
    confirmed = t[t.stage == "confirm"]
    assert set(confirmed.optimizer) == {"sgd", "momentum", "rmsprop", "adam", "./my_optimizer.py:Signum"}
    out = " ".join(r.out.split())
    assert "vs Signum" in out and "./my_optimizer.py:Signum against each other optimizer" in out  # focus = yours
    report = run_dlbench("report", tmp_path / "better-than-adam")
    assert report.code == 0, report.err
    html = (tmp_path / "better-than-adam" / "report.html").read_text()
    assert 'data-kind="profile"' in html and "Signum" in html
    # one more optimizer: only its trials train, in both stages
    spec.write_text(text + '\n[[grid]]\noptimizer = "torch.optim:NAdam"\nlr = { log = [3e-5, 3e-2], num = 7 }\n')
    again = run_dlbench("sweep", spec, *args)
    assert again.code == 0, again.err
    n_before = len(t[t.stage == "tune"])
    assert f"stage 1 (tune): {n_before} done, 28 to run" in again.out  # 2 problems × 7 lrs × 2 seeds
    assert "stage 2 (confirm): 20 done, 4 to run" in again.out  # 2 problems × 2 fresh seeds for NAdam
    after = pd.read_parquet(tmp_path / "better-than-adam" / "trials.parquet")
    old = after[after.trial_id.isin(t.trial_id)].set_index("trial_id").sort_index()
    pd.testing.assert_series_equal(old.best_val_loss, t.set_index("trial_id").sort_index().best_val_loss)
