"""Kinds of optimizer beyond a single class, each one file in dlbench/optim/: a wrapper around any
optimizer (Lookahead over Adam) and a split (Muon on the matrices, another optimizer on the rest),
checked like any optimizer, trained fused, and equal to the reference engine (float64, 1e-9)."""

import json
import textwrap

import pandas as pd
import pytest
import torch

from dlbench import optim
from dlbench.data import load
from dlbench.engine import fused_supports, reference
from dlbench.engine.common import make_optimizer
from dlbench.errors import UserError
from dlbench.spec import build_sweep
from tests.conftest import write
from tests.test_fused import compare_on

MLP = {"kind": "mlp", "hidden": [8, 8], "activation": "tanh"}


def sweep(optimizers: dict, optimizer, **extra):
    return build_sweep({"dataset": "wine", "dtype": "float64", "epochs": 3, "batch_size": 16, "seeds": [0, 1],
                        "model": MLP, "optimizer": optimizer, "lr": [1e-3, 1e-2], "optimizers": optimizers,
                        **extra})


LOOKAHEAD = {"la": {"class": "pytorch_optimizer:Lookahead", "wraps": "adam", "k": 3, "alpha": 0.5}}
MUON = {"muon": {"class": "torch.optim:Muon", "rest": "adamw", "rest_lr": 3e-3}}


def test_a_wrapper_over_adam_trains_fused_and_equals_the_reference():
    s = sweep(LOOKAHEAD, "la", betas=[[0.9, 0.99]])
    t = s.trials[0]
    # the wrapper's keywords beside it, the inner optimizer's fields (betas: its keyword) under `wraps`
    assert t["optimizer_class"] == "pytorch_optimizer:Lookahead" and (t["k"], t["alpha"]) == (3, 0.5)
    assert t["wraps"] == {"optimizer": "adam", "betas": [0.9, 0.99], "eps": 1e-8, "amsgrad": False,
                          "weight_decay": 0.0}
    assert all(fused_supports(x) is None for x in s.trials)
    assert compare_on(s.trials, load("wine", None, 0.1), 1e-9, require_ok=True) <= 1e-9
    built = make_optimizer(t, [torch.nn.Parameter(torch.zeros(2, 2))])
    assert type(built).__name__ == "Lookahead" and type(built.optimizer).__name__ == "Adam"
    assert built.optimizer.param_groups[0]["betas"] == (0.9, 0.99) and built.k == 3


def test_a_wrapper_over_any_optimizer_name_and_its_id_follows_both():
    named = {"nadam2": {"class": "torch.optim:NAdam", "momentum_decay": 0.005},
             "la": {"class": "pytorch_optimizer:Lookahead", "wraps": "nadam2"}}
    s = sweep(named, "la")
    assert s.trials[0]["wraps"] == {"optimizer": "nadam2", "optimizer_class": "torch.optim:NAdam",
                                    "momentum_decay": 0.005}
    assert compare_on(s.trials, load("wine", None, 0.1), 1e-9, require_ok=True) <= 1e-9
    other = sweep({**named, "la": {**named["la"], "k": 7}}, "la")
    assert {t["id"] for t in other.trials}.isdisjoint(t["id"] for t in s.trials)
    by_path = sweep({"la": {"class": "pytorch_optimizer:Lookahead", "wraps": "torch.optim:SGD"}}, "la")
    assert by_path.trials[0]["wraps"] == {"optimizer": "torch.optim:SGD"}


