"""The SLURM executor without a cluster: the [slurm] table's checks, the driver's loop over a
fake queue (adopting jobs an earlier driver left, submitting again what ended without results,
giving up after `attempts`), arrays split at MaxArraySize, all with submitit's mocked sbatch.
The same on a real one-node cluster: test_slurm.py."""

from __future__ import annotations

import pickle
import re

import pytest

pytest.importorskip("submitit")
from submitit.slurm.test_slurm import mocked_slurm  # noqa: E402

from dlbench import slurm, slurm_jobs  # noqa: E402
from dlbench.errors import UserError  # noqa: E402
from dlbench.plan import Unit  # noqa: E402


def test_the_slurm_table_is_checked_key_by_key():
    s = slurm.settings({"partition": "gpu", "time": "1:30:00", "mem": "4G", "sbatch": {"account": "proj"}})
    assert s["cpus_per_task"] == 1 and s["array_parallelism"] == 16 and s["attempts"] == 3
    assert slurm.sbatch_options(s) == ["--time=90", "--cpus-per-task=1", "--ntasks=1", "--partition=gpu",
                                       "--mem=4096M", "--account=proj"]
    for table, words in (({"partitoin": "x"}, "[slurm] has no key 'partitoin'; allowed: partition, time"),
                         ({"time": "soon"}, "[slurm] time = 'soon' is not allowed; allowed: a job's time limit"),
                         ({"time": 0}, "[slurm] time = 0 is not allowed"),
                         ({"cpus_per_task": 0}, "[slurm] cpus_per_task = 0 is not allowed; allowed: a whole number"),
                         ({"array_parallelism": True}, "[slurm] array_parallelism = True is not allowed"),
                         ({"mem": "lots"}, "[slurm] mem = 'lots' is not allowed; allowed: memory per job"),
                         ({"setup": "module load x"}, "[slurm] setup = 'module load x' is not allowed; allowed: "
                                                      "a list"),
                         ({"sbatch": {"Bad Key": 1}}, "[slurm] sbatch = {'Bad Key': 1} is not allowed"),
                         ({"partition": "a b"}, "[slurm] partition = 'a b' is not allowed")):
        with pytest.raises(UserError, match=re.escape(words)):
            slurm.settings(table)


@pytest.mark.parametrize("text, minutes", [(30, 30), ("45", 45), ("1:30:00", 90), ("2-00:00:00", 2880),
                                           ("10:30", 11), ("1-2", 1560), ("infinite", 10**9), ("UNLIMITED", 10**9)])
def test_time_limits_read_as_slurm_writes_them(text, minutes):
    assert slurm.minutes(text) == minutes


@pytest.mark.parametrize("text, mb", [(4000, 4000), ("4G", 4096), ("500M", 500), ("1T", 1048576), ("2048K", 2)])
def test_memory_reads_as_slurm_writes_it(text, mb):
    assert slurm.megabytes(text) == mb


def test_a_spec_keeps_its_slurm_table_and_the_command_line_overrides_it():
    from dlbench.spec import apply_set, build_sweep

    raw = {"dataset": "iris", "optimizer": "sgd", "lr": 0.1, "epochs": 1, "executor": "slurm",
           "slurm": {"partition": "debug", "time": 30}}
    apply_set(raw, "slurm.time=2:00:00")
    sweep = build_sweep(raw)
    assert sweep.slurm["time"] == "2:00:00" and sweep.slurm["partition"] == "debug"
    assert 'slurm = { partition = "debug", time = "2:00:00"' in sweep.to_toml()
    assert build_sweep({**raw, "executor": "local"}).executor == "local"  # the table stays, unused
    with pytest.raises(UserError, match=r"executor = 'cluster' is unknown; allowed: local, dask, slurm"):
        build_sweep({**raw, "executor": "cluster"})


def test_without_slurm_commands_the_sweep_is_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UserError, match=r"executor = 'slurm' needs SLURM's commands, and sbatch is not on PATH"):
        slurm.check(slurm.settings({}), tmp_path / "out")


