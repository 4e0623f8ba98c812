"""Your own model and dataset: any nn.Module through torch.func (or a named reason to run it on the
reference engine), any table, array file or loader; the same rules as the built-ins; bad data
refused in one line before anything runs."""

import json
import math
import textwrap

import numpy as np
import pandas as pd
import pytest

from dlbench.data import load
from dlbench.engine import fused, fused_supports
from dlbench.spec import build_sweep
from tests.conftest import tree, write
from tests.test_fused import KEYS, compare_on

MODELS = '''
import math

import torch
from torch import nn


def mlp(input_shape, n_outputs, width=16):
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), width), nn.Tanh(),
                         nn.Linear(width, n_outputs))


def cnn1d(input_shape, n_outputs, channels=4):
    (length,) = input_shape
    return nn.Sequential(nn.Unflatten(1, (1, length)), nn.Conv1d(1, channels, 5, padding=2), nn.ReLU(),
                         nn.MaxPool1d(2), nn.Flatten(), nn.Linear(channels * (length // 2), n_outputs))


class Residual(nn.Module):
    def __init__(self, n_in, n_out, width):
        super().__init__()
        self.inp = nn.Linear(n_in, width)
        self.block = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, width))
        self.out = nn.Linear(width, n_out)

    def forward(self, x):
        h = torch.relu(self.inp(x.flatten(1)))
        return self.out(h + self.block(h))  # a forward of its own: the residual connection


def residual(input_shape, n_outputs, width=8):
    return Residual(math.prod(input_shape), n_outputs, width)


def dropout(input_shape, n_outputs):
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), 8), nn.Dropout(0.5), nn.Linear(8, n_outputs))


def batchnorm(input_shape, n_outputs):
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), 8), nn.BatchNorm1d(8), nn.ReLU(),
                         nn.Linear(8, n_outputs))


def no_bias(input_shape, n_outputs):
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), 8, bias=False), nn.Tanh(),
                         nn.Linear(8, n_outputs, bias=False))


def raises_in_forward(input_shape, n_outputs, width=8):
    class Boom(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(math.prod(input_shape), n_outputs)
            self.calls = 0

        def forward(self, x):
            if x.shape[0] == 7:  # a batch of 7 only happens in training, with batch_size = 7
                raise ValueError("boom in forward")
            return self.lin(x.flatten(1))
    return Boom()


def wrong_output(input_shape, n_outputs):
    return nn.Linear(math.prod(input_shape), n_outputs + 1)


def not_a_module(input_shape, n_outputs):
    return 42
'''


@pytest.fixture
def models_dir(tmp_path):
    write(tmp_path / "my_models.py", MODELS)
    return tmp_path


def compare(trials, data, rtol=1e-9):
    return compare_on(trials, data, rtol, require_ok=True)


@pytest.mark.parametrize("dataset,model,optimizers", [
    ("iris", {"factory": "./my_models.py:mlp", "width": 8}, ["adam", "torch.optim:NAdam"]),
    ("mnist1d", {"factory": "./my_models.py:cnn1d", "channels": 3}, ["momentum", "adam"]),
    ("wine", {"factory": "./my_models.py:residual"}, ["sgd", "rmsprop"]),
    ("wine", {"factory": "./my_models.py:no_bias"}, ["torch.optim:Muon"]),
], ids=["user MLP", "user 1-D CNN on mnist1d", "custom forward (residual)", "bias-free (Muon)"])
def test_user_models_run_fused_and_equal_the_reference_in_float64(models_dir, dataset, model, optimizers):
    s = build_sweep({"dataset": dataset, "dtype": "float64", "epochs": 2, "batch_size": 32, "seeds": [0, 1],
                     "model": model, "optimizer": optimizers, "lr": [1e-3, 1e-2]}, base_dir=str(models_dir))
    assert all(fused_supports(t) is None for t in s.trials)
    compare(s.trials, load(dataset, None, 0.1))


