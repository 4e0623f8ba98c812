"""Bad input of every kind: one line on stderr, exit code 2, no traceback, nothing written."""

import pytest

from tests.conftest import run_dlbench, tree, write

GOOD = 'name = "ok"\ndataset = "iris"\nepochs = 1\nbatch_size = 16\n'


def bad_spec_files(tmp):
    return {
        "malformed TOML": (write(tmp / "a.toml", 'dataset = "digits"\nlr = [1e-3,\nepochs = 2\n'), "line 3"),
        "not text": (tmp.joinpath("b.toml"), "not a text file"),
        "missing file": (tmp / "missing.toml", "does not exist"),
        "unknown key": (write(tmp / "c.toml", 'datset = "digits"\n'), "did you mean 'dataset'"),
        "wrong type": (write(tmp / "d.toml", 'epochs = "ten"\n'), "epochs = 'ten'"),
        "empty axis": (write(tmp / "e.toml", '[grid]\nlr = []\n'), "grid.lr = [] is empty"),
        "escaping name": (write(tmp / "f.toml", 'name = "../outside"\n'), "name = '../outside'"),
        "a folder": (tmp, "is a folder"),
    }


@pytest.mark.parametrize("case", ["malformed TOML", "not text", "missing file", "unknown key", "wrong type",
                                  "empty axis", "escaping name", "a folder"])
def test_bad_spec_file(cli, tmp_path, case):
    (tmp_path / "b.toml").write_bytes(b"\x00\x01binary\xff")
    path, message = bad_spec_files(tmp_path)[case]
    out = tmp_path / "out"
    r = cli("sweep", path, "--out", out)
    assert r.code == 2, r.err
    assert message in r.err
    assert len(r.err.strip().splitlines()) == 1, r.err
    assert "Traceback" not in r.err
    assert tree(out) == []


FLAG_CASES = [
    (["--lr", "0"], "lr = 0"),
    (["--lr", "1e-3,,1e-2"], "empty item"),
    (["--batch-size", "0"], "batch_size = 0"),
    (["--batch-size", "100000"], "from 1 to"),
    (["--epochs", "0"], "epochs = 0"),
    (["--optimizer", "sgd,adamx"], "did you mean 'adam'"),
    (["--dataset", "imagenet"], "dataset = 'imagenet' is unknown"),
    (["--device", "tpu"], "device = 'tpu' is unknown"),
    (["--device", "cuda:3"], "not available on this machine"),
    (["--name", "../../etc"], "name = '../../etc'"),
    (["--name", "/tmp/abs"], "name = '/tmp/abs'"),
    (["--set", "epochs"], "has no '='"),
    (["--set", "epochs=[1,"], "not valid TOML"),
    (["--set", "colour=3"], "unknown key 'colour'"),
    (["--model", '{kind="mlp", hidden=[-1]}'], "model.hidden"),
    (["--schedule", '{kind="cosine", warmup=9}'], "warmup = 9"),
    (["--workers", "0"], "--workers"),
    (["--no-such-flag"], "No such option"),
    (["--engine", "fast"], "engine = 'fast'"),
    (["--dtype", "float16"], "dtype = 'float16'"),
]


@pytest.mark.parametrize("flags,message", FLAG_CASES, ids=[" ".join(f) for f, _ in FLAG_CASES])
def test_bad_flags(cli, tmp_path, flags, message):
    out = tmp_path / "out"
    r = cli("sweep", "--dataset", "digits", "--epochs", "1", *flags, "--out", out)
    assert r.code == 2, (r.out, r.err)
    assert message in r.err, r.err
    assert len(r.err.strip().splitlines()) == 1, r.err
    assert tree(out) == []


def test_bad_input_leaves_earlier_results_untouched(cli, tmp_path):
    spec = write(tmp_path / "ok.toml", GOOD)
    out = tmp_path / "out"
    assert cli("sweep", spec, "--out", out, "--workers", "1").code == 0
    before = {p: (out / p).read_bytes() for p in tree(out) if (out / p).is_file()}
    r = cli("sweep", spec, "--out", out, "--lr", "-1")
    assert r.code == 2
    after = {p: (out / p).read_bytes() for p in tree(out) if (out / p).is_file()}
    assert after == before


def test_real_process_prints_one_line_and_no_traceback(tmp_path):
    write(tmp_path / "bad.toml", 'dataset = "digits"\n[grid]\nlr = [0.1, -2]\n')
    r = run_dlbench("sweep", tmp_path / "bad.toml", "--out", tmp_path / "out")
    assert r.code == 2
    assert r.err.strip().startswith("error: lr = -2")
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err
    assert not (tmp_path / "out").exists()


def test_show_refuses_a_folder_that_is_not_results(cli, tmp_path):
    r = cli("show", tmp_path)
    assert r.code == 2 and "is not a dlbench results folder" in r.err


def test_help_shows_examples_and_does_not_import_torch(tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    p = subprocess.run([sys.executable, "-X", "importtime", "-m", "dlbench", "--help"], capture_output=True,
                       text=True, cwd=ROOT)
    assert p.returncode == 0 and "Examples" in p.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in p.stderr.splitlines()}
    assert "torch" not in imported and "pandas" not in imported
    for command in (["sweep"], ["show"], ["plot"], ["datasets"], ["datasets", "download"], ["optimizers"],
                    ["compare-devices"], ["lessons"], ["lessons", "run"]):
        r = run_dlbench(*command, "--help")
        assert r.code == 0 and "Examples" in r.out, command
