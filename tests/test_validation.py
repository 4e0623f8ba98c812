"""The validation split: carved from the training split, disjoint from what is left for training
and from test, stratified, deterministic, sized as the metadata says; the DeepOBS problems keep
their own validation set; bad fractions are refused before anything runs."""

import numpy as np
import pytest

from dlbench import data
from dlbench.data import DATASETS, split_sizes, validation_size
from dlbench.errors import UserError
from dlbench.spec import build_sweep
from tests.conftest import tree

EMBEDDED = [n for n, d in DATASETS.items() if not d.needs_files and not d.own_validation]
CLASSIFICATION = [n for n in EMBEDDED if DATASETS[n].task in ("binary", "multiclass")]


def rows(x):
    return {r.tobytes() for r in np.ascontiguousarray(x).reshape(len(x), -1)}


@pytest.mark.parametrize("name", EMBEDDED)
def test_split_is_disjoint_and_covers_the_training_split(name):
    base = data._load_base(name, None)
    d = data.load(name, None, 0.1)
    assert (len(d.x_train), len(d.x_val)) == split_sizes(DATASETS[name], 0.1)
    assert len(d.x_train) + len(d.x_val) == len(base.x_train)
    train, val, test = rows(d.x_train), rows(d.x_val), rows(d.x_test)
    assert not train & val and not val & test and not train & test
    assert train | val == rows(base.x_train)  # nothing lost, nothing added
    assert d.x_test is base.x_test  # the test split is untouched


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_split_is_stratified_and_the_metadata_counts_are_right(name):
    base = data._load_base(name, None)
    counts = np.bincount(base.y_train.astype(int))
    assert tuple(counts) == DATASETS[name].class_counts  # the metadata spec checks rely on
    d = data.load(name, None, 0.2)
    val_counts = np.bincount(d.y_val.astype(int), minlength=len(counts))
    assert val_counts.tolist() == [validation_size(int(c), 0.2) for c in counts]
    assert (val_counts > 0).all() and (np.bincount(d.y_train.astype(int)) > 0).all()


def test_split_is_deterministic_and_independent_of_any_trial_seed():
    a = data.load("digits", None, 0.1)
    data._CACHE.clear()
    b = data.load("digits", None, 0.1)
    assert a is not b
    np.testing.assert_array_equal(a.x_val, b.x_val)
    np.testing.assert_array_equal(a.y_train, b.y_train)
    # the trial seed plays no part: trials of different seeds share one dataset
    s = build_sweep({"dataset": "digits", "seeds": [0, 7]})
    assert {data.validation_of(t) for t in s.trials} == {0.1}


def test_validation_zero_is_the_whole_training_split():
    d = data.load("wine", None, 0.0)
    assert d.x_val is None and len(d.x_train) == DATASETS["wine"].n_train


def test_deepobs_problems_keep_their_own_validation_set():
    base = data._load_base("quadratic_deep", None)
    d = data.load("quadratic_deep", None, 0.1)
    assert data.load("quadratic_deep", None, 0.0).x_val is None  # validation = 0: no split, even of its own
    assert d.x_train is base.x_train  # the training set stays whole
    expected = np.float32(np.random.RandomState(44).normal(0.0, 0.6, (1000, 100)))  # DeepOBS 1.2 quadratic.py
    np.testing.assert_array_equal(d.x_val, expected)
    r = data.load("rosenbrock", None, 0.3)
    rng = np.random.RandomState(44)  # two_d.py: all x, then all y
    x, y = rng.normal(0.0, 1.0, 10000), rng.normal(0.0, 1.0, 10000)
    np.testing.assert_array_equal(r.x_val, np.float32(np.stack([x, y], axis=1)))
    assert split_sizes(DATASETS["rosenbrock"], 0.3) == (10000, 10000)


def test_full_batch_is_what_is_left_for_training():
    s = build_sweep({"dataset": "iris", "batch_size": "full", "validation": 0.25})
    assert s.trials[0]["batch_size"] == 119 - (10 + 10 + 10)  # round(0.25 × 40), round(0.25 × 39) = 10


@pytest.mark.parametrize("value,message", [
    (1.5, "validation = 1.5 is not allowed; allowed: a fraction of the training split from 0"),
    (-0.1, "validation = -0.1 is not allowed"),
    (1, "validation = 1 is not allowed"),
    ("0.1", "validation = '0.1' is not allowed"),
    (True, "validation = True is not allowed"),
    (0.01, "leaves class 0 of iris with no validation sample (40 training samples × 0.01 rounds to 0); "
           "allowed: 0 (no split) or a fraction from 0.0128 to below 0.987"),
    (0.99, "leaves class 0 of iris with no training sample"),
])
def test_bad_fractions_are_refused(value, message):
    with pytest.raises(UserError) as e:
        build_sweep({"dataset": "iris", "validation": value})
    assert message in str(e.value)


@pytest.mark.parametrize("flag", ["validation=1.5", "validation=-0.1", "validation=0.01"])
def test_bad_fractions_from_the_command_line_write_nothing(cli, tmp_path, flag):
    r = cli("sweep", "--dataset", "iris", "--set", flag, "--out", tmp_path / "o")
    assert r.code == 2 and r.out == "" and len(r.err.strip().splitlines()) == 1 and "validation" in r.err
    assert tree(tmp_path / "o") == []


def test_a_sweep_records_validation_and_chooses_the_epoch_on_it(cli, tmp_path):
    r = cli("sweep", "--dataset", "wine", "--optimizer", "adam", "--lr", "0.01", "--epochs", "4",
            "--out", tmp_path, "--name", "v", "--workers", "1")
    assert r.code == 0, r.err
    from dlbench import store

    trials, history, env = store.read_results(tmp_path / "v")
    row = trials.iloc[0]
    h = history.sort_values("epoch")
    assert row.validation == 0.1 and h.val_loss.notna().all() and h.val_acc.notna().all()
    best = h[h.val_acc == h.val_acc.max()].sort_values(["val_loss", "epoch"]).iloc[0]
    assert row.best_epoch == best.epoch and row.best_val_acc == h.val_acc.max()
    assert row.test_acc_at_best_val == best.test_acc  # test read at the epoch validation chose
