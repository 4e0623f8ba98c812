"""Planning: trials grouped and cut into units of work, for sweeps of any size."""

import pandas as pd
import pytest

from dlbench.plan import make_units, max_unit_size
from dlbench.schema import config_key
from dlbench.spec import build_sweep

QUICKSTART_MODEL = {"kind": "mlp", "hidden": [128, 128], "activation": "relu"}


def check_units(trials, units):
    """Every trial in exactly one unit, no unit empty, the seeds of a configuration together where
    they fit in one unit."""
    assert all(u.trials for u in units)
    assert sorted(t["id"] for u in units for t in u.trials) == sorted(t["id"] for t in trials)
    cap = max_unit_size(trials[0])
    for u in units:
        seeds: dict[str, int] = {}
        for t in u.trials:
            seeds[config_key(t)] = seeds.get(config_key(t), 0) + 1
        total = sum(1 for t in trials if config_key(t) == config_key(u.trials[0]))
        assert seeds[config_key(u.trials[0])] == min(total, cap) or total > cap


@pytest.mark.parametrize("seeds,workers", [(33, 2), (64, 2), (64, 1), (200, 16)])
def test_more_seeds_of_one_configuration_than_a_unit_holds(seeds, workers):
    """The cap on a unit (a CPU cache budget: 26 trials of this model) is smaller than the seeds of
    the one configuration: its seeds are cut into unit-sized blocks (e500870 made empty units and
    crashed with an IndexError before training)."""
    s = build_sweep({"dataset": "digits", "optimizer": "adam", "lr": 1e-3, "seeds": list(range(seeds)),
                     "epochs": 1})
    units = make_units(s.trials, "auto", workers)
    check_units(s.trials, units)
    assert max(len(u.trials) for u in units) <= max_unit_size(s.trials[0])


def test_r1024_plans_into_units_that_each_hold_whole_configurations():
    """R1024: 4 optimizers × 16 log-spaced lrs × 16 seeds of the quickstart's model (a unit holds 10
    of its trials): 64 configurations, 103 units (e500870 asked for 103 chunks of 64 blocks: 39 were
    empty and planning crashed)."""
    s = build_sweep({"dataset": "digits", "model": QUICKSTART_MODEL, "seeds": list(range(16)), "epochs": 1,
                     "grid": {"optimizer": ["sgd", "momentum", "rmsprop", "adam"],
                              "lr": {"log": [1e-4, 1e-1], "num": 16}}})
    assert len(s.trials) == 1024 and max_unit_size(s.trials[0]) == 10
    units = make_units(s.trials, "auto", 2)
    check_units(s.trials, units)
    assert len(units) == 103 and max(len(u.trials) for u in units) <= 2 * 10


def test_a_sweep_of_40_seeds_of_one_configuration_runs(cli, tmp_path):
    r = cli("sweep", "--dataset", "iris", "--optimizer", "adam", "--lr", "0.01", "--seeds",
            ",".join(map(str, range(40))), "--epochs", "1", "--model", '{kind="mlp", hidden=[2048]}', "--name", "s",
            "--out", tmp_path, "--workers", "1")
    assert r.code == 0, r.err
    t = pd.read_parquet(tmp_path / "s" / "trials.parquet")
    assert len(t) == 40 and (t.status == "ok").all() and (t.engine == "fused").all()
