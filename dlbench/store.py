"""The results folder, the contract between `sweep` and every reader:

    results/<sweep>/
      spec.toml        the fully expanded spec that produced the results
      env.json         versions, CPU, threads, devices, git rev, schema_version
      trials.parquet   one row per trial: config columns + status + summary metrics + timing
      history.parquet  one row per trial x epoch
      trials/<id>.json the durable per-trial record (written atomically before a trial is reported done)
      plots/           figures written by `dlbench plot`

Each finished trial lands as trials/<id>.json by write-to-temp + fsync + rename, so a sweep killed
at any moment loses at most the trials in flight and never leaves a half record. The two parquet
tables are rebuilt from those records (also atomically), during the sweep and at its end.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from dlbench import SCHEMA_VERSION, __version__
from dlbench.errors import UserError
from dlbench.schema import (
    CONFIG_ORDER,
    DATA_COLUMNS,
    HISTORY_CONFIG,
    HISTORY_METRICS,
    ROW_EXTRAS,
    SEARCH_FIELDS,
    STATUSES,
    SUMMARY_METRICS,
    SUMMARY_TEXT,
    TRIAL_ONLY,
    model_label,
    schedule_label,
)

TRIALS_FILE = "trials.parquet"
HISTORY_FILE = "history.parquet"
RECORDS_DIR = "trials"
LOCK_FILE = ".lock"
RECORD_KEYS = ("schema_version", "trial", "result")


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, fsync, then rename over it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write {str(path)!r}: {e.strerror or e}; allowed: a writable folder with free "
                        "space (choose another with --out)") from None


class ResultsDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock_fd: int | None = None

    @property
    def records(self) -> Path:
        return self.path / RECORDS_DIR

    # -- writer side ---------------------------------------------------------------------------
    def create(self) -> None:
        try:
            self.records.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create results folder {str(self.path)!r}: {e.strerror or e}; allowed: a "
                            "writable folder (choose another with --out)") from None

    def lock(self) -> None:
        """One writer per results folder: a second `dlbench sweep` on it refuses at once. The lock
        file holds the writer's pid while it writes and is removed when it is done (a finished
        folder has none); a writer that locked a file another just removed tries again."""
        import fcntl

        path = self.path / LOCK_FILE
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise UserError(f"results folder {str(self.path)!r} is in use by another dlbench sweep (pid "
                                f"{holder}); allowed: wait for it to finish, or use another --name") from None
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # locked a file the previous writer removed meanwhile: lock the one there now
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            try:
                (self.path / LOCK_FILE).unlink()  # still holding the lock: nobody else has it
            except OSError:
                pass
            os.close(self._lock_fd)
            self._lock_fd = None

    def write_spec(self, toml_text: str) -> None:
        """The sweep's expanded spec. A folder holds one sweep: a rerun writes the same spec, or one
        that only adds trials (runner.check_same_sweep refused anything else), which describes the
        old trials too."""
        atomic_write(self.path / "spec.toml", toml_text.encode())

    def write_env(self, env: dict) -> None:
        atomic_write(self.path / "env.json", json.dumps(env, indent=2, sort_keys=True).encode())

    def save_trial(self, trial: dict, result: dict, stage: str = "tune", chosen_by: str | None = None) -> dict:
        """Store one finished trial durably; returns its record. A confirm-stage trial says how
        stage 1 chose its configuration (`chosen_by`)."""
        record = {"schema_version": SCHEMA_VERSION, "trial": trial, "result": result, "stage": stage}
        if chosen_by:
            record["chosen_by"] = chosen_by
        atomic_write(self.records / f"{trial['id']}.json", json.dumps(record).encode())
        return record

    def load_records(self) -> tuple[dict[str, dict], list[str]]:
        """Finished records by trial id, and the names of damaged record files (moved aside)."""
        good: dict[str, dict] = {}
        damaged: list[str] = []
        if not self.records.is_dir():
            return good, damaged
        for f in sorted(self.records.glob("*.json")):
            rec = read_record(f)
            if rec is None:
                damaged.append(f.name)
                try:
                    f.rename(f.with_suffix(".damaged"))
                except OSError:
                    pass
                continue
            if rec["schema_version"] > SCHEMA_VERSION:
                raise UserError(newer_schema_message(self.path, rec["schema_version"]))
            good[f.stem] = rec
        return good, damaged

    def consolidate(self, records: dict[str, dict]) -> None:
        """Rewrite trials.parquet and history.parquet from the records (atomically)."""
        import io

        trials, history = tables(records.values())
        for df, name in ((trials, TRIALS_FILE), (history, HISTORY_FILE)):
            buf = io.BytesIO()
            df.to_parquet(buf, index=False)
            atomic_write(self.path / name, buf.getvalue())


def read_record(f: Path) -> dict | None:
    """A trial record as written by save_trial, or None when the file is damaged (not JSON, cut
    short, or missing what every record holds)."""
    try:
        rec = json.loads(f.read_text())
        ok = (isinstance(rec, dict) and all(k in rec for k in RECORD_KEYS)
              and rec["trial"].get("id") == f.stem and "history" in rec["result"]
              and rec["result"].get("status") in STATUSES)
    except (OSError, ValueError, UnicodeDecodeError, AttributeError, TypeError):
        return None
    return rec if ok else None


def stored_stages(path: Path) -> dict[str, str]:
    """trial id -> stage (tune or confirm) of every trial stored in a results folder: read from
    trials.parquet, and from the records it does not hold yet (a sweep killed before its tables
    were rebuilt)."""
    import pandas as pd

    out: dict[str, str] = {}
    table = Path(path) / TRIALS_FILE
    if table.exists():
        try:
            t = pd.read_parquet(table, columns=["trial_id", "stage"])
            out = dict(zip(t.trial_id, t.stage, strict=True))
        except (ValueError, KeyError, OSError):
            out = {}
    records = Path(path) / RECORDS_DIR
    for f in sorted(records.glob("*.json")) if records.is_dir() else []:
        if f.stem not in out:
            rec = read_record(f)
            if rec is not None:
                out[f.stem] = rec.get("stage", "tune")
    return out


def earlier_specs(path: Path) -> list[Path]:
    """spec.<time>.toml files: what versions before one-sweep-per-folder kept when a changed spec
    ran under the same name (so the folder may mix two sweeps)."""
    return sorted(Path(path).glob("spec.*.toml"))


def newer_schema_message(path, version) -> str:
    return (f"results in {str(path)!r} use schema version {version}, newer than this dlbench "
            f"({__version__}) reads; allowed: schema_version <= {SCHEMA_VERSION} (upgrade dlbench)")


# --------------------------------------------------------------------------------------------
# Tables


def flat_config(trial: dict) -> dict[str, Any]:
    """Config columns for a trial row: scalars stay, tables become short readable strings."""
    row: dict[str, Any] = {"trial_id": trial["id"]}
    for k, v in trial.items():
        if k == "id" or k in SEARCH_FIELDS:
            continue
        if k == "model":
            row["model"] = model_label(v)
            row["model_kind"] = v["kind"]
        elif k == "schedule":
            row["schedule"] = schedule_label(v)
        elif k == "betas" and isinstance(v, list) and len(v) == 2:
            row["beta1"], row["beta2"] = v
        elif isinstance(v, list | dict):  # an optimizer's keyword with a structured value: one readable cell
            row[k] = json.dumps(v)
        else:
            row[k] = v
    return row


def trial_label(trial) -> str:
    """'adam lr=0.001 bs=32 seed=0', from a trial config or a trials row."""
    return f"{trial['optimizer']} lr={trial['lr']:.4g} bs={trial['batch_size']} seed={trial['seed']}"


def _best(values, pick) -> float:
    vals = [v for v in values if is_number(v)]
    return pick(vals) if vals else float("nan")


def is_number(v) -> bool:
    """A finite int or float (not a bool, not None, not NaN or inf)."""
    return isinstance(v, float | int) and not isinstance(v, bool) and math.isfinite(v)


def best_val_epoch(history: list[dict], task: str | None = None) -> dict | None:
    """The history row of the epoch chosen on validation (early stopping), or None without a
    validation split. Classification: the highest val_acc, ties to the lower val_loss, then the
    earlier epoch. A language model: the lowest val_loss (as its configurations are chosen), ties
    to the higher next-token accuracy, then the earlier epoch. Otherwise: the lowest val_loss, ties
    to the earlier epoch. Epoch 0 (before any step) is a candidate too: a trial that only got worse
    is honestly stopped there. The test set plays no part."""
    nan = float("nan")
    rows = [r for r in history if is_number(r.get("val_loss", nan))]
    if not rows:
        return None
    if task == "language_model":
        acc = lambda r: r["val_acc"] if is_number(r.get("val_acc", nan)) else -math.inf  # noqa: E731
        return min(rows, key=lambda r: (r["val_loss"], -acc(r), r["epoch"]))
    if any(is_number(r.get("val_acc", nan)) for r in rows):
        rows = [r for r in rows if is_number(r.get("val_acc", nan))]
        return min(rows, key=lambda r: (-r["val_acc"], r["val_loss"], r["epoch"]))
    return min(rows, key=lambda r: (r["val_loss"], r["epoch"]))


def trial_summary(result: dict) -> dict[str, Any]:
    """A trial's results as its row of trials.parquet holds them. Selection columns come from the validation split:
    best_val_* (best over epochs), best_epoch (best_val_epoch) and test_*_at_best_val (the test
    numbers at that epoch: what is reported). best_test_* are the best test values over epochs,
    kept for reference only: nothing in dlbench ranks or chooses by them."""
    nan = float("nan")
    h = result["history"]
    last = h[-1] if h else {}
    col = lambda k: [r.get(k, nan) for r in h]  # noqa: E731 - older records have no val_* keys
    data = result.get("data") or {}
    chosen = best_val_epoch(h, data.get("task")) or {}
    return {
        "status": result["status"],
        "diverged_epoch": result.get("diverged_epoch"),
        "rung": result.get("rung"),  # stopped by successive halving: the epochs it trained (schema 5)
        "error": result.get("error"),
        "engine": result.get("engine"),
        "fallback_reason": result.get("fallback_reason"),
        "epochs_run": last.get("epoch", 0),
        "steps": last.get("steps", 0),
        "best_epoch": chosen.get("epoch"),
        "best_val_loss": _best(col("val_loss"), min) if h else nan,
        "best_val_acc": _best(col("val_acc"), max) if h else nan,
        "best_val_r2": _best(col("val_r2"), max) if h else nan,
        "test_loss_at_best_val": chosen.get("test_loss", nan),
        "test_acc_at_best_val": chosen.get("test_acc", nan),
        "test_r2_at_best_val": chosen.get("test_r2", nan),
        "final_train_loss": last.get("train_loss", nan),
        "final_train_eval_loss": last.get("train_eval_loss", nan),
        "final_train_acc": last.get("train_acc", nan),
        "final_val_loss": last.get("val_loss", nan),
        "final_val_acc": last.get("val_acc", nan),
        "final_test_loss": last.get("test_loss", nan),
        "final_test_acc": last.get("test_acc", nan),
        "final_test_r2": last.get("test_r2", nan),
        "best_train_loss": _best(col("train_eval_loss"), min) if h else nan,
        "best_test_loss": _best(col("test_loss"), min) if h else nan,
        "best_test_acc": _best(col("test_acc"), max) if h else nan,
        "best_test_r2": _best(col("test_r2"), max) if h else nan,
        "best_val_bpc": _best(col("val_bpc"), min) if h else nan,
        "test_bpc_at_best_val": chosen.get("test_bpc", nan),
        "final_test_bpc": last.get("test_bpc", nan),
        "test_ppl_at_best_val": _exp(chosen.get("test_bpc", nan) * math.log(2)),
        "train_time": sum(r["train_time"] for r in h),
        "eval_time": sum(r["eval_time"] for r in h),
        "wall_time": result.get("wall_time", nan),
        # what the trial's data was (schema 3); older records: NaN, readers fall back to the metadata
        "task": data.get("task"),
        "n_train": data.get("n_train", nan),
        "n_val": data.get("n_val", nan),
        "n_test": data.get("n_test", nan),
    }


def _exp(v: float) -> float:
    """e^v, inf past what a float holds, NaN for NaN (a perplexity from a loss)."""
    try:
        return math.exp(v)
    except OverflowError:
        return math.inf


def tables(records) -> tuple[Any, Any]:
    """(trials, history) DataFrames from per-trial records, ordered by trial id. Records of any
    schema version give the current columns (what an older record lacks is NaN)."""
    import pandas as pd

    trial_rows, history_rows = [], []
    for rec in sorted(records, key=lambda r: r["trial"]["id"]):
        trial, result = rec["trial"], rec["result"]
        row = flat_config(trial)
        row.setdefault("validation", 0.0)  # no split: trials of schema 1, or validation = 0
        row["stage"] = rec.get("stage", "tune")
        row["chosen_by"] = rec.get("chosen_by")
        row.update(trial_summary(result))
        row["config"] = json.dumps({k: v for k, v in trial.items() if k != "id"}, sort_keys=True)
        trial_rows.append(row)
        for h in result["history"]:
            history_rows.append({"trial_id": trial["id"], **{k: trial[k] for k in HISTORY_CONFIG},
                                 **dict.fromkeys(HISTORY_METRICS, float("nan")), **h})
    trials = pd.DataFrame(trial_rows)
    history = pd.DataFrame(history_rows)
    if len(trials):
        for c in ("diverged_epoch", "best_epoch"):
            trials[c] = trials[c].astype("Int64")
        for c in ("error", "fallback_reason", "chosen_by", "task"):
            trials[c] = trials[c].astype("string")
        for c in DATA_COLUMNS:  # NaN where a record predates them (schema < 3)
            trials[c] = trials[c].astype(float)
    return trials, history


# --------------------------------------------------------------------------------------------
# Reader side


def check_results_folder(path: str | Path) -> Path:
    """A folder `dlbench sweep` wrote, or a one-line UserError saying what it is instead."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{str(p)!r} does not exist; allowed: a results folder written by `dlbench sweep`")
    if (p / "devices.parquet").exists():
        raise UserError(f"{str(p)!r} holds a `dlbench compare-devices` report (devices.parquet, summary.json, "
                        "plots/); allowed: a results folder written by `dlbench sweep`")
    if not p.is_dir() or not ((p / "env.json").exists() or (p / RECORDS_DIR).is_dir()):
        raise UserError(f"{str(p)!r} is not a dlbench results folder; allowed: a folder written by "
                        "`dlbench sweep` (with env.json and trials.parquet)")
    return p


