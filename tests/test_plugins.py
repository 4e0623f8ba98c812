"""Your own optimizer: by import path, by file, by entry point or by name in a spec; checked before
anything runs; trained fused by the generic path and proven equal to the reference engine trial
by trial (float64, 1e-9 relative), for every torch.optim class that can run fused and for
third-party optimizers; failures of the user's code stay the user's trial's."""

import json
import math
import textwrap

import pandas as pd
import pytest
import torch

from dlbench import optim, usercode
from dlbench.data import load
from dlbench.engine import fused, reference
from dlbench.engine.generic import GenericUpdate
from dlbench.engine.stacked import stacked_model
from dlbench.optim import by_path
from dlbench.spec import build_sweep
from tests.conftest import tree, write
from tests.test_fused import compare_on

THIRD_PARTY = ["lion_pytorch:Lion", "schedulefree:AdamWScheduleFree", "prodigyopt:Prodigy",
               "pytorch_optimizer:Lamb", "pytorch_optimizer:AdaBelief", "pytorch_optimizer:Adan",
               "pytorch_optimizer:Ranger"]
# torch.optim classes that cannot run on a dense MLP's every parameter, and what happens instead
NOT_FUSED = {"torch.optim:LBFGS": "needs a closure: the reference engine", "torch.optim:SparseAdam":
             "sparse gradients only", "torch.optim:Muon": "2-D parameters only (tested with a bias-free model)"}


def compare(trials, data, rtol=1e-9):
    return compare_on(trials, data, rtol, require_ok=True)


def sweep(optimizer, **extra):
    return build_sweep({"dataset": "wine", "dtype": "float64", "epochs": 2, "batch_size": 16, "seeds": [0, 1],
                        "model": {"kind": "mlp", "hidden": [8, 8], "activation": "tanh"}, "optimizer": optimizer,
                        "lr": [1e-3, 1e-2], **extra})


@pytest.mark.parametrize("ref", [r for r in optim.torch_optimizers() if r not in NOT_FUSED])
def test_every_torch_optim_class_runs_fused_and_equals_the_reference(ref):
    s = sweep(ref, grid={"weight_decay": [0.0, 1e-2]} if ref != "torch.optim:Rprop" else {})
    assert all(fused_ok(t) for t in s.trials)
    compare(s.trials, load("wine", None, 0.1))


def fused_ok(trial):
    from dlbench.engine import fused_supports

    return fused_supports(trial) is None


def require(module):
    """The third-party optimizers are in the `third-party` extra that the README's test command (and
    .ci/run) installs: a missing one is a failure, not a skip."""
    return __import__(module)


@pytest.mark.parametrize("ref", THIRD_PARTY)
def test_third_party_optimizers_run_fused_and_equal_the_reference(ref):
    require(ref.split(":")[0])
    s = sweep(ref)
    compare(s.trials, load("wine", None, 0.1))


