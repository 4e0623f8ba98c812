"""`dlbench lessons`: ready experiments that put textbook claims to the test.

Each lesson is a sweep spec under experiments/lessons/ with a [lesson] table: the claim, the
figures to draw, their metric and x axes. `dlbench lessons` lists them; `dlbench lessons run
NAME` runs one and draws its figures. docs/lessons.md reports what each one measured."""

from __future__ import annotations

import os
from pathlib import Path

from dlbench.errors import UserError, did_you_mean


def lessons_dir() -> Path:
    """$DLBENCH_LESSONS, else experiments/lessons in the working folder, else the lessons that ship
    with dlbench (dlbench.presets: package data in a wheel, experiments/lessons in a checkout)."""
    from dlbench.presets import lessons_folder

    candidates = [os.environ.get("DLBENCH_LESSONS"), Path.cwd() / "experiments" / "lessons", lessons_folder()]
    for c in candidates:
        if c and Path(c).is_dir():
            return Path(c)
    raise UserError("no lessons folder found; allowed: an installed dlbench (its lessons ship with it), or "
                    "DLBENCH_LESSONS set to a folder of lesson specs")


def all_lessons() -> dict[str, Path]:
    return {p.stem: p for p in sorted(lessons_dir().glob("*.toml"))}


def lesson_file(name: str) -> Path:
    """A lesson by name, or a lesson spec by path (a path to an existing file wins)."""
    if Path(name).is_file():
        return Path(name)
    lessons = all_lessons()
    if name not in lessons:
        raise UserError(f"lesson {name!r} is unknown{did_you_mean(name, lessons)}; allowed: {', '.join(lessons)}, "
                        "or a path to a lesson spec")
    return lessons[name]


def load_lesson(name: str, overrides: list[str] | None = None):
    from dlbench.spec import apply_set, build_sweep, read_spec_file

    path = lesson_file(name)
    raw = read_spec_file(path)
    for assignment in overrides or []:
        apply_set(raw, assignment)
    sweep = build_sweep(raw, default_name=path.stem, base_dir=str(path.parent))
    if not sweep.lesson.get("claim"):
        raise UserError(f"{path} has no [lesson] claim; allowed: a spec with a [lesson] table")
    return sweep


def run_lesson(name: str, out: str = "results", overrides: list[str] | None = None, fmt: str = "png",
               workers: int | None = None, console=None) -> tuple[int, list[Path]]:
    """Run a lesson's sweep and draw its figures; returns (exit code, figure files)."""
    from dlbench.output import console as make_console
    from dlbench.plots import make_plots
    from dlbench.runner import run_sweep

    console = console or make_console()
    sweep = load_lesson(name, overrides)
    console.print(f"[bold]{sweep.name}[/]: {sweep.lesson['claim']}")
    code = run_sweep(sweep, out, workers=workers, console=console)
    files: list[Path] = []
    if code >= 128:  # stopped by a signal: nothing more to do (the sweep said how to resume)
        return code, files
    folder = str(Path(out) / sweep.name)
    metric = sweep.lesson.get("metric")
    for kind in sweep.lesson.get("figures", ["curves"]):
        for x in (sweep.lesson.get("x", ["epoch"]) if kind == "curves" else ["epoch"]):
            files += make_plots([folder], kind=kind, metric=metric, x=x, fmt=fmt)
    for f in files:
        console.print(f"wrote {f}")
    return code, files
