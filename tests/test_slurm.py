"""--executor slurm on a real SLURM cluster (marked slurm: .ci/slurm-up starts a one-node one, and
.ci/run runs these with DLBENCH_SLURM=required, so that a cluster that does not answer fails them
rather than skipping them). The fast tests of the same code, with submitit's mocked sbatch and no
cluster, are in test_slurm_units.py."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_dlbench, start_dlbench

pytestmark = pytest.mark.slurm


@pytest.fixture(scope="module", autouse=True)
def cluster():
    ok = shutil.which("sinfo") is not None and subprocess.run(["sinfo", "-h"], capture_output=True,
                                                              timeout=10).returncode == 0
    if not ok:
        if os.environ.get("DLBENCH_SLURM") == "required":
            pytest.fail("DLBENCH_SLURM=required but no SLURM cluster answers sinfo (.ci/slurm-up starts one)")
        pytest.skip("no SLURM cluster here (sudo .ci/slurm-up starts a one-node one)")


SPEC = """
name = "onslurm"
dataset = "digits"
model = { kind = "mlp", hidden = [32] }
dtype = "float64"
epochs = 12
batch_size = 64
seeds = [0, 1]
engine = "reference"

[grid]
optimizer = ["sgd", "adam"]
lr = [0.01, 0.1]

