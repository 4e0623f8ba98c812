"""Spec reading, validation, grid expansion and trial ids."""

import pytest

from dlbench.errors import UserError
from dlbench.spec import apply_set, build_sweep, flag_list, override
from dlbench.trials import canonical_trial, trial_id

BASE = {"dataset": "digits", "epochs": 2}


def sweep(**kw):
    return build_sweep({**BASE, **kw})


def test_grid_expands_every_combination_times_seeds():
    s = sweep(seeds=[0, 1], grid={"optimizer": ["sgd", "adam"], "lr": [1e-3, 1e-2, 1e-1]})
    assert len(s.trials) == 12
    combos = {(t["optimizer"], t["lr"], t["seed"]) for t in s.trials}
    assert len(combos) == 12
    assert list(s.axes) == ["optimizer", "lr", "seed"]


def test_top_level_list_is_an_axis_and_betas_pair_is_a_value():
    s = sweep(optimizer="adam", lr=[1e-3, 1e-2], betas=[0.8, 0.9])
    assert len(s.trials) == 2 and all(t["betas"] == [0.8, 0.9] for t in s.trials)
    s = sweep(optimizer="adam", grid={"betas": [[0.8, 0.9], [0.9, 0.999]]})
    assert [t["betas"] for t in s.trials] == [[0.8, 0.9], [0.9, 0.999]]


def test_batch_size_full_is_the_training_set_size():
    s = sweep(grid={"batch_size": [1, 32, "full"]})
    # digits: 1437 training samples, 145 of them (round(0.1 × each class)) carved out for validation
    assert [t["batch_size"] for t in s.trials] == [1, 32, 1292]
    s = sweep(grid={"batch_size": ["full"]}, validation=0)
    assert [t["batch_size"] for t in s.trials] == [1437]


def test_knob_axes_apply_only_where_they_mean_something():
    # sgd has no momentum: its trials collapse to one; momentum gets both values
    s = sweep(grid={"optimizer": ["sgd", "momentum"], "momentum": [0.5, 0.9]})
    assert sorted((t["optimizer"], t.get("momentum")) for t in s.trials) == [
        ("momentum", 0.5), ("momentum", 0.9), ("sgd", None)]


def test_trial_id_is_independent_of_key_order_and_stable():
    t = canonical_trial({"dataset": "digits", "optimizer": "adam", "lr": 0.001, "batch_size": 32, "epochs": 10,
                         "seed": 0, "schedule": "constant", "device": "cpu", "dtype": "float32", "loss": "auto"})
    shuffled = dict(reversed(list(t.items())))
    assert trial_id(shuffled) == t["id"]
    # pinned: a change here silently breaks resume of every existing results folder
    assert t["id"] == "9ff02d178e7f"
    # without a validation split a trial is what it was before splits existed: the same id as in schema 1
    assert canonical_trial({**t, "validation": 0})["id"] == "55221254832c"
    # a different value gives a different id; 1e-3 written either way is the same trial
    assert canonical_trial({**t, "lr": 1e-3})["id"] == t["id"]
    assert canonical_trial({**t, "lr": 2e-3})["id"] != t["id"]


def test_flags_override_the_file_and_make_axes():
    raw = {"dataset": "digits", "grid": {"lr": [1e-3, 1e-2]}, "seeds": [0, 1]}
    override(raw, "lr", flag_list("0.5", "lr"))
    override(raw, "seed", flag_list("3,4,5", "seed"))
    s = build_sweep(raw)
    assert {t["lr"] for t in s.trials} == {0.5}
    assert {t["seed"] for t in s.trials} == {3, 4, 5}


def test_set_takes_toml_values_and_dotted_keys():
    raw = {"dataset": "digits", "schedule": "step"}
    apply_set(raw, "epochs=3")
    apply_set(raw, "grid.lr=[1e-3, 1e-2]")
    apply_set(raw, "schedule.gamma=0.5")
    apply_set(raw, 'model={kind="mlp", hidden=[16], activation="tanh"}')
    s = build_sweep(raw)
    assert len(s.trials) == 2
    t = s.trials[0]
    assert t["epochs"] == 3 and t["schedule"]["gamma"] == 0.5 and t["model"]["hidden"] == [16]


