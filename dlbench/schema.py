"""The names the stored files use, one copy each: the keys of a trial, the columns of
trials.parquet and history.parquet with which way is better, the configuration key, and the labels
a stored table shows for a model and a schedule. Every other module takes these names from here.

A leaf: it imports nothing of dlbench (nor anything heavy), so anything may import it."""

from __future__ import annotations

import json
import re

# --------------------------------------------------------------------------------------------
# A trial

# Keys that make a trial what it is (part of its id), in display order.
# TRAINING: keys added with schema 6, each absent from a trial at its default (so older ids stand):
# a budget of max_steps optimizer steps with an evaluation every eval_every steps (instead of epochs),
# gradient clipping by global norm, and weight decay on every parameter or on matrices only.
TRAINING = ("max_steps", "eval_every", "clip_grad_norm", "weight_decay_on")
TRIAL_KEYS = ("dataset", "validation", "model", "loss", "optimizer", "lr", "batch_size", "epochs", "seed",
              "schedule", "device", "dtype", *TRAINING)
# Knobs of the sequence datasets, each a trial key of the datasets that take it (a text's context
# length; modular addition's modulus and training fraction): a grid axis like any other.
DATA_KNOBS = ("context", "p", "train_fraction")
# Keys of a canonical trial that say more about one of TRIAL_KEYS: a user dataset's canonical spec
# and a sequence dataset's knobs beside its name, an aliased optimizer's import path beside its name.
QUALIFIERS = {"dataset": ("data", *DATA_KNOBS), "optimizer": ("optimizer_class",)}
# Keys of a canonical trial that say how a search trains it: successive halving's eta, min_epochs
# and groups (dlbench.halving), in the id so that a stopped trial is never a full one of another
# sweep; not a configuration column of trials.parquet (spec.toml's [search] holds it).
SEARCH_FIELDS = ("halving",)
# Keys of a canonical trial that are dlbench's own: never an optimizer's keyword.
TRIAL_FIELDS = ("id", *TRIAL_KEYS, *(q for qs in QUALIFIERS.values() for q in qs), *SEARCH_FIELDS)
# Keys of a canonical trial that are not configuration columns (a configuration is a trial without its seed).
TRIAL_ONLY = ("id", "seed")
# A sweep's name, a named optimizer's: one plain folder name.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
# Keys of a spec about how or where a sweep runs, not what it computes (not part of trial ids).
RUN_KEYS = ("name", "description", "engine", "workers", "data_dir", "executor", "address", "slurm")
# Tables a spec may hold besides [grid].
TABLE_KEYS = ("grid", "search", "protocol", "expect", "lesson", "optimizers", "extensions")
# Keys about how results are read, not what is run.
READING_KEYS = ("focus",)
# Keys that do not change what the trials are: left out of a flag sweep's name and of what counts as a changed spec.
NOT_TRIAL_DEFINING = (*RUN_KEYS, *READING_KEYS, "expect", "lesson")


def config_key(trial: dict) -> str:
    """What identifies a trial's configuration: the canonical trial without its id and seed.
    Trials with the same key are the seeds of one configuration."""
    return json.dumps({k: v for k, v in trial.items() if k not in TRIAL_ONLY}, sort_keys=True)


# --------------------------------------------------------------------------------------------
# history.parquet: one row per trial x epoch

HISTORY_CONFIG = ("dataset", "optimizer", "lr", "batch_size", "epochs", "seed")  # trial keys copied into each row
HISTORY_METRICS = ("train_loss", "train_eval_loss", "train_acc", "val_loss", "val_acc", "val_r2", "val_rmse",
                   "val_bpc", "test_loss", "test_acc", "test_r2", "test_rmse", "test_bpc")
HISTORY_COUNTERS = ("epoch", "lr", "steps", "samples", "train_time", "eval_time")

# --------------------------------------------------------------------------------------------
# trials.parquet: one row per trial, its configuration columns then these

SUMMARY_TEXT = ("status", "error", "engine", "fallback_reason", "task")
SUMMARY_METRICS = (
    "epochs_run", "steps", "best_epoch",
    "best_val_loss", "best_val_acc", "best_val_r2",
    "test_loss_at_best_val", "test_acc_at_best_val", "test_r2_at_best_val",
    "final_train_loss", "final_train_eval_loss", "final_train_acc", "final_val_loss", "final_val_acc",
    "final_test_loss", "final_test_acc", "final_test_r2",
    "best_train_loss", "best_test_loss", "best_test_acc", "best_test_r2",
    # a language model's loss in bits per character (loss / ln 2) and perplexity (e^loss): schema 6
    "best_val_bpc", "test_bpc_at_best_val", "final_test_bpc", "test_ppl_at_best_val",
    "train_time", "eval_time", "wall_time",
)
DATA_COLUMNS = ("n_train", "n_val", "n_test")  # the size of each split a trial was measured on (schema 3)
STATUSES = ("ok", "diverged", "stopped", "failed")  # stopped: by successive halving, at its rung (schema 5)


