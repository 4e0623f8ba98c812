"""The fused engine against the reference engine, trial by trial.

float64: every per-epoch loss within 1e-9 relative; float32: within 1e-4 for well-conditioned
configs (lr <= 1e-2 for adaptive optimizers). Every optimizer, knob and schedule, with random
hyperparameters and seeds from hypothesis."""

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlbench.data import load, validation_of
from dlbench.engine import common, fused, reference
from dlbench.spec import build_sweep

# every number of a history row (engine.common.history_row, which both engines call) but the counters and
# timings: a key added there is compared here without anyone remembering to
COUNTERS = ("epoch", "steps", "samples", "train_time", "eval_time")
KEYS = tuple(k for k in common.history_row(0, 0.0, {"train": {"loss": 0.0}, "test": {"loss": 0.0}}, 0.0, 0, 0, 0.0,
                                           0.0) if k not in COUNTERS)


def compare(trials, dataset, rtol):
    data = load(dataset, None, validation_of(trials[0]))
    assert data.x_val is not None and len(data.x_val) > 0  # the validation metrics are compared too
    return compare_on(trials, data, rtol)


def compare_on(trials, data, rtol: float = 1e-9, require_ok: bool = False) -> float:
    """The fused engine against the reference engine on `data`, trial by trial, every history
    number within `rtol`; returns the worst relative difference."""
    got = fused.train(trials, data)
    worst = 0.0
    for trial, f in zip(trials, got, strict=True):
        r = reference.train(trial, data)
        assert f.trial_id == trial["id"] and f.status == r.status, (trial, f.status, r.status)
        assert f.status == "ok" or not require_ok, (trial["optimizer"], f.status)
        assert len(f.history) == len(r.history)
        for hf, hr in zip(f.history, r.history, strict=True):
            assert (hf["epoch"], hf["steps"], hf["samples"]) == (hr["epoch"], hr["steps"], hr["samples"])
            for k in KEYS:
                a, b = hf[k], hr[k]
                if math.isnan(b):
                    assert math.isnan(a), (k, trial)
                    continue
                rel = abs(a - b) / max(abs(b), 1e-12)
                worst = max(worst, rel)
                assert rel <= rtol, (trial["optimizer"], trial["lr"], hf["epoch"], k, a, b)
    return worst


GRID = {
    "optimizer": ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"],
    "lr": [1e-3, 1e-2],
}


@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-9), ("float32", 1e-4)])
def test_every_optimizer_matches_reference(dtype, rtol):
    s = build_sweep({"dataset": "wine", "dtype": dtype, "epochs": 3, "batch_size": 16, "seeds": [0, 1],
                     "model": {"kind": "mlp", "hidden": [16, 8], "activation": "tanh"}, "grid": GRID})
    assert len(s.trials) == 28
    compare(s.trials, "wine", rtol)


KNOB_CASES = [
    {"optimizer": "momentum", "momentum": [0.0, 0.5, 0.99], "dampening": [0.0, 0.3], "weight_decay": [0.0, 1e-2]},
    {"optimizer": "nesterov", "momentum": [0.5, 0.9], "weight_decay": [0.0, 1e-3]},
    {"optimizer": "adagrad", "lr_decay": [0.0, 0.1], "initial_accumulator_value": [0.0, 0.1],
     "eps": [1e-10, 1e-3]},
    {"optimizer": "rmsprop", "alpha": [0.9, 0.99], "centered": [False, True], "momentum": [0.0, 0.9],
     "eps": [1e-8, 1e-4]},
    {"optimizer": "adam", "betas": [[0.9, 0.999], [0.5, 0.9]], "amsgrad": [False, True], "weight_decay": [0, 1e-2]},
    {"optimizer": "adamw", "betas": [[0.9, 0.999], [0.8, 0.99]], "eps": [1e-8, 1e-6], "weight_decay": [0.0, 0.1],
     "amsgrad": [False, True]},
]


@pytest.mark.parametrize("grid", KNOB_CASES, ids=[g["optimizer"] for g in KNOB_CASES])
def test_every_knob_matches_reference_in_float64(grid):
    grid = {k: (v if isinstance(v, list) else [v]) for k, v in grid.items()}
    s = build_sweep({"dataset": "iris", "dtype": "float64", "epochs": 3, "batch_size": 16, "lr": 0.01,
                     "model": {"kind": "mlp", "hidden": [8], "activation": "relu"}, "grid": grid})
    compare(s.trials, "iris", 1e-9)


SCHEDULES = [
    {"kind": "constant", "warmup": 2},
    {"kind": "step", "step_size": 2, "gamma": 0.5},
    {"kind": "step", "step_size": 1, "gamma": 0.7, "warmup": 1},
    {"kind": "exponential", "gamma": 0.8},
    {"kind": "cosine", "eta_min": 1e-4},
    {"kind": "cosine", "warmup": 2},
]


