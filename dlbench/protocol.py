"""The tune-then-confirm protocol (`[protocol] select = "best_val_acc", per = ["optimizer"],
confirm_seeds = 10`): stage 1 (tune) is the sweep as declared; stage 2 (confirm) reruns the
configuration with the best mean `select` of each `per` group (always within a dataset) on
`confirm_seeds` seeds that stage 1 never used, the next integers after its largest seed.

The choice is made from the stored stage-1 results by dlbench.stats.choose, the one selection rule
every reader uses, so a resumed sweep chooses the same; what it decided and why (a tie, what broke
it) comes back with it, for the sweep to say and to store with each confirm trial."""

from __future__ import annotations

import json
from dataclasses import dataclass

from dlbench import stats
from dlbench.schema import SEARCH_FIELDS
from dlbench.store import trial_summary
from dlbench.trials import canonical_trial


def confirm_seeds(tune_seeds, n: int) -> list[int]:
    """Seeds stage 1 never used: the n integers after its largest seed."""
    start = max(tune_seeds) + 1
    return list(range(start, start + n))


def groups_of(trials: list[dict], per: list[str]) -> list[tuple]:
    """The distinct (dataset, *per) groups of stage-1 trials, in order of first appearance."""
    return list(dict.fromkeys(_group(t, per) for t in trials))


def _group(trial: dict, per: list[str]) -> tuple:
    return (trial["dataset"], *(json.dumps(v, sort_keys=True) if isinstance(v := trial.get(p), dict | list) else v
                                for p in per))


def confirm_size(trials: list[dict], protocol: dict) -> int:
    return len(groups_of(trials, protocol["per"])) * protocol["confirm_seeds"]


@dataclass
class Finalist:
    """What stage 1 chose for one group: a stage-1 trial of the chosen configuration, and the
    choice itself (the configurations it tied with, what broke the tie)."""

    group: tuple
    trial: dict
    choice: stats.Choice
    selection: stats.Selection


def choose_finalists(trials: list[dict], summaries: dict[str, dict], protocol: dict) -> list[Finalist]:
    """Each group's configuration to confirm: stats.choose over the group's stage-1 trials (the
    best mean of `select` over seeds, ties to the task's tie-breakers, then to the configuration
    that sorts first). `summaries`: trial id -> its row of trials.parquet (store.trial_summary).
    Groups where no configuration has a finite value of `select` are left out."""
    out = []
    for group in groups_of(trials, protocol["per"]):
        members = [t for t in trials if _group(t, protocol["per"]) == group]
        rows = stats.rows_of(members, [summaries[t["id"]] for t in members])
        sel = stats.rule_of(members[0], protocol)
        choice = stats.choose(rows, sel)
        if choice is not None:
            trial_id = stats.rows_matching(rows, choice.config).iloc[0]["trial_id"]
            out.append(Finalist(group, next(t for t in members if t["id"] == trial_id), choice, sel))
    return out


def confirm_trials(trials: list[dict], records: dict[str, dict], protocol: dict
                   ) -> tuple[list[Finalist], list[dict] | None, str]:
    """(the finalists, stage 2's trials, "") chosen from the stored stage-1 records, or
    ([], None, why it cannot start yet): every stage-1 trial must be stored and none failed."""
    missing = [t for t in trials if t["id"] not in records]
    failed = [t for t in trials if t["id"] in records and records[t["id"]]["result"]["status"] == "failed"]
    if missing or failed:
        return [], None, (f"{len(failed)} stage-1 trial(s) failed and {len(missing)} are missing; the choice would "
                          "rest on an incomplete stage 1. Fix the cause and run the same command again")
    finalists = choose_finalists(trials, {t["id"]: trial_summary(records[t["id"]]["result"]) for t in trials},
                                 protocol)
    seeds = confirm_seeds({t["seed"] for t in trials}, protocol["confirm_seeds"])
    # the winners train to the end on fresh seeds: no halving in stage 2
    confirm = [canonical_trial({**{k: v for k, v in f.trial.items() if k not in ("id", *SEARCH_FIELDS)}, "seed": s})
               for f in finalists for s in seeds]
    if not confirm:
        return [], None, f"no stage-1 trial has a finite {protocol['select']}; nothing to confirm"
    return finalists, confirm, ""
