import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dlbench.cli import main

ROOT = Path(__file__).resolve().parents[1]


class Result:
    def __init__(self, code, out, err):
        self.code, self.out, self.err = code, out, err


@pytest.fixture
def cli(capsys):
    """Run `dlbench ARGS` in this process; returns exit code, stdout and stderr."""

    def run(*args):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def dlbench_env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def run_dlbench(*args, cwd=None, timeout=300, env=None):
    """Run `python -m dlbench ARGS` as a real process."""
    p = subprocess.run([sys.executable, "-m", "dlbench", *map(str, args)], capture_output=True, text=True,
                       cwd=cwd, timeout=timeout, env={**dlbench_env(), **(env or {})})
    return Result(p.returncode, p.stdout, p.stderr)


def start_dlbench(*args, **popen) -> subprocess.Popen:
    """Start `python -m dlbench ARGS` in the background (output captured as text unless redirected)."""
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.PIPE)
    env = {**dlbench_env(), **popen.pop("env", {})}
    return subprocess.Popen([sys.executable, "-m", "dlbench", *map(str, args)], env=env, text=True, **popen)


def count_records(folder: Path) -> int:
    """Finished-trial records in a results folder (trials/*.json)."""
    records = folder / "trials"
    return len(list(records.glob("*.json"))) if records.is_dir() else 0


def stored_at_least(n: int, total: int) -> str:
    """A regex for the progress line that says at least `n` of `total` trials are stored (where
    stdout is no terminal the sweep prints one every 5% of the trials, so the n-th may have none)."""
    return rf"^\[({'|'.join(str(k) for k in range(n, total + 1))})/{total}\]"


def wait_for_line(proc: subprocess.Popen, pattern: str, timeout: float = 120) -> list[str]:
    """Read `proc`'s stdout (a text pipe) line by line until a line matches the regex `pattern`;
    returns the lines read (the last one matched), or raises AssertionError when the process ends
    or the time runs out first. The sweep prints a progress line right after a trial is stored
    (every trial in a sweep of up to 20, every 5% in a larger one: stored_at_least), so "k trials
    are stored" is an event a test can wait on, not a guess at how long it takes.
    The rest of the output keeps being drained in the background, so the process never blocks on it."""
    import queue
    import re
    import threading

    lines: queue.Queue = queue.Queue()

    def pump():
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"no line matching {pattern!r} within {timeout} s; got {seen[-5:]}") from None
        if line is None:
            raise AssertionError(f"the process ended before a line matched {pattern!r}; got {seen[-5:]}")
        seen.append(line)
        if re.search(pattern, line):
            return seen


def wait_until(done: Callable[[], bool], proc: subprocess.Popen, timeout: float = 120) -> bool:
    """Poll until done() holds; False if the process ended or the time ran out first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if done():
            return True
        time.sleep(0.01)
    return False


TIMING = ["train_time", "eval_time", "wall_time"]  # the columns that differ between identical runs


def result_tables(folder: Path):
    """(trials, history) of a results folder without timings, in a stable order: two runs of the
    same sweep must give equal tables."""
    import pandas as pd

    t = pd.read_parquet(folder / "trials.parquet").drop(columns=TIMING).sort_values("trial_id")
    h = pd.read_parquet(folder / "history.parquet").drop(columns=TIMING[:2]).sort_values(["trial_id", "epoch"])
    return t.reset_index(drop=True), h.reset_index(drop=True)


def sweep(out: Path, name: str, *args) -> Path:
    """Run `dlbench sweep ARGS --name NAME --out OUT` in this process; its results folder."""
    try:
        main(["sweep", *args, "--name", name, "--out", str(out), "--workers", "1"])
    except SystemExit as e:
        assert e.code == 0
    return out / name


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def tree(path: Path) -> list[str]:
    """Every file under path (for checking that nothing was written or changed)."""
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


def session_processes(sid: int) -> list[str]:
    """Command lines of the processes still in session `sid` (a process started with
    start_new_session=True leads a session whose id is its pid)."""
    left = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.getsid(int(entry)) == sid:
                left.append(Path(f"/proc/{entry}/cmdline").read_text().replace("\0", " ").strip())
        except OSError:
            continue  # gone meanwhile
    return left


def recorded_local_clusters(monkeypatch) -> list:
    """The Dask LocalClusters a sweep in this process starts (`--address local`), kept so that a
    test can ask their schedulers what they ran."""
    import distributed

    started = []

    class Recorded(distributed.LocalCluster):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            started.append(self)

    monkeypatch.setattr(distributed, "LocalCluster", Recorded)
    return started
