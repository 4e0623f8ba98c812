"""Successive halving ([search] kind = "halving"): the right number stopped at each rung, chosen by
the one selection rule (checked here by hand), the survivors' numbers equal to their plain runs
(float64: a stopped row never touches a surviving one), with sub-grids, ranges and a protocol,
resumed after kill -9 as an uninterrupted run ends, on Dask too; bad specs refused in one line."""

import math
import os
import signal
import subprocess

import pandas as pd
import pytest

from dlbench import halving
from dlbench.data import load
from dlbench.engine import fused
from dlbench.spec import build_sweep
from dlbench.trials import trial_id
from tests.conftest import (
    recorded_local_clusters,
    result_tables,
    run_dlbench,
    start_dlbench,
    stored_at_least,
    wait_for_line,
    write,
)

SPEC = """
name = "h"
dataset = "digits"
model = { kind = "mlp", hidden = [16], activation = "relu" }
epochs = 9
batch_size = 32
seeds = [0]
dtype = "float64"

[grid]
optimizer = ["sgd"]
lr = { log = [1e-3, 0.5], num = 27 }

[search]
kind = "halving"
eta = 3
min_epochs = 1
"""


def test_rungs_survivors_and_the_plan():
    t = {"epochs": 9, "halving": {"eta": 3, "min_epochs": 1, "per": ["optimizer"]}}
    assert halving.rungs(t) == [1, 3]
    assert halving.rungs({**t, "epochs": 10}) == [1, 3, 9]
    assert halving.rungs({**t, "halving": {**t["halving"], "min_epochs": 2, "eta": 2}}) == [2, 4, 8]
    assert [halving.survivors(n, 3) for n in (27, 9, 3, 2, 10)] == [9, 3, 1, 1, 3]
    trials = build_sweep({**_raw(), "seeds": [0, 1]}).trials
    assert halving.schedule(trials) == ([1, 3, 9], [27, 9, 3], 2 * (27 * 1 + 9 * 2 + 3 * 6))


def _raw(**over):
    import tomllib

    return {**tomllib.loads(SPEC), **over}


def _plain(trials):
    """The same trials without halving (as a plain grid has them)."""
    out = []
    for t in trials:
        p = {k: v for k, v in t.items() if k not in ("id", "halving")}
        p["id"] = trial_id(p)
        out.append(p)
    return out


def _top(configs: dict, keep: int) -> set:
    """The `keep` best lrs by the rule, by hand: best validation accuracy so far, ties to the lower
    validation loss so far, then to the smaller lr."""
    return set(sorted(configs, key=lambda lr: (-configs[lr][0], configs[lr][1], lr))[:keep])


def test_a_halving_sweep_stops_the_right_trials_at_each_rung_and_its_survivors_are_their_plain_runs(tmp_path, cli):
    spec = write(tmp_path / "h.toml", SPEC)
    r = cli("sweep", spec, "--out", tmp_path, "--workers", "1")
    assert r.code == 0, r.err
    out = " ".join(r.out.split())
    assert "27 → 9 → 3 configurations at epochs 1, 3, 9; 63 of 243 trial-epochs (3.9× fewer)" in out
    t = pd.read_parquet(tmp_path / "h" / "trials.parquet")
    h = pd.read_parquet(tmp_path / "h" / "history.parquet")
    assert len(t) == 27 and set(t.status) == {"ok", "stopped"}  # no lr of this range diverges
    stopped = t[t.status == "stopped"]
    assert stopped.rung.value_counts().to_dict() == {1: 18, 3: 6} and (stopped.epochs_run == stopped.rung).all()
    assert (t[t.status == "ok"].epochs_run == 9).all() and t[t.status == "ok"].rung.isna().all()
    assert "successive halving stopped 24 of 27 tuning trials early (18 at epoch 1, 6 at epoch 3)" in out

    # the plain runs of the same 27 configurations, trained to the end
    sweep = build_sweep(_raw())
    data = load("digits", None, 0.1)
    plain = {tr["lr"]: res.history for tr, res in zip(sweep.trials, fused.train(_plain(sweep.trials), data),
                                                        strict=True)}
    # who goes on at each rung: the rule applied by hand to the plain runs' numbers so far
    def so_far(lrs, epoch):
        rows = {lr: plain[lr][:epoch + 1] for lr in lrs}
        return {lr: (max(r["val_acc"] for r in h), min(r["val_loss"] for r in h)) for lr, h in rows.items()}

    past1 = _top(so_far(plain, 1), 9)
    past3 = _top(so_far(past1, 3), 3)
    assert set(t[t.epochs_run > 1].lr) == past1 and set(t[t.epochs_run > 3].lr) == past3
    # every stored number is the plain run's, up to where the trial stopped (float64)
    worst = 0.0
    for _, row in t.iterrows():
        mine = h[h.trial_id == row.trial_id].sort_values("epoch")
        theirs = plain[row.lr][:int(row.epochs_run) + 1]
        assert list(mine.epoch) == [r["epoch"] for r in theirs]
        for col in ("train_loss", "train_eval_loss", "val_loss", "val_acc", "test_loss", "test_acc"):
            for a, b in zip(mine[col], (r[col] for r in theirs), strict=True):
                worst = max(worst, abs(a - b) / max(abs(b), 1e-12))
    assert worst <= 1e-9, worst


