"""A SLURM cluster as dlbench sees it: the `[slurm]` table of a spec, checked; what the cluster
offers and refuses (sinfo, scontrol, sbatch --test-only), asked before anything is submitted; and
the state of each job a sweep submitted (squeue), recorded in the results folder's `slurm/jobs.json`.

No training here and no submitting: dlbench.slurm_jobs submits units through submitit and waits for
them. Only squeue is asked about jobs (never sacct), so a cluster without accounting serves too."""

from __future__ import annotations

import getpass
import json
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

from dlbench.errors import UserError

COMMANDS = ("sbatch", "squeue", "sinfo", "scontrol")
# the keys of [slurm], with what each allows (said in the one-line errors)
KEYS = {
    "partition": "a partition name (default: the cluster's default partition)",
    "time": "a job's time limit: minutes (60) or \"[D-]HH:MM:SS\" (default 60)",
    "cpus_per_task": "a whole number >= 1 (default 1: a unit trains on one thread)",
    "mem": "memory per job: megabytes (4000) or a size like \"4G\" (default: the partition's)",
    "gres": "generic resources, e.g. \"gpu:1\" (default none)",
    "array_parallelism": "a whole number >= 1: jobs of the sweep running at once (default 16)",
    "setup": "a list of shell lines run before each job, e.g. [\"module load cuda\"]",
    "sbatch": "a table of more sbatch options, e.g. { account = \"proj\", qos = \"short\" }",
    "attempts": "a whole number >= 1: how many times a unit is submitted before it is stored as failed (default 3)",
    "shared_folder": "true when the results folder is on a filesystem the nodes see though it looks local",
}
DEFAULTS: dict[str, Any] = {"partition": None, "time": 60, "cpus_per_task": 1, "mem": None, "gres": None,
                            "array_parallelism": 16, "setup": [], "sbatch": {}, "attempts": 3,
                            "shared_folder": False}
# squeue states of a job that may still finish (REQUEUED: preempted or past its time, coming back)
ALIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING",
         "SUSPENDED", "STAGE_OUT", "SIGNALING", "RESV_DEL_HOLD", "PREEMPTED_REQUEUE"}
QUEUED = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESV_DEL_HOLD", "SUSPENDED"}
# filesystems one machine holds by itself: the results folder there is seen by no other node
LOCAL_FILESYSTEMS = {"tmpfs", "ramfs", "devtmpfs", "ext2", "ext3", "ext4", "xfs", "btrfs", "overlay", "zfs", "f2fs",
                     "vfat", "exfat"}
MAX_ARRAY_SIZE = 1001  # SLURM's default, when scontrol does not say


def settings(table: Any) -> dict[str, Any]:
    """The `[slurm]` table checked, with defaults filled in (one line naming a bad key or value)."""
    if table is None:
        table = {}
    if not isinstance(table, dict):
        raise UserError(f"slurm = {table!r} is not allowed; allowed: a [slurm] table with keys {', '.join(KEYS)}")
    for key in table:
        if key not in KEYS:
            raise UserError(f"[slurm] has no key {key!r}; allowed: {', '.join(KEYS)}")
    out = {**DEFAULTS, **table}

    def bad(key: str) -> UserError:
        return UserError(f"[slurm] {key} = {out[key]!r} is not allowed; allowed: {KEYS[key]}")

    for key in ("cpus_per_task", "array_parallelism", "attempts"):
        if isinstance(out[key], bool) or not isinstance(out[key], int) or out[key] < 1:
            raise bad(key)
    for key in ("partition", "gres"):
        if out[key] is not None and (not isinstance(out[key], str) or not re.fullmatch(r"[\w.:,+-]+", out[key])):
            raise bad(key)
    if minutes(out["time"]) is None:
        raise bad("time")
    if out["mem"] is not None and megabytes(out["mem"]) is None:
        raise bad("mem")
    if not isinstance(out["setup"], list) or not all(isinstance(s, str) for s in out["setup"]):
        raise bad("setup")
    if not isinstance(out["sbatch"], dict) or not all(
            re.fullmatch(r"[a-z][a-z0-9_-]*", k) and isinstance(v, (str, int)) and not isinstance(v, bool)
            for k, v in out["sbatch"].items()):
        raise bad("sbatch")
    if not isinstance(out["shared_folder"], bool):
        raise bad("shared_folder")
    return out


def minutes(value: Any) -> int | None:
    """A time limit in whole minutes: an int of minutes, or SLURM's "[D-]HH:MM:SS", "MM:SS",
    "HH:MM:SS"; None where it is neither. "infinite"/"UNLIMITED" is a very long time."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 1 else None
    if not isinstance(value, str):
        return None
    if value.lower() in ("infinite", "unlimited"):
        return 10**9
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", value.strip())
    if not m:
        return None
    days, a, b, c = (int(x) if x else None for x in m.groups())
    if c is not None:
        h, mi, s = a, b, c
    elif b is not None:
        h, mi, s = (a, b, 0) if days is not None else (0, a, b)
    else:
        h, mi, s = (a, 0, 0) if days is not None else (0, a, 0)
    total = (days or 0) * 1440 + h * 60 + mi + (1 if s else 0)
    return total if total >= 1 else None


def megabytes(value: Any) -> int | None:
    """Memory in megabytes: an int of MB, or "500M", "4G", "1T"; None where it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 1 else None
    m = re.fullmatch(r"(\d+)\s*([KMGT]?)B?", str(value).strip(), re.I)
    if not m:
        return None
    n, unit = int(m.group(1)), m.group(2).upper()
    mb = {"K": n / 1024, "": n, "M": n, "G": n * 1024, "T": n * 1024 * 1024}[unit]
    return max(1, int(mb)) if n else None