def is_test_metric(column: str) -> bool:
    """A number measured on the test split: reported, never used to choose anything."""
    return "test" in column.split("_")


# the summary columns that may choose a configuration (a [protocol]'s select): numbers not measured on test
SELECT_COLUMNS = tuple(c for c in SUMMARY_METRICS if not is_test_metric(c))


def higher_is_better(column: str) -> bool | None:
    """The direction of a metric from its name: accuracy and R² up; loss, RMSE, time, steps and
    epochs down; None when the name does not say."""
    words = set(column.split("_"))
    if words & {"acc", "r2"}:
        return True
    if words & {"loss", "rmse", "time", "steps", "epoch", "epochs", "run", "bpc", "ppl"}:
        return False
    return None


# [expect] keys: name -> (trials column, how it is judged). "chosen": the mean over seeds of the
# configuration chosen on validation; max/min over trials for the keys of older specs; count_*: trials.
EXPECT_METRICS = {
    "test_acc_at_best_val": ("test_acc_at_best_val", "chosen"),
    "test_loss_at_best_val": ("test_loss_at_best_val", "chosen"),
    "test_r2_at_best_val": ("test_r2_at_best_val", "chosen"),
    "best_val_acc": ("best_val_acc", "chosen"),
    "best_val_loss": ("best_val_loss", "chosen"),
    "best_val_r2": ("best_val_r2", "chosen"),
    "test_bpc_at_best_val": ("test_bpc_at_best_val", "chosen"),
    "best_val_bpc": ("best_val_bpc", "chosen"),
    "best_test_acc": ("best_test_acc", "max"),
    "best_test_loss": ("best_test_loss", "min"),
    "best_test_r2": ("best_test_r2", "max"),
    "best_train_loss": ("best_train_loss", "min"),
    "ok": ("status", "count_ok"),
    "diverged": ("status", "count_diverged"),
    "stopped": ("status", "count_stopped"),
    "failed": ("status", "count_failed"),
}

# --------------------------------------------------------------------------------------------
# Configuration columns of trials.parquet

# the trial keys in the order readers show them, each followed by its qualifiers; every other
# column that is not a result is an optimizer's knob or keyword, after these, in name order
CONFIG_ORDER = tuple(k2 for k in ("sweep", "stage", *(k for k in TRIAL_KEYS if k not in TRIAL_ONLY))
                     for k2 in (k, *QUALIFIERS.get(k, ())))
# columns of trials.parquet that are neither configuration nor a summary metric
ROW_EXTRAS = ("trial_id", "seed", "config", "chosen_by", "model_kind", "stage", "diverged_epoch", "rung",
              *DATA_COLUMNS)


def model_label(m: dict) -> str:
    """The `model` column of trials.parquet, read off the canonical table whatever its kind: the
    kind, each list as [a-b], each word as itself, each other value as key=value
    ('mlp[128-128] relu', 'cnn[16-32] hidden=64 relu', 'linear'); a table with a reference, the
    reference with its keywords ('my_models:make(width=64)')."""
    if "factory" in m:
        kw = ",".join(f"{k}={v}" for k, v in m.items() if k not in ("kind", "factory"))
        return f"{m['factory']}({kw})"
    lists = "".join(f"[{'-'.join(map(str, v))}]" for k, v in m.items() if k != "kind" and isinstance(v, list))
    rest = [v if isinstance(v, str) else f"{k}={v}" for k, v in m.items() if k != "kind" and not isinstance(v, list)]
    return " ".join([m["kind"] + lists, *rest])


def schedule_label(s: dict) -> str:
    """The `schedule` column: 'step(step_size=10,gamma=0.1)+warmup2', 'cosine(eta_min=0.0)', 'constant'."""
    params = ",".join(f"{k}={v}" for k, v in s.items() if k not in ("kind", "warmup"))
    label = s["kind"] + (f"({params})" if params else "")
    return label + (f"+warmup{s['warmup']}" if s["warmup"] else "")
