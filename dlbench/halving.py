"""Successive halving (`[search] kind = "halving"`, `eta = 3`, `min_epochs = 1`): every
configuration starts; at each rung (min_epochs, min_epochs·eta, min_epochs·eta², ... below the
sweep's epochs) the configurations of a competition are ranked by the one selection rule
(stats.ranked_configs: the mean over a configuration's seeds of the validation metric reached so
far, the stated tie-breakers, then the stated order) and all but the best 1/eta stop there, stored
with status `stopped`, their rung, and their history up to it; the others go on to the next rung,
and the last ones to the end.

A competition is the configurations of one dataset and one group of `per` (by default each
optimizer, or the protocol's groups) that train together: it is one fused unit (dlbench.plan), so
the survivors go on in the unit that trained them, and a stopped row never touches a surviving one
(what the survivors give is what they give alone: tests/test_halving.py). Configurations that
cannot train together (another batch size, another model) are competitions of their own.

A unit that is killed runs again from its start, so a resumed sweep makes the same decisions."""

from __future__ import annotations

import json

from dlbench.errors import UserError, did_you_mean


def with_halving(trials: list[dict], search: dict, protocol: dict | None, extends: bool, origins: dict[str, int],
                 config_keys: tuple[str, ...]) -> list[dict]:
    """The trials of a halving search: the grid's, each with its `halving` field (eta, min_epochs,
    the competition's groups, and the protocol's selection metric when there is one), which is
    part of its id. Its groups default to the protocol's (else each optimizer); min_epochs must be
    below every trial's epochs; ranges do not `extend` (both would choose among configurations
    while the other still changes them). `origins` (trial id -> sub-grid) follows the new ids."""
    from dlbench.trials import trial_id

    per = search.get("per") or (list(protocol["per"]) if protocol else ["optimizer"])
    for p in per:
        if p not in config_keys:
            raise UserError(f"search.per has {p!r}, which is not a config key{did_you_mean(p, config_keys)}; "
                            f"allowed: {', '.join(config_keys)}")
    search["per"] = per
    if extends:
        raise UserError("search.kind = 'halving' with a range that has extend: both would choose among "
                        "configurations while the other still changes them; allowed: one of the two")
    how = {"eta": search["eta"], "min_epochs": search["min_epochs"], "per": per}
    if protocol:
        how.update(select=protocol["select"], direction=protocol["direction"])
    out = []
    for t in trials:
        if search["min_epochs"] >= t["epochs"]:
            raise UserError(f"search.min_epochs = {search['min_epochs']} is not below epochs = {t['epochs']}: no rung "
                            "to stop a configuration at; allowed: min_epochs < epochs")
        h = {k: v for k, v in t.items() if k != "id"}
        h["halving"] = how
        h["id"] = trial_id(h)
        origins[h["id"]] = origins.pop(t["id"])
        out.append(h)
    return out


def rungs(trial: dict) -> list[int]:
    """The epochs at which a halving trial's competition is ranked: min_epochs × eta^i below its epochs."""
    h = trial["halving"]
    out, e = [], h["min_epochs"]
    while e < trial["epochs"]:
        out.append(e)
        e *= h["eta"]
    return out


def competition(trial: dict) -> tuple:
    """Which competition a halving trial is in (within its fused group): its dataset and `per` values."""
    return (json.dumps(trial["dataset"], sort_keys=True),
            *(json.dumps(trial.get(p), sort_keys=True) for p in trial["halving"]["per"]))


def survivors(n_configs: int, eta: int) -> int:
    """How many configurations of n go on past a rung: the best 1/eta, at least one."""
    return max(1, n_configs // eta)


def decider(trials: list[dict]):
    """The fused engine's `at_epoch` for a unit of halving trials (None for other units): at a rung,
    the indices of the trials to stop."""
    if not trials or "halving" not in trials[0]:
        return None

    def at_epoch(epoch: int, unit: list[dict], histories: list[list[dict]], status: list[str]) -> list[int]:
        if epoch not in rungs(unit[0]):
            return []
        by_competition: dict[tuple, list[int]] = {}
        for k, t in enumerate(unit):
            if status[k] in ("ok", "diverged"):  # still competing (a diverged trial ranks on what it reached)
                by_competition.setdefault(competition(t), []).append(k)
        stop: list[int] = []
        for members in by_competition.values():
            stop += _losers(epoch, [unit[k] for k in members], [histories[k] for k in members],
                            [status[k] for k in members], members)
        return stop

    return at_epoch


def _losers(epoch: int, trials: list[dict], histories: list[list[dict]], status: list[str],
            index: list[int]) -> list[int]:
    """The trials (as `index` numbers them) of one competition whose configuration is not among the
    best 1/eta at this rung, by the one selection rule on what each trial reached by `epoch`."""
    from dlbench import stats
    from dlbench.schema import config_key
    from dlbench.store import trial_summary

    h = trials[0]["halving"]
    rows = stats.rows_of(trials, [trial_summary({"status": s, "history": hist[:epoch + 1]})
                                  for hist, s in zip(histories, status, strict=True)])
    sel = stats.rule_of(trials[0], h)
    ranked = stats.ranked_configs(rows, sel)  # worst first; configurations without a finite value left out
    keys = [c for c in ranked.columns if c != "runs" and not c.endswith("_mean")]
    best = ranked.iloc[::-1].head(survivors(rows["config"].nunique(), h["eta"]))
    keep = {c for _, b in best.iterrows() for c in stats.rows_matching(rows, b[keys].to_dict())["config"]}
    return [i for i, t in zip(index, trials, strict=True) if config_key(t) not in keep]


def schedule(trials: list[dict]) -> tuple[list[int], list[int], int]:
    """For one competition: (its rungs' epochs then its epochs, the configurations that train to
    each, the trial-epochs it trains in all), where a plain grid trains len(trials) × epochs."""
    from dlbench.schema import config_key

    first = trials[0]
    n = len({config_key(t) for t in trials})
    seeds = len(trials) / n
    points = [*rungs(first), first["epochs"]]
    counts, done, trained = [], 0, 0.0
    for e in points:
        counts.append(n)
        trained += n * seeds * (e - done)
        done = e
        n = survivors(n, first["halving"]["eta"])
    return points, counts, round(trained)