def read_results(path: str | Path):
    """(trials, history, env) for a finished or partial sweep, in the current schema's columns;
    refuses newer schemas. A folder of an older schema is read from its per-trial records, which
    give every current column (NaN where the old version measured nothing, e.g. validation)."""
    import pandas as pd

    p = check_results_folder(path)
    env = {}
    if (p / "env.json").exists():
        try:
            env = json.loads((p / "env.json").read_text())
        except ValueError:
            raise UserError(f"{str(p / 'env.json')!r} is damaged (not JSON); allowed: a results folder "
                            "written by `dlbench sweep`") from None
        if env.get("schema_version", 0) > SCHEMA_VERSION:
            raise UserError(newer_schema_message(p, env["schema_version"]))
    records_dir = p / RECORDS_DIR
    n_records = len(list(records_dir.glob("*.json"))) if records_dir.is_dir() else 0
    trials_path = p / TRIALS_FILE
    current = env.get("schema_version", 0) == SCHEMA_VERSION
    if trials_path.exists() and (current or not n_records):
        trials = pd.read_parquet(trials_path)
        if len(trials) >= n_records:
            return *_complete(trials, pd.read_parquet(p / HISTORY_FILE)), env
    # a partial sweep (killed before its tables were rebuilt), or an older schema: the records
    records, damaged = [], []
    for f in sorted(records_dir.glob("*.json")) if records_dir.is_dir() else []:
        rec = read_record(f)
        if rec is None:
            damaged.append(f.name)
        else:
            records.append(rec)
    if damaged:  # said, not skipped in silence: those trials are missing from every number read here
        shown = ", ".join(damaged[:3]) + (f" and {len(damaged) - 3} more" if len(damaged) > 3 else "")
        sys.stderr.write(f"warning: {len(damaged)} damaged trial record(s) in {records_dir} left out ({shown}); "
                         "running the sweep again retrains them\n")
    trials, history = tables(records)
    return trials, history, env


def _complete(trials, history):
    """Tables of an older schema with no records beside them: the current columns, NaN where the
    old version measured nothing."""
    import numpy as np

    if len(trials):
        for c, fill in (("validation", 0.0), ("stage", "tune"), ("fallback_reason", None), ("best_epoch", None),
                        ("chosen_by", None)):
            if c not in trials:
                trials[c] = fill
        template = trial_summary({"status": "ok", "history": []})
        for c in template:
            if c not in trials:
                trials[c] = np.nan
    for c in HISTORY_METRICS:
        if c not in history:
            history[c] = np.nan
    return trials, history


def result_columns() -> set[str]:
    """The columns of trials.parquet that are results, not configuration."""
    return {*SUMMARY_TEXT, *SUMMARY_METRICS, *ROW_EXTRAS}


def config_columns(trials, with_seed: bool = False) -> list[str]:
    """The columns that make a configuration in a trials table: the trial keys present, then the
    optimizer knobs, in name order. The one list every reader groups by (a configuration is a
    trial without its seed). The knobs are read off the canonical trials themselves (the
    `config` column), so an optimizer's own keywords count like the built-in knobs."""
    head = [c for c in CONFIG_ORDER if c in trials]
    if "config" in trials:
        keys: set[str] = set()
        for text in trials["config"].dropna().unique():
            keys.update(json.loads(text))
        flat = {k2 for k in keys for k2 in (("beta1", "beta2") if k == "betas" else (k,))}
        knobs = sorted(c for c in flat - set(TRIAL_ONLY) - set(head) if c in trials)
    else:  # a table without its canonical configs (built by hand): every column that is not a result
        knobs = sorted(c for c in trials.columns if c not in result_columns() and c not in head)
    return head + knobs + (["seed"] if with_seed and "seed" in trials else [])