def test_expanded_spec_round_trips():
    import tomllib

    s = sweep(name="rt", seeds=[0, 1], grid={"optimizer": ["sgd", "adam"]}, expect={"best_test_acc": ">= 0.5"})
    again = build_sweep(tomllib.loads(s.to_toml()))
    assert [t["id"] for t in again.trials] == [t["id"] for t in s.trials]
    assert again.expect == s.expect


BAD = [
    ({"lerning_rate": 0.1}, "unknown key 'lerning_rate'"),
    ({"grid": {"optimiser": ["sgd"]}}, "did you mean 'optimizer'"),
    ({"lr": "fast"}, "lr = 'fast'"),
    ({"lr": 0}, "allowed: a finite number > 0"),
    ({"lr": -1e-3}, "lr = -0.001"),
    ({"lr": float("nan")}, "lr = nan"),
    ({"lr": float("inf")}, "lr = inf"),
    ({"batch_size": 0}, "batch_size = 0"),
    ({"batch_size": 5000}, "from 1 to 1292"),
    ({"batch_size": "half"}, "batch_size = 'half'"),
    ({"epochs": 0}, "epochs = 0"),
    ({"epochs": 2.5}, "epochs = 2.5"),
    ({"optimizer": "adamm"}, "did you mean 'adam'"),
    ({"dataset": "mnits"}, "did you mean 'mnist'"),
    ({"model": {"kind": "transformer"}}, "model.kind = 'transformer'"),
    ({"model": {"kind": "mlp", "activation": "swish"}}, "model.activation = 'swish'"),
    ({"model": {"kind": "mlp", "hidden": [0]}}, "model.hidden"),
    ({"device": "gpu"}, "device = 'gpu'"),
    ({"grid": {"lr": []}}, "grid.lr = [] is empty"),
    ({"lr": []}, "lr = [] is empty"),
    ({"grid": {"lr": 0.1}}, "allowed: a list of values"),
    ({"name": "../x"}, "name = '../x'"),
    ({"name": "/abs/path"}, "name = '/abs/path'"),
    ({"name": ".."}, "name = '..'"),
    ({"optimizer": "momentum", "momentum": 1.0}, "momentum = 1.0"),
    ({"optimizer": "adam", "betas": [0.9, 1.0]}, "betas"),
    ({"optimizer": "adam", "eps": 0}, "eps = 0"),
    ({"optimizer": "sgd", "betas": [0.9, 0.99]}, "betas does not apply to optimizer sgd"),
    ({"optimizer": "nesterov", "momentum": 0}, "nesterov needs momentum > 0"),
    ({"schedule": {"kind": "cosine", "warmup": 5}}, "warmup = 5"),
    ({"schedule": {"kind": "step", "gama": 0.5}}, "did you mean 'gamma'"),
    ({"loss": "bce"}, "loss = 'bce' does not fit dataset 'digits'"),
    ({"engine": "turbo"}, "engine = 'turbo'"),
    ({"expect": {"best_test_acc": "high"}}, "expect.best_test_acc = 'high'"),
    ({"expect": {"best_acc": ">= 0.9"}}, "unknown key expect.'best_acc'"),
    ({"lr": 1e-3, "grid": {"lr": [1e-3]}}, "both at top level and in [grid]"),
]


@pytest.mark.parametrize("bad,message", BAD, ids=[str(b) for b, _ in BAD])
def test_bad_specs_name_key_value_and_what_is_allowed(bad, message):
    with pytest.raises(UserError) as e:
        build_sweep({**BASE, **bad})
    text = str(e.value)
    assert message in text
    assert "\n" not in text
    assert "allowed" in text or "did you mean" in text
