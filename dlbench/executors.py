"""Where units of work run: in this process, on a pool of long-lived local worker processes
(one intra-op thread each), or on a Dask cluster. Executors know nothing of training: they call
plan.run_unit, start each worker with plan.prepare_worker (and the forkserver with the modules
dlbench.forkserver.WORKER_MODULES names), and hand the results back to the driver, which alone writes the store."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from dlbench.errors import UserError
from dlbench.plan import Unit, failed, prepare_worker, run_unit


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def _start_worker(preload: tuple[str, ...] = ()) -> None:
    """Each worker's initializer: tie it to its parent (dlbench.lifeline), then get ready to train
    while the driver works, importing `preload` too (each worker on its own core, at the same time)."""
    import importlib

    from dlbench.lifeline import tie_to_parent

    tie_to_parent()
    prepare_worker()
    for module in preload:
        importlib.import_module(module)


def _submit_quietly(pool) -> None:
    """A no-op submitted to start the pool's first worker; a pool ended meanwhile is no error."""
    try:
        pool.submit(os.getpid)
    except Exception:  # noqa: BLE001 - the pool was shut down or broke: the dispatch loop says so
        pass


class LocalExecutor:
    """`workers` long-lived processes, each training with one intra-op thread (forkserver: torch is
    imported once, in the server, and workers fork from it). With one worker everything runs in
    this process; with one unit too, unless the pool was started (`dlbench sweep` starts it for
    every local sweep with several workers, since it warmed the forkserver before reading the spec).

    `start()` launches the pool early, so that importing torch in the workers overlaps with the
    driver's own start-up (reading the spec and the results folder)."""

    def __init__(self, workers: int, data_dir: str | None = None, preload: tuple[str, ...] = ()):
        self.workers = workers
        self.data_dir = data_dir
        self.preload = preload  # more modules each worker imports as it starts (torch._dynamo, for user optimizers)
        self.pool = None
        self._warming = None  # the thread whose submit forks the first worker
        self.stop = None  # the runner's StopOnSignal: a signal is acted on between waits, not inside one

    def start(self) -> LocalExecutor:
        if self.workers > 1 and self.pool is None:
            import multiprocessing as mp
            import threading
            from concurrent.futures import ProcessPoolExecutor

            from dlbench import forkserver

            forkserver.start()  # running already when `dlbench sweep` warmed it
            self.pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=mp.get_context("forkserver"),
                                            initializer=_start_worker, initargs=(self.preload,))
            # the pool forks its first worker on the first submit, which waits until the server has
            # imported torch (a second here): submitted on a thread, so that this process goes on with
            # its own work meanwhile (reading the spec and the results folder, importing pandas)
            self._warming = threading.Thread(target=_submit_quietly, args=(self.pool,), daemon=True)
            self._warming.start()
        return self

    @property
    def started(self) -> bool:
        """Whether its worker processes exist (or are starting)."""
        return self.pool is not None

    def call(self, fn, *args):
        """fn(*args) in one of its workers, waited for (the session inspects users' code there)."""
        return self.pool.submit(fn, *args).result()

    def shutdown(self) -> None:
        if self.pool is not None:
            self._warmed()
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None

    def kill(self) -> None:
        """End every worker now (an interrupted sweep, a refused spec, the end of a sweep): units in
        flight are lost, stored ones kept. The pool's manager thread is joined too: left running, it
        wakes at interpreter exit on a pipe that is closed by then and prints a traceback."""
        if self.pool is not None:
            if self._warming is not None and self._warming.is_alive():
                from dlbench import forkserver

                forkserver.end()  # still importing torch: ended, so that the first submit returns now
            self._warmed()
            pool, self.pool = self.pool, None
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                proc.kill()
            pool.shutdown(wait=True, cancel_futures=True)

    def _warmed(self) -> None:
        if self._warming is not None:
            self._warming.join()
            self._warming = None

    def run(self, units: list[Unit]) -> Iterator[list[dict]]:
        if self.pool is None and (self.workers <= 1 or len(units) <= 1):
            for u in units:
                yield run_unit(u, self.data_dir)
            return
        yield from self._run_pool(units)

    @contextmanager
    def _pool_call(self):
        """Around a call into concurrent.futures (submit, wait): a signal is only recorded there,
        and raised just after, holding no lock. Elsewhere (the caller storing what was yielded) it
        is raised at once, so a signal near the end is never dropped."""
        if self.stop is None:
            yield
            return
        with self.stop.deferring():
            yield
        self.stop.check()

    def _run_pool(self, units: list[Unit]) -> Iterator[list[dict]]:
        """At most one unit per worker in flight, so that when a worker process dies (killed,
        out of memory) the units it may have held are known: each gets a strike and runs again
        in a fresh pool; a unit with MAX_STRIKES strikes runs alone, and a unit that kills a
        worker while running alone is stored as failed instead of being retried forever."""
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        queue = list(units)
        strikes: dict[int, int] = {}
        in_flight: dict = {}  # future -> (unit, running alone)
        self.start()
        while queue or in_flight:
            broken = False  # the pool broke while a unit was being handed to it
            while queue and len(in_flight) < self.workers:
                alone = strikes.get(id(queue[0]), 0) >= MAX_STRIKES
                if alone and in_flight:
                    break  # wait until the pool is empty, then run it by itself
                try:
                    with self._pool_call():
                        fut = self.pool.submit(run_unit, queue[0], self.data_dir)
                except BrokenProcessPool:
                    broken = True  # a worker died since the last wait; this unit never ran
                    break
                in_flight[fut] = (queue.pop(0), alone)
                if alone:
                    break
            with self._pool_call():
                done, _ = wait(in_flight, timeout=0.2, return_when=FIRST_COMPLETED) if in_flight else (set(), set())
            lost: list[tuple[Unit, bool]] = []
            for fut in done:
                unit, alone = in_flight.pop(fut)
                try:
                    yield fut.result()
                except BrokenProcessPool:
                    lost.append((unit, alone))
            if not lost and not broken:
                continue
            # the pool is gone, and with it every unit still in flight
            lost += list(in_flight.values())
            in_flight.clear()
            for unit, alone in reversed(lost):
                strikes[id(unit)] = strikes.get(id(unit), 0) + 1
                if alone:
                    error = RuntimeError("a worker process died while training this unit, also when it ran alone")
                    yield [failed(t, error, unit.engine) for t in unit.trials]
                else:
                    queue.insert(0, unit)
            with self._pool_call():
                self.pool.shutdown(wait=False, cancel_futures=True)
                self.pool = None
                self.start()


