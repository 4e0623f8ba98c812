"""kill -9 in the middle of a sweep, then the same command again: the result equals an
uninterrupted run's (same ids, same numbers), with no duplicates and no half rows."""

import os
import signal
import subprocess

import pandas as pd
import pytest

from tests.conftest import (
    count_records,
    result_tables,
    run_dlbench,
    start_dlbench,
    stored_at_least,
    wait_for_line,
    write,
)

SPEC = """
name = "k"
dataset = "digits"
model = { kind = "mlp", hidden = [32], activation = "relu" }
batch_size = 32
seeds = [0]

[[grid]]
optimizer = ["sgd", "momentum", "adam"]
lr = [0.003, 0.03]
epochs = 3

[[grid]]  # trained apart (other epochs), after the others (shorter units last); waits while `hold` exists
optimizer = "./held.py:HeldSGD"
lr = [0.003, 0.01, 0.03, 0.1, 0.3, 1.0]
epochs = 2
"""

HELD = """
import os
import time

import torch


class HeldSGD(torch.optim.SGD):
    \"\"\"SGD whose steps wait while the file `hold` exists next to this one.\"\"\"

    def step(self, closure=None):
        while os.path.exists(os.path.join(os.path.dirname(__file__), "hold")):
            time.sleep(0.02)
        return super().step(closure)
"""


def kill_when(out, args, records_at_least, cwd, timeout=120):
    """Start a sweep in its own process group and SIGKILL the group as soon as it reports the
    `records_at_least`-th stored trial (its progress line is printed right after the record lands)."""
    p = start_dlbench("sweep", *args, "--out", out, stderr=subprocess.DEVNULL, start_new_session=True, cwd=cwd)
    try:
        wait_for_line(p, stored_at_least(records_at_least, 12), timeout)
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    return count_records(out / "k")


@pytest.mark.parametrize("engine,workers", [pytest.param("reference", 1, marks=pytest.mark.slow),
                                                  pytest.param("auto", 2, marks=pytest.mark.slow)])
def test_resume_after_kill_equals_uninterrupted(tmp_path, engine, workers):
    """The kill lands mid-sweep by construction, not by timing: the held optimizer's trials cannot
    finish while the file `hold` exists, so when the first trial of the others is stored, the held
    ones are not; the hold is lifted for the resumed run."""
    spec = write(tmp_path / "k.toml", SPEC)
    write(tmp_path / "held.py", HELD)
    args = [spec, "--engine", engine, "--workers", workers]
    clean = run_dlbench("sweep", *args, "--out", tmp_path / "clean", cwd=tmp_path)
    assert clean.code == 0, clean.err
    (tmp_path / "hold").write_text("")
    stored = kill_when(tmp_path / "killed", args, 1, tmp_path)
    assert 0 < stored <= 6, f"only the free trials can be stored, found {stored} records"
    (tmp_path / "hold").unlink()
    partial = run_dlbench("show", tmp_path / "killed" / "k")  # a partial sweep reads as far as it got
    assert partial.code == 0 and f"{stored} trials ({stored} ok)" in partial.out
    resumed = run_dlbench("sweep", *args, "--out", tmp_path / "killed", cwd=tmp_path)
    assert resumed.code == 0, resumed.err
    assert f"{stored} done, {12 - stored} to run" in resumed.out
    t_clean, h_clean = result_tables(tmp_path / "clean" / "k")
    t_res, h_res = result_tables(tmp_path / "killed" / "k")
    assert t_res.trial_id.is_unique and len(t_res) == 12
    pd.testing.assert_frame_equal(t_clean, t_res)
    pd.testing.assert_frame_equal(h_clean, h_res)


def test_same_config_gives_a_bitwise_identical_history_on_cpu():
    from dlbench.data import load
    from dlbench.engine import fused, reference
    from dlbench.spec import build_sweep

    trials = build_sweep({"dataset": "wine", "epochs": 3, "batch_size": 8, "optimizer": "adam", "lr": 0.01,
                          "seeds": [3]}).trials
    data = load("wine")
    def numbers(result):  # every value but timings; NaN (no R² for classification) compared as a token
        return [{k: ("nan" if v != v else v) for k, v in r.items() if k not in ("train_time", "eval_time")}
                for r in result.history]

    for train in (lambda: reference.train(trials[0], data), lambda: fused.train(trials, data)[0]):
        a, b = train(), train()
        assert len(a.history) == 4
        assert numbers(a) == numbers(b)