def test_the_built_in_cnn_runs_fused_and_equals_the_reference_but_auto_keeps_it_on_the_reference_on_cpu():
    from dlbench.plan import make_units

    s = build_sweep({"dataset": "mnist1d", "dtype": "float64", "epochs": 1, "batch_size": 64, "seeds": [0, 1],
                     "model": {"kind": "cnn", "channels": [4], "hidden": 8}, "optimizer": ["sgd", "adam"],
                     "lr": 0.01})
    assert all(fused_supports(t) is None for t in s.trials)
    compare(s.trials, load("mnist1d", None, 0.1))
    auto = make_units(s.trials, "auto", workers=1)
    assert {u.engine for u in auto} == {"reference"} and "max pooling under vmap" in auto[0].reason
    assert {u.engine for u in make_units(s.trials, "fused", workers=1)} == {"fused"}


@pytest.mark.parametrize("factory,reason", [
    ("dropout", "draws random numbers while training (dropout, say)"),
    ("batchnorm", "updates buffers in place while training (BatchNorm's running statistics, say)"),
])
def test_models_the_fused_engine_cannot_stack_run_on_the_reference_engine_with_their_reason(models_dir, cli,
                                                                                           monkeypatch, factory,
                                                                                           reason):
    monkeypatch.chdir(models_dir)
    r = cli("sweep", "--dataset", "iris", "--model", f"./my_models.py:{factory}", "--optimizer", "sgd,adam",
            "--epochs", "1", "--name", factory, "--out", models_dir / "out", "--workers", "1")
    assert r.code == 0, r.err
    assert reason in " ".join(r.out.split())
    t = pd.read_parquet(models_dir / "out" / factory / "trials.parquet")
    assert (t.engine == "reference").all() and t.fallback_reason.str.contains(reason, regex=False).all()
    assert (t.status == "ok").all()


@pytest.mark.parametrize("model,message", [
    ("./my_models.py:wrong_output", "outputs (2, 4) for a batch of 2, not (2, 3)"),
    ("./my_models.py:not_a_module", "returned int, not an nn.Module"),
    ("./my_models.py:nothing", "has no 'nothing'"),
    ('{factory = "./my_models.py:mlp", depth = 3}', "takes no keyword 'depth'"),
])
def test_bad_models_are_one_line_and_write_nothing(models_dir, cli, monkeypatch, model, message):
    monkeypatch.chdir(models_dir)
    r = cli("sweep", "--dataset", "iris", "--model", model, "--out", models_dir / "out")
    assert r.code == 2 and message in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert not (models_dir / "out").exists()


def test_a_forward_that_raises_fails_its_trial_and_the_sweep_goes_on(models_dir, cli, monkeypatch):
    monkeypatch.chdir(models_dir)
    r = cli("sweep", "--dataset", "iris", "--model", "./my_models.py:raises_in_forward", "--batch-size", "7,32",
            "--epochs", "1", "--name", "boom", "--out", models_dir / "out", "--workers", "1")
    assert r.code == 1
    t = pd.read_parquet(models_dir / "out" / "boom" / "trials.parquet").set_index("batch_size")
    assert t.loc[7, "status"] == "failed" and "ValueError: boom in forward" in t.loc[7, "error"]
    assert t.loc[32, "status"] == "ok"


# --------------------------------------------------------------------------------------------
# Datasets


def wine_table(tmp_path, name="wine.csv", **changes) -> tuple:
    """scikit-learn's wine as a table with its class in a column named cultivar."""
    from sklearn.datasets import load_wine

    df = load_wine(as_frame=True).frame.rename(columns={"target": "cultivar"})
    for k, v in changes.items():
        df[k] = v
    path = tmp_path / name
    if name.endswith(".csv"):
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path, index=False)
    return path, df


