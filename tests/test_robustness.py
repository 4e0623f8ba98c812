"""What users throw at a sweep: fuzzed specs, unwritable folders, a full disk."""

import errno
import os
import tomllib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlbench.errors import UserError
from dlbench.spec import ALL_KEYS, build_sweep
from tests.conftest import tree, write

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["digits", "adam", "full", "relu", "mlp", "cpu", "cuda"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.sampled_from(["kind", "hidden", "activation", "gamma", "warmup", "x"]), inner, max_size=3), max_leaves=8)
keys = st.one_of(st.sampled_from(ALL_KEYS), st.text(min_size=1, max_size=10))
specs = st.dictionaries(keys, values, max_size=6)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs)
def test_fuzzed_specs_are_accepted_or_refused_with_a_user_error(raw):
    raw = {k: v for k, v in raw.items() if v is not None}
    try:
        sweep = build_sweep(raw)
    except UserError as e:
        text = str(e)
        assert text and "\n" not in text
        return
    # accepted: every trial is canonical and its expanded spec reads back the same
    assert sweep.trials and all(len(t["id"]) == 12 for t in sweep.trials)
    again = build_sweep(tomllib.loads(sweep.to_toml()))
    assert [t["id"] for t in again.trials] == [t["id"] for t in sweep.trials]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_fuzzed_spec_files_exit_0_or_2_without_traceback(cli, tmp_path, content):
    path = tmp_path / "fuzz.toml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    r = cli("sweep", path, "--dry-run", "--out", tmp_path / "out")
    assert r.code in (0, 2), r.err
    assert "Traceback" not in r.err
    if r.code == 2:
        assert len(r.err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_results_folder_that_cannot_be_created(cli, tmp_path):
    blocker = write(tmp_path / "a-file", "x")
    r = cli("sweep", "--dataset", "iris", "--epochs", "1", "--out", blocker / "results")
    assert r.code == 2 and "cannot create results folder" in r.err and len(r.err.strip().splitlines()) == 1


def test_full_disk_mid_sweep_is_a_clear_error_and_leaves_no_half_file(cli, tmp_path, monkeypatch):
    spec = write(tmp_path / "s.toml", 'name = "s"\ndataset = "iris"\nepochs = 1\n[grid]\nlr = [0.01, 0.1, 0.3]\n')
    out = tmp_path / "out"
    real_fsync = os.fsync
    calls = {"n": 0}

    def fsync(fd):
        calls["n"] += 1
        if calls["n"] == 4:  # spec.toml, env.json, the first trial record, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    r = cli("sweep", spec, "--out", out, "--workers", "1", "--engine", "reference")
    assert r.code == 2 and "No space left on device" in r.err and "choose another with --out" in r.err
    files = tree(out / "s")
    assert not [f for f in files if ".tmp" in f]
    records = [f for f in files if f.startswith("trials/") and f.endswith(".json")]
    assert len(records) == 1
    monkeypatch.setattr(os, "fsync", real_fsync)
    r = cli("sweep", spec, "--out", out, "--workers", "1", "--engine", "reference")
    assert r.code == 0 and "1 done, 2 to run" in r.out


@pytest.mark.slow
def test_two_sweeps_at_once_on_one_folder(tmp_path):
    """A real second process is refused while the first holds the lock; nothing is corrupted. The first
    is paused (SIGSTOP) once it holds the lock, so it cannot finish before the second has tried."""
    import signal
    import subprocess

    import pandas as pd

    from tests.conftest import run_dlbench, start_dlbench, wait_until

    spec = write(tmp_path / "s.toml", 'name = "s"\ndataset = "iris"\nepochs = 2\n'
                 'engine = "reference"\n[grid]\nlr = [0.01, 0.02]\n')
    first = start_dlbench("sweep", spec, "--out", tmp_path / "o", "--workers", "1", stdout=subprocess.DEVNULL)
    lock = tmp_path / "o" / "s" / ".lock"
    try:
        assert wait_until(lambda: lock.exists() and bool(lock.read_text().strip()), first, timeout=60)
        first.send_signal(signal.SIGSTOP)  # a stopped process keeps its lock
        second = run_dlbench("sweep", spec, "--out", tmp_path / "o", "--workers", "1")
        assert second.code == 2 and "in use by another dlbench sweep" in second.err
        assert f"pid {first.pid}" in second.err
    finally:
        first.send_signal(signal.SIGCONT)
    assert first.wait(timeout=300) == 0, first.stderr.read()
    assert len(pd.read_parquet(tmp_path / "o" / "s" / "trials.parquet")) == 2


def test_sweep_names_cannot_escape_the_results_folder():
    for bad in ("../x", "a/b", "/etc", "..", ".hidden", "x" * 101, "a b", "~user"):
        with pytest.raises(UserError):
            build_sweep({"name": bad})
