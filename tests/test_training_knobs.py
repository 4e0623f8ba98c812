"""What language models are trained with, on both engines and for every task: a budget in steps
with an evaluation every eval_every steps (the lr schedule stepping per step), gradient clipping
by global norm, weight decay on every parameter or on matrices only, and a split that gives a
transformer's hidden matrices alone to its class (Muon), equal on the fused and reference engines
(float64, 1e-9)."""

import pytest
import torch

from dlbench import catalogue, models, optim
from dlbench.data import load_for
from dlbench.engine import fused
from dlbench.engine.common import lr_per_epoch, period_orders
from dlbench.errors import UserError
from dlbench.models.common import roles_of
from dlbench.schedules import lr_schedule
from dlbench.spec import build_sweep
from tests.test_fused import compare_on

MLP = {"kind": "mlp", "hidden": [8], "activation": "tanh"}


def sweep(**raw):
    return build_sweep({"dataset": "wine", "dtype": "float64", "batch_size": 16, "seeds": [0, 1], "model": MLP,
                        "lr": [1e-2, 1e-1], **raw})


def test_a_step_budget_evaluates_every_eval_every_steps_and_its_schedule_steps_per_step():
    s = sweep(optimizer="adam", max_steps=23, eval_every=5, schedule={"kind": "cosine", "warmup": 4})
    t = s.trials[0]
    assert (t["max_steps"], t["eval_every"], t["epochs"]) == (23, 5, 5)  # periods: 5, 5, 5, 5, 3 steps
    h = fused.train(s.trials, load_for(t))[0].history
    assert [r["steps"] for r in h] == [0, 5, 10, 15, 20, 23] and [r["epoch"] for r in h] == list(range(6))
    # 23 batches of 16 from the stream of epoch permutations: the third period crosses the first epoch's end
    orders = period_orders(t, 142)
    assert [len(o) for o in orders] == [80, 80, 80, 80, 48] and sorted(torch.cat(orders)[:142].tolist()) == list(
        range(142))
    assert lr_schedule(t) == pytest.approx(lr_per_epoch(t))  # 23 values: warmup then cosine, step by step
    assert [r["lr"] for r in h[1:]] == pytest.approx([lr_schedule(t)[i] for i in (0, 5, 10, 15, 20)])
    assert compare_on(s.trials, load_for(t), 1e-9, require_ok=True) <= 1e-9


@pytest.mark.parametrize("optimizer", ["adam", "momentum", "torch.optim:NAdam"])
def test_clipping_by_global_norm_equals_clip_grad_norm_and_changes_the_run(optimizer):
    clipped = sweep(optimizer=optimizer, epochs=3, clip_grad_norm=0.05)
    data = load_for(clipped.trials[0])
    assert compare_on(clipped.trials, data, 1e-9, require_ok=True) <= 1e-9
    free = fused.train(sweep(optimizer=optimizer, epochs=3).trials, data)
    assert fused.train(clipped.trials, data)[0].history[-1]["val_loss"] != free[0].history[-1]["val_loss"]


@pytest.mark.parametrize("optimizer", ["adamw", "adam", "momentum", "rmsprop", "adagrad", "torch.optim:NAdam"])
def test_weight_decay_on_matrices_only_is_equal_on_both_engines_and_spares_the_biases(optimizer):
    s = sweep(optimizer=optimizer, epochs=3, weight_decay=0.5, grid={"weight_decay_on": ["all", "matrices"]})
    data = load_for(s.trials[0])
    assert compare_on(s.trials, data, 1e-9, require_ok=True) <= 1e-9
    res = {(t["lr"], t.get("weight_decay_on", "all")): r for t, r in zip(s.trials, fused.train(s.trials, data),
                                                                        strict=True)}
    assert res[(0.01, "all")].history[-1]["val_loss"] != res[(0.01, "matrices")].history[-1]["val_loss"]
    # in torch, the biases sit in a param group of their own without decay
    trial = next(t for t in s.trials if t.get("weight_decay_on") == "matrices")
    net = models.build(trial["model"], catalogue.dataset_of(trial))
    opt = optim.build(trial, list(net.parameters()), roles_of(net))
    groups = opt.param_groups if hasattr(opt, "param_groups") else []
    assert [(len(g["params"]), g["weight_decay"]) for g in groups] == [(2, 0.5), (2, 0.0)]