def _run(args: list[str], timeout: float = 30.0) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


def _first_error(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    for ln in lines:
        if "error" in ln.lower():
            return ln.split("error:", 1)[-1].strip()
    return lines[-1] if lines else "no message"


def missing_command() -> str | None:
    for c in COMMANDS:
        if shutil.which(c) is None:
            return c
    return None


def partitions() -> tuple[list[str], str | None]:
    """(every partition, the default one) as sinfo names them."""
    out = _run(["sinfo", "-h", "-o", "%P"])
    if out.returncode != 0:
        raise UserError(f"sinfo failed ({_first_error(out.stderr)}); allowed: a SLURM cluster that answers sinfo")
    names, default = [], None
    for ln in out.stdout.split():
        name = ln.rstrip("*")
        if ln.endswith("*"):
            default = name
        if name not in names:
            names.append(name)
    return names, default


def partition_offer(partition: str) -> dict[str, Any]:
    """What one node of `partition` offers at most: CPUs, memory (MB), the time limit (minutes)
    and its nodes' names."""
    out = _run(["sinfo", "-h", "-p", partition, "-o", "%c|%m|%l|%G|%N"])
    cpus = mem = 0
    limit = 10**9
    nodes: list[str] = []
    for ln in out.stdout.splitlines():
        parts = ln.split("|")
        if len(parts) != 5:
            continue
        cpus = max(cpus, _int_of(parts[0]))
        mem = max(mem, _int_of(parts[1]))
        limit = minutes(parts[2]) or limit
        nodes += hostnames(parts[4])
    return {"cpus": cpus, "mem": mem, "time": limit, "nodes": nodes}


def _int_of(text: str) -> int:
    m = re.match(r"\d+", text.strip())
    return int(m.group()) if m else 0


def hostnames(nodelist: str) -> list[str]:
    out = _run(["scontrol", "show", "hostnames", nodelist])
    return out.stdout.split() if out.returncode == 0 else [nodelist]


def max_array_size() -> int:
    out = _run(["scontrol", "show", "config"])
    m = re.search(r"^MaxArraySize\s*=\s*(\d+)", out.stdout, re.M)
    return int(m.group(1)) if m else MAX_ARRAY_SIZE


def sbatch_options(s: dict[str, Any]) -> list[str]:
    """The sbatch command-line options a job of these settings asks for."""
    opts = [f"--time={minutes(s['time'])}", f"--cpus-per-task={s['cpus_per_task']}", "--ntasks=1"]
    if s["partition"]:
        opts.append(f"--partition={s['partition']}")
    if s["mem"] is not None:
        opts.append(f"--mem={megabytes(s['mem'])}M")
    if s["gres"]:
        opts.append(f"--gres={s['gres']}")
    opts += [f"--{k.replace('_', '-')}={v}" for k, v in s["sbatch"].items()]
    return opts


def check(s: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Ask the cluster whether it can run these jobs, before anything is submitted or written;
    one line naming what it refuses. The settings with the partition filled in."""
    missing = missing_command()
    if missing:
        raise UserError(f"executor = 'slurm' needs SLURM's commands, and {missing} is not on PATH; allowed: run "
                        "dlbench sweep on a SLURM login node, or executor = local or dask")
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise UserError("executor = 'slurm' needs the submitit package; allowed: pip install 'dlbench[slurm]'") \
            from None
    names, default = partitions()
    partition = s["partition"] or default
    if partition not in names:
        what = f"[slurm] partition = {s['partition']!r} is not a partition of this cluster" if s["partition"] \
            else "[slurm] names no partition and the cluster has no default one"
        raise UserError(f"{what}; allowed: {', '.join(names) or 'none found by sinfo'}")
    s = {**s, "partition": partition}
    offer = partition_offer(partition)
    if minutes(s["time"]) > offer["time"]:
        raise UserError(f"[slurm] time = {s['time']!r} is more than partition {partition!r} allows; allowed: up to "
                        f"{offer['time']} minutes")
    test = _run(["sbatch", "--test-only", *sbatch_options(s), "--wrap=true"])
    if test.returncode != 0:
        raise UserError(f"partition {partition!r} refuses a job of {_asked(s)} ({_first_error(test.stderr)}); "
                        f"allowed: what one of its nodes has: {offer['cpus']} CPUs, {offer['mem']} MB")
    here = {socket.gethostname().split(".")[0], "localhost"}
    elsewhere = [n for n in offer["nodes"] if n.split(".")[0] not in here]
    fs = filesystem_of(folder)
    if elsewhere and fs in LOCAL_FILESYSTEMS and not s["shared_folder"]:
        raise UserError(f"results folder {str(folder)!r} is on a {fs} filesystem of this machine, which the nodes of "
                        f"partition {partition!r} ({', '.join(elsewhere[:3])}) do not see; allowed: --out on a "
                        "shared filesystem (nfs, lustre, gpfs, ...), or [slurm] shared_folder = true if it is shared")
    return s


def _asked(s: dict[str, Any]) -> str:
    parts = [f"cpus_per_task = {s['cpus_per_task']}", f"time = {s['time']!r}"]
    if s["mem"] is not None:
        parts.append(f"mem = {s['mem']!r}")
    if s["gres"]:
        parts.append(f"gres = {s['gres']!r}")
    parts += [f"{k} = {v!r}" for k, v in s["sbatch"].items()]
    return ", ".join(parts)


def filesystem_of(path: Path) -> str:
    """The type of the filesystem `path` (or its nearest existing parent) is on, from /proc/mounts;
    "" where that cannot be told."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        p = p.resolve()
        mounts = [ln.split() for ln in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return ""
    best, fs = "", ""
    for m in mounts:
        if len(m) < 3:
            continue
        point = m[1].replace("\\040", " ")
        if (str(p) == point or str(p).startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best, fs = point, m[2]
    return fs


def job_states(job_ids: list[str]) -> dict[str, str]:
    """squeue's state of each of these jobs it still knows (array tasks as "123_4"); a job it has
    forgotten (ended longer ago than MinJobAge) is absent."""
    if not job_ids:
        return {}
    out = _run(["squeue", "-h", "-r", "-t", "all", "-u", getpass.getuser(), "-o", "%i|%T"])
    if out.returncode != 0:
        raise RuntimeError(f"squeue failed: {_first_error(out.stderr)}")
    wanted = set(job_ids)
    states = {}
    for ln in out.stdout.splitlines():
        jid, _, state = ln.strip().partition("|")
        if jid in wanted:
            states[jid] = state.strip()
    return states


# --- the record of a sweep's jobs: results/<sweep>/slurm/jobs.json --------------------------------

def jobs_file(results: Path) -> Path:
    return Path(results) / "slurm" / "jobs.json"


def read_jobs(results: Path) -> dict[str, dict]:
    """unit key -> {"job_id", "trials", "stdout", "stderr", "attempts", "engine"} of every unit this
    results folder's sweep submitted."""
    p = jobs_file(results)
    if not p.exists():
        return {}
    try:
        return json.loads(p.read_text())["units"]
    except (OSError, ValueError, KeyError):
        raise UserError(f"{str(p)!r} is not a jobs record dlbench wrote; allowed: move it aside") from None


def write_jobs(results: Path, units: dict[str, dict]) -> None:
    p = jobs_file(results)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps({"units": units}, indent=1, sort_keys=True))
    os.replace(tmp, p)


def outbox(results: Path, key: str) -> Path:
    """Where the job of unit `key` leaves its results for the driver to store."""
    return Path(results) / "slurm" / "done" / f"{key}.pkl"


def unit_states(results: Path, stored: set[str]) -> list[dict]:
    """Per unit this sweep submitted: its state (queued, running; done: finished, its results
    waiting in its outbox for a driver to store; stored: its trials are in trials.parquet; failed:
    its job ended without results, and the next run of the sweep submits it again), job id, the
    job's state in squeue, attempts, log."""
    units = read_jobs(results)
    asked = bool(units) and missing_command() is None  # away from the cluster squeue cannot be asked
    states = job_states([u["job_id"] for u in units.values()]) if asked else {}
    rows = []
    for key, u in sorted(units.items(), key=lambda kv: kv[1]["job_id"]):
        squeue = states.get(u["job_id"])
        if set(u["trials"]) <= stored:
            state = "stored"
        elif outbox(results, key).exists():
            state = "done"
        elif squeue in QUEUED:
            state = "queued"
        elif squeue in ALIVE:
            state = "running"
        elif not asked:
            state = "unknown (no squeue here)"
        else:
            state = "failed"
        rows.append({"unit": key, "state": state, "job_id": u["job_id"], "slurm_state": squeue or "",
                     "trials": len(u["trials"]), "attempts": u.get("attempts", 1), "log": u["stderr"]})
    return rows


def check_no_jobs_left(results: Path) -> None:
    """--fresh moves a results folder aside, but the jobs an earlier run left queued or running
    would still leave their results in the folder's place, to be stored as the new run's: refused,
    naming them."""
    if not jobs_file(results).exists():
        return
    left = [r["job_id"] for r in unit_states(results, set()) if r["state"] in ("queued", "running")]
    if left:
        shown = " ".join(left[:8]) + (f" and {len(left) - 8} more" if len(left) > 8 else "")
        raise UserError(f"--fresh: {len(left)} SLURM job(s) of the earlier run in {results} are still queued or "
                        f"running ({shown}) and would leave their results in the new folder; allowed: scancel "
                        "them first, run without --fresh to collect them, or another --name")
