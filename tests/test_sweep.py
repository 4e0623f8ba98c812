"""The sweep pipeline end to end: store, resume, changed specs, --fresh, locking, divergence,
failures and [expect]."""

import json
import math

import pandas as pd
import pytest

from dlbench import SCHEMA_VERSION, store
from tests.conftest import tree, write

SPEC = """
name = "t"
dataset = "iris"
model = { kind = "mlp", hidden = [8], activation = "tanh" }
epochs = 3
batch_size = 16
seeds = [0, 1]
[grid]
optimizer = ["sgd", "adam"]
lr = [0.01, 0.1]
"""


@pytest.fixture
def spec(tmp_path):
    return write(tmp_path / "t.toml", SPEC)


def test_sweep_writes_the_contract(cli, spec, tmp_path):
    r = cli("sweep", spec, "--out", tmp_path / "r", "--workers", "1")
    assert r.code == 0, r.err
    d = tmp_path / "r" / "t"
    assert {"spec.toml", "env.json", "trials.parquet", "history.parquet"} <= set(tree(d))
    env = json.loads((d / "env.json").read_text())
    assert env["schema_version"] == SCHEMA_VERSION and env["torch"] and env["cpu"]
    trials, history, _ = store.read_results(d)
    assert len(trials) == 8 and set(trials["status"]) == {"ok"}
    # what each trial's numbers were measured on (iris: 119 training samples, 12 of them for validation)
    assert set(trials.task) == {"multiclass"} and (trials.n_train == 107).all() and (trials.n_val == 12).all()
    assert (trials.n_test == 30).all()
    assert len(history) == 8 * 4  # epochs 0..3
    h = history[history.trial_id == trials.trial_id[0]].sort_values("epoch")
    assert list(h.epoch) == [0, 1, 2, 3]
    assert list(h.steps) == [0, 7, 14, 21]  # iris: 119 - 12 for validation = 107; ceil(107 / 16) = 7 steps
    assert list(h.samples) == [0, 107, 214, 321]
    assert h.train_time.iloc[0] == 0 and (h.train_time.iloc[1:] > 0).all() and (h.eval_time > 0).all()
    for col in ("train_loss", "train_eval_loss", "val_loss", "val_acc", "test_loss", "test_acc", "lr"):
        assert h[col].notna().all(), col
    assert "results:" in r.out and str(d) in r.out


def test_rerun_resumes_and_runs_nothing_twice(cli, spec, tmp_path):
    out = tmp_path / "r"
    assert cli("sweep", spec, "--out", out, "--workers", "1").code == 0
    first = pd.read_parquet(out / "t" / "trials.parquet")
    r = cli("sweep", spec, "--out", out, "--workers", "1")
    assert r.code == 0 and "8 done, 0 to run" in r.out
    again = pd.read_parquet(out / "t" / "trials.parquet")
    pd.testing.assert_frame_equal(first, again)


def test_a_spec_that_only_adds_trials_extends_the_folder(cli, spec, tmp_path):
    out = tmp_path / "r"
    assert cli("sweep", spec, "--out", out, "--workers", "1").code == 0
    r = cli("sweep", spec, "--out", out, "--workers", "1", "--set", "grid.lr=[0.01, 0.1, 0.3]")
    assert r.code == 0 and f"extends {out / 't'}: 8 done, 4 new" in r.out and "8 done, 4 to run" in r.out
    trials = pd.read_parquet(out / "t" / "trials.parquet")
    assert len(trials) == 12
    assert not list((out / "t").glob("spec.*.toml"))  # one spec: the folder holds one sweep


def test_fresh_moves_old_results_aside(cli, spec, tmp_path):
    out = tmp_path / "r"
    assert cli("sweep", spec, "--out", out, "--workers", "1", "--set", "epochs=1").code == 0
    r = cli("sweep", spec, "--out", out, "--workers", "1", "--set", "epochs=1", "--fresh")
    assert r.code == 0 and "0 done, 8 to run" in r.out
    aside = [p for p in out.iterdir() if p.name.startswith("t.old-")]
    assert len(aside) == 1 and (aside[0] / "trials.parquet").exists()


def test_dry_run_prints_grid_and_writes_nothing(cli, spec, tmp_path):
    r = cli("sweep", spec, "--out", tmp_path / "r", "--dry-run")
    assert r.code == 0
    assert "8 trials (optimizer 2 × lr 2 × seed 2)" in r.out and "plan:" in r.out
    assert not (tmp_path / "r").exists()


