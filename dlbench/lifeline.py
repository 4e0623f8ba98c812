"""Worker processes never outlive the `dlbench sweep` that started them.

Local workers are forked by multiprocessing's forkserver, itself a child of the driver. Each of
them is tied to its parent with a parent-death signal on Linux (prctl PR_SET_PDEATHSIG: the
kernel sends SIGKILL when the parent dies, however it dies, SIGKILL and the OOM killer included),
so the chain driver -> forkserver -> workers falls together. Elsewhere a watchdog thread checks
twice a second that the parent is still the one it started with and the driver still exists.

The forkserver ties itself when it imports this module (it is in the forkserver's preload list);
pool workers call `tie_to_parent` as their initializer. The driver's pid comes from
DLBENCH_DRIVER_PID, which the driver sets before starting the pool; the driver itself never ties.
Workers also ignore SIGINT: a Ctrl-C at the terminal reaches the whole process group, and the
driver alone decides how the sweep ends.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

DRIVER_ENV = "DLBENCH_DRIVER_PID"
PR_SET_PDEATHSIG = 1
WATCHDOG_PERIOD_S = 0.5


def driver_pid() -> int | None:
    value = os.environ.get(DRIVER_ENV)
    return int(value) if value and value.isdigit() else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def tie_to_parent(use_prctl: bool = True) -> str:
    """Die with the parent process; returns how ("prctl" or "watchdog"), or "" in the driver."""
    driver = driver_pid()
    if driver is None or driver == os.getpid():
        return ""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()
    how = "prctl" if use_prctl and _parent_death_signal() else "watchdog"
    if how == "watchdog":
        threading.Thread(target=_watch, args=(parent, driver), daemon=True, name="dlbench-lifeline").start()
    if os.getppid() != parent or not alive(driver):  # the parent died before we were tied to it
        os._exit(1)
    return how


def _parent_death_signal() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent: int, driver: int) -> None:
    while True:
        time.sleep(WATCHDOG_PERIOD_S)
        if os.getppid() != parent or not alive(driver):
            os._exit(1)


# imported by the forkserver (its preload list): tie it to the driver at once
if driver_pid() is not None and driver_pid() == os.getppid():
    tie_to_parent()
