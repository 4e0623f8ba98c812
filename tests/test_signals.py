"""A sweep stops cleanly, takes its workers with it, and says how to resume: real processes,
real signals (tests/test_resume.py covers kill -9 of the whole process group)."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

from tests.conftest import (
    count_records,
    dlbench_env,
    result_tables,
    run_dlbench,
    session_processes,
    start_dlbench,
    wait_for_line,
    write,
)

SPEC = """
name = "s"
dataset = "digits"
model = { kind = "mlp", hidden = [32], activation = "relu" }
epochs = 4
batch_size = 16
engine = "reference"
seeds = [0, 1]
[grid]
optimizer = ["sgd", "momentum", "adam"]
lr = [0.003, 0.03]
"""


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clean")
    spec = write(tmp / "s.toml", SPEC)
    r = run_dlbench("sweep", spec, "--out", tmp / "out", "--workers", "2")
    assert r.code == 0, r.err
    return spec, result_tables(tmp / "out" / "s")


def gone_within(sid: int, seconds: float = 5.0) -> list[str]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        left = session_processes(sid)
        if not left:
            return []
        time.sleep(0.1)
    return session_processes(sid)


@pytest.mark.slow
@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129),
                                      (signal.SIGKILL, -9)], ids=["SIGTERM", "SIGINT", "SIGHUP", "SIGKILL"])
def test_a_signal_ends_the_sweep_and_takes_the_workers_with_it(clean, tmp_path, sig, code):
    spec, (t_clean, h_clean) = clean
    out = tmp_path / "out"
    p = start_dlbench("sweep", spec, "--out", out, "--workers", "2", start_new_session=True)
    wait_for_line(p, r"^\[1/12\]")  # the first trial is stored: the sweep is under way, 11 to go
    os.kill(p.pid, sig)  # the driver only, as timeout, systemd and Slurm do
    err = p.stderr.read()  # returns only once nothing holds the pipe: no orphans
    p.wait(timeout=60)
    assert p.returncode == code, err
    stored = count_records(out / "s")
    assert 0 < stored < 12
    if sig != signal.SIGKILL:
        last = err.strip().splitlines()[-1]
        assert last == f"interrupted: {stored} of 12 trials stored in {out / 's'}; run the same command to resume"
        assert len(pd.read_parquet(out / "s" / "trials.parquet")) == stored  # the tables were written
    assert gone_within(p.pid) == [], "processes outlived the driver"
    resumed = run_dlbench("sweep", spec, "--out", out, "--workers", "2")
    assert resumed.code == 0, resumed.err
    assert f"{stored} done, {12 - stored} to run" in resumed.out
    t, h = result_tables(out / "s")
    pd.testing.assert_frame_equal(t_clean, t)
    pd.testing.assert_frame_equal(h_clean, h)


@pytest.mark.slow
def test_a_sweep_started_by_another_driver_still_stops_on_ctrl_c(clean, tmp_path):
    """A driver's pid in the environment of a dlbench it starts (a test harness that ran a sweep
    in-process, a script) once made that dlbench tie itself to its parent as if it were a
    forkserver, and ignore SIGINT: the sweep ran to the end and exited 0."""
    spec, _ = clean
    p = start_dlbench("sweep", spec, "--out", tmp_path / "out", "--workers", "2", start_new_session=True,
                      env={"DLBENCH_DRIVER_PID": str(os.getpid())})  # this process is its parent
    wait_for_line(p, r"^\[1/12\]")
    os.kill(p.pid, signal.SIGINT)
    err = p.stderr.read()
    p.wait(timeout=60)
    assert p.returncode == 130, err
    assert "interrupted:" in err


def run_python(code: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=60, env=dlbench_env(), **kw)


def test_a_second_signal_exits_at_once():
    p = run_python("""
        import os, signal, time
        from dlbench.interrupt import StopOnSignal
        with StopOnSignal(on_second=lambda: print("workers killed", flush=True)) as stop:
            with stop.critical():  # the first signal waits for the section to end...
                os.kill(os.getpid(), signal.SIGINT)
                os.kill(os.getpid(), signal.SIGINT)  # ...the second does not wait at all
                time.sleep(30)
        print("not reached")
    """)
    assert p.returncode == 130 and p.stdout == "workers killed\n"


def test_a_first_signal_waits_for_a_critical_section_to_end():
    from dlbench.interrupt import Interrupted, StopOnSignal

    done = []
    with StopOnSignal() as stop, pytest.raises(Interrupted) as e:
        with stop.critical():
            os.kill(os.getpid(), signal.SIGTERM)
            done.append("the section finished")
    assert done == ["the section finished"] and e.value.exit_code == 143


@pytest.mark.slow
@pytest.mark.parametrize("use_prctl", [True, False], ids=["prctl", "watchdog"])
def test_a_tied_process_dies_with_its_parent(tmp_path, use_prctl):
    # parent -> child tied with dlbench.lifeline; SIGKILL the parent; the child must be gone soon after
    pidfile = tmp_path / "child.pid"
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import os, subprocess, sys, time
        os.environ["DLBENCH_DRIVER_PID"] = str(os.getpid())
        subprocess.Popen([sys.executable, "-c",
            "import os, time; from dlbench.lifeline import tie_to_parent; "
            "print(tie_to_parent(use_prctl={use_prctl}), flush=True); "
            "open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(60)"])
        time.sleep(60)
    """)], env=dlbench_env(), start_new_session=True)
    deadline = time.monotonic() + 30
    while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(pidfile.read_text())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    assert gone_within(parent.pid, 5.0) == [], f"child {child} outlived its parent"