def test_trials_with_identical_hyperparameters_share_an_optimizer_only_where_that_is_exact(monkeypatch):
    """NAdam is an elementwise torch.optim rule that no built-in update computes, so it trains on the
    generic path: the three seeds of each lr share one instance over their stacked rows (2 slots,
    not 6), and give bitwise what one instance per trial gives."""
    s = sweep("torch.optim:NAdam", seeds=[0, 1, 2])
    data = load("wine", None, 0.1)
    assert optim.same_builtin(s.trials[0]) is None  # not trained by a hand-written update

    def slots_of(trials):
        net = stacked_model(trials, data.info, torch.float64, "cpu")
        firsts = [sl.first for sl in GenericUpdate(trials, net, 0).slots] + [len(trials)]
        return [[t["lr"] for t in trials[a:b]] for a, b in zip(firsts, firsts[1:], strict=False)]

    ordered = sorted(s.trials, key=lambda t: (t["lr"], t["seed"]))  # a unit keeps a configuration's seeds together
    assert slots_of(ordered) == [[1e-3] * 3, [1e-2] * 3]
    slots = []
    real = GenericUpdate.__init__
    monkeypatch.setattr(GenericUpdate, "__init__", lambda self, *a: (real(self, *a), slots.append(len(self.slots)))[0])
    merged = fused.train(ordered, data)
    assert slots == [2] and all(r.status == "ok" for r in merged)
    monkeypatch.setattr(by_path, "ELEMENTWISE", frozenset())  # one optimizer per trial
    usercode.SESSION.caches.clear()  # entries described again, now without the shared instance
    assert slots_of(ordered) == [[lr] for lr in [1e-3] * 3 + [1e-2] * 3]
    slots.clear()
    alone = fused.train(ordered, data)
    assert slots == [6]
    for a, b in zip(merged, alone, strict=True):
        assert [h["val_loss"] for h in a.history] == [h["val_loss"] for h in b.history]  # bitwise
        assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    if _has("lion_pytorch"):  # not a torch.optim elementwise class: one optimizer per trial
        lion = sweep("lion_pytorch:Lion").trials
        update = GenericUpdate(lion, stacked_model(lion, data.info, torch.float64, "cpu"), 0)
        assert [s.first for s in update.slots] == [0, 1, 2, 3]


def _has(module):
    try:
        __import__(module)
        return True
    except ImportError:
        return False


# --------------------------------------------------------------------------------------------
# Where optimizers come from


SIGN_SGD = '''
import torch


class SignSGD(torch.optim.Optimizer):
    """theta <- theta - lr * scale * sign(g)"""

    def __init__(self, params, lr=0.01, scale=1.0):
        if scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        super().__init__(params, dict(lr=lr, scale=scale))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            if group["lr"] > 0.5:
                raise RuntimeError("lr too large for sign descent")
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(torch.sign(p.grad), alpha=-group["lr"] * group["scale"])


def make(params, lr, scale=1.0):
    return SignSGD(params, lr=lr, scale=scale)


NOT_AN_OPTIMIZER = 3
'''


@pytest.fixture
def opt_file(tmp_path):
    return write(tmp_path / "my_opt.py", SIGN_SGD)


def test_a_file_optimizer_a_factory_and_a_named_one_in_a_spec(tmp_path, opt_file, cli):
    spec = write(tmp_path / "s.toml", textwrap.dedent("""
        name = "p"
        dataset = "iris"
        epochs = 2
        seeds = [0, 1]
        [[grid]]
        optimizer = ["adam", "./my_opt.py:SignSGD", "./my_opt.py:make"]
        lr = [0.01, 0.03]
        [[grid]]
        optimizer = "sign2"
        lr = [0.01]
        [optimizers.sign2]
        class = "./my_opt.py:SignSGD"
        scale = 2.0
    """))
    r = cli("sweep", spec, "--out", tmp_path / "out", "--workers", "1")
    assert r.code == 0, r.err
    t = pd.read_parquet(tmp_path / "out" / "p" / "trials.parquet")
    assert set(t.optimizer) == {"adam", "./my_opt.py:SignSGD", "./my_opt.py:make", "sign2"}
    assert set(t.engine) == {"fused"} and (t.status == "ok").all()
    named = t[t.optimizer == "sign2"]
    assert (named.scale == 2.0).all() and (json.loads(named.config.iloc[0])["optimizer_class"]
                                           == "./my_opt.py:SignSGD")
    env = json.loads((tmp_path / "out" / "p" / "env.json").read_text())
    assert env["plugins"]["optimizer sign2"]["sha256"] == usercode.SweepFiles(str(tmp_path)).add(
        "./my_opt.py", "x").sha256
    # the reference and its keywords are part of the id: scale 2 is another trial than scale 1
    ids = {json.loads(c)["optimizer"]: tid for c, tid in zip(t.config, t.trial_id, strict=True)}
    assert len(set(ids.values())) == 4


