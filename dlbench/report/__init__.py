"""`dlbench report`: a sweep on one page. html (one self-contained file to open and mail), md
(GitHub tables), tex (a booktabs table for papers), csv (the numbers behind every table).

Every number comes from dlbench.stats (through report._data); the writers only lay it out:

    _data.py   what a report shows, computed from the results folders (pure)
    _html.py   the html page (report.html.j2: jinja2, inline CSS, SVG and JS)
    _text.py   markdown, LaTeX and CSV
"""

from __future__ import annotations

import os
from pathlib import Path

from dlbench.errors import UserError

FORMATS = ("html", "md", "tex", "csv")


def default_out(folders: list[str], fmt: str) -> Path:
    """results/<name>/report.<ext>; with several folders, report-vs-<others>.<ext> in the first."""
    first = Path(folders[0])
    if len(folders) == 1:
        return first / f"report.{fmt}"
    others = "-vs-".join(Path(f).resolve().name for f in folders[1:])[:80]
    return first / f"report-vs-{others}.{fmt}"


def check_out(out: Path) -> None:
    """--out must be a file in a folder that exists and can be written, before anything is computed."""
    if out.is_dir():
        raise UserError(f"--out {str(out)!r} is a folder; allowed: a file path, e.g. {out / 'report.html'}")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"--out {str(out)!r}: folder {str(parent)!r} does not exist; allowed: a file in an existing "
                        "folder")
    if not os.access(parent, os.W_OK):
        raise UserError(f"--out {str(out)!r}: folder {str(parent)!r} is not writable; allowed: a file in a writable "
                        "folder")


def make_report(folders: list[str], fmt: str = "html", out: str | None = None, method: str = "t",
                focus: str | None = None) -> list[Path]:
    """Write the report; returns the files written. Every check and every number comes first:
    bad input writes nothing."""
    from dlbench.report import _data, _html, _text
    from dlbench.stats import check_ci
    from dlbench.store import atomic_write

    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r} is unknown; allowed: {', '.join(FORMATS)}")
    check_ci(method)
    if not folders:
        raise UserError("no results folder given; allowed: one or more folders written by `dlbench sweep`")
    from dlbench.store import check_results_folder

    for f in folders:  # before --out: a folder that is not one is the first thing to say
        check_results_folder(f)
    target = Path(out) if out else default_out(folders, fmt)
    check_out(target)
    data = _data.report_data(folders, with_figures=fmt == "html", method=method, focus=focus)
    if data.focus is not None:
        from dlbench.spec import check_focus

        check_focus(data.focus, sorted(set(data.trials["optimizer"])), "--focus ")
    if fmt == "html":
        files = {target: _html.render(data)}
    elif fmt == "md":
        files = {target: _text.markdown(data)}
    elif fmt == "tex":
        files = {target: _text.latex(data)}
    else:
        files = {target: _text.csv_configs(data), target.with_name(f"{target.stem}-pairs.csv"): _text.csv_pairs(data),
                 target.with_name(f"{target.stem}-scoreboard.csv"): _text.csv_scoreboard(data),
                 target.with_name(f"{target.stem}-budget.csv"): _text.csv_budget(data),
                 target.with_name(f"{target.stem}-to-target.csv"): _text.csv_to_target(data)}
    for path, text in files.items():
        atomic_write(path, text.encode())
    return list(files)
