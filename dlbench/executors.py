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


class LocalExecutor:
    """`workers` processes (forkserver: torch imported once, workers fork from it quickly).
    With one worker, or one unit, everything runs in this process."""

    def __init__(self, workers: int, data_dir: str | None = None, threads_per_worker: int = 1):
        self.workers = workers
        self.data_dir = data_dir
        self.threads = threads_per_worker

    def run(self, units: list[Unit], cancelled: Callable[[], bool] = lambda: False) -> Iterator[list[dict]]:
        if self.workers <= 1 or len(units) <= 1:
            for u in units:
                if cancelled():
                    return
                yield run_unit(u, self.data_dir)
            return
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["torch", "dlbench.plan", "dlbench.engine.reference", "dlbench.engine.fused"])
        with ProcessPoolExecutor(max_workers=min(self.workers, len(units)), mp_context=ctx,
                                 initializer=_worker_init, initargs=(self.threads,)) as pool:
            futures = [pool.submit(run_unit, u, self.data_dir) for u in units]
            try:
                for fut in as_completed(futures):
                    yield fut.result()
            finally:
                for f in futures:
                    f.cancel()