def test_second_writer_is_refused_while_the_first_holds_the_lock(cli, spec, tmp_path):
    d = store.ResultsDir(tmp_path / "r" / "t")
    d.create()
    d.lock()
    try:
        r = cli("sweep", spec, "--out", tmp_path / "r", "--workers", "1")
        assert r.code == 2 and "in use by another dlbench sweep" in r.err
    finally:
        d.unlock()
    assert tree(d.path / "trials") == []


def test_divergence_is_a_result_and_the_sweep_goes_on(cli, tmp_path):
    r = cli("sweep", "--dataset", "digits", "--optimizer", "sgd", "--lr", "0.01,50", "--epochs", "4",
            "--name", "div", "--out", tmp_path, "--workers", "1")
    assert r.code == 0, r.err
    trials, history, _ = store.read_results(tmp_path / "div")
    by_lr = trials.set_index("lr")
    assert by_lr.loc[50.0, "status"] == "diverged" and by_lr.loc[0.01, "status"] == "ok"
    epoch = int(by_lr.loc[50.0, "diverged_epoch"])
    h = history[history.trial_id == by_lr.loc[50.0, "trial_id"]]
    assert h.epoch.max() == epoch  # the diverged epoch is kept, nothing after it
    last = h[h.epoch == epoch].iloc[0]
    assert not math.isfinite(last.train_loss) or last.train_loss > 1e6 * h[h.epoch == 0].train_loss.iloc[0]


def test_a_failing_trial_is_recorded_and_exit_code_is_1(cli, tmp_path, monkeypatch):
    from dlbench.engine import reference

    real_ref = reference.train

    def boom(trial, data):
        if trial["lr"] == 0.2:
            raise RuntimeError("out of cheese")
        return real_ref(trial, data)

    monkeypatch.setattr(reference, "train", boom)
    r = cli("sweep", "--dataset", "iris", "--lr", "0.1,0.2", "--epochs", "1", "--name", "f", "--out", tmp_path,
            "--workers", "1", "--engine", "reference")
    assert r.code == 1
    trials, _, _ = store.read_results(tmp_path / "f")
    row = trials.set_index("lr").loc[0.2]
    assert row.status == "failed" and "RuntimeError: out of cheese" in row.error
    assert trials.set_index("lr").loc[0.1].status == "ok"


def test_an_error_in_the_fused_engine_fails_its_unit_and_never_hides_as_a_fallback(cli, tmp_path, monkeypatch):
    from dlbench.engine import fused, reference

    def boom(trials, data, at_epoch=None):
        raise RuntimeError("a bug in the fused engine")

    def must_not_run(trial, data):
        raise AssertionError("the reference engine must not quietly take over")

    monkeypatch.setattr(fused, "train", boom)
    monkeypatch.setattr(reference, "train", must_not_run)
    r = cli("sweep", "--dataset", "iris", "--lr", "0.1,0.2", "--epochs", "1", "--name", "f", "--out", tmp_path,
            "--workers", "1")
    assert r.code == 1 and "2 trial(s) failed" in r.err
    trials, _, _ = store.read_results(tmp_path / "f")
    assert (trials.status == "failed").all() and (trials.engine == "fused").all()
    assert trials.error.str.contains("RuntimeError: a bug in the fused engine").all()
    assert trials.fallback_reason.isna().all()


def test_failed_expectation_exits_1_and_names_it(cli, tmp_path):
    spec = write(tmp_path / "e.toml", 'name = "e"\ndataset = "iris"\nepochs = 1\nlr = 1e-4\n'
                 '[expect]\nbest_test_acc = ">= 0.99"\nfailed = "== 0"\ndiverged = "<= 0"\n')
    r = cli("sweep", spec, "--out", tmp_path, "--workers", "1")
    assert r.code == 1
    assert "expectation failed: best_test_acc: wanted >= 0.99" in r.err
    assert "failed ==" not in r.err and "diverged" not in r.err  # only the ones that failed


def test_show_summarizes_a_sweep(cli, spec, tmp_path):
    assert cli("sweep", spec, "--out", tmp_path, "--workers", "1").code == 0
    r = cli("show", tmp_path / "t")
    assert r.code == 0 and "8 trials (8 ok)" in r.out and "adam" in r.out
    r = cli("show", tmp_path / "t", "--json")
    rows = [json.loads(line) for line in r.out.strip().splitlines()]
    assert len(rows) == 8 and {"trial_id", "optimizer", "lr", "status", "best_test_acc"} <= set(rows[0])