def test_a_split_puts_matrices_on_one_optimizer_and_the_rest_on_another():
    s = sweep(MUON, "muon", momentum=0.9)
    t = s.trials[0]
    assert (t["optimizer_class"], t["rest_lr"], t["momentum"]) == ("torch.optim:Muon", 3e-3, 0.9)
    assert t["rest"]["optimizer"] == "adamw" and t["rest"]["weight_decay"] == 0.01  # adamw's own default
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()
    built = make_optimizer(t, model.parameters())
    main, rest = built.parts
    assert type(main).__name__ == "Muon" and type(rest).__name__ == "AdamW"
    assert all(p.dim() == 2 for g in main.param_groups for p in g["params"])
    assert all(p.dim() == 1 for g in rest.param_groups for p in g["params"])
    assert [g["lr"] for g in built.param_groups] == [t["lr"], 3e-3]  # each its own lr
    assert all(fused_supports(x) is None for x in s.trials)
    assert compare_on(s.trials, load("wine", None, 0.1), 1e-9, require_ok=True) <= 1e-9


def test_a_split_follows_the_schedule_with_each_lr_on_both_engines():
    s = sweep(MUON, "muon", schedule={"kind": "step", "step_size": 1, "gamma": 0.5})
    data = load("wine", None, 0.1)
    compare_on(s.trials, data, 1e-9, require_ok=True)
    r = reference.train(s.trials[0], data)
    assert [h["lr"] for h in r.history[1:]] == [s.trials[0]["lr"] * 0.5 ** e for e in range(3)]


def test_rest_lr_can_be_swept_and_defaults_to_lr():
    s = sweep({"muon": {"class": "torch.optim:Muon", "rest": "adam"}}, "muon", grid={"rest_lr": [1e-3, 1e-2]})
    assert sorted({t["rest_lr"] for t in s.trials}) == [1e-3, 1e-2] and len(s.trials) == 8
    plain = sweep({"muon": {"class": "torch.optim:Muon", "rest": "adam"}}, "muon")
    t = plain.trials[0]
    assert "rest_lr" not in t
    built = make_optimizer(t, [torch.nn.Parameter(torch.zeros(2, 2)), torch.nn.Parameter(torch.zeros(2))])
    assert [g["lr"] for g in built.param_groups] == [t["lr"], t["lr"]]


@pytest.mark.parametrize("tables,message", [
    ({"la": {"class": "pytorch_optimizer:Lookahead", "wraps": "nothere"}}, "optimizer = 'nothere' is unknown"),
    ({"la": {"class": "pytorch_optimizer:Lookahead", "wraps": "la"}}, "optimizers.la.wraps = 'la' is not allowed"),
    ({"la": {"class": "pytorch_optimizer:Lookahead", "wraps": "adam", "kk": 3}},
     "takes no keyword 'kk'"),
    ({"muon": {"class": "torch.optim:Muon", "rest": "adam", "rest_lr": -1.0}}, "rest_lr = -1.0 is not allowed"),
    ({"la": {"class": "pytorch_optimizer:Lookahead", "wraps": "adam", "alpha": 2.0}}, "raised ValueError"),
])
def test_bad_tables_are_one_line(tables, message):
    with pytest.raises(UserError, match=message) as e:
        sweep(tables, next(iter(tables)))
    assert "\n" not in str(e.value)


SCALED = """
import torch


class Scaled(torch.optim.Optimizer):
    \"\"\"Another optimizer's step on gradients scaled by `factor`.\"\"\"

    def __init__(self, optimizer, factor=1.0):
        self.optimizer, self.factor = optimizer, factor
        self.param_groups, self.defaults, self.state = optimizer.param_groups, optimizer.defaults, optimizer.state

    @torch.no_grad()
    def step(self, closure=None):
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is not None:
                    p.grad.mul_(self.factor)
        return self.optimizer.step(closure)

    def zero_grad(self, set_to_none=True):
        self.optimizer.zero_grad(set_to_none)
"""