def test_on_the_reference_engine_a_competition_goes_on_epoch_by_epoch_and_its_survivors_are_their_plain_runs(
        tmp_path, cli):
    """Trials the fused engine does not train (here: engine = reference; the suite's quadratic,
    max-pooling models on the CPU) halve too: each trial trained epoch by epoch in turn, with its own
    RNG state, gives what it gives alone."""
    from dlbench.engine import reference

    spec = write(tmp_path / "r.toml", SPEC.replace("num = 27", "num = 9").replace("epochs = 9", "epochs = 3")
                 .replace("[grid]", 'engine = "reference"\n[grid]'))
    r = cli("sweep", spec, "--out", tmp_path, "--workers", "1")
    assert r.code == 0, r.err
    t = pd.read_parquet(tmp_path / "h" / "trials.parquet")
    h = pd.read_parquet(tmp_path / "h" / "history.parquet")
    assert (t.engine == "reference").all() and t.rung.value_counts().to_dict() == {1.0: 6}  # 9 → 3 at epoch 1
    data = load("digits", None, 0.1)
    sweep = build_sweep(_raw(grid={"optimizer": ["sgd"], "lr": {"log": [1e-3, 0.5], "num": 9}}, epochs=3,
                             engine="reference"))
    plain = {tr["lr"]: reference.train(p, data).history for tr, p in zip(sweep.trials, _plain(sweep.trials),
                                                                          strict=True)}
    at1 = {lr: (max(x["val_acc"] for x in h1[:2]), min(x["val_loss"] for x in h1[:2])) for lr, h1 in plain.items()}
    assert set(t[t.status == "ok"].lr) == _top(at1, 3)
    for _, row in t.iterrows():
        mine = h[h.trial_id == row.trial_id].sort_values("epoch")
        theirs = plain[row.lr][:int(row.epochs_run) + 1]
        assert list(mine.val_loss) == [x["val_loss"] for x in theirs]  # bitwise: the same code, the same order


PROTOCOL = """
name = "hp"
dataset = "wine"
model = { kind = "mlp", hidden = [8], activation = "tanh" }
epochs = 4
batch_size = 16
seeds = [0, 1]

[[grid]]
optimizer = "sgd"
lr = { log = [1e-3, 1.0], num = 6 }

[[grid]]
optimizer = ["adam"]
lr = [1e-4, 1e-3, 1e-2, 1e-1]

[search]
kind = "halving"
eta = 2

[protocol]
select = "best_val_loss"
per = ["optimizer"]
confirm_seeds = 2
"""


def test_halving_tunes_sub_grids_and_ranges_and_the_protocol_confirms_the_survivors_on_fresh_seeds(tmp_path, cli):
    spec = write(tmp_path / "hp.toml", PROTOCOL)
    r = cli("sweep", spec, "--out", tmp_path)
    assert r.code == 0, r.err
    out = " ".join(r.out.split())
    assert "in 2 competitions (dataset, optimizer, trained together)" in out
    t = pd.read_parquet(tmp_path / "hp" / "trials.parquet")
    tune, confirm = t[t.stage == "tune"], t[t.stage == "confirm"]
    for opt, n in (("sgd", 6), ("adam", 4)):
        mine = tune[tune.optimizer == opt]
        assert mine.lr.nunique() == n and len(mine) == 2 * n
        finished = mine[mine.epochs_run == 4]
        assert finished.lr.nunique() == 1  # 6 → 3 → 1 (rungs 1, 2), 4 → 2 → 1
        winner = confirm[confirm.optimizer == opt]
        assert len(winner) == 2 and set(winner.seed) == {2, 3} and (winner.epochs_run == 4).all()
        assert set(winner.lr) == set(finished.lr) and (winner.status != "stopped").all()
    assert 'kind = "halving"' in (tmp_path / "hp" / "spec.toml").read_text()
    again = cli("sweep", spec, "--out", tmp_path)
    assert again.code == 0 and "0 to run" in " ".join(again.out.split())


