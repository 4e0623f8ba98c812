"""The scoreboard: wins, ties and losses counted from the verdicts, best-or-tied, ranks with ties,
the focus rows from the focus optimizer's side; the mean rank's interval measured by simulation;
and the terminal at the end of the small suite with one more optimizer: the scoreboard first, in
at most 60 lines, agreeing with report-pairs.csv."""

import math

import numpy as np
import pandas as pd
import pytest

from dlbench import stats, words
from dlbench.stats.mean_intervals import t_interval
from dlbench.stats.scoreboard import ranks_of
from tests.conftest import ROOT, write


def comparison(dataset, a, b, diff, p_adjusted, higher=True):
    return stats.Comparison(dataset, a, b, "test_acc_at_best_val", higher, 3, 3, diff, diff - 0.01, diff + 0.01,
                            p_adjusted, p_adjusted, 3, 0.5, None, False)


def best(dataset, name, mean):
    sel = stats.selection_for("multiclass", True)
    return stats.Best(dataset, {"optimizer": name}, {"optimizer": name, "lr": 0.1}, sel, mean,
                      {"n": 3, "mean": mean, "std": 0.0, "median": mean, "ci_low": mean, "ci_high": mean},
                      np.array([mean] * 3), [0, 1, 2], False)


def test_wins_ties_and_losses_are_the_holm_adjusted_verdicts_counted():
    b = [best("p1", "adam", 0.9), best("p1", "lion", 0.8), best("p1", "sgd", 0.8),
         best("p2", "adam", 0.7), best("p2", "lion", 0.75), best("p2", "sgd", 0.6)]
    c = [comparison("p1", "adam", "lion", 0.1, 0.01), comparison("p1", "adam", "sgd", 0.1, 0.2),
         comparison("p1", "lion", "sgd", 0.0, 1.0),
         comparison("p2", "lion", "adam", 0.05, 0.3), comparison("p2", "lion", "sgd", 0.15, 0.001),
         comparison("p2", "adam", "sgd", 0.1, math.nan)]  # too few seeds to tell: a tie
    sb = stats.scoreboard(b, c)
    rec = {(r.optimizer, r.opponent): (r.wins, r.ties, r.losses) for r in sb.records}
    assert rec[("adam", "lion")] == (1, 1, 0) and rec[("lion", "adam")] == (0, 1, 1)
    assert rec[("adam", "sgd")] == (0, 2, 0) and rec[("sgd", "lion")] == (0, 1, 1)
    standing = {s.optimizer: s for s in sb.standings}
    # p1: adam best, sgd tied with it (p 0.2), lion worse; p2: lion best, adam tied, sgd worse
    assert {o: s.best_or_tied for o, s in standing.items()} == {"adam": 2, "lion": 1, "sgd": 1}
    # ranks: p1 adam 1, lion and sgd 2.5 (equal means); p2 lion 1, adam 2, sgd 3
    assert standing["adam"].mean_rank == 1.5 and standing["lion"].mean_rank == 1.75
    assert standing["sgd"].mean_rank == 2.75 and sb.optimizers == ["adam", "lion", "sgd"]
    half = 12.706204736174707 * np.std([1, 2], ddof=1) / math.sqrt(2)  # t_{0.975, 1}
    assert standing["adam"].rank_low == pytest.approx(max(1.0, 1.5 - half))
    assert words.pair_summary(sb, "lion", "adam") == ("lion vs adam: better on 0 problems, worse on 1, not "
                                                      "distinguishable on 1")
    rows = stats.focus_rows(c, "lion")
    p1 = next(r for r in rows if (r.problem, r.opponent) == ("p1", "adam"))
    assert p1.diff == pytest.approx(-0.1) and p1.ci_high == pytest.approx(-0.09) and p1.outcome == "loss"


def test_ranks_share_ties_and_put_missing_last():
    assert ranks_of({"a": 0.9, "b": 0.9, "c": 0.5}, True) == {"a": 1.5, "b": 1.5, "c": 3.0}
    assert ranks_of({"a": 0.1, "b": 0.2, "c": math.nan}, False) == {"a": 1.0, "b": 2.0, "c": 3.0}
    assert ranks_of({"a": 0.1 + 0.2, "b": 0.3}, True) == {"a": 1.5, "b": 1.5}  # equal up to round-off


