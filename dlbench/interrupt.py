"""Ending a sweep cleanly on SIGINT (Ctrl-C), SIGTERM (timeout, systemd, Slurm, Kubernetes) and
SIGHUP (a closed terminal).

The first signal raises `Interrupted` in the driver's main thread wherever it is (usually waiting
for a worker), except inside a critical section (a record being written, the tables being
rebuilt): there it is held until the section ends, so a signal never leaves half a file. The
runner then stops dispatching, kills the workers, keeps every stored trial, rebuilds the tables
and exits with 128 + the signal number (130, 143, 129). A second signal exits at once: every
finished trial is already durable on disk.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from contextlib import contextmanager

SIGNALS = tuple(s for s in (getattr(signal, n, None) for n in ("SIGINT", "SIGTERM", "SIGHUP")) if s is not None)


class Interrupted(Exception):  # noqa: N818 - it is an event, not an error
    """A signal asked the sweep to stop."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopOnSignal:
    """While entered, SIGINT/SIGTERM/SIGHUP raise Interrupted (held back in `critical()`); a second
    signal calls `on_second` and exits at once. Outside the main thread it does nothing (signals
    are only delivered there)."""

    def __init__(self, on_second: Callable[[], None] = lambda: None):
        self.on_second = on_second
        self.signum: int | None = None
        self._depth = 0
        self._pending = False
        self._deferring = 0
        self._old: dict[int, object] = {}

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)
        self._old.clear()

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:  # the second signal: no more waiting
            try:
                self.on_second()
            finally:
                os._exit(128 + signum)
        self.signum = signum
        if self._depth:
            self._pending = True
            return
        if self._deferring:
            return  # the code in deferring() polls check() where raising leaves no lock held
        raise Interrupted(signum)

    @contextmanager
    def critical(self):
        """A section a first signal must not cut in two; the signal takes effect at its end."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
        if not self._depth and self._pending:
            self._pending = False
            raise Interrupted(self.signum)

    def check(self) -> None:
        """Raise Interrupted if a signal came while nothing could be interrupted."""
        if self.signum is not None and not self._depth:
            raise Interrupted(self.signum)

    @contextmanager
    def deferring(self):
        """A section where a first signal is only recorded, and the code inside calls check() at
        points where raising is safe: waiting on concurrent.futures, whose locks an exception
        raised from a signal handler mid-acquire would leave held (and the pool's manager thread
        then waits on them forever at exit)."""
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1
