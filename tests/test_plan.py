"""Planning: trials grouped and cut into units of work, for sweeps of any size."""

import pandas as pd
import pytest

from dlbench.plan import make_units, max_unit_size
from dlbench.schema import config_key
from dlbench.spec import build_sweep

QUICKSTART_MODEL = {"kind": "mlp", "hidden": [128, 128], "activation": "relu"}


def check_units(trials, units, workers):
    """What plan.pack promises: every trial in exactly one unit, no unit empty, none above the cap;
    the seeds of a configuration in one unit where they fit, else in the fewest units that hold
    them, in blocks of near-equal size; as many units as workers where there are as many blocks."""
    assert all(u.trials for u in units)
    assert sorted(t["id"] for u in units for t in u.trials) == sorted(t["id"] for t in trials)
    cap = max_unit_size(trials[0])
    assert max(len(u.trials) for u in units) <= cap
    seeds = pd.Series([config_key(t) for t in trials]).value_counts()
    blocks = {}  # configuration -> its block sizes, one per unit it is in
    for u in units:
        for key, n in pd.Series([config_key(t) for t in u.trials]).value_counts().items():
            blocks.setdefault(key, []).append(n)
    for key, sizes in blocks.items():
        assert len(sizes) == -(-seeds[key] // cap), (seeds[key], cap, sizes)
        assert max(sizes) - min(sizes) <= 1
    assert len(units) >= min(workers, sum(len(b) for b in blocks.values()))


@pytest.mark.parametrize("seeds,workers", [(33, 2), (64, 2), (64, 1), (200, 16)])
def test_more_seeds_of_one_configuration_than_a_unit_holds(seeds, workers):
    """The cap on a unit (a CPU cache budget: 26 trials of this model) is smaller than the seeds of
    the one configuration: its seeds are cut into unit-sized blocks (e500870 made empty units and
    crashed with an IndexError before training)."""
    s = build_sweep({"dataset": "digits", "optimizer": "adam", "lr": 1e-3, "seeds": list(range(seeds)),
                     "epochs": 1})
    units = make_units(s.trials, "auto", workers)
    check_units(s.trials, units, workers)


@pytest.mark.parametrize("seeds", [16, 4])
def test_r1024_plans_into_units_that_each_hold_whole_configurations(seeds):
    """R1024: 4 optimizers × 16 log-spaced lrs × 16 seeds of the quickstart's model (a unit holds 10
    of its trials): 64 configurations of 16 seeds, each in two units of 8 (e500870 asked for 103
    chunks of 64 blocks: 39 were empty and planning crashed; 388528c dealt blocks of 10 and 6 into
    103 units and 25 of them held 16). With 4 seeds: two whole configurations a unit, where a round
    robin over 26 units would have put three (12 trials) in some."""
    s = build_sweep({"dataset": "digits", "model": QUICKSTART_MODEL, "seeds": list(range(seeds)), "epochs": 1,
                     "grid": {"optimizer": ["sgd", "momentum", "rmsprop", "adam"],
                              "lr": {"log": [1e-4, 1e-1], "num": 16}}})
    assert len(s.trials) == 64 * seeds and max_unit_size(s.trials[0]) == 10
    units = make_units(s.trials, "auto", 2)
    check_units(s.trials, units, 2)
    assert sorted(len(u.trials) for u in units) == [8] * (128 if seeds == 16 else 32)


def test_a_sweep_of_40_seeds_of_one_configuration_runs(cli, tmp_path):
    r = cli("sweep", "--dataset", "iris", "--optimizer", "adam", "--lr", "0.01", "--seeds",
            ",".join(map(str, range(40))), "--epochs", "1", "--model", '{kind="mlp", hidden=[2048]}', "--name", "s",
            "--out", tmp_path, "--workers", "1")
    assert r.code == 0, r.err
    t = pd.read_parquet(tmp_path / "s" / "trials.parquet")
    assert len(t) == 40 and (t.status == "ok").all() and (t.engine == "fused").all()