def test_a_folder_only_this_machine_sees_is_refused_where_the_nodes_are_others(tmp_path, monkeypatch):
    monkeypatch.setattr(slurm, "missing_command", lambda: None)
    monkeypatch.setattr(slurm, "partitions", lambda: (["cpu"], "cpu"))
    monkeypatch.setattr(slurm, "partition_offer", lambda p: {"cpus": 64, "mem": 256000, "time": 2880,
                                                             "nodes": ["node01", "node02"]})
    monkeypatch.setattr(slurm, "_run", lambda args, timeout=30: type("P", (), {"returncode": 0, "stderr": ""})())
    monkeypatch.setattr(slurm, "filesystem_of", lambda p: "tmpfs")
    with pytest.raises(UserError, match=r"results folder '.*' is on a tmpfs filesystem of this machine, which the "
                                        r"nodes of partition 'cpu' \(node01, node02\) do not see"):
        slurm.check(slurm.settings({}), tmp_path)
    assert slurm.check(slurm.settings({"shared_folder": True}), tmp_path)["partition"] == "cpu"
    monkeypatch.setattr(slurm, "filesystem_of", lambda p: "nfs4")
    assert slurm.check(slurm.settings({}), tmp_path)["partition"] == "cpu"


def units(n: int) -> list[Unit]:
    return [Unit([{"id": f"t{i}"}], "reference") for i in range(n)]


@pytest.fixture
def fake_queue(monkeypatch):
    """squeue as a dict the test fills: job id -> state; no sleeping between looks."""
    queue: dict[str, str] = {}
    monkeypatch.setattr(slurm, "job_states", lambda ids: {j: queue[j] for j in ids if j in queue})
    monkeypatch.setattr(slurm, "missing_command", lambda: None)  # as on a login node, with no SLURM here
    monkeypatch.setattr(slurm, "max_array_size", lambda: 1001)
    monkeypatch.setattr(slurm_jobs, "POLL_S", 0.0)
    monkeypatch.setattr(slurm_jobs, "GRACE_S", 0.0)
    return queue


def finish(results, unit: Unit) -> None:
    """What a job leaves when it trains its unit."""
    box = slurm.outbox(results, slurm_jobs.unit_key(unit))
    box.parent.mkdir(parents=True, exist_ok=True)
    box.write_bytes(pickle.dumps([{"trial_id": t["id"], "status": "ok"} for t in unit.trials]))


def test_arrays_past_max_array_size_are_split_each_after_the_one_before(tmp_path, fake_queue, monkeypatch):
    monkeypatch.setattr(slurm, "max_array_size", lambda: 2)
    ex = slurm_jobs.SlurmExecutor(tmp_path, slurm.settings({"array_parallelism": 2}), "s")
    us = units(5)
    with mocked_slurm():
        ex._submit([slurm_jobs.unit_key(u) for u in us], {slurm_jobs.unit_key(u): u for u in us}, book := {})
    arrays = sorted({e["job_id"].split("_")[0] for e in book.values()})
    assert len(book) == 5 and len(arrays) == 3  # 2 + 2 + 1 tasks
    scripts = sorted((tmp_path / "slurm" / "logs").glob("**/*submission.sh"))
    text = [p.read_text() for p in scripts]
    assert sum("#SBATCH --array=0-1%2" in t for t in text) == 2
    assert sum(f"#SBATCH --dependency=afterany:{arrays[0]}" in t for t in text) == 1
    assert sum(f"#SBATCH --dependency=afterany:{arrays[1]}" in t for t in text) == 1
    assert slurm.read_jobs(tmp_path) == book  # recorded as submitted


def test_a_rerun_waits_for_jobs_still_queued_and_submits_only_what_ended_without_results(tmp_path, fake_queue):
    us = units(4)
    keys = [slurm_jobs.unit_key(u) for u in us]
    # an earlier driver submitted all four, then died: one finished, one runs, one waits, one was cancelled
    slurm.write_jobs(tmp_path, {k: {"job_id": f"7_{i}", "trials": u.ids, "engine": "reference", "stdout": "o",
                                    "stderr": str(tmp_path / "e"), "attempts": 1}
                                for i, (k, u) in enumerate(zip(keys, us, strict=True))})
    finish(tmp_path, us[0])
    fake_queue.update({"7_0": "COMPLETED", "7_1": "RUNNING", "7_2": "PENDING", "7_3": "CANCELLED"})
    ex = slurm_jobs.SlurmExecutor(tmp_path, slurm.settings({}), "s")
    got = []
    with mocked_slurm():
        it = ex.run(us)
        got += next(it)  # the one that finished while no driver was here
        assert ex.adopted == 2 and ex.submitted == 1  # the cancelled one only
        book = slurm.read_jobs(tmp_path)
        assert book[keys[3]]["attempts"] == 2 and book[keys[3]]["job_id"] != "7_3"
        assert [book[k]["job_id"] for k in keys[1:3]] == ["7_1", "7_2"]
        # submitted after the array still running, so that array_parallelism holds for the sweep
        (script,) = (tmp_path / "slurm" / "logs").glob("**/*submission.sh")
        assert "#SBATCH --dependency=afterany:7\n" in script.read_text()
        for u, j in zip(us[1:], ("7_1", "7_2", book[keys[3]]["job_id"]), strict=True):
            finish(tmp_path, u)
            fake_queue[j] = "COMPLETED"
        got += [r for rs in it for r in rs]
    assert sorted(r["trial_id"] for r in got) == ["t0", "t1", "t2", "t3"]
    assert not list((tmp_path / "slurm" / "done").glob("*.pkl"))


