"""Where units of work run: in this process, or on a pool of long-lived worker processes, each
with one intra-op thread. Executors know nothing of training: they call plan.run_unit."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from dlbench.plan import Unit, run_unit


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def _worker_init(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _warm() -> None:
    """Runs once in each worker as the pool starts: the imports happen while the driver works."""
    import dlbench.engine.fused  # noqa: F401


class LocalExecutor:
    """`workers` long-lived processes with one intra-op thread each (forkserver: torch is
    imported once, in the server, and workers fork from it). With one worker, or one unit,
    everything runs in this process.

    `start()` launches the pool early, so that importing torch in the workers overlaps with the
    driver's own start-up (reading the spec and the results folder)."""

    def __init__(self, workers: int, data_dir: str | None = None, threads_per_worker: int = 1):
        self.workers = workers
        self.data_dir = data_dir
        self.threads = threads_per_worker
        self.pool = None

    def start(self) -> LocalExecutor:
        if self.workers > 1 and self.pool is None:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            ctx = mp.get_context("forkserver")
            ctx.set_forkserver_preload(["torch", "dlbench.plan", "dlbench.engine.fused"])
            self.pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=_worker_init,
                                            initargs=(self.threads,))
            for _ in range(self.workers):
                self.pool.submit(_warm)
        return self

    def shutdown(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None

    def run(self, units: list[Unit], cancelled: Callable[[], bool] = lambda: False) -> Iterator[list[dict]]:
        if self.pool is None and (self.workers <= 1 or len(units) <= 1):
            for u in units:
                if cancelled():
                    return
                yield run_unit(u, self.data_dir)
            return
        from concurrent.futures import as_completed

        self.start()
        futures = [self.pool.submit(run_unit, u, self.data_dir) for u in units]
        try:
            for fut in as_completed(futures):
                yield fut.result()
        finally:
            for f in futures:
                f.cancel()
