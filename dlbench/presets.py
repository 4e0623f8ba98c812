"""Presets: the specs that ship with dlbench (quickstart, smoke, the small suite, the lessons, the
examples), named instead of given as a path: `dlbench sweep quickstart`.

One copy: `experiments/` at the top of the checkout. A wheel carries it as the package data
`dlbench/_presets` (pyproject maps that package to `experiments/`), read through
importlib.resources; in a checkout (or an editable install) the folder beside the package is read.
A path to an existing file always wins over a preset of the same name."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from dlbench.errors import UserError, did_you_mean

FOLDERS = ("", "benchmarks", "examples", "lessons")  # where presets live, relative to the root


def root() -> Path | None:
    """The presets' folder: the installed package data, else experiments/ of the checkout."""
    installed = resources.files("dlbench") / "_presets"
    if installed.is_dir():
        # a wheel installs as files on disk; importlib.resources gives their real path
        return Path(str(installed))
    checkout = Path(__file__).resolve().parents[1] / "experiments"
    return checkout if checkout.is_dir() else None


def all_presets() -> dict[str, Path]:
    """Preset name -> its spec file: each .toml of the presets' folders, by its stem."""
    base = root()
    if base is None:
        return {}
    out: dict[str, Path] = {}
    for folder in FOLDERS:
        for p in sorted((base / folder).glob("*.toml")):
            out.setdefault(p.stem, p)
    return out


def lessons_folder() -> Path | None:
    base = root()
    return base / "lessons" if base is not None and (base / "lessons").is_dir() else None


def spec_path(text: str) -> Path:
    """The spec a command-line argument names: an existing file (a path always wins), else a
    preset of that name. Neither: one line naming what is allowed."""
    p = Path(text)
    if p.exists() or p.suffix == ".toml" or "/" in text or "\\" in text:
        return p  # read_spec_file says what is wrong with a path
    presets = all_presets()
    if text in presets:
        return presets[text]
    raise UserError(f"spec {text!r} is neither a file nor a preset{did_you_mean(text, presets)}; allowed: a path to "
                    f"a .toml file, or a preset: {', '.join(presets) or 'none (no presets folder found)'}")
