"""`python -m dlbench` and the `dlbench` command. `run` ties SIGINT, SIGTERM and SIGHUP to a clean
exit before anything heavy is imported (nothing has started yet: exit at once, saying so);
dlbench.cli.main takes them over as soon as it runs."""

import os
import signal


def _before_main(signum, frame) -> None:
    os.write(2, b"error: interrupted; finished trials are saved, run the same command to resume\n")
    os._exit(128 + signum)


def run() -> None:
    # a dlbench command is a driver, never a worker: a driver pid inherited from the process that
    # started it (another sweep, a test) would make dlbench.lifeline tie this process to that one
    # and ignore Ctrl-C
    os.environ.pop("DLBENCH_DRIVER_PID", None)
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _before_main)
    from dlbench.cli import main

    main()


if __name__ == "__main__":
    run()
