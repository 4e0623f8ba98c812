"""The local executor when worker processes die."""

import os
import signal
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool

import pandas as pd
import pytest

from dlbench.executors import LocalExecutor
from dlbench.plan import Unit
from tests.conftest import count_records, run_dlbench, start_dlbench, wait_until, write


class FakePool:
    """Runs units at once; a unit named 'bad' kills its worker, breaking the whole pool."""

    def __init__(self, log):
        self.log = log
        self.futures = []

    def submit(self, fn, unit, data_dir):
        f = Future()
        self.futures.append(f)
        self.log.append(unit.trials[0]["id"])
        if unit.trials[0]["id"] == "bad":
            for other in self.futures:
                if not other.done():
                    other.set_exception(BrokenProcessPool("a worker died"))
        else:
            f.set_result([{"trial_id": t["id"], "status": "ok"} for t in unit.trials])
        return f

    def shutdown(self, wait=True, cancel_futures=False):
        pass


class FakeExecutor(LocalExecutor):
    def __init__(self):
        super().__init__(workers=2)
        self.pools = 0
        self.log = []

    def start(self):
        if self.pool is None:
            self.pools += 1
            self.pool = FakePool(self.log)
        return self


def unit(name, n=1):
    return Unit([{"id": name if n == 1 else f"{name}{i}"} for i in range(n)], "fused")


def test_a_unit_that_kills_every_worker_is_failed_and_the_others_finish_once():
    ex = FakeExecutor()
    units = [unit("a"), unit("bad"), unit("b"), unit("c")]
    results = [r for batch in ex._run_pool(units) for r in batch]
    by_id = {}
    for r in results:
        by_id.setdefault(r["trial_id"], []).append(r)
    assert {k: len(v) for k, v in by_id.items()} == {"a": 1, "b": 1, "c": 1, "bad": 1}
    assert by_id["bad"][0]["status"] == "failed" and "also when it ran alone" in by_id["bad"][0]["error"]
    assert ex.pools == 4  # the first pool and one fresh pool after each of the three breaks
    assert ex.log.count("bad") == 3  # twice alongside others, then once alone


@pytest.mark.slow
def test_killed_local_worker_the_sweep_still_stores_every_trial_once(tmp_path):
    import psutil

    spec = write(tmp_path / "w.toml", 'name = "w"\ndataset = "digits"\nepochs = 3\nbatch_size = 8\n'
                 'engine = "reference"\nseeds = [0, 1]\n[grid]\nlr = [0.001, 0.01, 0.1]\n')
    p = start_dlbench("sweep", spec, "--out", tmp_path / "o", "--workers", "2")
    killed = []

    def kill_a_worker() -> bool:
        if count_records(tmp_path / "o" / "w") < 1:
            return False
        servers = [c for c in psutil.Process(p.pid).children() if "forkserver" in " ".join(c.cmdline())]
        workers = [w for s in servers for w in s.children()]
        if workers:
            os.kill(workers[0].pid, signal.SIGKILL)
            killed.append(workers[0].pid)
        return bool(workers)

    wait_until(kill_a_worker, p)
    out, err = p.communicate(timeout=300)
    assert killed, "no worker process was found to kill"
    assert p.returncode == 0, err
    trials = pd.read_parquet(tmp_path / "o" / "w" / "trials.parquet")
    assert len(trials) == 6 and trials.trial_id.is_unique and set(trials.status) == {"ok"}


def test_a_signal_while_the_last_results_are_stored_is_acted_on():
    """A signal that comes while the runner stores what the executor yielded (not inside a wait on
    the pool) stops the sweep at once, even when nothing is left to wait for."""
    import pytest

    from dlbench.interrupt import Interrupted, StopOnSignal

    ex = FakeExecutor()
    ex.stop = StopOnSignal()
    got = []
    with pytest.raises(Interrupted):
        for batch in ex._run_pool([unit("a"), unit("b")]):
            got += batch
            if len(got) == 2:  # the last results: the pool has nothing more in flight
                ex.stop._handle(signal.SIGINT, None)  # what the signal would call here
    assert len(got) == 2 and ex.stop.signum == signal.SIGINT


@pytest.mark.parametrize("workers", [2, 1])
def test_a_one_trial_sweep_trains_on_the_warmed_pool_and_with_one_worker_in_the_driver(tmp_path, workers):
    """`dlbench sweep` starts the forkserver (which imports torch) before it reads its spec: a
    one-trial sweep then trains in a worker forked from it, rather than importing torch a second
    time in the driver (docs/performance.md: 1.49 s against 1.19 s); with one worker there is no
    pool, and the driver trains."""
    timeline = tmp_path / "timeline"
    r = run_dlbench("sweep", "--dataset", "digits", "--optimizer", "adam", "--epochs", "1", "--seeds", "0",
                    "--workers", workers, "--name", "one", "--out", tmp_path / "o",
                    env={"DLBENCH_TIMELINE": str(timeline)})
    assert r.code == 0, r.err
    marks = [line.split(None, 2) for line in timeline.read_text().splitlines()]
    driver = next(pid for _, pid, label in marks if label == "start")
    trainer = next(pid for _, pid, label in marks if label.startswith("unit start"))
    assert (trainer != driver) == (workers > 1), marks
    assert len(pd.read_parquet(tmp_path / "o" / "one" / "trials.parquet")) == 1