[slurm]
time = 10
array_parallelism = 2
"""


def tables(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    trials = pd.read_parquet(folder / "trials.parquet").sort_values("trial_id").reset_index(drop=True)
    history = pd.read_parquet(folder / "history.parquet").sort_values(["trial_id", "epoch"]).reset_index(drop=True)
    return trials, history


def assert_same_numbers(a: Path, b: Path) -> None:
    ta, ha = tables(a)
    tb, hb = tables(b)
    assert list(ta.trial_id) == list(tb.trial_id)
    for col in ("status", "best_val_loss", "test_loss_at_best_val", "test_acc_at_best_val", "final_train_loss"):
        assert list(ta[col]) == list(tb[col]), col  # bitwise: the same units, one thread each
    for col in ("train_loss", "val_loss", "test_loss", "val_acc"):
        assert ha[col].tolist() == hb[col].tolist(), col


def run_locally(root: Path, spec: str) -> Path:
    (root / "s.toml").write_text(spec)
    r = run_dlbench("sweep", root / "s.toml", "--executor", "local", "--workers", "2", "--out", root / "out")
    assert r.code == 0, r.err
    return root / "out" / "onslurm"


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    """The same sweep trained here by two local workers: what every SLURM run must equal."""
    return run_locally(tmp_path_factory.mktemp("local"), SPEC)


LONG_SPEC = SPEC.replace("epochs = 12", "epochs = 200")  # units of several seconds: time to signal one


@pytest.fixture(scope="module")
def local_long_run(tmp_path_factory):
    return run_locally(tmp_path_factory.mktemp("local-long"), LONG_SPEC)


def test_a_sweep_on_slurm_equals_the_same_sweep_run_locally(tmp_path, local_run):
    (tmp_path / "s.toml").write_text(SPEC)
    r = run_dlbench("sweep", tmp_path / "s.toml", "--executor", "slurm", "--out", tmp_path / "out")
    assert r.code == 0, r.err
    folder = tmp_path / "out" / "onslurm"
    assert "plan: 8 trials on the reference engine in 8 units; SLURM array tasks, 2 at once" in r.out
    assert "slurm: 8 unit(s) submitted, 0 found queued or running" in r.out
    assert_same_numbers(folder, local_run)
    book = json.loads((folder / "slurm" / "jobs.json").read_text())["units"]
    assert len(book) == 8 and all(u["attempts"] == 1 for u in book.values())
    assert len({u["job_id"].split("_")[0] for u in book.values()}) == 1  # one array
    assert not list((folder / "slurm" / "done").glob("*.pkl"))  # every outbox stored, then emptied
    # the jobs command says where each unit is, with its job and log
    r = run_dlbench("jobs", folder)
    assert r.code == 0 and "8 units: 8 stored" in r.out, r.out
    rows = [json.loads(ln) for ln in run_dlbench("jobs", folder, "--json").out.splitlines()]
    assert {r["state"] for r in rows} == {"stored"} and all(Path(r["log"]).exists() for r in rows)
    # run again: nothing to run, nothing submitted
    r = run_dlbench("sweep", tmp_path / "s.toml", "--executor", "slurm", "--out", tmp_path / "out")
    assert r.code == 0 and "8 done, 0 to run" in r.out and "submitted" not in r.out, r.out


def squeue() -> dict[str, str]:
    out = subprocess.run(["squeue", "-h", "-r", "-t", "all", "-o", "%i|%T"], capture_output=True, text=True).stdout
    return dict(ln.split("|") for ln in out.split())


def test_a_cancelled_job_and_a_killed_driver_lose_nothing_and_train_nothing_twice(tmp_path, local_run):
    """Two tasks run at once and six wait: cancel a running one, kill the driver (SIGKILL: no
    goodbye), run the same command again. Every trial is stored once and equals the local run;
    the queued units were waited for, not submitted again; only the cancelled one ran again."""
    (tmp_path / "s.toml").write_text(SPEC)
    folder = tmp_path / "out" / "onslurm"
    driver = start_dlbench("sweep", tmp_path / "s.toml", "--executor", "slurm", "--out", tmp_path / "out",
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    book_file = folder / "slurm" / "jobs.json"
    deadline = time.monotonic() + 120
    running: list[str] = []
    while time.monotonic() < deadline and not running:
        time.sleep(0.2)
        if book_file.exists():
            ids = {u["job_id"] for u in json.loads(book_file.read_text())["units"].values()}
            running = [j for j, s in squeue().items() if j in ids and s == "RUNNING"]
    assert running, "no job of the sweep started running"
    cancelled = running[0]
    subprocess.run(["scancel", cancelled], check=True)
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=30)
    before = json.loads(book_file.read_text())["units"]
    queued = {k for k, u in before.items() if squeue().get(u["job_id"]) in ("PENDING", "RUNNING")}
    assert queued, "every job had ended before the driver was killed: the test shows nothing"
    # with no driver, the folder says where each unit is
    cancelled_key = next(k for k, u in before.items() if u["job_id"] == cancelled)
    for _ in range(20):
        rows = {r["unit"]: r for r in map(json.loads, run_dlbench("jobs", folder, "--json").out.splitlines())}
        if rows[cancelled_key]["slurm_state"] == "CANCELLED":
            break
        time.sleep(0.5)
    assert rows[cancelled_key]["state"] == "failed" and rows[cancelled_key]["slurm_state"] == "CANCELLED"
    assert {rows[k]["state"] for k in queued} <= {"queued", "running", "done"}
    assert "not stored yet" in run_dlbench("show", folder).out
    # --fresh would move the folder aside while those jobs write into its place: refused
    r = run_dlbench("sweep", tmp_path / "s.toml", "--executor", "slurm", "--out", tmp_path / "out", "--fresh")
    assert r.code == 2 and "--fresh: " in r.err and "are still queued or running" in r.err, r.err
    assert not list((tmp_path / "out").glob("onslurm.*")), "the folder was moved aside"

    r = run_dlbench("sweep", tmp_path / "s.toml", "--executor", "slurm", "--out", tmp_path / "out")
    assert r.code == 0, r.err
    after = json.loads(book_file.read_text())["units"]
    again = {k for k in after if after[k]["job_id"] != before[k]["job_id"]}
    assert cancelled_key in again and after[cancelled_key]["attempts"] == 2
    assert not (again & queued), "a unit still queued or running was submitted again"
    trials = pd.read_parquet(folder / "trials.parquet")
    assert len(trials) == 8 and trials.trial_id.is_unique and set(trials.status) == {"ok"}
    assert_same_numbers(folder, local_run)


def wait_running(book_file: Path, timeout: float = 120) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if book_file.exists():
            ids = {u["job_id"] for u in json.loads(book_file.read_text())["units"].values()}
            running = [j for j, s in squeue().items() if j in ids and s == "RUNNING"]
            if running:
                return running
    raise AssertionError("no job of the sweep started running")


@pytest.mark.parametrize("how", ["preempted", "signalled"])
def test_a_preempted_job_comes_back_under_its_id_and_its_unit_is_stored_once(tmp_path, local_long_run, how):
    """preempted: `scontrol requeue` (what SLURM does to a job preempted with PreemptMode=REQUEUE);
    signalled: USR2, as SLURM sends ahead of the time limit or a preemption, which submitit answers
    by requeueing the job. Either way the driver waits for the job under its id, submits nothing
    again, and every trial is stored once, equal to the local run."""
    (tmp_path / "s.toml").write_text(LONG_SPEC)
    folder = tmp_path / "out" / "onslurm"
    driver = start_dlbench("sweep", tmp_path / "s.toml", "--executor", "slurm", "--out", tmp_path / "out",
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    job = wait_running(folder / "slurm" / "jobs.json")[0]
    if how == "preempted":
        subprocess.run(["scontrol", "requeue", job], check=True)
    else:
        book = json.loads((folder / "slurm" / "jobs.json").read_text())["units"]
        log = Path(next(u["stdout"] for u in book.values() if u["job_id"] == job))
        deadline = time.monotonic() + 60
        while not (log.exists() and "dlbench: training" in log.read_text()):  # the handlers are in place
            assert time.monotonic() < deadline, f"job {job} never started python"
            time.sleep(0.1)
        # scancel goes on retrying ("Job can not be altered now") while the job it signalled is
        # being requeued, and would signal it again once it restarts: stopped once submitit has
        # caught the signal (its log says so)
        sender = subprocess.Popen(["scancel", "--signal=USR2", job], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        while "Caught signal SIGUSR2" not in log.read_text():
            assert time.monotonic() < deadline, f"job {job} never caught USR2"
            time.sleep(0.05)
        sender.kill()
        sender.wait()
    seen = set()
    released = False
    while driver.poll() is None:
        state = squeue().get(job)
        seen.add(state)
        if state == "PENDING" and not released:
            # SLURM holds a requeued job back for a while (Reason=BeginTime); on this idle test
            # cluster it may start now
            released = subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"],
                                      capture_output=True).returncode == 0
        time.sleep(0.2)
    assert driver.returncode == 0, driver.stderr.read()
    book = json.loads((folder / "slurm" / "jobs.json").read_text())["units"]
    assert all(u["attempts"] == 1 for u in book.values())  # nothing submitted again
    assert job in {u["job_id"] for u in book.values()}
    assert seen & {"PENDING", "REQUEUED", "REQUEUE_HOLD"}, seen  # it did go back to the queue
    trials = pd.read_parquet(folder / "trials.parquet")
    assert len(trials) == 8 and trials.trial_id.is_unique and set(trials.status) == {"ok"}
    assert_same_numbers(folder, local_long_run)


def test_a_refused_resource_request_is_one_line_before_anything_is_written(tmp_path):
    (tmp_path / "s.toml").write_text(SPEC)
    out = tmp_path / "out"
    for setting, words in (("slurm.cpus_per_task=512", "refuses a job of cpus_per_task = 512"),
                           ("slurm.partition=nowhere", "[slurm] partition = 'nowhere' is not a partition of this "
                                                       "cluster; allowed: debug"),
                           ("slurm.time=100000", "more than partition 'debug' allows"),
                           ("slurm.mem=900G", "refuses a job of cpus_per_task = 1, time = 10, mem = '900G'")):
        r = run_dlbench("sweep", tmp_path / "s.toml", "--executor", "slurm", "--out", out, "--set", setting)
        assert r.code == 2, (setting, r.err)
        lines = r.err.strip().splitlines()
        assert len(lines) == 1 and words in lines[0] and "Traceback" not in r.err, (setting, r.err)
        assert r.out == "" and not out.exists(), setting


def test_a_unit_that_keeps_failing_is_stored_failed_naming_its_job_and_log(tmp_path):
    spec = SPEC.replace('lr = [0.01, 0.1]', 'lr = [0.01]').replace("seeds = [0, 1]", "seeds = [0]")
    spec += 'setup = ["echo this node cannot train >&2", "exit 3"]\nattempts = 2\n'
    (tmp_path / "s.toml").write_text(spec)
    r = run_dlbench("sweep", tmp_path / "s.toml", "--executor", "slurm", "--out", tmp_path / "out")
    assert r.code == 1, r.err
    trials = pd.read_parquet(tmp_path / "out" / "onslurm" / "trials.parquet")
    assert set(trials.status) == {"failed"} and len(trials) == 2
    for error in trials.error:
        assert "ended" in error and "without results, 2 time(s)" in error and "log: " in error, error
        assert Path(error.rsplit("log: ", 1)[1]).exists()
