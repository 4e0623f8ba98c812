import os
import subprocess
import sys
from pathlib import Path

import pytest

from dlbench.cli import main

ROOT = Path(__file__).resolve().parents[1]


class Result:
    def __init__(self, code, out, err):
        self.code, self.out, self.err = code, out, err


@pytest.fixture
def cli(capsys):
    """Run `dlbench ARGS` in this process; returns exit code, stdout and stderr."""

    def run(*args):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def run_dlbench(*args, cwd=None, timeout=300, env=None):
    """Run `python -m dlbench ARGS` as a real process."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    p = subprocess.run([sys.executable, "-m", "dlbench", *map(str, args)], capture_output=True, text=True,
                       cwd=cwd, timeout=timeout, env=full_env)
    return Result(p.returncode, p.stdout, p.stderr)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def tree(path: Path) -> list[str]:
    """Every file under path (for checking that nothing was written or changed)."""
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []
