"""One selection rule, one function, every reader: a hand-made table with ties at each level,
given to each reader that chooses, in an order where row order or trial ids would choose wrong.

momentum: lr 0.03 and lr 0.1 tie on mean validation accuracy (the same three values, summed in
another order); lr 0.1 has the lower mean validation loss, so it is chosen, although lr 0.03
sorts first. adam: lr 0.001 and lr 0.01 tie on accuracy and on loss; the stated order (the
smaller lr) takes lr 0.001, although its rows come last and its ids sort last."""

import math

import numpy as np
import pandas as pd
import pytest

from dlbench import stats, words
from dlbench.expect import check_expectations
from dlbench.plots import heatmap, lr
from dlbench.plots._common import Results
from dlbench.protocol import choose_finalists
from dlbench.spec import build_sweep
from dlbench.summary import render_summary

ACC = (0.9751724137931035, 0.9751724137931034 + 1e-16, 0.9765517241379311)  # three seeds' validation accuracy
# (optimizer, lr) -> (val acc per seed, val loss per seed, test acc per seed)
TABLE = {
    ("momentum", 0.03): (ACC, (0.10, 0.11, 0.12), (0.95, 0.95, 0.95)),
    ("momentum", 0.1): (ACC[::-1], (0.08, 0.09, 0.10), (0.97, 0.97, 0.97)),
    ("momentum", 0.3): ((0.90, 0.91, 0.92), (0.30, 0.30, 0.30), (0.99, 0.99, 0.99)),  # best on test: never chosen
    ("adam", 0.001): ((0.96, 0.96, 0.96), (0.15, 0.15, 0.15), (0.93, 0.93, 0.93)),
    ("adam", 0.01): ((0.96, 0.96, 0.96), (0.15, 0.15, 0.15), (0.94, 0.94, 0.94)),
    ("adam", 0.1): ((0.50, 0.50, 0.50), (0.90, 0.90, 0.90), (0.50, 0.50, 0.50)),
}
CHOSEN = {"momentum": 0.1, "adam": 0.001}


def rows():
    out = []
    for (opt, rate), (val, loss, test) in TABLE.items():
        for seed in range(3):
            out.append({"optimizer": opt, "lr": rate, "seed": seed, "best_val_acc": val[seed],
                        "best_val_loss": loss[seed], "test_acc_at_best_val": test[seed]})
    out.reverse()  # rows in the opposite of sorted order; ids below in no helpful order either
    return out


def trials_table() -> pd.DataFrame:
    t = pd.DataFrame(rows())
    t.insert(0, "trial_id", [f"{99 - i:02d}" for i in range(len(t))])
    return t.assign(dataset="digits", validation=0.1, stage="tune", batch_size=32, epochs=10, status="ok",
                    sweep="s", best_epoch=1, diverged_epoch=None, engine="fused", wall_time=1.0)


def results() -> Results:
    """The same table with a two-epoch history whose epoch 1 is the chosen one."""
    t = trials_table()
    h = []
    for r in t.to_dict("records"):
        for e in (0, 1):
            h.append({**{k: r[k] for k in ("trial_id", "sweep", "optimizer", "lr", "batch_size", "seed", "status",
                                           "dataset", "best_epoch", "diverged_epoch")},
                      "epoch": e, "steps": 10 * e, "samples": 100 * e, "train_time": 0.1 * e, "eval_time": 0.1,
                      "val_acc": r["best_val_acc"] if e else 0.1, "val_loss": r["best_val_loss"] if e else 2.3,
                      "test_acc": r["test_acc_at_best_val"] if e else 0.1, "test_loss": 0.1})
    return Results(t, pd.DataFrame(h))


def test_the_tie_rule_itself():
    t = trials_table()
    sel = stats.selection_of(t)
    m = stats.choose(t[t.optimizer == "momentum"], sel)
    assert m.config["lr"] == 0.1 and m.decided_by == "best_val_loss" and [c["lr"] for c in m.tied] == [0.03]
    a = stats.choose(t[t.optimizer == "adam"], sel)
    assert a.config["lr"] == 0.001 and a.decided_by == "order" and [c["lr"] for c in a.tied] == [0.01]
    # shuffling the rows changes nothing
    for seed in range(5):
        shuffled = t.sample(frac=1, random_state=seed)
        assert stats.choose(shuffled[shuffled.optimizer == "adam"], sel).config["lr"] == 0.001
        assert stats.choose(shuffled[shuffled.optimizer == "momentum"], sel).config["lr"] == 0.1


