"""A results folder holds one sweep: flag sweeps get names of their own, a rerun that only adds trials
extends the folder, anything else is refused in one line, and a folder an older version mixed is
labelled by every reader."""

import json
import shutil

import pandas as pd

from dlbench import SCHEMA_VERSION
from tests.conftest import tree, write

README_A = ["--dataset", "iris", "--optimizer", "sgd,adam", "--lr", "1e-3,1e-2", "--epochs", "3", "--seeds", "0,1"]
README_B = ["--dataset", "iris", "--optimizer", "adam", "--lr", "log:1e-4:1e-1:4", "--epochs", "2", "--seeds", "0"]


def test_two_different_flag_sweeps_land_in_two_folders_and_the_same_flags_find_theirs(cli, tmp_path):
    a = cli("sweep", *README_A, "--out", tmp_path, "--workers", "1")
    b = cli("sweep", *README_B, "--out", tmp_path, "--workers", "1")
    assert a.code == 0 and b.code == 0, (a.err, b.err)
    folders = sorted(p.name for p in tmp_path.iterdir())
    assert len(folders) == 2 and all(f.startswith("iris-") for f in folders), folders
    assert folders[0].split("-")[-1] != folders[1].split("-")[-1]
    again = cli("sweep", *README_A, "--out", tmp_path, "--workers", "1")
    assert again.code == 0 and "8 done, 0 to run" in again.out
    assert sorted(p.name for p in tmp_path.iterdir()) == folders
    assert not any((tmp_path / f / ".lock").exists() for f in folders)  # a finished folder has no lock


SPEC = """
name = "x"
dataset = "iris"
epochs = 2
seeds = [0, 1]
[grid]
optimizer = ["sgd", "adam"]
lr = [0.01, 0.1]
"""


def test_a_spec_that_only_adds_trials_extends_the_folder(cli, tmp_path):
    spec = write(tmp_path / "x.toml", SPEC)
    assert cli("sweep", spec, "--out", tmp_path / "o", "--workers", "1").code == 0
    before = pd.read_parquet(tmp_path / "o" / "x" / "trials.parquet")
    write(spec, SPEC.replace("lr = [0.01, 0.1]", "lr = [0.01, 0.1, 0.3]")
          .replace("seeds = [0, 1]", "seeds = [0, 1, 2]"))
    r = cli("sweep", spec, "--out", tmp_path / "o", "--workers", "1")
    assert r.code == 0, r.err
    assert f"extends {tmp_path / 'o' / 'x'}: 8 done, 10 new" in r.out  # 2 × 3 × 3 = 18 trials
    assert "8 done, 10 to run" in r.out
    after = pd.read_parquet(tmp_path / "o" / "x" / "trials.parquet").set_index("trial_id")
    kept = after.loc[before.trial_id]
    pd.testing.assert_series_equal(kept.best_val_loss, before.set_index("trial_id").best_val_loss)
    assert len(list((tmp_path / "o" / "x").glob("spec*.toml"))) == 1  # one spec describes the folder


def test_a_changed_setting_is_refused_in_one_line_naming_it(cli, tmp_path):
    spec = write(tmp_path / "x.toml", SPEC)
    assert cli("sweep", spec, "--out", tmp_path / "o", "--workers", "1").code == 0
    files = {f: (tmp_path / "o" / "x" / f).read_bytes() for f in tree(tmp_path / "o" / "x")
             if (tmp_path / "o" / "x" / f).is_file()}
    write(spec, SPEC.replace("epochs = 2", "epochs = 3").replace("lr = [0.01, 0.1]", "lr = [0.01]"))
    r = cli("sweep", spec, "--out", tmp_path / "o", "--workers", "1")
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1, r.err
    assert "holds another sweep (epochs: 2 → 3; grid.lr: [0.01, 0.1] → [0.01])" in " ".join(r.err.split())
    assert "--fresh" in r.err and "another --name" in r.err
    assert {f: (tmp_path / "o" / "x" / f).read_bytes() for f in files} == files  # nothing written
    assert cli("sweep", spec, "--out", tmp_path / "o", "--workers", "1", "--dry-run").code == 2
    assert cli("sweep", spec, "--out", tmp_path / "o", "--workers", "1", "--fresh").code == 0


def test_a_folder_an_older_version_mixed_is_labelled_by_show_and_report(cli, tmp_path):
    """Before this version, a changed spec under one name was kept as spec.<time>.toml and the
    new trials joined the old: rebuild such a folder by hand and read it."""
    a = write(tmp_path / "a.toml",
              SPEC.replace("[grid]\noptimizer = [\"sgd\", \"adam\"]", "optimizer = \"adam\"\n[grid]"))
    b = write(tmp_path / "b.toml", SPEC.replace("epochs = 2", "epochs = 3").replace(
        "[grid]\noptimizer = [\"sgd\", \"adam\"]", "optimizer = \"sgd\"\n[grid]").replace('name = "x"', 'name = "y"'))
    assert cli("sweep", a, "--out", tmp_path / "o", "--workers", "1").code == 0
    assert cli("sweep", b, "--out", tmp_path / "o", "--workers", "1").code == 0
    x, y = tmp_path / "o" / "x", tmp_path / "o" / "y"
    shutil.copy(x / "spec.toml", x / "spec.20261101-120000.toml")
    shutil.copy(y / "spec.toml", x / "spec.toml")
    for f in (y / "trials").glob("*.json"):
        shutil.copy(f, x / "trials" / f.name)
    for f in ("trials.parquet", "history.parquet"):
        (x / f).unlink()
    r = cli("show", x)
    assert r.code == 0, r.err
    out = " ".join(r.out.split())
    assert "this folder holds trials of 2 specs (spec.toml and spec.20261101-120000.toml" in out
    assert "they differ in epochs: 2 → 3" in out
    assert "the optimizers ran with different epochs (adam 2; sgd 3): their comparisons compare that too" in out
    assert cli("report", x, "--format", "md", "--out", tmp_path / "r.md").code == 0
    assert "the optimizers ran with different epochs (adam 2; sgd 3)" in (tmp_path / "r.md").read_text()


def test_rough_edges(cli, tmp_path):
    r = cli("sweep", "--dataset", "iris,wine", "--epochs", "1", "--out", tmp_path, "--workers", "1")
    assert r.code == 0 and "] iris sgd lr=0.01" in r.out and "] wine sgd lr=0.01" in r.out  # the dataset is named
    assert "plan: 1 trial on the fused engine in 1 unit" in cli("sweep", "--dataset", "iris", "--epochs", "1",
                                                                 "--dry-run").out
    r = cli("report", tmp_path / "nonexist")
    assert r.code == 2 and "does not exist" in r.err and "--out" not in r.err
    devices = tmp_path / "devices"
    devices.mkdir()
    write(devices / "devices.parquet", "x")
    r = cli("report", devices)
    assert r.code == 2 and "holds a `dlbench compare-devices` report" in r.err
    r = cli("plot", tmp_path / next(p.name for p in tmp_path.iterdir() if p.name.startswith("iris")), "--kind",
            "curvs")
    assert r.code == 2 and "did you mean 'curves'" in r.err
    r = cli("sweep", "--dataset", "iris", "--set", "lessons=1", "--dry-run")
    assert r.code == 2 and "lesson," not in r.err and "lesson" not in r.err.split("allowed:")[1]
    env = json.loads((tmp_path / next(p.name for p in tmp_path.iterdir() if p.name.startswith("iris")) /
                      "env.json").read_text())
    assert env["schema_version"] == SCHEMA_VERSION
