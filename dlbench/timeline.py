"""Where a sweep's time goes: with DLBENCH_TIMELINE=FILE set, each process of the sweep (the
driver, the forkserver, the workers) appends `time pid label` lines to FILE at the milestones it
passes (start, imports done, pool asked for, worker ready, unit start and end, tables written,
summary printed, exit). benchmarks/fixed_cost.py reads them. Unset, `mark` is one dict lookup.

A leaf module: the standard library only, so that marking costs nothing to import."""

from __future__ import annotations

import os
import time

ENV = "DLBENCH_TIMELINE"


def mark(label: str) -> None:
    path = os.environ.get(ENV)
    if not path:
        return
    line = f"{time.time():.6f} {os.getpid()} {label}\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())  # one write of a short line to an O_APPEND file: lines never interleave
    finally:
        os.close(fd)