def test_best_configs_and_the_words_about_ties():
    best = {b.name: b for b in stats.best_configs(trials_table())}
    assert {k: b.config["lr"] for k, b in best.items()} == CHOSEN
    cols = ["lr"]
    assert words.tie_note(best["momentum"], cols) == ("momentum: tied with lr=0.03 on mean validation accuracy; "
                                                      "chosen by the better mean validation loss")
    assert words.tie_note(best["adam"], cols).startswith("adam: tied with lr=0.01 on mean validation accuracy; tied "
                                                         "on every choosing metric too")


def test_show_says_the_choice_and_the_tie(capsys):
    from rich.console import Console

    render_summary(trials_table(), Console(width=400, no_color=True))
    out = capsys.readouterr().out
    assert "lr=0.1 bs=32 epochs=10" in out and "lr=0.001 bs=32 epochs=10" in out
    assert "momentum: tied with lr=0.03 on mean validation accuracy" in out


def test_the_report_chooses_the_same(tmp_path):
    from dlbench.report import _data, _text

    res = results()
    data = _data.summarize(["s"], res, {"s": {"schema_version": 3}}, [])
    assert {b.name: b.config["lr"] for b in data.best} == CHOSEN
    chosen = data.configs[data.configs.chosen]
    assert sorted(zip(chosen.optimizer, chosen.lr, strict=True)) == [("adam", 0.001), ("momentum", 0.1)]
    assert "momentum: tied with lr=0.03" in _text.markdown(data)


def test_the_protocol_chooses_the_same():
    sweep = build_sweep({"dataset": "digits", "seeds": [0, 1, 2], "epochs": 10,
                         "grid": {"optimizer": ["momentum", "adam"], "lr": [0.001, 0.01, 0.03, 0.1, 0.3]}})
    values = {(r["optimizer"], r["lr"], r["seed"]): r for r in rows()}
    summaries = {}
    trials = []
    for t in reversed(sweep.trials):  # sweep order reversed: the old rule took the first met
        r = values.get((t["optimizer"], t["lr"], t["seed"]))
        if r is not None:
            trials.append(t)
            summaries[t["id"]] = {"status": "ok", "best_val_acc": r["best_val_acc"],
                                  "best_val_loss": r["best_val_loss"]}
    protocol = {"select": "best_val_acc", "direction": "max", "per": ["optimizer"], "confirm_seeds": 2}
    chosen = choose_finalists(trials, summaries, protocol)
    assert {f.group[1]: f.trial["lr"] for f in chosen} == CHOSEN


def test_expect_judges_the_chosen_configuration():
    # across optimizers momentum lr 0.1 wins (0.9756 > 0.96): its test accuracy is 0.97, not 0.95 (lr 0.03)
    # nor 0.99 (lr 0.3, best on test)
    assert check_expectations({"test_acc_at_best_val": ">= 0.97"}, trials_table()) == []
    (fail,) = check_expectations({"test_acc_at_best_val": ">= 0.98"}, trials_table())
    assert fail == "test_acc_at_best_val: wanted >= 0.98, got 0.97"


def test_the_figures_choose_the_same():
    res = results()
    info = lr.lr_info(res, "test_acc")
    assert {ln.name: ln.chosen_lr for ln in info.lines} == CHOSEN
    assert {ln.name: ln.tied_lr for ln in info.lines} == {"adam": [0.01], "momentum": [0.03]}
    hm = heatmap.heatmap_info(Results(res.trials.assign(batch_size=np.where(res.trials.seed >= 0, 32, 0)),
                                      res.history), "test_acc", ("lr", "optimizer"))
    (p,) = hm.panels
    # rows: optimizers (adam, momentum), cols: lrs; across both, momentum lr 0.1 is chosen, as [expect] does
    assert (p.rows[p.best[0]], p.cols[p.best[1]]) == ("momentum", 0.1)
    assert [(p.rows[i], p.cols[j]) for i, j in p.tied] == [("momentum", 0.03)]


