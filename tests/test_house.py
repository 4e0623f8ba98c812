"""The rules the code keeps about itself: no import-time or global side effects, nothing outside the
catalogue asking whether an optimizer, model or dataset is built in or a user's, one copy of each
name the stored files use."""

import re
import warnings
from pathlib import Path

import matplotlib
import pytest

from dlbench import schema, words

PACKAGE = Path(__file__).resolve().parents[1] / "dlbench"
# the catalogue: where kinds are told apart (each kind's own module, and the registries over them)
CATALOGUE = ("optim/", "models/", "data/", "catalogue.py", "usercode.py", "losses.py", "schedules.py")


def test_nothing_outside_the_catalogue_asks_built_in_or_user():
    """The questions the old code asked in about 35 places: a name among the built-ins, a model of
    kind factory, a user's dataset or plugin. Outside the catalogue, code asks a record instead."""
    asks = re.compile(r"in OPTIMIZERS|OPTIMIZERS\[|== \"factory\"|\"factory\" in|is_user|USER_INFOS|plugins\.|"
                      r"data\.user|from dlbench\.data import user|optim\.builtin|optim import builtin|DATASETS|"
                      r"optim\.(by_path|wrapper|split)|models\.(builtin|factory)|data\.builtin")
    found = []
    for f in sorted(PACKAGE.rglob("*.py")):
        rel = f.relative_to(PACKAGE).as_posix()
        if rel.startswith(CATALOGUE) or rel == "schema.py":  # schema: how a model table with a reference is labelled
            continue
        for i, line in enumerate(f.read_text().splitlines(), 1):
            if asks.search(line):
                found.append(f"{rel}:{i}: {line.strip()}")
    assert found == []


def test_drawing_a_figure_changes_no_global_matplotlib_setting(tmp_path, cli):
    """The paper style holds while a figure is drawn and saved (rc_context), figures are made
    without pyplot (no backend chosen, none left open): a user's own plotting after dlbench's, in
    one process (a notebook), sees matplotlib as it left it."""
    import sys

    before = dict(matplotlib.rcParams)
    r = cli("sweep", "--dataset", "iris", "--optimizer", "sgd,adam", "--lr", "0.01,0.1", "--epochs", "2", "--name",
            "f", "--out", tmp_path, "--workers", "1")
    assert r.code == 0, r.err
    assert cli("plot", tmp_path / "f", "--format", "svg").code == 0 and cli("report", tmp_path / "f").code == 0
    changed = {k for k, v in dict(matplotlib.rcParams).items() if before.get(k) != v}
    assert changed == set()
    if "matplotlib.pyplot" in sys.modules:
        assert sys.modules["matplotlib.pyplot"].get_fignums() == []


def test_the_fused_engine_leaves_the_warning_filters_as_it_found_them():
    from dlbench.data import load
    from dlbench.engine import fused
    from dlbench.spec import build_sweep

    before = list(warnings.filters)
    s = build_sweep({"dataset": "iris", "optimizer": "adam", "epochs": 1, "seeds": [0, 1]})
    fused.train(s.trials, load("iris", None, 0.1))
    assert list(warnings.filters) == before
    import subprocess
    import sys

    code = ("import torch, numpy, scipy.stats, pandas, matplotlib, warnings; n = len(warnings.filters); "
            "import dlbench.engine.fused, dlbench.plots, dlbench.report; print(len(warnings.filters) - n)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent)
    assert p.stdout.strip() == "0", p.stderr  # importing adds no filter either


def test_a_sweep_in_this_process_gives_back_the_thread_count():
    import torch

    from dlbench.plan import TRAIN_THREADS, make_units, run_unit
    from dlbench.spec import build_sweep

    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        s = build_sweep({"dataset": "iris", "optimizer": "adam", "epochs": 1})
        (unit,) = make_units(s.trials, "auto", 1)
        seen = []
        unit.engine = "reference"
        from dlbench.engine import reference

        real = reference.train
        reference.train = lambda t, d: (seen.append(torch.get_num_threads()), real(t, d))[1]
        try:
            run_unit(unit)
        finally:
            reference.train = real
        assert seen == [TRAIN_THREADS] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)


def test_every_name_the_stored_files_use_has_its_words():
    """Every metric column of trials.parquet and history.parquet (schema.py, the one list) is said
    in words by the readers (words.METRICS, the one map of words), and a test metric says it."""
    missing = [m for m in (*schema.HISTORY_METRICS, *schema.SUMMARY_METRICS, "lr") if m not in words.METRICS]
    assert missing == []
    for m in (*schema.HISTORY_METRICS, *schema.SUMMARY_METRICS):
        assert ("test" in words.metric_words(m).split()) == schema.is_test_metric(m), m


def test_what_may_choose_is_every_summary_number_not_measured_on_test():
    """A [protocol]'s select takes exactly the summary metrics measured on training or validation
    data: each one is accepted, each test metric refused in one line, by the spec's own check."""
    from dlbench.errors import UserError
    from dlbench.spec import build_sweep

    test_metrics = {"test_loss_at_best_val", "test_acc_at_best_val", "test_r2_at_best_val", "final_test_loss",
                    "final_test_acc", "final_test_r2", "best_test_loss", "best_test_acc", "best_test_r2",
                    "test_bpc_at_best_val", "final_test_bpc", "test_ppl_at_best_val"}
    assert {m for m in schema.SUMMARY_METRICS if schema.is_test_metric(m)} == test_metrics
    assert set(schema.SELECT_COLUMNS) == set(schema.SUMMARY_METRICS) - test_metrics
    raw = {"dataset": "iris", "optimizer": "sgd", "lr": [0.1], "epochs": 1}
    for m in schema.SELECT_COLUMNS:
        build_sweep({**raw, "protocol": {"select": m, "direction": "max"}})
    for m in sorted(test_metrics):
        with pytest.raises(UserError, match="test numbers never choose"):
            build_sweep({**raw, "protocol": {"select": m, "direction": "max"}})


def test_the_stored_row_has_exactly_the_columns_the_schema_names():
    from dlbench.store import result_columns, trial_summary

    row = trial_summary({"status": "ok", "history": []})
    assert set(row) <= result_columns()
    assert set(schema.SUMMARY_METRICS) <= set(row) and set(schema.SUMMARY_TEXT) <= set(row)