def test_every_schedule_matches_reference_in_float64():
    s = build_sweep({"dataset": "iris", "dtype": "float64", "epochs": 5, "batch_size": 32, "lr": 0.05,
                     "grid": {"optimizer": ["sgd", "adam"], "schedule": SCHEDULES}})
    # mixed schedules share a group: the lr per epoch is a per-trial tensor
    compare(s.trials, "iris", 1e-9)


@pytest.mark.parametrize("dataset,model,loss", [
    ("diabetes", {"kind": "linear"}, "mse"),
    ("diabetes", {"kind": "mlp", "hidden": [8], "activation": "gelu"}, "huber"),
    ("breast_cancer", {"kind": "mlp", "hidden": [8], "activation": "sigmoid"}, "bce"),
    ("digits", {"kind": "mlp", "hidden": [16], "activation": "none"}, "nll"),
])
def test_every_task_and_loss_matches_reference(dataset, model, loss):
    s = build_sweep({"dataset": dataset, "dtype": "float64", "epochs": 2, "batch_size": "full", "model": model,
                     "loss": loss, "grid": {"optimizer": ["sgd", "rmsprop"], "lr": [0.01]}, "seeds": [0, 1]})
    compare(s.trials, dataset, 1e-9)


knob_values = {
    "momentum": st.floats(0.0, 0.99),
    "weight_decay": st.sampled_from([0.0, 1e-4, 1e-2]),
    "eps": st.sampled_from([1e-10, 1e-8, 1e-6]),
    "alpha": st.floats(0.5, 0.999),
    "centered": st.booleans(),
    "amsgrad": st.booleans(),
    "betas": st.tuples(st.floats(0.0, 0.99), st.floats(0.5, 0.9999)).map(list),
    "lr_decay": st.floats(0.0, 0.5),
    "initial_accumulator_value": st.floats(0.0, 1.0),
    "dampening": st.floats(0.0, 0.9),
}


@st.composite
def trial_batches(draw):
    from dlbench.optim import OPTIMIZERS

    trials = []
    for _ in range(draw(st.integers(1, 4))):
        opt = draw(st.sampled_from(list(OPTIMIZERS)))
        adaptive = opt in ("adagrad", "rmsprop", "adam", "adamw")
        lr = draw(st.floats(1e-4, 1e-2 if adaptive else 1e-1))
        raw = {"optimizer": opt, "lr": lr, "seed": draw(st.integers(0, 2**31 - 1))}
        for k in OPTIMIZERS[opt].defaults:
            raw[k] = draw(knob_values[k])
        if opt == "nesterov":
            raw["momentum"] = max(raw["momentum"], 0.1)
        trials.append(raw)
    dtype = draw(st.sampled_from(["float32", "float64"]))
    batch = draw(st.sampled_from([7, 32, "full"]))
    return trials, dtype, batch


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trial_batches())
def test_random_hyperparameters_and_seeds_match_reference(case):
    raws, dtype, batch = case
    trials = []
    for raw in raws:
        s = build_sweep({"dataset": "iris", "dtype": dtype, "epochs": 2, "batch_size": batch,
                         "model": {"kind": "mlp", "hidden": [8], "activation": "tanh"}, **raw})
        trials += s.trials
    trials = list({t["id"]: t for t in trials}.values())
    compare(trials, "iris", 1e-9 if dtype == "float64" else 1e-4)


def test_a_diverging_trial_leaves_the_others_untouched():
    s = build_sweep({"dataset": "digits", "epochs": 4, "batch_size": 64, "optimizer": "sgd",
                     "grid": {"lr": [0.01, 1e4]}})
    data = load("digits", None, 0.1)
    both = fused.train(s.trials, data)
    alone = fused.train([s.trials[0]], data)[0]
    assert both[1].status == "diverged" and both[1].diverged_epoch is not None
    assert both[1].history[-1]["epoch"] == both[1].diverged_epoch
    assert both[0].status == "ok"
    for a, b in zip(both[0].history, alone.history, strict=True):
        assert abs(a["test_loss"] - b["test_loss"]) <= 1e-6 * abs(b["test_loss"])
        assert a["test_acc"] == b["test_acc"]


def test_fused_supports_what_it_says_and_falls_back_otherwise():
    from dlbench.plan import make_units

    s = build_sweep({"dataset": "mnist1d", "epochs": 1, "grid": {"model": [{"kind": "mlp"}, {"kind": "cnn"}]}})
    units = make_units(s.trials, "auto", workers=1)
    assert sorted(u.engine for u in units) == ["fused", "reference"]


