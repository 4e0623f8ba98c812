"""The results folder is a contract: folders written by earlier versions still load and show,
with a notice of what they lack; newer ones are refused."""

import json
import shutil
from pathlib import Path

import numpy as np

from dlbench import SCHEMA_VERSION, folders, store

SCHEMA1 = Path(__file__).parent / "data" / "schema1"  # written by dlbench e2cd1ad (schema 1), committed as is


def test_a_schema_1_folder_loads_in_the_current_columns():
    trials, history, env = store.read_results(SCHEMA1)
    assert env["schema_version"] == 1 and SCHEMA_VERSION > 1
    assert len(trials) == 12 and set(trials.status) == {"ok"}
    # what schema 1 never measured is there, and empty
    assert (trials.validation == 0).all() and (trials.stage == "tune").all()
    assert trials.best_val_acc.isna().all() and trials.best_epoch.isna().all() and history.val_loss.isna().all()
    # what it did measure is read back unchanged
    old = __import__("pandas").read_parquet(SCHEMA1 / "trials.parquet").set_index("trial_id")
    new = trials.set_index("trial_id").loc[old.index]
    for c in ("best_test_acc", "final_test_loss", "final_train_loss", "steps"):
        np.testing.assert_array_equal(new[c].to_numpy(), old[c].to_numpy())
    assert np.isfinite(trials.final_train_acc).all()  # derived from schema 1's history


def test_show_on_a_schema_1_folder_says_it_has_no_validation_split(cli):
    r = cli("show", SCHEMA1, "--pairs")
    assert r.code == 0, r.err
    out = " ".join(r.out.split())
    assert "no validation split (written by dlbench schema 1, before validation splits existed)" in out
    assert "configurations are chosen on the training set" in out
    assert "95% CI" in out and "adam vs sgd:" in out


def test_plot_on_a_schema_1_folder(cli, tmp_path):
    folder = tmp_path / "old"
    shutil.copytree(SCHEMA1, folder)
    r = cli("plot", folder, "--out", tmp_path / "p")
    assert r.code == 0, r.err
    assert (tmp_path / "p" / "curves-test_acc-by-epoch.png").exists()


def test_a_newer_schema_is_refused_in_one_line(cli, tmp_path):
    folder = tmp_path / "new"
    shutil.copytree(SCHEMA1, folder)
    env = json.loads((folder / "env.json").read_text())
    env["schema_version"] = SCHEMA_VERSION + 1
    (folder / "env.json").write_text(json.dumps(env))
    r = cli("show", folder)
    assert r.code == 2 and f"schema version {SCHEMA_VERSION + 1}" in r.err and len(r.err.strip().splitlines()) == 1


SCHEMA2 = Path(__file__).parent / "data" / "schema2"  # written by dlbench 4282c38 (schema 2): a protocol, divergence


def test_a_schema_2_folder_loads_with_what_schema_3_added():
    trials, history, env = folders.read(SCHEMA2)
    assert env["schema_version"] == 2 and SCHEMA_VERSION >= 3
    assert len(trials) == 24 and set(trials.stage) == {"tune", "confirm"} and (trials.status == "diverged").sum() == 3
    # the data columns schema 3 records per trial come from the dataset's metadata: iris, validation 0.1
    assert set(trials.task) == {"multiclass"} and set(trials.n_train) == {107.0} and set(trials.n_val) == {12.0}
    assert set(trials.n_test) == {30.0}
    old = __import__("pandas").read_parquet(SCHEMA2 / "trials.parquet").set_index("trial_id")
    new = trials.set_index("trial_id").loc[old.index]
    for c in ("best_val_acc", "test_acc_at_best_val", "best_epoch", "steps"):
        np.testing.assert_array_equal(new[c].to_numpy(dtype=float), old[c].to_numpy(dtype=float))
    assert len(history) == len(__import__("pandas").read_parquet(SCHEMA2 / "history.parquet"))


def test_show_and_report_on_a_schema_2_folder(cli, tmp_path):
    folder = tmp_path / "old2"
    shutil.copytree(SCHEMA2, folder)
    r = cli("show", folder, "--pairs")
    assert r.code == 0, r.err
    out = " ".join(r.out.split())
    assert "confirmed on fresh seeds (3-5)" in out and "adam vs sgd:" in out and "test split: 30 samples" in out
    assert cli("report", folder).code == 0 and (folder / "report.html").exists()
    assert cli("plot", folder, "--out", tmp_path / "p").code == 0


def test_a_damaged_record_in_a_partial_folder_is_said_not_skipped_in_silence(tmp_path, capsys):
    folder = tmp_path / "partial"
    shutil.copytree(SCHEMA2, folder)
    (folder / "trials.parquet").unlink()  # killed before its tables were written: read from the records
    victim = sorted((folder / "trials").glob("*.json"))[0]
    victim.write_text(victim.read_text()[:50])
    trials, _, _ = store.read_results(folder)
    assert len(trials) == 23
    err = capsys.readouterr().err
    assert f"warning: 1 damaged trial record(s) in {folder / 'trials'} left out ({victim.name})" in err