def knob_columns(trials) -> list[str]:
    """The optimizer knobs among the configuration columns (momentum, betas as beta1/beta2, ...)."""
    return [c for c in config_columns(trials) if c not in CONFIG_ORDER]


# --------------------------------------------------------------------------------------------
# Environment


def environment(devices: list[str], workers: int, threads: int | None = None, plugins: dict | None = None) -> dict:
    """What ran where. torch is imported only when this process needs it anyway (it trains, or
    a GPU was asked for): a CPU sweep on worker processes reads versions from package metadata."""
    from importlib.metadata import version

    needs_torch = threads is None or devices != ["cpu"] or "torch" in sys.modules
    torch = __import__("torch") if needs_torch else None
    gpus = []
    if torch is not None and torch.cuda.is_available():
        gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    env = {
        "schema_version": SCHEMA_VERSION,
        "dlbench": __version__,
        "torch": torch.__version__ if torch is not None else version("torch"),
        "numpy": version("numpy"),
        "pandas": version("pandas"),
        "python": sys.version.split()[0],
        "os": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": threads if threads is not None else torch.get_num_threads(),
        "workers": workers,
        "devices": devices,
        "cuda": torch.version.cuda if torch is not None else None,
        "gpu": gpus,
        "git_rev": git_rev(),
        "command": " ".join(sys.argv),
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if plugins:  # what users brought: each reference's distribution and version, or its file and SHA-256
        env["plugins"] = plugins
    return env


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_rev() -> str | None:
    """The git revision of the dlbench that runs (a checkout), not of the folder it runs in; None
    for an installed package."""
    here = Path(__file__).resolve().parent
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, timeout=5,
                             cwd=here)
        if top.returncode != 0 or Path(top.stdout.strip()).resolve() != here.parent:
            return None  # not a checkout of dlbench (e.g. installed inside some other repository's venv)
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=here)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None
