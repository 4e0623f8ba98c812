"""`python -m dlbench` and the `dlbench` command. `run` ties SIGINT, SIGTERM and SIGHUP to a clean
exit before anything heavy is imported (nothing has started yet: exit at once, saying so);
dlbench.cli.main takes them over as soon as it runs.

When the command is done, `run` ends the process without the interpreter's teardown: the atexit
callbacks run (multiprocessing's, logging's, Dask's), the standard streams are flushed, then
os._exit. Tearing down an interpreter that imported torch clears thousands of modules and runs
torch's C++ destructors: 0.4-0.6 s here, a third of a one-trial sweep, for nothing a finished
command needs (every file is written and closed, every worker ended, by then)."""

import atexit
import os
import signal
import sys


def _before_main(signum, frame) -> None:
    os.write(2, b"error: interrupted; finished trials are saved, run the same command to resume\n")
    os._exit(128 + signum)


def run() -> None:
    # a dlbench command is a driver, never a worker: a driver pid inherited from the process that
    # started it (another sweep, a test) would make dlbench.lifeline tie this process to that one
    # and ignore Ctrl-C
    os.environ.pop("DLBENCH_DRIVER_PID", None)
    from dlbench.timeline import mark

    mark("start")
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _before_main)
    from dlbench.cli import main

    try:
        main()
    except SystemExit as e:
        code = e.code
    else:
        code = 0
    exit_now(code)


def exit_now(code) -> None:
    """sys.exit(code)'s outcome (an int, None for 0, or a message printed to stderr and 1) without
    the interpreter's teardown."""
    from dlbench.timeline import mark

    mark("exit")
    run_exitfuncs = getattr(atexit, "_run_exitfuncs", None)  # CPython's; elsewhere the plain way
    if run_exitfuncs is None:
        sys.exit(code)
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    try:
        run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe (dlbench ... | head): nothing more to say
                pass
        os._exit(code or 0)


if __name__ == "__main__":
    run()