@pytest.mark.slow
def test_the_mean_rank_interval_covers_the_expected_rank_by_simulation():
    """Problems drawn at random (each optimizer a true advantage plus a problem-specific deviation,
    three noisy seeds): the t interval over 6 problems holds each optimizer's expected rank (known
    from 100,000 problems) 90-94% of the time (measured; asserted >= 88%)."""
    rng = np.random.default_rng(0)
    names = ["a", "b", "c", "d"]
    effect = np.array([0.0, 0.3, 0.5, 1.0])

    def ranks(n):
        means = effect + rng.normal(0, 0.7, (n, 4)) + rng.normal(0, 0.5, (n, 4, 3)).mean(axis=2)
        return np.array([[ranks_of(dict(zip(names, row, strict=True)), True)[o] for o in names] for row in means])

    truth = ranks(40000).mean(axis=0)
    hits, reps = np.zeros(4), 1500
    for _ in range(reps):
        low, high = t_interval(ranks(6).T)
        hits += (np.clip(low, 1, 4) <= truth) & (truth <= np.clip(high, 1, 4))
    assert (hits / reps >= 0.88).all(), hits / reps


LION_LIKE = '''
import torch


class SignMomentum(torch.optim.Optimizer):
    """Lion's update without its second momentum: theta <- theta - lr * sign(beta m + (1 - beta) g)."""

    def __init__(self, params, lr=1e-4, beta=0.9):
        super().__init__(params, dict(lr=lr, beta=beta))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                m = self.state[p].setdefault("m", torch.zeros_like(p))
                m.mul_(group["beta"]).add_(p.grad, alpha=1 - group["beta"])
                p.add_(torch.sign(m), alpha=-group["lr"])
'''


@pytest.mark.slow
def test_the_small_suite_with_one_more_optimizer_ends_with_the_scoreboard_in_60_lines(tmp_path, cli):
    """What a researcher runs (docs/your-own.md): the small suite plus an optimizer of their own in
    one more [[grid]]. The end of the sweep: the scoreboard first, at most 60 lines; and the
    report's scoreboard csv counts exactly the verdicts of its pairs csv."""
    write(tmp_path / "mine.py", LION_LIKE)
    suite = (ROOT / "experiments" / "benchmarks" / "small-suite.toml").read_text()
    named = suite.replace('name = "small-suite"', 'name = "mine"\nfocus = "./mine.py:SignMomentum"')
    head, tail = named.split("# stage 2:")
    mine = '[[grid]]\noptimizer = "./mine.py:SignMomentum"\nlr = { log = [3e-5, 3e-2], num = 7, extend = 3 }\n\n'
    spec = write(tmp_path / "s.toml", head + mine + "# stage 2:" + tail)  # one more [[grid]], before [protocol]
    r = cli("sweep", spec, "--out", tmp_path)
    assert r.code == 0, r.err
    lines = [ln for ln in r.out.splitlines() if ln.strip()]
    end = next(i for i, ln in enumerate(lines) if "scoreboard:" in ln)
    summary = lines[end:]
    assert len(summary) <= 60, "\n".join(summary)
    assert "./mine.py:SignMomentum" in "\n".join(summary[:14])  # in the scoreboard itself
    assert cli("report", tmp_path / "mine", "--format", "csv", "--out", tmp_path / "r.csv").code == 0
    board = pd.read_csv(tmp_path / "r-scoreboard.csv")
    pairs = pd.read_csv(tmp_path / "r-pairs.csv")
    assert list(board.columns) == ["optimizer", "opponent", "wins", "ties", "losses"]
    counted = {}
    for _, p in pairs.iterrows():
        for me, them in ((p.a, p.b), (p.b, p.a)):
            w = counted.setdefault((me, them), [0, 0, 0])
            winner = p.a if p.verdict == "a" else p.b if p.verdict == "b" else None
            w[0 if winner == me else 2 if winner == them else 1] += 1
    assert {(r.optimizer, r.opponent): [r.wins, r.ties, r.losses] for _, r in board.iterrows()} == counted
    assert len(board) == 5 * 4  # every ordered pair of the five optimizers


def test_vs_columns_are_headed_by_short_names_where_they_stay_unambiguous():
    names = ["adam", "./my_optimizer.py:Signum", "torch.optim:NAdam", "lion_pytorch:Lion", "./b.py:Lion", "sgd",
             "./c.py:sgd"]
    assert words.opponent_labels(names) == {
        "adam": "adam", "./my_optimizer.py:Signum": "Signum", "torch.optim:NAdam": "NAdam",
        "lion_pytorch:Lion": "lion_pytorch:Lion", "./b.py:Lion": "./b.py:Lion",  # two Lions: full names
        "sgd": "sgd", "./c.py:sgd": "./c.py:sgd"}  # 'sgd' is already another optimizer's name