@pytest.mark.parametrize("search,extra,message", [
    ('kind = "halving"\neta = 1', "", "search.eta = 1 is not allowed; allowed: a whole number >= 2"),
    ('kind = "halving"\nmin_epochs = 9', "", "search.min_epochs = 9 is not below epochs = 9"),
    ('kind = "halving"\nbudget = 8', "", "unknown key search.'budget'; allowed: kind, eta, min_epochs, per"),
    ('kind = "halving"\nper = ["colour"]', "", "search.per has 'colour', which is not a config key"),
])
def test_a_bad_halving_spec_is_one_line_and_writes_nothing(tmp_path, search, extra, message):
    base = SPEC.split("[search]")[0].replace('dataset = "digits"', 'dataset = "digits"\n' + extra)
    spec = write(tmp_path / "bad.toml", base + "[search]\n" + search + "\n")
    r = run_dlbench("sweep", spec, "--out", tmp_path / "out")
    assert r.code == 2 and message in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert not (tmp_path / "out").exists()


def test_halving_and_extend_are_not_mixed(tmp_path):
    spec = write(tmp_path / "bad.toml", SPEC.replace("num = 27 }", "num = 27, extend = 2 }"))
    r = run_dlbench("sweep", spec, "--out", tmp_path / "out")
    assert r.code == 2 and "with a range that has extend" in r.err


TWO = SPEC.replace('optimizer = ["sgd"]', 'optimizer = ["sgd", "momentum", "adam"]').replace(
    "lr = { log = [1e-3, 0.5], num = 27 }", "lr = { log = [1e-3, 0.3], num = 9 }").replace('dtype = "float64"\n', "")


@pytest.mark.slow
def test_a_halving_sweep_killed_mid_run_resumes_to_what_an_uninterrupted_run_gives(tmp_path):
    """Three competitions (one per optimizer) of 9 configurations, one worker: killed once the first
    competition is stored, the same command ends with the same trials, the same rungs, the same
    survivors and the same numbers."""
    spec = write(tmp_path / "k.toml", TWO)
    args = [spec, "--workers", "1"]
    clean = run_dlbench("sweep", *args, "--out", tmp_path / "clean")
    assert clean.code == 0, clean.err
    p = start_dlbench("sweep", *args, "--out", tmp_path / "killed", stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_line(p, stored_at_least(9, 27))
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    stored = len(list((tmp_path / "killed" / "h" / "trials").glob("*.json")))
    assert 9 <= stored < 27
    resumed = run_dlbench("sweep", *args, "--out", tmp_path / "killed")
    assert resumed.code == 0 and f"{stored} done, {27 - stored} to run" in resumed.out
    t_clean, h_clean = result_tables(tmp_path / "clean" / "h")
    t_res, h_res = result_tables(tmp_path / "killed" / "h")
    assert (t_clean.status == "stopped").sum() == 3 * (6 + 2)  # 9 → 3 → 1 in each competition
    pd.testing.assert_frame_equal(t_clean, t_res)
    pd.testing.assert_frame_equal(h_clean, h_res)


@pytest.mark.slow
def test_halving_on_a_dask_cluster_gives_what_it_gives_here(tmp_path, cli, monkeypatch):
    """The competitions run as tasks of a LocalCluster's scheduler (it says so), and give here's numbers."""
    spec = write(tmp_path / "k.toml", TWO)
    here = run_dlbench("sweep", spec, "--out", tmp_path / "here", "--workers", "2")
    assert here.code == 0, here.err
    started = recorded_local_clusters(monkeypatch)
    dask = cli("sweep", spec, "--out", tmp_path / "dask", "--executor", "dask", "--address", "local", "--workers", "2")
    assert dask.code == 0, dask.err
    (cluster,) = started
    ran = cluster.scheduler.task_prefixes["run_unit"]
    assert ran.state_counts["memory"] >= 1 and ran.all_durations["compute"] > 0
    t_here, h_here = result_tables(tmp_path / "here" / "h")
    t_dask, h_dask = result_tables(tmp_path / "dask" / "h")
    assert (t_here.status == "stopped").sum() == 24
    pd.testing.assert_frame_equal(t_here.drop(columns=["engine"]), t_dask.drop(columns=["engine"]))
    pd.testing.assert_frame_equal(h_here, h_dask)
    assert not math.isnan(t_dask.rung.max())
