"""Optuna's samplers as a search ([search] kind = "optuna"): ask a batch, train it fused, tell the
mean over seeds of the selection metric; the study in the folder's journal, so a rerun trains
nothing and a killed sweep resumes to what an uninterrupted one gives; seeded, so two folders of
one spec hold the same points; every sampler; a missing Optuna said in one line."""

import os
import signal
import subprocess
import sys

import optuna  # the `optuna` extra, which the README's test command installs: missing, a failure
import pandas as pd
import pytest

from tests.conftest import result_tables, run_dlbench, start_dlbench, wait_for_line, write

SPEC = """
name = "o"
dataset = "digits"
model = { kind = "mlp", hidden = [16], activation = "relu" }
epochs = 2
batch_size = 64
seeds = [0]

[grid]
optimizer = ["sgd", "adam"]
lr = { log = [1e-4, 1.0] }

[search]
kind = "optuna"
sampler = "tpe"
budget = 24
batch = 6
"""


def test_a_tpe_sweep_stores_its_budget_and_journal_reruns_with_nothing_to_run_and_repeats_its_points(tmp_path, cli):
    spec = write(tmp_path / "o.toml", SPEC)
    r = cli("sweep", spec, "--out", tmp_path / "a")
    assert r.code == 0, r.err
    t = pd.read_parquet(tmp_path / "a" / "o" / "trials.parquet")
    assert len(t) == 24 and t.trial_id.is_unique and set(t.optimizer) <= {"sgd", "adam"}
    assert (tmp_path / "a" / "o" / "optuna-journal.log").exists()
    out = " ".join(r.out.split())
    assert "asked 6 point(s), 24 of 24" in out
    again = cli("sweep", spec, "--out", tmp_path / "a")
    assert again.code == 0 and "24 done, 0 to run of the points asked" in " ".join(again.out.split())
    assert "asked" not in again.out.split("of the points asked")[1]  # nothing new asked
    other = cli("sweep", spec, "--out", tmp_path / "b")
    assert other.code == 0, other.err
    u = pd.read_parquet(tmp_path / "b" / "o" / "trials.parquet")
    assert sorted(t.trial_id) == sorted(u.trial_id)  # the same points: the sampler is seeded per batch

    # what each study was told: the mean over the point's seeds of the selection metric (one seed here)
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(study_name="grid1", storage=JournalStorage(JournalFileBackend(
        str(tmp_path / "a" / "o" / "optuna-journal.log"))))
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE  # validation accuracy chooses
    told = sorted(tr.value for tr in study.trials)
    assert told == sorted(t.best_val_acc)


def test_the_value_told_is_the_mean_over_seeds_and_a_protocol_confirms_the_best(tmp_path, cli):
    spec = write(tmp_path / "o.toml", SPEC.replace("seeds = [0]", "seeds = [0, 1]").replace("budget = 24", "budget = 6")
                 .replace("batch = 6", "batch = 3") + '\n[protocol]\nselect = "best_val_loss"\nconfirm_seeds = 2\n')
    r = cli("sweep", spec, "--out", tmp_path)
    assert r.code == 0, r.err
    t = pd.read_parquet(tmp_path / "o" / "trials.parquet")
    tune = t[t.stage == "tune"]
    assert len(tune) == 12 and len(t[t.stage == "confirm"]) == 4  # 6 points × 2 seeds; 2 optimizers × 2 fresh
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(study_name="grid1", storage=JournalStorage(JournalFileBackend(
        str(tmp_path / "o" / "optuna-journal.log"))))
    assert study.direction == optuna.study.StudyDirection.MINIMIZE  # the protocol's select
    means = tune.groupby(["optimizer", "lr"]).best_val_loss.mean()
    for tr in study.trials:
        opt = ["sgd", "adam"][tr.params["optimizer"]]
        match = [v for (o, lr), v in means.items() if o == opt and abs(lr - tr.params["lr"]) <= 1e-9 * lr]
        assert len(match) == 1 and abs(match[0] - tr.value) <= 1e-12 * abs(tr.value)


