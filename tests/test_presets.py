"""Presets: specs named instead of given as a path (a path wins), one copy in experiments/, and
a wheel that carries them: built here, installed into a fresh venv outside the checkout, and
run from there (a preset by name, a lesson, a report)."""

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

from dlbench import presets
from dlbench.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def test_a_preset_is_found_by_name_and_a_path_wins(tmp_path, monkeypatch):
    assert presets.spec_path("quickstart") == ROOT / "experiments" / "quickstart.toml"
    assert presets.spec_path("small-suite") == ROOT / "experiments" / "benchmarks" / "small-suite.toml"
    assert presets.spec_path("learning-rate") == ROOT / "experiments" / "lessons" / "learning-rate.toml"
    assert presets.spec_path("own-data") == ROOT / "experiments" / "examples" / "own-data.toml"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quickstart").write_text('dataset = "iris"\n')
    assert presets.spec_path("quickstart") == Path("quickstart")  # the file in the working folder wins
    assert presets.spec_path("missing.toml") == Path("missing.toml")  # a path: read_spec_file says what is wrong
    with pytest.raises(UserError, match=r"spec 'smoek' is neither a file nor a preset \(did you mean 'smoke'\?\); "
                                        r"allowed: a path to a \.toml file, or a preset: quickstart, smoke, "
                                        r"(\S+, )*small-suite, "):
        presets.spec_path("smoek")


def test_every_preset_builds():
    from dlbench.spec import build_sweep, read_spec_file

    names = presets.all_presets()
    assert {"quickstart", "smoke", "small-suite", "learning-rate", "own-optimizer", "better-than-adam"} <= set(names)
    for name, path in names.items():
        assert build_sweep(read_spec_file(path), default_name=name, base_dir=str(path.parent)).trials, name


def test_the_wheel_lists_every_package_and_every_presets_folder():
    """pyproject lists its packages by hand (the presets are mapped from experiments/): a new
    subpackage or presets folder missing from the list would be missing from the wheel."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    code = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "dlbench").rglob("__init__.py")}
    folders = {"dlbench._presets" + "".join("." + part for part in p.relative_to(ROOT / "experiments").parts)
               for p in [ROOT / "experiments", *(ROOT / "experiments").rglob("*")] if p.is_dir()
               and any(p.glob("*.toml"))}
    assert set(tool["packages"]) == code | folders
    assert tool["package-dir"] == {"dlbench._presets": "experiments"}


def test_named_presets_on_the_command_line(cli, tmp_path):
    r = cli("sweep", "smoek", "--out", tmp_path)
    assert r.code == 2 and "did you mean 'smoke'" in r.err and len(r.err.strip().splitlines()) == 1
    r = cli("sweep", "smoke", "--dry-run", "--out", tmp_path)
    assert r.code == 0 and "6 trials" in r.out, r.out
    r = cli("lessons", "run", "learning-rat", "--out", tmp_path)
    assert r.code == 2 and "did you mean 'learning-rate'" in r.err


def build_wheel(tmp_path: Path) -> Path:
    """The wheel of the files git knows or would add (no stale build/ of the checkout can leak in)."""
    src = tmp_path / "src"
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout
    for name in files.decode().split("\0"):
        if name and (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(src)], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("dlbench-*.whl")
    return wheel


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git to list the tracked files")
@pytest.mark.slow
def test_the_wheel_runs_presets_lessons_and_reports_outside_the_checkout(tmp_path):
    import zipfile

    wheel = build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    for f in ("dlbench/_presets/quickstart.toml", "dlbench/_presets/benchmarks/small-suite.toml",
              "dlbench/_presets/lessons/linear-stack-xor.toml", "dlbench/_presets/examples/my_optimizer.py",
              "dlbench/_presets/examples/breast_cancer.csv", "dlbench/report/report.html.j2"):
        assert f in names, f
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # the dependencies come from the test environment: its site-packages, after the venv's own
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(site),
                    str(wheel)], check=True, capture_output=True, timeout=300)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DLBENCH_LESSONS")}

    def dlbench(*args):
        p = subprocess.run([py, "-m", "dlbench", *map(str, args)], cwd=work, env=env, capture_output=True, text=True,
                           timeout=600)
        assert p.returncode == 0, (args, p.stdout[-2000:], p.stderr[-2000:])
        return p.stdout

    where = subprocess.run([py, "-c", "import dlbench, dlbench.presets as p; print(dlbench.__file__); print(p.root())"],
                           cwd=work, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert where[0].startswith(str(site)) and where[1] == str(site / "dlbench" / "_presets")
    out = dlbench("sweep", "smoke", "--out", "r", "--workers", "1")
    assert "results: r/smoke" in out
    assert "linear-stack-xor" in dlbench("lessons")
    dlbench("lessons", "run", "linear-stack-xor", "--set", "epochs=2", "--set", "seeds=[0, 1]", "--out", "r",
            "--workers", "1")
    assert (work / "r" / "lesson-linear-stack-xor" / "plots").is_dir()
    dlbench("report", "r/smoke", "--out", "r/smoke.html")
    assert "<html" in (work / "r" / "smoke.html").read_text()[:200].lower()
