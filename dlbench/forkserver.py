"""The forkserver the local workers fork from, started as soon as a sweep knows it will use them.

Each local worker is forked from multiprocessing's forkserver, which imports torch (and the
engine) once, about a second here; every worker then starts with it imported. `start` launches
the server and returns at once: the import overlaps whatever this process does meanwhile.
`dlbench sweep` calls `warm` before it even reads its spec (all it needs is the flags and three
keys of the spec file), and the pool of dlbench.executors finds the server running.

Standard library only (a bottom layer): starting the server must not wait for dlbench's own
imports."""

from __future__ import annotations

import os
from pathlib import Path

# what a worker imports once, before its first unit (the forkserver preloads these)
WORKER_MODULES = ("torch", "dlbench.plan", "dlbench.engine.fused")


def start() -> None:
    """Start the server (if it is not running) with dlbench.lifeline and WORKER_MODULES to import;
    returns at once. (What only some sweeps need, torch._dynamo for users' optimizers, each worker
    imports as it starts: dlbench.executors.) The driver's pid is in the server's environment (DLBENCH_DRIVER_PID,
    read by dlbench.lifeline there and in the workers), set only meanwhile, so that no other child
    of this process (a dlbench started by a test, say) takes itself for a forkserver of this driver."""
    import multiprocessing as mp
    from multiprocessing import forkserver

    from dlbench.lifeline import DRIVER_ENV
    from dlbench.timeline import mark

    mark("forkserver asked for")
    earlier = os.environ.get(DRIVER_ENV)
    os.environ[DRIVER_ENV] = str(os.getpid())
    try:
        mp.get_context("forkserver").set_forkserver_preload(["dlbench.lifeline", *WORKER_MODULES])
        forkserver.ensure_running()
    finally:
        if earlier is None:
            os.environ.pop(DRIVER_ENV, None)
        else:
            os.environ[DRIVER_ENV] = earlier


def end() -> None:
    """End the server (Python's own, for this process), e.g. while it still imports torch: a submit
    waiting on it returns, and the next pool starts a fresh one."""
    import signal
    from multiprocessing import forkserver

    pid = getattr(getattr(forkserver, "_forkserver", None), "_forkserver_pid", None)
    if pid:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def warm(spec_file: Path | None, workers: int | None, executor: str | None, address: str | None) -> bool:
    """Start the server now when the sweep will train on local workers: more than one worker
    (--workers, the spec's `workers`, or one per core), no Dask. Reads only those keys of the spec
    file; a file it cannot read starts nothing (reading it properly says what is wrong).
    Whether it started."""
    import tomllib

    raw: dict = {}
    if spec_file is not None:
        try:
            raw = tomllib.loads(Path(spec_file).read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return False
    n = workers if workers is not None else raw.get("workers")
    if n is None:
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if not isinstance(n, int) or isinstance(n, bool) or n <= 1:
        return False
    if (executor or raw.get("executor", "local")) != "local" or address or raw.get("address"):
        return False
    start()
    return True