def test_flags_resolve_files_from_the_working_folder(tmp_path, opt_file):
    from tests.conftest import run_dlbench

    r = run_dlbench("sweep", "--dataset", "iris", "--optimizer", "sgd,./my_opt.py:SignSGD,torch.optim:NAdam",
                    "--epochs", "1", "--name", "f", "--out", tmp_path / "o", "--workers", "2", cwd=tmp_path)
    assert r.code == 0, r.err
    t = pd.read_parquet(tmp_path / "o" / "f" / "trials.parquet")
    assert (t.status == "ok").all() and len(t) == 3  # in worker processes: the file travelled with the work


def test_an_installed_package_registers_optimizers_by_entry_point(tmp_path, cli, monkeypatch):
    pkg = tmp_path / "site"
    (pkg / "fakeopt-1.2.dist-info").mkdir(parents=True)
    write(pkg / "fakeopt.py", SIGN_SGD)
    write(pkg / "fakeopt-1.2.dist-info" / "METADATA", "Metadata-Version: 2.1\nName: fakeopt\nVersion: 1.2\n")
    write(pkg / "fakeopt-1.2.dist-info" / "entry_points.txt", "[dlbench.optimizers]\nsignsgd = fakeopt:SignSGD\n")
    monkeypatch.syspath_prepend(str(pkg))
    r = cli("optimizers")
    assert r.code == 0 and "signsgd" in r.out and "fakeopt 1.2" in r.out and "torch.optim:NAdam" in r.out
    r = cli("sweep", "--dataset", "iris", "--optimizer", "signsgd", "--epochs", "1", "--name", "e", "--out",
            tmp_path / "o", "--workers", "1")
    assert r.code == 0, r.err
    env = json.loads((tmp_path / "o" / "e" / "env.json").read_text())
    assert env["plugins"]["optimizer signsgd"]["entry_point"] == "fakeopt 1.2"


@pytest.mark.parametrize("optimizer,extra,message", [
    ("nothere:Opt", [], "module 'nothere' is not installed here"),
    ("./my_opt.py:Nope", [], "has no 'Nope'"),
    ("./my_opt.py:NOT_AN_OPTIMIZER", [], "is a int, not an optimizer"),
    ("torch.nn:Linear", [], "is a class but not a torch.optim.Optimizer"),
    ("./my_opt.py:SignSGD", ["--set", "scal=2.0"], "unknown key 'scal': no optimizer of this sweep takes it (did you "
                                                  "mean 'scale'?)"),
    ("./my_opt.py:SignSGD", ["--set", "scale=-1.0"], "raised ValueError: scale must be > 0, got -1.0"),
    ("./missing.py:SignSGD", [], "file './missing.py' does not exist"),
    ("torch.optim:LBFGS", [], "needs a closure"),
])
def test_bad_plugins_are_one_line_exit_2_and_write_nothing(tmp_path, opt_file, cli, monkeypatch, optimizer, extra,
                                                           message):
    monkeypatch.chdir(tmp_path)
    r = cli("sweep", "--dataset", "iris", "--optimizer", optimizer, *extra, "--out", tmp_path / "out")
    assert r.code == 2 and message in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert not (tmp_path / "out").exists()


