"""Sweeps on a Dask cluster: a scheduler and two workers on 127.0.0.1, one worker killed in the
middle of the sweep; every trial is stored exactly once. Everything started here listens on
127.0.0.1 only and is stopped by the test that started it."""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from tests.conftest import ROOT, count_records, recorded_local_clusters, run_dlbench, start_dlbench, wait_until, write

pytest.importorskip("distributed")

SPEC = """
name = "d"
dataset = "digits"
model = { kind = "mlp", hidden = [64], activation = "relu" }
epochs = 6
batch_size = 16
engine = "reference"
seeds = [0, 1, 2]
[grid]
optimizer = ["sgd", "adam"]
lr = [0.003, 0.03]
"""


def start(args, env):
    return subprocess.Popen([sys.executable, "-m", *args], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(p):
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGKILL)
    p.wait()


@pytest.fixture
def cluster(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    sched_file = tmp_path / "scheduler.json"
    procs = [start(["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                    "--scheduler-file", str(sched_file)], env)]
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(sched_file.read_text())["address"]
        workers = [start(["distributed.cli.dask_worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                          "--host", "127.0.0.1", "--name", f"w{i}"], env) for i in range(2)]
        procs += workers
        from distributed import Client

        with Client(address, timeout=30) as c:
            c.wait_for_workers(2, timeout=60)
        yield address, workers
    finally:
        for p in reversed(procs):
            stop(p)


@pytest.mark.slow
def test_worker_killed_mid_sweep_every_trial_stored_once(cluster, tmp_path):
    address, workers = cluster
    spec = write(tmp_path / "d.toml", SPEC)
    sweep = start_dlbench("sweep", spec, "--out", tmp_path / "out", "--executor", "dask", "--address", address)
    records = tmp_path / "out" / "d" / "trials"
    wait_until(lambda: count_records(tmp_path / "out" / "d") >= 2, sweep)
    stop(workers[0])  # a worker dies with units in flight
    out, err = sweep.communicate(timeout=300)
    assert sweep.returncode == 0, err
    trials = pd.read_parquet(tmp_path / "out" / "d" / "trials.parquet")
    assert len(trials) == 12 and trials.trial_id.is_unique and set(trials.status) == {"ok"}
    assert len(list(records.glob("*.json"))) == 12
    history = pd.read_parquet(tmp_path / "out" / "d" / "history.parquet")
    assert len(history) == 12 * 7 and not history.duplicated(["trial_id", "epoch"]).any()
    # the same numbers as a local run: nothing was lost or mixed up on the way back
    local = run_dlbench("sweep", spec, "--out", tmp_path / "local", "--workers", "1")
    assert local.code == 0
    ref = pd.read_parquet(tmp_path / "local" / "d" / "trials.parquet").set_index("trial_id").sort_index()
    got = trials.set_index("trial_id").sort_index()
    pd.testing.assert_series_equal(got.final_test_loss, ref.final_test_loss)


def test_unreachable_scheduler_is_a_clear_error(cli, tmp_path):
    from dlbench.executors import DaskExecutor

    ex = DaskExecutor("tcp://127.0.0.1:9", 1, connect_timeout=2)
    from dlbench.errors import UserError

    with pytest.raises(UserError, match="cannot reach the Dask scheduler"):
        ex.start()
    r = cli("sweep", "--dataset", "iris", "--epochs", "1", "--address", "tcp://127.0.0.1:9", "--out", tmp_path)
    assert r.code == 2 and "cannot reach the Dask scheduler" in r.err and len(r.err.strip().splitlines()) == 1
    r = cli("sweep", "--dataset", "iris", "--executor", "dask", "--out", tmp_path)
    assert r.code == 2 and "needs an address" in r.err


@pytest.mark.slow
def test_local_cluster(tmp_path, cli, monkeypatch):
    """`--address local`: a LocalCluster of worker processes on 127.0.0.1 trains the units, which its
    scheduler says it ran (not a sweep that quietly ran here), with the numbers a local run gives."""
    started = recorded_local_clusters(monkeypatch)
    r = cli("sweep", "--dataset", "iris", "--optimizer", "sgd,adam", "--epochs", "2", "--executor", "dask",
            "--address", "local", "--workers", "2", "--name", "lc", "--out", tmp_path)
    assert r.code == 0, r.err
    (cluster,) = started
    ran = cluster.scheduler.task_prefixes["run_unit"]
    # its scheduler saw two run_unit tasks through to memory, computed on its workers
    assert ran.state_counts["memory"] == 2 and ran.all_durations["compute"] > 0
    assert cluster.scheduler.address.startswith("tcp://127.0.0.1:")
    t = pd.read_parquet(tmp_path / "lc" / "trials.parquet")
    assert len(t) == 2 and (t.status == "ok").all()
    local = cli("sweep", "--dataset", "iris", "--optimizer", "sgd,adam", "--epochs", "2", "--workers", "1", "--name",
                "lc", "--out", tmp_path / "here")
    assert local.code == 0
    ref = pd.read_parquet(tmp_path / "here" / "lc" / "trials.parquet").set_index("trial_id").sort_index()
    pd.testing.assert_series_equal(t.set_index("trial_id").sort_index().best_val_loss, ref.best_val_loss)


@pytest.mark.slow
def test_sigterm_cancels_the_drivers_futures_and_the_cluster_keeps_running(cluster, tmp_path):
    address, workers = cluster
    spec = write(tmp_path / "d.toml", SPEC)
    sweep = start_dlbench("sweep", spec, "--out", tmp_path / "out", "--executor", "dask", "--address", address,
                          start_new_session=True)
    assert wait_until(lambda: count_records(tmp_path / "out" / "d") >= 1, sweep)
    os.kill(sweep.pid, signal.SIGTERM)
    _, err = sweep.communicate(timeout=60)
    stored = count_records(tmp_path / "out" / "d")
    assert sweep.returncode == 143, err
    assert f"interrupted: {stored} of 12 trials stored" in err and "run the same command to resume" in err
    assert all(w.poll() is None for w in workers)  # the cluster is not ours to stop
    from distributed import Client

    with Client(address, timeout=30) as c:  # the driver's tasks are gone from the scheduler
        deadline = time.monotonic() + 20
        while c.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert c.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)) == 0
    resumed = run_dlbench("sweep", spec, "--out", tmp_path / "out", "--executor", "dask", "--address", address)
    assert resumed.code == 0, resumed.err
    assert f"{stored} done, {12 - stored} to run" in resumed.out
    assert len(pd.read_parquet(tmp_path / "out" / "d" / "trials.parquet")) == 12


USER_CODE = '''
import math

import torch
from torch import nn


class SignSGD(torch.optim.Optimizer):
    def __init__(self, params, lr=0.01):
        super().__init__(params, dict(lr=lr))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                p.add_(torch.sign(p.grad), alpha=-group["lr"])


def mlp(input_shape, n_outputs, width=8):
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), width), nn.Tanh(), nn.Linear(width, n_outputs))
'''


@pytest.mark.slow
def test_files_of_the_users_travel_to_dask_workers(cluster, tmp_path):
    """An optimizer file, a model file and a data file, none of them on the workers' paths: they
    travel with the units (the workers run from another folder)."""
    address, _ = cluster
    write(tmp_path / "mine.py", USER_CODE)
    from sklearn.datasets import load_wine

    load_wine(as_frame=True).frame.to_csv(tmp_path / "wine.csv", index=False)
    r = run_dlbench("sweep", "--dataset", "./wine.csv", "--optimizer", "adam,./mine.py:SignSGD", "--model",
                    "./mine.py:mlp", "--epochs", "2", "--seeds", "0,1", "--executor", "dask", "--address", address,
                    "--name", "u", "--out", tmp_path / "out", cwd=tmp_path)
    assert r.code == 0, r.err
    t = pd.read_parquet(tmp_path / "out" / "u" / "trials.parquet")
    assert len(t) == 4 and (t.status == "ok").all() and (t.engine == "fused").all()
    local = run_dlbench("sweep", "--dataset", "./wine.csv", "--optimizer", "adam,./mine.py:SignSGD", "--model",
                        "./mine.py:mlp", "--epochs", "2", "--seeds", "0,1", "--workers", "1", "--name", "u", "--out",
                        tmp_path / "local", cwd=tmp_path)
    assert local.code == 0, local.err
    ref = pd.read_parquet(tmp_path / "local" / "u" / "trials.parquet").set_index("trial_id").sort_index()
    got = t.set_index("trial_id").sort_index()
    pd.testing.assert_series_equal(got.best_val_loss, ref.best_val_loss, rtol=1e-6)


@pytest.mark.slow
def test_a_module_the_workers_do_not_have_is_one_line_before_anything_runs(cluster, tmp_path):
    address, _ = cluster
    site = tmp_path / "site"
    site.mkdir()
    write(site / "onlyhere.py", USER_CODE)
    r = run_dlbench("sweep", "--dataset", "iris", "--optimizer", "onlyhere:SignSGD", "--epochs", "1", "--executor",
                    "dask", "--address", address, "--out", tmp_path / "out",
                    env={"PYTHONPATH": f"{ROOT}:{site}"})  # the driver has it; the workers do not
    assert r.code == 2 and "module 'onlyhere' (onlyhere:SignSGD) is not installed on Dask worker" in r.err, r.err
    assert len(r.err.strip().splitlines()) == 1 and not (tmp_path / "out").exists()
