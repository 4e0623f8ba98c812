"""Consoles for the CLI: rich on a terminal; wide, uncoloured and untruncated when piped."""

from __future__ import annotations

import contextlib
import sys

from rich.console import Console

PIPE_WIDTH = 200


def console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    return Console(file=stream, width=PIPE_WIDTH, no_color=True, highlight=False, soft_wrap=False)


def print_table(title: str, columns: list[str], rows: list[list[str]], console_: Console | None = None) -> None:
    """A titled table of strings, for the listing commands (shown as written: no markup)."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title), header_style="bold")
    for c in columns:
        table.add_column(escape(c))
    for row in rows:
        table.add_row(*map(escape, row))
    (console_ or console()).print(table)


class HeldStderr:
    """What was written to this process's standard error (file descriptor 2: Python's warnings and
    logging, and C/C++ code's own writes) while `held_stderr` held it back."""

    text: str = ""


@contextlib.contextmanager
def held_stderr(limit: int = 20_000):
    """Hold back everything written to standard error, at the file-descriptor level, and give it
    back as `.text` (its last `limit` characters): a worker training a user's code keeps torch's
    own logging (a failing torch.compile writes hundreds of lines) out of the sweep's terminal."""
    import os
    import tempfile

    held = HeldStderr()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as f:
        os.dup2(f.fileno(), 2)
        try:
            yield held
        finally:
            try:
                sys.stderr.flush()
            except Exception:  # noqa: BLE001 - a closed or replaced stream: nothing to flush
                pass
            os.dup2(saved, 2)
            os.close(saved)
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            held.text = f.read().decode("utf-8", "replace")