def test_a_muon_split_on_a_transformers_hidden_matrices_is_equal_on_both_engines():
    """on = "hidden": the attention and MLP matrices go to Muon; the token and position embeddings
    and the untied head go to AdamW with the vectors (modded-nanogpt's split), decay on matrices."""
    s = build_sweep({"dataset": "modadd", "p": 7, "train_fraction": 0.5, "dtype": "float64", "batch_size": 8,
                     "seeds": [0, 1], "model": {"kind": "gpt", "n_layer": 1, "n_head": 2, "d_model": 8, "tied": False},
                     "optimizer": "muon", "lr": [1e-2, 3e-2], "max_steps": 6, "eval_every": 3,
                     "weight_decay_on": "matrices", "clip_grad_norm": 1.0,
                     "optimizers": {"muon": {"class": "torch.optim:Muon", "rest": "adamw", "rest_lr": 3e-3,
                                             "on": "hidden"}}})
    t = s.trials[0]
    net = models.build(t["model"], catalogue.dataset_of(t))
    roles = dict(zip((n for n, _ in net.named_parameters()), roles_of(net), strict=True))
    assert roles["tok.weight"] == roles["pos.weight"] == "embedding" and roles["head.weight"] == "head"
    opt = optim.build(t, list(net.parameters()), list(roles.values()))
    main, rest = opt.parts
    hidden = [n for n, r in roles.items() if r == "hidden"]
    assert sum(len(g["params"]) for g in main.param_groups) == len(hidden) == 4
    assert sum(len(g["params"]) for g in rest.param_groups) == len(roles) - 4
    assert compare_on(s.trials, load_for(t), 1e-9, require_ok=True) <= 1e-9
    rows = dict(optim.listing()[-1][2][i][1:] for i in range(len(optim.listing()[-1][2])))
    assert 'class = "torch.optim:Muon", rest = "adamw", on = "hidden"' in rows


@pytest.mark.parametrize("raw,message", [
    ({"eval_every": 5}, "eval_every = 5 needs a step budget"),
    ({"max_steps": 10, "eval_every": 11}, "eval_every = 11 is more than max_steps = 10"),
    ({"max_steps": 0}, "max_steps = 0 is not allowed"),
    ({"clip_grad_norm": 0}, "clip_grad_norm = 0 is not allowed"),
    ({"weight_decay_on": "biases"}, "weight_decay_on = 'biases' is unknown"),
    ({"optimizer": "torch.optim:Rprop", "weight_decay_on": "matrices"}, "takes no weight_decay"),
    ({"max_steps": 10, "schedule": {"kind": "cosine", "warmup": 10}}, "warmup = 10 is not allowed with max_steps"),
    ({"optimizer": "m", "optimizers": {"m": {"class": "torch.optim:Muon", "rest": "adam", "on": "embeddings"}}},
     "on = 'embeddings' is not allowed"),
])
def test_bad_training_keys_are_one_line(raw, message):
    with pytest.raises(UserError, match=message) as e:
        build_sweep({"dataset": "wine", "epochs": 1, **raw})
    assert "\n" not in str(e.value)


SLOW_SGD = '''
import time

import torch


class SlowSGD(torch.optim.SGD):
    """SGD whose every step takes 5 ms more (a costlier update, as Muon's is beside AdamW's)."""

    def step(self, closure=None):
        time.sleep(0.005)
        return super().step(closure)
'''