def test_a_file_that_changed_under_an_existing_folder_is_refused(tmp_path, opt_file, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["sweep", "--dataset", "iris", "--optimizer", "./my_opt.py:SignSGD", "--epochs", "1", "--name", "c",
            "--out", tmp_path / "out", "--workers", "1"]
    assert cli(*args).code == 0
    before = {f: (tmp_path / "out" / "c" / f).read_bytes() for f in tree(tmp_path / "out" / "c")
              if (tmp_path / "out" / "c" / f).is_file()}
    opt_file.write_text(SIGN_SGD.replace("theta <-", "θ <-"))
    r = cli(*args)
    assert r.code == 2 and "my_opt.py changed since" in r.err and "--fresh" in r.err
    assert len(r.err.strip().splitlines()) == 1
    after = {f: (tmp_path / "out" / "c" / f).read_bytes() for f in tree(tmp_path / "out" / "c")
             if (tmp_path / "out" / "c" / f).is_file()}
    assert before == after  # nothing written, nothing lost
    assert cli(*args, "--fresh").code == 0


def test_a_step_that_raises_fails_only_its_trial_and_the_sweep_goes_on(tmp_path, opt_file, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = cli("sweep", "--dataset", "iris", "--optimizer", "./my_opt.py:SignSGD", "--lr", "0.01,0.9,0.1", "--epochs",
            "2", "--seeds", "0,1", "--name", "x", "--out", tmp_path / "out", "--workers", "1", "--engine", "fused")
    assert r.code == 1  # a trial failed: said, and the exit code says it
    t = pd.read_parquet(tmp_path / "out" / "x" / "trials.parquet")
    bad = t[t.lr == 0.9]
    assert (bad.status == "failed").all() and bad.error.str.contains("RuntimeError: lr too large").all()
    good = t[t.lr != 0.9]
    assert len(good) == 4 and (good.status == "ok").all() and (good.engine == "fused").all()
    # the trials that did not raise have the numbers they get alone
    data = load("iris", None, 0.1)
    alone = fused.train([build_sweep({"dataset": "iris", "optimizer": "./my_opt.py:SignSGD", "lr": 0.01,
                                      "epochs": 2}, base_dir=str(tmp_path)).trials[0]], data)[0]
    row = good[(good.lr == 0.01) & (good.seed == 0)].iloc[0]
    assert row.best_val_loss == pytest.approx(min(h["val_loss"] for h in alone.history), rel=1e-6)


MODES = '''
import torch


class Averaged(torch.optim.SGD):
    """SGD with a schedule-free-like evaluation mode: eval() zeroes the parameters (kept aside)
    and train() puts them back, so evaluation in eval mode is the untrained model's."""

    def eval(self):
        self.kept = [p.detach().clone() for g in self.param_groups for p in g["params"]]
        for g in self.param_groups:
            for p in g["params"]:
                p.data.zero_()

    def train(self):
        if hasattr(self, "kept"):
            for p, k in zip([p for g in self.param_groups for p in g["params"]], self.kept):
                p.data.copy_(k)
'''


def test_optimizers_with_modes_evaluate_in_eval_mode_on_both_engines(tmp_path):
    write(tmp_path / "modes.py", MODES)
    s = build_sweep({"dataset": "iris", "optimizer": "./modes.py:Averaged", "lr": [0.05, 0.1], "epochs": 3,
                     "dtype": "float64"}, base_dir=str(tmp_path))
    data = load("iris", None, 0.1)
    # zero weights: every logit 0, argmax class 0; the loss is log(3)
    for result in fused.train(s.trials, data) + [reference.train(t, data) for t in s.trials]:
        for h in result.history:
            assert h["val_loss"] == pytest.approx(math.log(3)) and h["test_loss"] == pytest.approx(math.log(3))
        assert result.history[-1]["train_loss"] < 0.9  # while training went on with the real parameters


def test_a_closure_optimizer_runs_on_the_reference_engine_with_the_whole_training_set(tmp_path, cli):
    r = cli("sweep", "--dataset", "iris", "--optimizer", "torch.optim:LBFGS,adam", "--batch-size", "full",
            "--lr", "0.5", "--epochs", "2", "--name", "l", "--out", tmp_path, "--workers", "1")
    assert r.code == 0, r.err
    assert "needs a closure" in r.out
    t = pd.read_parquet(tmp_path / "l" / "trials.parquet").set_index("optimizer")
    assert t.loc["torch.optim:LBFGS", "engine"] == "reference" and t.loc["adam", "engine"] == "fused"
    assert "needs a closure" in t.loc["torch.optim:LBFGS", "fallback_reason"]
    assert t.loc["torch.optim:LBFGS", "status"] == "ok" and t.loc["torch.optim:LBFGS", "steps"] == 2


def test_built_in_names_keep_their_ids():
    # the id of a built-in trial is unchanged by all of this (tests/test_spec.py pins one)
    a = build_sweep({"dataset": "iris", "optimizer": "adam"}).trials[0]
    assert "optimizer_class" not in a and set(a) == {"dataset", "validation", "model", "loss", "optimizer", "lr",
                                                     "batch_size", "epochs", "seed", "schedule", "device", "dtype",
                                                     "betas", "eps", "amsgrad", "weight_decay", "id"}


# --------------------------------------------------------------------------------------------
# What users' code does that a framework must survive


FREES_GRADIENTS = '''
import torch


class FreeingSGD(torch.optim.Optimizer):
    """SGD that frees each gradient once it has used it (p.grad = None), as some libraries do to save memory."""

    def __init__(self, params, lr=0.01):
        super().__init__(params, dict(lr=lr))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-group["lr"])
                    p.grad = None
'''


@pytest.mark.parametrize("elementwise", [False, True], ids=["one instance per trial", "shared over rows"])
def test_an_optimizer_that_frees_gradients_in_step_trains_fused_and_equals_the_reference(tmp_path, monkeypatch,
                                                                                        elementwise):
    write(tmp_path / "freeing.py", FREES_GRADIENTS)
    s = build_sweep({"dataset": "wine", "dtype": "float64", "epochs": 3, "batch_size": 16, "seeds": [0, 1],
                     "model": {"kind": "mlp", "hidden": [8], "activation": "tanh"},
                     "optimizer": "./freeing.py:FreeingSGD", "lr": [0.01, 0.1]}, base_dir=str(tmp_path))
    if elementwise:  # the path where trials share one instance over views of their rows
        cls = by_path.load(s.trials[0]["optimizer"])
        monkeypatch.setattr(by_path, "ELEMENTWISE", by_path.ELEMENTWISE | {f"{cls.__module__}.{cls.__qualname__}"})
        usercode.SESSION.caches.pop("optimizer entries", None)  # described again: now elementwise
        usercode.SESSION.caches.pop("optimizer entries by trial", None)
    compare(s.trials, load("wine", None, 0.1))


EXITS = "import sys\nsys.exit()\n"
PARSES_ARGUMENTS = '''
import argparse

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, required=True)
args = parser.parse_args()  # a research script's top level: it runs when imported
'''


@pytest.mark.parametrize("code,said", [(EXITS, "exited (SystemExit None)"),
                                       (PARSES_ARGUMENTS, "exited (SystemExit 2); it printed")])
@pytest.mark.parametrize("workers", [1, 2], ids=["in the driver", "in the early pool"])
def test_a_file_that_exits_while_imported_is_a_one_line_refusal(tmp_path, code, said, workers):
    from tests.conftest import run_dlbench

    write(tmp_path / "script.py", code)
    r = run_dlbench("sweep", "--dataset", "iris", "--optimizer", "./script.py:Opt", "--epochs", "1", "--workers",
                    workers, "--out", tmp_path / "out", cwd=tmp_path)
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1, (r.code, r.err)
    assert "running ./script.py " + said in r.err and "__name__" in r.err
    assert r.out == "" and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_refusal_with_the_early_pool_never_prints_a_traceback_at_exit(tmp_path):
    """The pool started early for user code is ended (its manager thread joined) on every path:
    left running, it woke at interpreter exit on a closed pipe about one run in ten and printed 16
    lines of concurrent.futures traceback after the one-line refusal."""
    from tests.conftest import run_dlbench

    spec = write(tmp_path / "k.toml", 'name = "k"\ndataset = "iris"\nepochs = 1\noptimizer = "n2"\n'
                                      '[optimizers.n2]\nclass = "./open.py:Open"\nbad = 1\n')
    write(tmp_path / "open.py", "import torch\n\n\ndef Open(params, lr, **kw):\n"
                                "    return torch.optim.SGD(params, lr=lr, **kw)\n")
    for _ in range(20):
        r = run_dlbench("sweep", spec, "--workers", "2", "--out", tmp_path / "out", cwd=tmp_path)
        assert r.code == 2 and len(r.err.strip().splitlines()) == 1, r.err
        assert "unexpected keyword argument 'bad'" in r.err


def test_second_order_optimizers_get_their_graph_from_a_keyword_and_the_error_says_so(tmp_path, cli):
    require("pytorch_optimizer")
    base = ["--dataset", "iris", "--epochs", "2", "--lr", "0.05", "--workers", "1", "--out", tmp_path]
    r = cli("sweep", "--optimizer", "pytorch_optimizer:AdaHessian", "--name", "plain", *base)
    assert r.code == 1  # every trial failed: AdaHessian differentiates the gradient again
    t = pd.read_parquet(tmp_path / "plain" / "trials.parquet")
    assert (t.status == "failed").all() and t.error.str.contains("create_graph = true").all()
    spec = write(tmp_path / "h.toml", 'name = "h"\ndataset = "iris"\nepochs = 2\nlr = 0.05\noptimizer = "ah"\n'
                                      '[optimizers.ah]\nclass = "pytorch_optimizer:AdaHessian"\ncreate_graph = true\n')
    r = cli("sweep", spec, "--workers", "1", "--out", tmp_path)
    assert r.code == 0, r.err
    t = pd.read_parquet(tmp_path / "h" / "trials.parquet")
    assert (t.status == "ok").all() and (t.engine == "reference").all()
    assert t.fallback_reason.str.contains("second-order gradients").all()
    assert json.loads(t.config.iloc[0])["create_graph"] is True  # part of what the trial is: its id follows it
    assert (t.best_val_loss < t.final_train_loss.max() * 10).all()


# --------------------------------------------------------------------------------------------
# torch.optim classes a built-in optimizer is: trained by the built-in's update


SAME = [("torch.optim:SGD", {"momentum": [0.0, 0.9], "dampening": [0.0, 0.5], "weight_decay": [0.0, 1e-2]}),
        ("torch.optim:SGD", {"momentum": [0.5, 0.9], "nesterov": True}),
        ("torch.optim:Adam", {"amsgrad": [False, True], "betas": [[0.9, 0.999], [0.8, 0.99]],
                              "weight_decay": [0.0, 0.1]}),
        ("torch.optim:AdamW", {"amsgrad": [False, True], "foreach": True}),
        ("torch.optim:RMSprop", {"centered": [False, True], "momentum": [0.0, 0.5], "alpha": 0.9}),
        ("torch.optim:Adagrad", {"lr_decay": [0.0, 0.01], "initial_accumulator_value": [0.0, 0.1]})]


@pytest.mark.parametrize("ref,grid", SAME, ids=[f"{r.split(':')[1]}-{i}" for i, (r, _) in enumerate(SAME)])
def test_a_torch_optim_class_a_builtin_is_trains_by_its_rule_and_equals_the_reference(ref, grid):
    """Named by import path, torch.optim's SGD, Adam, AdamW, RMSprop and Adagrad train by the
    built-in update that computes what they compute (catalogue.same_builtin), checked by its knobs
    instead of a construction, and give what torch.optim itself gives in the reference engine."""
    from dlbench import catalogue

    usercode.SESSION.caches.clear()
    s = sweep(ref, grid={k: v for k, v in grid.items() if isinstance(v, list)},
              **{k: v for k, v in grid.items() if not isinstance(v, list)})
    assert all(catalogue.same_builtin(t) is not None for t in s.trials)
    assert not usercode.SESSION.cache("constructions checked")  # nothing constructed to check them
    compare(s.trials, load("wine", None, 0.1))


def test_keywords_no_builtin_takes_keep_the_generic_path_and_torchs_own_checks():
    from dlbench import catalogue
    from dlbench.errors import UserError

    for ref, extra in (("torch.optim:Adam", {"maximize": True}), ("torch.optim:Adam", {"eps": 0.0}),
                       ("torch.optim:SGD", {"nesterov": True, "momentum": 0.9, "dampening": 0.1})):
        usercode.SESSION.caches.clear()
        if "dampening" in extra:  # torch refuses it: said in one line, by constructing the class
            with pytest.raises(UserError, match="Nesterov momentum requires a momentum and zero dampening"):
                sweep(ref, **extra)
            continue
        s = sweep(ref, **extra)
        assert all(catalogue.same_builtin(t) is None for t in s.trials)
        assert usercode.SESSION.cache("constructions checked")
        compare(s.trials, load("wine", None, 0.1))


def test_the_builtins_defaults_are_the_torch_classes_defaults():
    """as_builtin fills the knobs a spec leaves out with the built-in's defaults: they must be the
    torch class's own (SGD's momentum aside: 0 in torch makes it the built-in sgd)."""
    import inspect

    from dlbench.optim.builtin import OPTIMIZERS, SAME_CLASSES, as_builtin

    for cls in SAME_CLASSES:
        sig = inspect.signature(getattr(torch.optim, cls)).parameters
        name, knobs = as_builtin(cls, {"momentum": 0.9} if cls == "SGD" else {})
        for k, v in OPTIMIZERS[name].defaults.items():
            if (cls, k) != ("SGD", "momentum"):
                default = sig[k].default
                assert (list(default) if isinstance(default, tuple) else default) == v == knobs[k], (cls, k)
    assert as_builtin("SGD", {}) == ("sgd", {"weight_decay": 0.0})
    assert as_builtin("SGD", {"momentum": 0.9, "nesterov": True})[0] == "nesterov"
    assert as_builtin("NAdam", {}) is None and as_builtin("Adam", {"decoupled_weight_decay": True}) is None


NOISY = '''
import logging
import sys
import warnings

import torch


class Noisy(torch.optim.SGD):
    """SGD that logs a page to stderr, warns, then fails (as a failing torch.compile does)."""

    def step(self, closure=None):
        log = logging.getLogger("torch.noisy")
        log.addHandler(logging.StreamHandler(sys.stderr))
        for i in range(300):
            log.error("compile log line %d", i)
        warnings.warn("a warning from the optimizer")
        raise RuntimeError("the compiled step failed\\nand its advice goes on for pages")
'''


def test_a_trial_whose_code_floods_stderr_fails_in_one_line_and_keeps_its_log(tmp_path):
    """The worker holds back what the trial writes to stderr (300 lines of logging, a warning): the
    terminal gets the failed trial's one line, the record keeps the log (`log`)."""
    import json

    from tests.conftest import run_dlbench

    write(tmp_path / "noisy.py", NOISY)
    r = run_dlbench("sweep", "--dataset", "iris", "--optimizer", "./noisy.py:Noisy", "--lr", "0.1,0.2", "--epochs",
                    "1", "--name", "n", "--out", tmp_path, "--workers", "2", cwd=tmp_path)
    assert r.code == 1
    assert "compile log line" not in r.out + r.err and "a warning from" not in r.out + r.err
    failed = [ln for ln in r.out.splitlines() if ": failed (" in ln]
    assert len(failed) == 2 and all("RuntimeError: the compiled step failed at noisy.py:" in ln for ln in failed)
    records = [json.loads(f.read_text()) for f in (tmp_path / "n" / "trials").glob("*.json")]
    assert len(records) == 2
    assert all("compile log line 299" in rec["result"]["log"] and "a warning from the optimizer" in rec["result"]["log"]
               for rec in records)
