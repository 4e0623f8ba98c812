"""Consoles for the CLI: rich on a terminal; wide, uncoloured and untruncated when piped."""

from __future__ import annotations

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