def test_env_records_the_git_revision_of_dlbench_not_of_the_current_folder(tmp_path, monkeypatch):
    import subprocess

    other = tmp_path / "other-repo"
    other.mkdir()
    for cmd in (["init", "-q"], ["-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "--allow-empty",
                                 "-m", "x"]):
        subprocess.run(["git", *cmd], cwd=other, check=True)
    monkeypatch.chdir(other)
    theirs = subprocess.run(["git", "rev-parse", "HEAD"], cwd=other, capture_output=True, text=True).stdout.strip()
    root = Path(store.__file__).resolve().parents[1]
    # dlbench's own revision where it runs from a checkout (CI, a developer), else none to record
    expected = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True).stdout.strip() if (root / ".git").exists() else None
    assert expected != theirs and store.git_rev() == expected


SCHEMA3 = Path(__file__).parent / "data" / "schema3"  # by dlbench e500870 (schema 3): [[grid]] ranges, a protocol


def test_a_schema_3_folder_loads_shows_and_resumes_with_nothing_to_run(cli, tmp_path):
    trials, history, env = folders.read(SCHEMA3)
    assert env["schema_version"] == 3 and SCHEMA_VERSION >= 4
    assert len(trials) == 24 and (trials.stage == "confirm").sum() == 6
    folder = tmp_path / "schema3"
    shutil.copytree(SCHEMA3, folder)
    r = cli("show", folder)
    out = " ".join(r.out.split())
    assert r.code == 0 and "scoreboard: 2 optimizers" in out and "lr=0.1 is the largest value tried" in out
    spec = folder / "spec.toml"  # the spec as that version stored it: a rerun of it resumes the folder
    before = __import__("pandas").read_parquet(folder / "trials.parquet").set_index("trial_id").sort_index()
    r = cli("sweep", spec, "--out", tmp_path)
    assert r.code == 0, r.err
    assert "0 to run" in " ".join(r.out.split())
    after, _, _ = folders.read(folder)
    after = after.set_index("trial_id").sort_index()
    assert list(after.index) == list(before.index)
    np.testing.assert_array_equal(after.test_acc_at_best_val.to_numpy(float),
                                  before.test_acc_at_best_val.to_numpy(float))


SCHEMA4 = Path(__file__).parent / "data" / "schema4"  # by dlbench d80ba8e (schema 4): a range that extended, a protocol


def test_a_schema_4_folder_loads_with_what_schema_5_added_and_resumes(cli, tmp_path):
    trials, _, env = folders.read(SCHEMA4)
    assert env["schema_version"] == 4 and SCHEMA_VERSION >= 5
    assert "rung" not in __import__("pandas").read_parquet(SCHEMA4 / "trials.parquet")
    assert trials["rung"].isna().all() and "stopped" not in set(trials.status)
    folder = tmp_path / "schema4"
    shutil.copytree(SCHEMA4, folder)
    spec = folder / "spec.toml"  # with its [extensions] points, as that version stored them
    r = cli("sweep", spec, "--out", tmp_path)
    assert r.code == 0, r.err
    out = " ".join(r.out.split())
    assert "0 to run" in out and "extend:" not in out  # its extension point is read back, not made again
    assert len(folders.read(folder)[0]) == len(trials)


SCHEMA5 = Path(__file__).parent / "data" / "schema5"  # by dlbench 388528c (schema 5): a halving search on wine


def test_a_schema_5_folder_loads_with_what_schema_6_added_and_resumes(cli, tmp_path):
    """Schema 6 added the sequence datasets' columns (knobs, bits per character, perplexity): a
    folder of schema 5 reads with them empty, shows, reports, and resumes with nothing to run."""
    trials, history, env = folders.read(SCHEMA5)
    assert env["schema_version"] == 5 and SCHEMA_VERSION == 6
    assert "best_val_bpc" not in __import__("pandas").read_parquet(SCHEMA5 / "trials.parquet")
    assert trials["test_bpc_at_best_val"].isna().all() and history["val_bpc"].isna().all()
    assert (trials.status == "stopped").sum() == 8
    assert cli("show", SCHEMA5).code == 0
    folder = tmp_path / "schema5"
    shutil.copytree(SCHEMA5, folder)
    assert cli("report", folder, "--format", "md").code == 0
    r = cli("sweep", folder / "spec.toml", "--out", tmp_path, "--workers", "1")
    assert r.code == 0, r.err
    assert "12 done, 0 to run" in " ".join(r.out.split())
    again, _, _ = folders.read(folder)
    assert sorted(again.trial_id) == sorted(trials.trial_id)