MAX_STRIKES = 2  # pool breaks a unit may be caught in before it runs alone


class DaskExecutor:
    """Units of work on a Dask cluster: `address` is a running scheduler (tcp://host:8786, as
    started by `dask scheduler` / `dask worker`, dask-jobqueue or dask-kubernetes) or "local"
    (a LocalCluster of `workers` processes on 127.0.0.1).

    A worker that dies mid-unit: the scheduler runs the unit again elsewhere, and only the
    copy that finishes comes back, so each trial is stored once. A unit that kills every worker
    it lands on is given up after the scheduler's allowed failures (KilledWorker) and its trials
    are stored as failed. Datasets are loaded by the workers (from their cache or --data-dir,
    which must exist on them)."""

    def __init__(self, address: str, workers: int, data_dir: str | None = None, connect_timeout: float = 10.0):
        self.address = address
        self.workers = workers
        self.data_dir = data_dir
        self.connect_timeout = connect_timeout
        self.client = None
        self.cluster = None
        self.futures: list = []

    def start(self) -> DaskExecutor:
        if self.client is not None:
            return self
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise UserError("--executor dask needs the distributed package; allowed: pip install 'dlbench[dask]'") \
                from None
        if self.address == "local":
            self.cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                        host="127.0.0.1", dashboard_address=None)
            self.client = Client(self.cluster)
            return self
        self._probe()
        try:
            self.client = Client(self.address, timeout=self.connect_timeout)
        except (OSError, TimeoutError, ValueError) as e:
            raise UserError(f"cannot reach the Dask scheduler at address = {self.address!r} ({type(e).__name__}); "
                            "allowed: the address of a running scheduler, e.g. tcp://127.0.0.1:8786, or local") \
                from None
        self.check_workers()
        return self

    def _probe(self) -> None:
        """A tcp:// scheduler address that refuses connections is said at once (the Dask client
        would retry until its timeout, 10 s); any other answer is left to the client."""
        import socket
        from urllib.parse import urlsplit

        parts = urlsplit(self.address)
        if parts.scheme != "tcp" or not parts.hostname or not parts.port:
            return
        try:
            socket.create_connection((parts.hostname, parts.port), timeout=self.connect_timeout).close()
        except ConnectionRefusedError:
            raise UserError(f"cannot reach the Dask scheduler at address = {self.address!r} (ConnectionRefusedError: "
                            "nothing listens there); allowed: the address of a running scheduler, e.g. "
                            "tcp://127.0.0.1:8786, or local") from None
        except OSError:
            pass  # unreachable in another way: the client says how

    def check_workers(self) -> None:
        """Every module a user's plugin imports must be installed on every worker (files travel with
        the work; modules do not): one line naming the first one missing, before anything runs."""
        from dlbench import catalogue, usercode

        needed = catalogue.modules()
        if not needed:
            return
        missing = self.client.run(usercode.missing_modules, sorted(needed))
        for worker, mods in sorted(missing.items()):
            if mods:
                self.shutdown()
                raise UserError(f"module {mods[0]!r} ({needed[mods[0]]}) is not installed on Dask worker {worker}; "
                                "allowed: install it on every worker, or bring the code as a file "
                                "(./my_code.py:Name), which travels with the work")

    def shutdown(self) -> None:
        """Cancel this driver's futures and disconnect; a cluster given by address keeps running
        (a LocalCluster this executor started is closed)."""
        if self.client is not None:
            for f in self.futures:
                f.cancel()
            self.futures = []
            self.client.close()
            self.client = None
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None

    kill = shutdown

    def run(self, units: list[Unit]) -> Iterator[list[dict]]:
        from distributed import as_completed
        from distributed.scheduler import KilledWorker

        self.start()
        futures = {self.client.submit(run_unit, u, self.data_dir, pure=False): u for u in units}
        self.futures = list(futures)
        try:
            for fut in as_completed(futures):
                unit = futures[fut]
                try:
                    yield fut.result()
                except KilledWorker as e:
                    yield [failed(t, e, unit.engine) for t in unit.trials]
        finally:
            for f in futures:
                f.cancel()