def test_a_new_composite_kind_is_one_class_and_the_registry_the_trial_and_the_listing_follow(tmp_path, monkeypatch):
    """The whole of a new kind (what a file in dlbench/optim/ would hold): a subclass of
    CompositeKind with its part's key. It is asked in its order, its part key enters the trial and
    the entry cache's key (two trials with other parts never share an entry), `dlbench optimizers`
    lists it, and it trains fused equal to the reference. Before, a kind took five edits elsewhere."""
    from dlbench.optim import by_path
    from dlbench.optim.composite import CompositeKind
    from dlbench.optim.kind import OptimizerKind

    write(tmp_path / "scaled.py", SCALED)
    monkeypatch.chdir(tmp_path)

    class Scaled(CompositeKind):
        name = "scaled"
        order = 15
        part_key = "scales"
        examples = (('class = "./scaled.py:Scaled", scales = "adam", factor = 0.5', "another optimizer on scaled "
                     "gradients"),)

        def describe(self, name, table, where="optimizer", resolve=None):
            return self.describe_class(name, table, where, resolve, "a class taking an optimizer", ("optimizer",),
                                       lambda part: f"scaled {part.name}")

        def build(self, entry, params, trial, build_part, roles=None):
            inner = build_part({**trial["scales"], "lr": trial["lr"]}, params)
            return by_path.load(entry.reference)(inner, **self.own(trial))

    try:
        assert [k.name for k in optim.kinds()] == ["wrapper", "scaled", "split", "builtin", "by path"]
        assert optim.part_keys() == ("wraps", "scales", "rest")
        (*_, composites) = optim.listing()
        assert ["scaled", 'class = "./scaled.py:Scaled", scales = "adam", factor = 0.5',
                "another optimizer on scaled gradients"] in composites[2]
        s = sweep({"sa": {"class": "./scaled.py:Scaled", "scales": "adam", "factor": 0.5},
                   "ss": {"class": "./scaled.py:Scaled", "scales": "sgd", "factor": 0.5}}, ["sa", "ss"])
        t = s.trials[0]
        assert t["scales"]["optimizer"] in ("adam", "sgd") and t["factor"] == 0.5
        a, b = (next(x for x in s.trials if x["optimizer"] == n) for n in ("sa", "ss"))
        assert optim.entry_of(a).parts["scales"].name == "adam" and optim.entry_of(b).parts["scales"].name == "sgd"
        assert all(fused_supports(x) is None for x in s.trials)
        assert compare_on(s.trials, load("wine", None, 0.1), 1e-9, require_ok=True) <= 1e-9
    finally:
        OptimizerKind._registry.remove(Scaled)


def test_a_kind_that_leaves_out_a_method_of_the_contract_fails_when_the_registry_is_read():
    from dlbench.optim.kind import OptimizerKind

    class Half(OptimizerKind):  # no describe, from_trial, fields, build
        name = "half"
        order = 50

        def recognises(self, name, table):
            return False

        def claims(self, trial):
            return False

    try:
        with pytest.raises(TypeError, match="abstract"):
            optim.kinds()
    finally:
        OptimizerKind._registry.remove(Half)
    assert [k.name for k in optim.kinds()] == ["wrapper", "split", "builtin", "by path"]


def test_the_composite_kinds_run_from_a_spec_file_and_say_what_they_are(tmp_path, cli):
    spec = write(tmp_path / "s.toml", textwrap.dedent("""
        name = "kinds"
        dataset = "iris"
        epochs = 2
        seeds = [0, 1]
        optimizer = ["adam", "la", "muon"]
        lr = [0.01]
        [optimizers.la]
        class = "pytorch_optimizer:Lookahead"
        wraps = "adam"
        k = 3
        [optimizers.muon]
        class = "torch.optim:Muon"
        rest = "adam"
        rest_lr = 0.003
    """))
    r = cli("sweep", spec, "--out", tmp_path / "out", "--workers", "1")
    assert r.code == 0, r.err
    t = pd.read_parquet(tmp_path / "out" / "kinds" / "trials.parquet")
    assert (t.status == "ok").all() and (t.engine == "fused").all() and len(t) == 6
    env = json.loads((tmp_path / "out" / "kinds" / "env.json").read_text())
    assert env["plugins"]["optimizer la"]["wraps"] == "adam"
    assert env["plugins"]["optimizer muon"]["rest"] == "adam"
    assert json.loads(t[t.optimizer == "la"].wraps.iloc[0])["optimizer"] == "adam"  # one readable cell