def test_history_holds_each_splits_own_numbers_computed_by_hand():
    """Epoch 0 (before any step) of a linear model, recomputed with numpy from the initial weights on
    each split: a swap of the validation and test sets (or of train and validation) cannot pass."""
    import numpy as np
    import torch

    s = build_sweep({"dataset": "iris", "dtype": "float64", "epochs": 1, "model": {"kind": "linear"},
                     "optimizer": "sgd", "lr": 0.1, "seeds": [4]})
    (trial,) = s.trials
    data = load("iris", None, validation_of(trial))
    common.init_seed(trial["seed"])
    from dlbench import models

    lin = models.build(trial["model"], data.info)[1]
    w, b = lin.weight.detach().double().numpy(), lin.bias.detach().double().numpy()

    def by_hand(x, y):
        logits = x.astype(np.float64) @ w.T + b
        logp = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True)) - logits.max(
            1, keepdims=True)
        return -logp[np.arange(len(y)), y].mean(), (logits.argmax(1) == y).mean()

    splits = {"train": (data.x_train, data.y_train), "val": (data.x_val, data.y_val),
              "test": (data.x_test, data.y_test)}
    expected = {name: by_hand(*xy) for name, xy in splits.items()}
    assert len({round(v[0], 6) for v in expected.values()}) == 3  # the three splits differ: a swap would show
    for result in (reference.train(trial, data), fused.train([trial], data)[0]):
        row = result.history[0]
        assert row["train_eval_loss"] == pytest.approx(expected["train"][0], rel=1e-12)
        assert row["train_acc"] == pytest.approx(expected["train"][1], rel=1e-12)
        for name in ("val", "test"):
            assert row[f"{name}_loss"] == pytest.approx(expected[name][0], rel=1e-12), name
            assert row[f"{name}_acc"] == pytest.approx(expected[name][1], rel=1e-12), name
    assert torch.get_default_dtype() == torch.float32


@pytest.mark.parametrize("activation,dtype", [("relu", "float32"), ("tanh", "float32"), ("relu", "float64")])
def test_evaluation_numbers_do_not_depend_on_the_chunk_or_on_autograd(activation, dtype):
    """evaluate_all cuts a split into chunks sized for the cache (and works in place without
    autograd): every per-sample number, so every stored loss and accuracy, is the same bit for bit
    as the whole split in one piece through the autograd-recorded forward, wherever the cuts fall
    (a one-sample chunk, which rounds differently, is never made)."""
    import torch

    from dlbench.engine.stacked import stacked_model

    s = build_sweep({"dataset": "digits", "epochs": 1, "model": {"kind": "mlp", "hidden": [128, 128],
                                                                   "activation": activation},
                     "grid": {"optimizer": ["sgd", "adam"], "lr": [0.01, 0.1]}, "seeds": [0, 1]})
    data = load("digits", None, validation_of(s.trials[0]))
    dt = getattr(torch, dtype)
    net = stacked_model(s.trials, data.info, dt, "cpu")
    with torch.no_grad():
        net.theta.add_(0.05 * torch.randn(net.theta.shape, generator=torch.Generator().manual_seed(0), dtype=dt))
    x, y = common.tensors(data, "cpu", dt)["train"]
    assert net.eval_chunk < len(x)  # on the CPU the split is cut
    got = fused.evaluate_all(net, "cross_entropy", x, y, "multiclass")
    # the forward as training records it (autograd on, out of place), the split in one chunk
    out = net.forward(x, per_trial=False)
    per_sample = torch.nn.functional.cross_entropy(out.detach().reshape(-1, out.shape[-1]),
                                                   y.repeat(net.K), reduction="none").view(net.K, -1)
    assert torch.equal(got["loss"], per_sample.double().sum(dim=1) / len(x))
    assert torch.equal(got["acc"], (out.detach().argmax(dim=-1) == y).double().sum(dim=1) / len(x))
    for chunk in (16, 100, len(x) - 2, len(x) - 1, len(x)):  # - 1, - 2: the last joins the chunk before
        net.eval_chunk = chunk
        again = fused.evaluate_all(net, "cross_entropy", x, y, "multiclass")
        assert all(torch.equal(again[m], got[m]) for m in got), chunk


def test_no_chunk_is_smaller_than_the_smallest_unless_the_split_is():
    small = common.SMALLEST_CHUNK
    assert common.chunks(10, 4) == [(0, 10)]  # never cut below the smallest chunk
    assert common.chunks(1, 100) == [(0, 1)]
    assert common.chunks(0, 100) == []
    assert common.chunks(100, 40) == [(0, 40), (40, 80), (80, 100)]
    assert common.chunks(90, 40) == [(0, 40), (40, 90)]  # not a last piece of 10
    for n in range(1, 200, 7):
        for size in (1, small, small + 3, 40, 64):
            pieces = common.chunks(n, size)
            assert pieces[0][0] == 0 and pieces[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:], strict=False))
            assert all(b - a >= min(small, n) for a, b in pieces), (n, size, pieces)