def test_a_unit_whose_job_keeps_ending_without_results_fails_after_its_attempts(tmp_path, fake_queue):
    (tmp_path / "e").write_text("Traceback...\nMemoryError: the node ran out\n")
    (u,) = units(1)
    ex = slurm_jobs.SlurmExecutor(tmp_path, slurm.settings({"attempts": 2}), "s")
    with mocked_slurm():
        it = ex.run([u])
        orig = ex._submit

        def submit_then_fail(keys, by_key, book, after=None):  # every job it submits ends without results
            orig(keys, by_key, book, after)
            for k in keys:
                book[k]["stderr"] = str(tmp_path / "e")
                fake_queue[book[k]["job_id"]] = "FAILED"

        ex._submit = submit_then_fail
        ex._submit(ex_keys := [slurm_jobs.unit_key(u)], {ex_keys[0]: u}, slurm.read_jobs(tmp_path))
        (records,) = list(it)
    (r,) = records
    assert r["status"] == "failed" and "ended (FAILED) without results, 2 time(s)" in r["error"]
    assert "(MemoryError: the node ran out)" in r["error"] and r["error"].endswith(f"log: {tmp_path / 'e'}")


def test_a_queue_that_does_not_answer_for_a_while_judges_no_job_gone(tmp_path, fake_queue, monkeypatch):
    (u,) = units(1)
    ex = slurm_jobs.SlurmExecutor(tmp_path, slurm.settings({}), "s")
    answers = {"n": 0}
    real = slurm.job_states

    def flaky(ids):  # the first look before submitting answers; the next three fail
        answers["n"] += 1
        if 2 <= answers["n"] <= 4:
            raise RuntimeError("squeue failed: Socket timed out on send/recv operation")
        for e in slurm.read_jobs(tmp_path).values():
            fake_queue.setdefault(e["job_id"], "RUNNING")  # what was submitted runs
        if answers["n"] == 5:
            finish(tmp_path, u)  # the job finished meanwhile
        return real(ids)

    monkeypatch.setattr(slurm, "job_states", flaky)
    with mocked_slurm():
        (records,) = list(ex.run([u]))
    assert [r["status"] for r in records] == ["ok"] and ex.submitted == 1  # never submitted again


def test_away_from_the_cluster_a_unit_not_stored_is_unknown_not_failed(tmp_path, monkeypatch):
    (u, v) = units(2)
    slurm.write_jobs(tmp_path, {slurm_jobs.unit_key(w): {"job_id": f"9_{i}", "trials": w.ids, "engine": "reference",
                                                         "stdout": "o", "stderr": "e", "attempts": 1}
                                for i, w in enumerate((u, v))})
    monkeypatch.setenv("PATH", str(tmp_path))  # no squeue: a laptop holding a copy of the folder
    rows = {r["job_id"]: r["state"] for r in slurm.unit_states(tmp_path, stored={"t0"})}
    assert rows == {"9_0": "stored", "9_1": "unknown (no squeue here)"}


def test_fresh_is_refused_while_an_earlier_runs_jobs_are_queued_or_running(tmp_path, fake_queue):
    us = units(3)
    slurm.write_jobs(tmp_path, {slurm_jobs.unit_key(w): {"job_id": f"5_{i}", "trials": w.ids, "engine": "reference",
                                                         "stdout": "o", "stderr": "e", "attempts": 1}
                                for i, w in enumerate(us)})
    fake_queue.update({"5_0": "COMPLETED", "5_1": "RUNNING", "5_2": "PENDING"})
    with pytest.raises(UserError, match=r"--fresh: 2 SLURM job\(s\) of the earlier run in .* are still queued or "
                                        r"running \(5_1 5_2\) and would leave their results in the new folder; "
                                        r"allowed: scancel them first"):
        slurm.check_no_jobs_left(tmp_path)
    fake_queue.update({"5_1": "COMPLETED", "5_2": "CANCELLED"})
    slurm.check_no_jobs_left(tmp_path)  # nothing left: --fresh may move the folder aside