def test_readers_refuse_a_newer_schema(cli, spec, tmp_path):
    assert cli("sweep", spec, "--out", tmp_path, "--workers", "1").code == 0
    env_path = tmp_path / "t" / "env.json"
    env = json.loads(env_path.read_text())
    env["schema_version"] = 99
    env_path.write_text(json.dumps(env))
    r = cli("show", tmp_path / "t")
    assert r.code == 2 and "schema version 99" in r.err


def test_damaged_record_is_detected_and_its_trial_runs_again(cli, spec, tmp_path):
    out = tmp_path / "r"
    assert cli("sweep", spec, "--out", out, "--workers", "1").code == 0
    record = sorted((out / "t" / "trials").glob("*.json"))[0]
    record.write_text(record.read_text()[:100])  # truncated
    r = cli("sweep", spec, "--out", out, "--workers", "1")
    assert r.code == 0 and "7 done, 1 to run" in r.out and "damaged record" in r.err
    assert len(pd.read_parquet(out / "t" / "trials.parquet")) == 8


def test_fresh_refuses_to_move_a_folder_in_use(cli, spec, tmp_path):
    out = tmp_path / "r"
    assert cli("sweep", spec, "--out", out, "--workers", "1", "--set", "epochs=1").code == 0
    holder = store.ResultsDir(out / "t")
    holder.lock()
    try:
        r = cli("sweep", spec, "--out", out, "--workers", "1", "--set", "epochs=1", "--fresh")
        assert r.code == 2 and "in use by another dlbench sweep" in r.err
    finally:
        holder.unlock()
    assert [p.name for p in out.iterdir()] == ["t"] and (out / "t" / "trials.parquet").exists()


def test_a_log_gets_a_progress_line_every_few_percent_and_every_failed_or_diverged_trial_named(monkeypatch):
    """Where stdout is no terminal: 800 trials print 20 step lines (one per 5%), plus one a minute
    while the sweep is slow (at most 20 of those); each failed trial on a line of its own, each
    diverged one named in the next line. 388528c printed a line per trial (837 for the small suite
    with one more optimizer)."""
    import io

    from rich.console import Console

    from dlbench import runner

    clock = [0.0]
    monkeypatch.setattr(runner.time, "monotonic", lambda: clock[0])
    out = io.StringIO()
    p = runner.PlainProgress(Console(file=out, width=10_000), 800, 0)
    for i in range(1, 801):
        clock[0] += 0.2 if i < 400 else 7.0  # the second half slow: a line a minute would be 45 more
        status = "failed" if i in (17, 500) else "diverged" if i % 50 == 3 else "ok"
        p.add(f"t{i}", status, "RuntimeError: boom" if status == "failed" else None, i, "best val acc=0.9")
    p.flush(800)
    lines = out.getvalue().splitlines()
    failed = [ln for ln in lines if ": failed (" in ln]
    assert failed == ["[17/800] t17: failed (RuntimeError: boom)", "[500/800] t500: failed (RuntimeError: boom)"]
    progress = [ln for ln in lines if ln not in failed]
    assert 20 <= len(progress) <= 40 and progress[-1].startswith("[800/800] 100%")
    named = {n for ln in progress if "; diverged: " in ln for n in ln.split("; diverged: ")[1].split(", ")}
    assert named == {f"t{i}" for i in range(1, 801) if i % 50 == 3}
    # a later stage of that sweep (an extension round of 30 trials) is spaced by the sweep's size: one line
    out = io.StringIO()
    p = runner.PlainProgress(Console(file=out, width=10_000), 30, 0, scale=800)
    for i in range(1, 31):
        p.add(f"t{i}", "ok", None, i, "")
    assert out.getvalue().splitlines() == ["[30/30] 100%"]


def test_a_small_sweep_in_a_log_says_every_trial(cli, tmp_path):
    r = cli("sweep", "--dataset", "iris", "--optimizer", "sgd", "--lr", "0.01,1e6", "--epochs", "1", "--seeds", "0,1",
            "--name", "s", "--out", tmp_path, "--workers", "1")
    assert r.code == 0, r.err
    lines = [ln for ln in r.out.splitlines() if ln.startswith("[")]
    assert [ln.split("]")[0] + "]" for ln in lines] == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"]
    assert sum(": diverged" in ln and "sgd lr=1e+06" in ln for ln in lines) == 2
    assert sum(": ok best_val_acc=" in ln and "sgd lr=0.01" in ln for ln in lines) == 2