def test_in_a_fused_unit_each_trial_is_timed_with_its_own_optimizers_updates(tmp_path, monkeypatch):
    """Two optimizers share one unit (and its forward and backward): the one whose step costs 5 ms
    more per step is that much slower in its history's train_time, the shared work split evenly."""
    from tests.conftest import write

    monkeypatch.chdir(tmp_path)
    write(tmp_path / "slow.py", SLOW_SGD)
    s = build_sweep({"dataset": "wine", "batch_size": 16, "seeds": [0], "model": MLP, "epochs": 2,
                     "optimizer": ["sgd", "./slow.py:SlowSGD"], "lr": 0.01})
    res = {t["optimizer"]: r for t, r in zip(s.trials, fused.train(s.trials, load_for(s.trials[0])), strict=True)}
    steps = res["sgd"].history[-1]["steps"]
    fast = sum(h["train_time"] for h in res["sgd"].history)
    slow = sum(h["train_time"] for h in res["./slow.py:SlowSGD"].history)
    assert slow - fast >= 0.005 * steps * 0.9 and slow - fast < 0.005 * steps * 3


def test_row_clock_shares_a_calls_time_among_its_rows_on_the_cpu_and_through_cuda_events(monkeypatch):
    import time

    from dlbench.engine.common import RowClock

    clock = RowClock("cpu", 3)
    clock.time(0, 2, lambda: time.sleep(0.02))
    clock.time(2, 3, lambda: time.sleep(0.01))
    a, b, c = clock.per_row()
    assert a == b and 0.009 <= a <= 0.03 and 0.009 <= c <= 0.03

    class Event:  # CUDA events where no GPU is: each pair measures 40 ms
        def __init__(self, enable_timing):
            self.at = None

        def record(self):
            self.at = Event.clock
            Event.clock += 40.0

        def elapsed_time(self, other):
            return 40.0

    Event.clock = 0.0
    synced = []
    monkeypatch.setattr(torch.cuda, "Event", Event)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: synced.append(1))
    gpu = RowClock("cuda:0", 4)
    gpu.time(0, 4, lambda: None)
    gpu.time(1, 2, lambda: None)
    assert synced == [] and gpu.per_row() == pytest.approx([0.01, 0.05, 0.01, 0.01]) and synced == [1]


def test_steps_and_seconds_to_the_target_per_optimizer_by_hand(cli, tmp_path):
    """Two configurations of adam, one of sgd; the target is 95% of the way from the start (1.0) to
    the best validation loss (0.0): 0.05. adam lr 0.1 reaches it in 20 steps and 2 s, lr 0.01 in 30
    steps but 1.5 s; sgd never: fewest steps 20, fewest seconds 1.5 (each over the configurations)."""
    import pandas as pd

    from dlbench import stats

    trials = pd.DataFrame([{"trial_id": f"t{i}", "dataset": "d", "optimizer": o, "lr": lr, "seed": 0, "status": "ok",
                            "validation": 0.1, "task": "regression", "best_val_loss": 0.0}
                           for i, (o, lr) in enumerate([("adam", 0.1), ("adam", 0.01), ("sgd", 0.1)])])
    rows = []
    for tid, losses, times in (("t0", [1.0, 0.5, 0.0], [0.0, 1.0, 1.0]), ("t1", [1.0, 0.5, 0.5, 0.04],
                                                                         [0.0, 0.5, 0.5, 0.5]),
                               ("t2", [1.0, 0.9, 0.8], [0.0, 1.0, 1.0])):
        for e, (v, s) in enumerate(zip(losses, times, strict=True)):
            rows.append({"trial_id": tid, "epoch": e, "steps": 10 * e, "val_loss": v, "train_time": s})
    (adam, sgd) = stats.to_target(trials, pd.DataFrame(rows))
    assert (adam.optimizer, adam.target, adam.steps, adam.seconds) == ("adam", pytest.approx(0.05), 20, 1.5)
    assert adam.by_steps["lr"] == 0.1 and adam.by_seconds["lr"] == 0.01
    assert sgd.steps == float("inf") and sgd.seconds != sgd.seconds