def test_a_csv_gives_what_the_built_in_gives(tmp_path, cli):
    """The same wine through a file: the same split sizes, the same standardization, the same numbers."""
    wine_table(tmp_path)
    args = ["--optimizer", "adam", "--lr", "0.01", "--epochs", "2", "--workers", "1", "--dtype", "float64"]
    r = cli("sweep", "--dataset", tmp_path / "wine.csv", "--target", "cultivar", *args, "--name", "f", "--out",
            tmp_path / "out")
    assert r.code == 0, r.err
    assert "task inferred as multiclass (3 distinct values in its target)" in " ".join(r.out.split())
    assert cli("sweep", "--dataset", "wine", *args, "--name", "b", "--out", tmp_path / "out").code == 0
    f = pd.read_parquet(tmp_path / "out" / "f" / "trials.parquet").iloc[0]
    b = pd.read_parquet(tmp_path / "out" / "b" / "trials.parquet").iloc[0]
    assert f.dataset == "wine.csv" and (f.n_train, f.n_val, f.n_test) == (b.n_train, b.n_val, b.n_test)
    assert f.best_val_loss == pytest.approx(b.best_val_loss, rel=1e-12)
    assert f.test_acc_at_best_val == b.test_acc_at_best_val
    env = json.loads((tmp_path / "out" / "f" / "env.json").read_text())
    assert len(env["plugins"]["dataset wine.csv"]["sha256"]) == 64


def test_parquet_npz_and_a_loader(tmp_path, cli):
    wine_table(tmp_path, "wine.parquet")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3))
    np.savez(tmp_path / "reg.npz", x=x, y=x @ [1.0, -2.0, 0.5] + 0.1 * rng.normal(size=120))
    np.savez(tmp_path / "given.npz", x_train=x[:80], y_train=(x[:80, 0] > 0).astype(int), x_test=x[80:100],
             y_test=(x[80:100, 0] > 0).astype(int), x_val=x[100:], y_val=(x[100:, 0] > 0).astype(int))
    write(tmp_path / "loader.py", textwrap.dedent("""
        import numpy as np
        def load(n=100):
            rng = np.random.default_rng(1)
            x = rng.normal(size=(n, 2))
            y = (x.sum(axis=1) > 0).astype(np.int64)
            return x[:70], y[:70], x[70:], y[70:]
    """))
    spec = write(tmp_path / "s.toml", textwrap.dedent("""
        name = "u"
        epochs = 2
        optimizer = "adam"
        dataset = [{ path = "wine.parquet", target = "cultivar" }, "reg.npz", "given.npz",
                   { loader = "./loader.py:load", n = 90, name = "blobs" }]
    """))
    r = cli("sweep", spec, "--out", tmp_path / "out", "--workers", "1")
    assert r.code == 0, r.err
    t = pd.read_parquet(tmp_path / "out" / "u" / "trials.parquet").set_index("dataset")
    assert t.loc["wine.parquet", "task"] == "multiclass" and t.loc["reg.npz", "task"] == "regression"
    assert t.loc["given.npz", "task"] == "binary" and t.loc["blobs", "task"] == "binary"
    assert (t.loc["given.npz", "n_train"], t.loc["given.npz", "n_val"], t.loc["given.npz", "n_test"]) == (80, 20, 20)
    # the loader splits 90 samples 70/20 itself; validation is then carved from its 70
    assert (t.loc["blobs", "n_train"] + t.loc["blobs", "n_val"], t.loc["blobs", "n_test"]) == (70, 20)
    assert (t.status == "ok").all()