@pytest.mark.parametrize("select", ["best_test_acc", "test_acc_at_best_val"])
def test_a_protocol_refuses_to_select_on_test(cli, tmp_path, select):
    spec = tmp_path / "s.toml"
    spec.write_text(f'dataset = "iris"\n[grid]\nlr = [0.1, 0.01]\n[protocol]\nselect = "{select}"\n')
    r = cli("sweep", spec, "--out", tmp_path / "out")
    assert r.code == 2 and "test numbers never choose" in r.err and len(r.err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_tie_in_the_protocols_first_stage_is_said_by_the_sweep_show_and_the_report(tmp_path, cli):
    """lr 1e-9 and 2e-9 barely move the model: the same validation accuracy and loss on every seed
    (a tie on every choosing metric), so the stated order takes the smaller lr. The rule broke the
    tie before; now everyone says so."""
    spec = tmp_path / "p.toml"
    spec.write_text('name = "p"\ndataset = "iris"\nepochs = 1\nseeds = [0, 1]\noptimizer = "sgd"\n'
                    'lr = [1e-9, 2e-9]\n[protocol]\nconfirm_seeds = 2\n')
    r = cli("sweep", spec, "--out", tmp_path, "--workers", "1")
    assert r.code == 0, r.err
    said = ("iris sgd: tied with lr=2e-09 on mean validation accuracy; tied on every choosing metric too; chosen by "
            "the stated order (smaller values first)")
    assert f"stage 1 broke a tie: {said}" in " ".join(r.out.split())
    shown = cli("show", tmp_path / "p")
    assert said in " ".join(shown.out.split())
    assert cli("report", tmp_path / "p", "--format", "md").code == 0
    assert said in (tmp_path / "p" / "report.md").read_text()
    t = pd.read_parquet(tmp_path / "p" / "trials.parquet")
    assert t[t.stage == "confirm"].chosen_by.str.contains("tied with lr=2e-09").all()


def test_every_ranking_orders_a_round_off_tie_as_choose_does():
    """2e-16 added to one of momentum lr 0.03's accuracies makes its mean the larger float, yet the
    two means are equal up to round-off: choose goes to the validation loss and takes lr 0.1. The
    budget curves' ranking, halving's survivors, the protocol and the scoreboard's ranks must agree
    (they once sorted the exact floats and put lr 0.03 first)."""
    from dlbench.stats.scoreboard import ranks_of

    t = trials_table()
    bump = (t.optimizer == "momentum") & (t.lr == 0.03) & (t.seed == 0)
    t.loc[bump, "best_val_acc"] += 2e-16
    m = t[t.optimizer == "momentum"]
    means = m.groupby("lr").best_val_acc.mean()
    assert means[0.03] > means[0.1] and stats.same(means[0.03], means[0.1])  # the floats differ, round-off ties
    sel = stats.selection_of(t)
    assert stats.choose(m, sel).config["lr"] == 0.1
    ranked = stats.ranked_configs(m, sel)  # worst first
    assert list(ranked.lr) == [0.3, 0.03, 0.1]
    table = stats.configurations(m, sel)
    assert [table.lr[i] for i in stats.order(table, sel)] == [0.1, 0.03, 0.3]
    # the budget curve takes its values in that order: E[best of 1 config] over all three, best of 3 = lr 0.1's
    (curve,) = stats.budgets(m).curves
    assert curve.report_expected[-1] == pytest.approx(0.97)  # lr 0.1's test accuracy, not lr 0.03's 0.95
    # halving keeps the best third: lr 0.1
    assert _halving_keeps(m) == {0.1}
    # the protocol
    sweep = build_sweep({"dataset": "digits", "seeds": [0, 1, 2], "epochs": 10,
                         "grid": {"optimizer": ["momentum"], "lr": [0.03, 0.1, 0.3]}})
    summaries = {tr["id"]: m[(m.lr == tr["lr"]) & (m.seed == tr["seed"])].iloc[0][
        ["status", "best_val_acc", "best_val_loss"]].to_dict() for tr in sweep.trials}
    protocol = {"select": "best_val_acc", "direction": "max", "per": ["optimizer"], "confirm_seeds": 2}
    (f,) = choose_finalists(sweep.trials, summaries, protocol)
    assert f.trial["lr"] == 0.1
    # ranks over optimizers: round-off ties share their rank, whichever float is larger
    assert ranks_of({"a": 0.5 + 2e-16, "b": 0.5, "c": 0.4}, True) == {"a": 1.5, "b": 1.5, "c": 3.0}
    assert stats.tie_classes([0.5 + 2e-16, 0.5, math.nan, 0.4], True) == [[0, 1], [3], [2]]


def _halving_keeps(m: pd.DataFrame) -> set:
    """The lrs halving keeps at its first rung among these trials (eta 3: one of three)."""
    from dlbench import halving

    sweep = build_sweep({"dataset": "digits", "seeds": [0, 1, 2], "epochs": 3, "validation": 0.1,
                         "grid": {"optimizer": ["momentum"], "lr": [0.03, 0.1, 0.3]},
                         "search": {"kind": "halving", "eta": 3, "min_epochs": 1}})
    histories, status = [], []
    for tr in sweep.trials:
        r = m[(m.lr == tr["lr"]) & (m.seed == tr["seed"])].iloc[0]
        histories.append([{"epoch": 0, "val_acc": 0.1, "val_loss": 2.3, "train_time": 0, "eval_time": 0},
                          {"epoch": 1, "val_acc": r.best_val_acc, "val_loss": r.best_val_loss, "train_time": 0,
                           "eval_time": 0}])
        status.append("ok")
    stop = halving.decider(sweep.trials)(1, sweep.trials, histories, status)
    return {tr["lr"] for k, tr in enumerate(sweep.trials) if k not in stop}
