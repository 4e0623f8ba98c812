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