def test_checks_that_can_refuse_a_sweep_run_before_anything_is_printed(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (["--device", "cuda"], "device"),
        (["--dataset", "mnist", "--data-dir", empty], "dlbench datasets download mnist"),
        (["--address", "tcp://127.0.0.1:9"], "cannot reach the Dask scheduler"),
    ]
    for args, message in cases:
        r = run_dlbench("sweep", "--epochs", "1", *args, "--out", tmp_path / "o", "--workers", "1")
        assert r.code == 2, (args, r.err)
        assert r.out == "", f"printed before refusing: {r.out!r}"
        assert len(r.err.strip().splitlines()) == 1 and message in r.err, r.err
        assert not (tmp_path / "o").exists()


def test_out_of_memory_splits_the_unit_and_every_trial_stays_fused(cli, tmp_path, monkeypatch):
    import torch

    from dlbench.engine import fused

    spec = write(tmp_path / "m.toml", 'name = "m"\ndataset = "iris"\nepochs = 3\nbatch_size = 16\ndtype = "float64"\n'
                 'seeds = [0, 1]\n[grid]\noptimizer = ["sgd", "momentum", "adam"]\nlr = [0.01, 0.1]\n')
    assert cli("sweep", spec, "--out", tmp_path / "whole", "--workers", "1").code == 0
    real = fused.train
    sizes = []

    def short_of_memory(trials, data, at_epoch=None):  # a unit whose allocation fails above 4 trials
        sizes.append(len(trials))
        if len(trials) > 4:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(trials, data)

    monkeypatch.setattr(fused, "train", short_of_memory)
    r = cli("sweep", spec, "--out", tmp_path / "split", "--workers", "1")
    assert r.code == 0, r.err
    assert sizes == [12, 6, 3, 3, 6, 3, 3]  # the whole unit, then halves, then their halves (each 3 fits)
    whole = pd.read_parquet(tmp_path / "whole" / "m" / "history.parquet").sort_values(["trial_id", "epoch"])
    split = pd.read_parquet(tmp_path / "split" / "m" / "history.parquet").sort_values(["trial_id", "epoch"])
    trials = pd.read_parquet(tmp_path / "split" / "m" / "trials.parquet")
    assert (trials.engine == "fused").all() and trials.fallback_reason.isna().all()
    for col in ("train_loss", "val_loss", "test_loss"):
        a, b = split[col].to_numpy(), whole[col].to_numpy()
        assert (abs(a - b) <= 1e-9 * abs(b)).all(), col


def test_a_trial_that_never_fits_falls_back_with_its_reason(cli, tmp_path, monkeypatch):
    from dlbench.engine import fused

    def never_fits(trials, data, at_epoch=None):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:116] DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(fused, "train", never_fits)
    r = cli("sweep", "--dataset", "iris", "--optimizer", "sgd,adam", "--epochs", "1", "--name", "o", "--out",
            tmp_path, "--workers", "1")
    assert r.code == 0, r.err
    trials = pd.read_parquet(tmp_path / "o" / "trials.parquet")
    assert (trials.engine == "reference").all() and (trials.status == "ok").all()
    assert trials.fallback_reason.str.startswith("out of memory on the fused engine even alone").all()
    assert r.err.count("fell back to the reference engine") == 1  # said once per sweep


def test_trials_left_to_the_reference_engine_name_their_reason(cli, tmp_path):
    r = cli("sweep", "--dataset", "mnist1d", "--model", '{kind="cnn", channels=[4]}', "--epochs", "1",
            "--name", "c", "--out", tmp_path, "--workers", "1", "--set", "batch_size=500")
    assert r.code == 0, r.err
    assert r.out.count("on the reference engine, cnn model: on the CPU, max pooling under vmap") == 1
    trials = pd.read_parquet(tmp_path / "c" / "trials.parquet")
    assert trials.fallback_reason.iloc[0].startswith("cnn model: on the CPU, max pooling under vmap (torch.func) "
                                                     "measures slower than the reference engine")
    r = cli("sweep", "--dataset", "rosenbrock", "--epochs", "1", "--name", "p", "--out", tmp_path, "--workers", "1",
            "--set", "batch_size=500")
    assert r.code == 0, r.err
    assert r.out.count("on the reference engine, not supported by the fused engine") == 1
    trials = pd.read_parquet(tmp_path / "p" / "trials.parquet")
    assert trials.fallback_reason.iloc[0] == ("not supported by the fused engine: model kind 'problem' runs on the "
                                              "reference engine")


@pytest.mark.parametrize("code, rc, err", [(3, 3, ""), (None, 0, ""), ("a message", 1, "a message")])
def test_a_finished_command_skips_the_teardown_but_not_the_atexit_callbacks(code, rc, err):
    """dlbench.__main__.exit_now: what sys.exit(code) would give (the exit status, a message on
    stderr), the atexit callbacks run (multiprocessing's, logging's), the streams flushed."""
    script = ("import atexit, sys; atexit.register(lambda: print('atexit ran', flush=False)); "
              "print('buffered', end=''); from dlbench.__main__ import exit_now; "
              f"exit_now({code!r})")
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert p.returncode == rc and p.stdout == "bufferedatexit ran\n" and p.stderr.strip() == err