@pytest.mark.parametrize("case,message", [
    ("missing target", "has no column 'kind'; allowed: target = one of"),
    ("text feature", "feature column 'color' of ./wine.csv is not numeric"),
    ("nan", "column 'alcohol' of ./wine.csv has 3 NaN or infinite value(s)"),
    ("one class", "has 1 class; allowed: at least 2"),
    ("small class", "class 3 of wine.csv has 1 sample; allowed: at least 2 per class"),
    ("empty", "./wine.csv is empty"),
    ("loader raises", "the loader ./bad.py:raises raised RuntimeError: no data today"),
    ("loader shapes", "has 5 x_train rows but 4 y_train values"),
])
def test_bad_data_is_one_line_exit_2_and_nothing_written(tmp_path, cli, monkeypatch, case, message):
    monkeypatch.chdir(tmp_path)
    path, df = wine_table(tmp_path)
    target = "cultivar"
    if case == "missing target":
        target = "kind"
    elif case == "text feature":
        df.assign(color="red").to_csv(path, index=False)
    elif case == "nan":
        df.loc[[1, 5, 9], "alcohol"] = np.nan
        df.to_csv(path, index=False)
    elif case == "one class":
        df.assign(cultivar=1).to_csv(path, index=False)
    elif case == "small class":
        pd.concat([df, df.iloc[[0]].assign(cultivar=3, alcohol=99.0)]).to_csv(path, index=False)
    elif case == "empty":
        path.write_text("")
    write(tmp_path / "bad.py", textwrap.dedent("""
        import numpy as np
        def raises():
            raise RuntimeError("no data today")
        def shapes():
            return np.zeros((5, 2)), np.zeros(4), np.zeros((3, 2)), np.zeros(3)
    """))
    dataset = {"loader raises": "{loader = './bad.py:raises'}", "loader shapes": "{loader = './bad.py:shapes'}"}.get(
        case, "./wine.csv")
    extra = [] if case.startswith("loader") else ["--target", target]
    r = cli("sweep", "--dataset", dataset, *extra, "--out", tmp_path / "out")
    assert r.code == 2 and message in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert not (tmp_path / "out").exists()


def test_a_data_file_that_changed_under_an_existing_folder_is_refused(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path, df = wine_table(tmp_path)
    args = ["sweep", "--dataset", "./wine.csv", "--target", "cultivar", "--epochs", "1", "--name", "c", "--out",
            tmp_path / "out", "--workers", "1"]
    assert cli(*args).code == 0
    before = tree(tmp_path / "out")
    df.iloc[:-1].to_csv(path, index=False)
    r = cli(*args)
    assert r.code == 2 and "wine.csv changed since" in r.err and tree(tmp_path / "out") == before


def test_the_hand_written_mlp_path_equals_the_torch_func_path(models_dir, monkeypatch):
    """A user's MLP trains on the hand-written StackedMLP (measured faster); the generic torch.func
    path gives the same numbers."""
    s = build_sweep({"dataset": "digits", "dtype": "float64", "epochs": 2, "batch_size": 32, "seeds": [0, 1],
                     "model": {"factory": "./my_models.py:mlp"}, "optimizer": ["adam", "torch.optim:RAdam"],
                     "lr": [1e-3, 1e-2]}, base_dir=str(models_dir))
    data = load("digits", None, 0.1)
    from dlbench.engine import stacked
    from dlbench.models import as_mlp, build, entry

    assert as_mlp(build(s.trials[0]["model"], data.info)) == ((64, 16, 10), "tanh")
    assert entry(s.trials[0]["model"], data.info).mlp == ((64, 16, 10), "tanh")  # its record says so
    hand = fused.train(s.trials, data)
    monkeypatch.setattr(fused, "stacked_model", stacked.StackedModule)  # torch.func for every model
    generic = fused.train(s.trials, data)
    for a, b in zip(hand, generic, strict=True):
        for ha, hb in zip(a.history, b.history, strict=True):
            for k in KEYS:
                if not math.isnan(hb[k]):
                    assert ha[k] == pytest.approx(hb[k], rel=1e-9, abs=1e-12), k


def test_the_inferred_task_is_said_also_when_the_prepared_arrays_come_from_the_cache(tmp_path, cli, monkeypatch):
    monkeypatch.setenv("DLBENCH_CACHE", str(tmp_path / "cache"))
    wine_table(tmp_path)
    args = ["--dataset", tmp_path / "wine.csv", "--target", "cultivar", "--optimizer", "adam", "--epochs", "1",
            "--workers", "1", "--out", tmp_path / "out"]
    for run in ("first", "second"):
        r = cli("sweep", *args, "--name", run)
        assert r.code == 0, r.err
        assert "task inferred as multiclass (3 distinct values in its target)" in " ".join(r.out.split()), run
    assert list((tmp_path / "cache").glob("user-*.npz"))  # the second read the cache