def test_every_sampler_asks_its_budget_and_its_own_points(tmp_path, cli):
    """Budget 20 in batches of 10: TPE and GP sample at random for their first 10 points (Optuna's
    n_startup_trials), so the second batch is where a sampler shows itself. Each sampler's points
    differ from every other's; QMC's lie on a Sobol sequence (after its first, independent point:
    log10 lr on multiples of 1/16: a Sobol sequence of 20 points in base 2 over 4 decades)."""
    import numpy as np

    points = {}
    for sampler in ("tpe", "cmaes", "gp", "qmc", "random"):
        spec = write(tmp_path / f"{sampler}.toml", SPEC.replace('"tpe"', f'"{sampler}"')
                     .replace('name = "o"', f'name = "{sampler}"').replace("budget = 24", "budget = 20")
                     .replace("batch = 6", "batch = 10").replace("epochs = 2", "epochs = 1")
                     .replace('optimizer = ["sgd", "adam"]', 'optimizer = ["adam"]'))
        r = cli("sweep", spec, "--out", tmp_path)
        assert r.code == 0, r.err
        t = pd.read_parquet(tmp_path / sampler / "trials.parquet")
        assert len(t) == 20 and t.trial_id.is_unique
        points[sampler] = frozenset(t.lr.round(9))
    assert len(set(points.values())) == 5  # the sampler named is the one that asked
    sixteenths = 16 * np.log10(sorted(points["qmc"]))
    assert sum(abs(e - round(e)) < 1e-4 for e in sixteenths) == 19


@pytest.mark.parametrize("search,message", [
    ('kind = "optuna"\nsampler = "hyperopt"\nbudget = 4', "search.sampler = 'hyperopt' is unknown"),
    ('kind = "optuna"\nbudget = 0', "search.budget = 0 is not allowed"),
    ('kind = "optuna"\nbudget = 4\nbatch = 0', "search.batch = 0 is not allowed"),
    ('kind = "optuna"\nbudget = 4\npoints = []', "unknown key search.'points'"),
])
def test_a_bad_optuna_spec_is_one_line(tmp_path, search, message):
    spec = write(tmp_path / "bad.toml", SPEC.split("[search]")[0] + "[search]\n" + search + "\n")
    r = run_dlbench("sweep", spec, "--out", tmp_path / "out")
    assert r.code == 2 and message in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert not (tmp_path / "out").exists()


def test_without_optuna_installed_the_search_says_how_to_get_it(tmp_path):
    spec = write(tmp_path / "o.toml", SPEC)
    code = ("import sys; sys.modules['optuna'] = None; from dlbench.__main__ import run; "
            f"sys.argv = ['dlbench', 'sweep', {str(spec)!r}, '--out', {str(tmp_path / 'out')!r}]; run()")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip() == ("error: search.kind = 'optuna' needs the optuna package; allowed: pip install "
                                "'dlbench[optuna]', or another search kind (sobol, random, halving)")


@pytest.mark.slow
def test_a_killed_optuna_sweep_resumes_to_what_an_uninterrupted_one_gives(tmp_path):
    spec = write(tmp_path / "o.toml", SPEC)
    clean = run_dlbench("sweep", spec, "--out", tmp_path / "clean", "--workers", "1")
    assert clean.code == 0, clean.err
    p = start_dlbench("sweep", spec, "--out", tmp_path / "killed", "--workers", "1", stderr=subprocess.DEVNULL,
                      start_new_session=True)
    try:
        wait_for_line(p, r"^\[3/6\]")  # inside the second batch or later
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    resumed = run_dlbench("sweep", spec, "--out", tmp_path / "killed", "--workers", "1")
    assert resumed.code == 0, resumed.err
    t_clean, h_clean = result_tables(tmp_path / "clean" / "o")
    t_res, h_res = result_tables(tmp_path / "killed" / "o")
    pd.testing.assert_frame_equal(t_clean, t_res)
    pd.testing.assert_frame_equal(h_clean, h_res)


def test_a_search_gives_back_optunas_verbosity(tmp_path, cli):
    """dlbench quiets Optuna's own log lines while it calls it, and a user's Optuna in the same
    process (a notebook) logs as before afterwards (388528c set ERROR for good)."""
    optuna.logging.set_verbosity(optuna.logging.INFO)
    try:
        spec = write(tmp_path / "o.toml", SPEC.replace("budget = 24", "budget = 2").replace("batch = 6", "batch = 2")
                     .replace('optimizer = ["sgd", "adam"]', 'optimizer = ["adam"]'))
        assert cli("sweep", spec, "--out", tmp_path, "--workers", "1").code == 0
        assert optuna.logging.get_verbosity() == optuna.logging.INFO
    finally:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
