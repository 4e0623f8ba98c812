"""Units of work as SLURM jobs (job arrays through submitit), with the results folder as the one truth.

Each unit is one array task. The job trains its unit (plan.run_unit, as a local worker would, on one
thread) and leaves the results in the folder's `slurm/done/<unit>.pkl` (written whole, then renamed);
the driver stores them in trials.parquet, as it stores a local worker's. `slurm/jobs.json` records
which job holds which unit, so a driver that died is replaced by running the same command again: it
stores what finished meanwhile, waits for the jobs still queued or running (submitting no
duplicate), and submits only the units whose job ended without results. Such a unit (cancelled,
killed by the node, past its time `attempts` times) is submitted again up to `[slurm] attempts`
times, then its trials are stored as failed, naming the job and its log.

Preemption and the time limit: SLURM signals the job (USR2, 90 s ahead) and submitit requeues it
under the same job id, so the driver sees it queued again and waits; the unit starts over (units are
short: each is a few trials of a few minutes). Arrays larger than the cluster's MaxArraySize are
split, each part waiting for the one before (`afterany`), so at most `array_parallelism` tasks of
the sweep run at once."""

from __future__ import annotations

import hashlib
import os
import pickle
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import submitit

from dlbench import slurm
from dlbench.plan import Unit, failed, prepare_worker, run_unit

POLL_S = float(os.environ.get("DLBENCH_SLURM_POLL", "2"))  # between looks at the outboxes and squeue
GRACE_S = 10.0  # a job gone from squeue whose results do not show yet: a shared filesystem may lag
QUEUE_TRIES = 5  # times squeue is asked before a run submits anything


def unit_key(unit: Unit) -> str:
    """A unit's name in the jobs record: its engine and trial ids (the plan cuts the same units from
    the same stage every time, so a rerun finds them again)."""
    return hashlib.sha256(("|".join([unit.engine, *unit.ids])).encode()).hexdigest()[:16]


class UnitJob(submitit.helpers.Checkpointable):
    """What an array task runs: train the unit, leave its results in the outbox. Checkpointable:
    on preemption or the time limit submitit requeues it with the same arguments."""

    def __call__(self, unit: Unit, data_dir: str | None, box: str) -> int:
        from dlbench.interrupt import Interrupted

        notice = getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"))
        requeue = signal.getsignal(notice)  # submitit's: checkpoint, requeue, exit

        def on_notice(signum, frame):
            # SLURM's notice of preemption or of the time limit: submitit requeues the job and ends
            # it with SystemExit, which run_unit would store as the trials' failure (a user's code
            # may call sys.exit); as Interrupted it ends the unit unstored instead
            try:
                if callable(requeue):
                    requeue(signum, frame)
            except BaseException:  # noqa: BLE001 - requeued or not, this run of the unit ends here
                pass
            raise Interrupted(signum)

        signal.signal(notice, on_notice)
        print(f"dlbench: training {len(unit.trials)} trial(s) on the {unit.engine} engine; results to {box}",
              flush=True)
        prepare_worker()
        try:
            results = run_unit(unit, data_dir)
        except Interrupted:
            raise SystemExit(-1) from None  # requeued (the same job id, queued again), or ended unstored
        path = Path(box)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(pickle.dumps(results))
        os.replace(tmp, path)
        return len(results)


def chunks(keys: list[str], size: int) -> list[list[str]]:
    """Keys cut into arrays of at most `size` tasks."""
    return [keys[i:i + size] for i in range(0, len(keys), size)]


class SlurmExecutor:
    """Units as tasks of SLURM job arrays; `results` is the sweep's results folder (on a filesystem
    the nodes see), `settings` the checked [slurm] table (dlbench.slurm.check)."""

    def __init__(self, results: Path, settings: dict[str, Any], name: str, data_dir: str | None = None):
        self.results = Path(results)
        self.settings = settings
        self.name = name
        self.data_dir = data_dir
        self.stop = None  # the runner's StopOnSignal: a submission and its record are one step
        self.adopted = 0  # units found queued or running from an earlier driver
        self.submitted = 0
        self._array_size = None

    def start(self) -> SlurmExecutor:
        return self

    @property
    def started(self) -> bool:
        return True

    def kill(self) -> None:
        """The driver stops; the jobs go on (a rerun collects them; `scancel` stops them)."""

    shutdown = kill

    def _executor(self, dependency: str | None) -> submitit.SlurmExecutor:
        s = self.settings
        ex = submitit.SlurmExecutor(folder=self.results / "slurm" / "logs" / "%j", max_num_timeout=3,
                                    python=sys.executable)
        extra = {k.replace("_", "-"): v for k, v in s["sbatch"].items()}
        if dependency:
            extra["dependency"] = f"afterany:{dependency}"
        params: dict[str, Any] = {"time": slurm.minutes(s["time"]), "cpus_per_task": s["cpus_per_task"],
                                  "ntasks_per_node": 1, "nodes": 1, "array_parallelism": s["array_parallelism"],
                                  "job_name": f"dlbench-{self.name}", "setup": list(s["setup"]),
                                  "signal_delay_s": 90, "additional_parameters": extra}
        if s["partition"]:
            params["partition"] = s["partition"]
        if s["mem"] is not None:
            params["mem"] = f"{slurm.megabytes(s['mem'])}M"
        if s["gres"]:
            params["gres"] = s["gres"]
        ex.update_parameters(**params)
        return ex

    def _submit(self, keys: list[str], units: dict[str, Unit], book: dict[str, dict],
                after: set[str] | None = None) -> None:
        """Submit these units as arrays (each at most MaxArraySize tasks), each after the arrays of
        this sweep still queued or running (`after`) and after the one before, so that at most
        array_parallelism tasks of the sweep run at once; each job is recorded in the book as it is
        submitted."""
        if not keys:
            return
        if self._array_size is None:
            self._array_size = slurm.max_array_size()
        previous = ":".join(sorted(after, key=lambda j: (len(j), j))) if after else None
        for part in chunks(keys, self._array_size):
            ex = self._executor(previous)
            with self.stop.critical() if self.stop is not None else nullcontext():
                with ex.batch():
                    jobs = [ex.submit(UnitJob(), units[k], self.data_dir, str(slurm.outbox(self.results, k)))
                            for k in part]
                for k, job in zip(part, jobs, strict=True):
                    u = units[k]
                    book[k] = {"job_id": job.job_id, "trials": u.ids, "engine": u.engine,
                               "stdout": str(job.paths.stdout), "stderr": str(job.paths.stderr),
                               "attempts": book.get(k, {}).get("attempts", 0) + 1}
                slurm.write_jobs(self.results, book)
            previous = jobs[0].job_id.split("_")[0]
            self.submitted += len(part)

    def run(self, units: list[Unit]) -> Iterator[list[dict]]:
        by_key = {unit_key(u): u for u in units}
        book = slurm.read_jobs(self.results)
        states = None
        for attempt in range(QUEUE_TRIES):  # what is queued decides what is submitted: asked until it answers
            states = _states([book[k]["job_id"] for k in by_key if k in book])
            if states is not None:
                break
            time.sleep(POLL_S * (attempt + 1))
        if states is None:
            raise RuntimeError(f"squeue did not answer {QUEUE_TRIES} times: nothing submitted; run the sweep again")
        waiting: dict[str, Unit] = {}
        new: list[str] = []
        for key, unit in by_key.items():
            waiting[key] = unit
            if slurm.outbox(self.results, key).exists():
                continue  # finished while no driver was here
            if key in book and states.get(book[key]["job_id"]) in slurm.ALIVE:
                self.adopted += 1  # queued or running: waited for, not submitted again
                continue
            new.append(key)
        self._submit(new, by_key, book, arrays_alive(book, states))
        gone_since: dict[str, float] = {}
        while waiting:
            for key in list(waiting):
                box = slurm.outbox(self.results, key)
                if box.exists():
                    try:
                        results = pickle.loads(box.read_bytes())
                    except (OSError, EOFError, pickle.UnpicklingError):
                        continue  # still arriving over a shared filesystem: read at the next look
                    del waiting[key]
                    gone_since.pop(key, None)
                    yield results
                    box.unlink(missing_ok=True)  # stored by now
            if not waiting:
                break
            states = _states([book[k]["job_id"] for k in waiting])
            if states is None:  # slurmctld busy or restarting: nothing is judged gone meanwhile
                time.sleep(POLL_S)
                continue
            now = time.monotonic()
            again = []
            for key in list(waiting):
                state = states.get(book[key]["job_id"])
                if state in slurm.ALIVE:
                    gone_since.pop(key, None)
                    continue
                if now - gone_since.setdefault(key, now) < GRACE_S:
                    continue
                gone_since.pop(key)
                entry = book[key]
                if entry["attempts"] < self.settings["attempts"]:
                    again.append(key)
                    continue
                unit = waiting.pop(key)
                error = RuntimeError(f"SLURM job {entry['job_id']} ended ({state or 'no longer in squeue'}) without "
                                     f"results, {entry['attempts']} time(s){last_words(entry['stderr'])}; "
                                     f"log: {entry['stderr']}")
                yield [failed(t, error, unit.engine) for t in unit.trials]
            self._submit(again, by_key, book, arrays_alive(book, states))
            time.sleep(POLL_S)

    def note(self) -> str | None:
        """What this run found and did on the cluster, for the driver to say."""
        if not self.adopted and not self.submitted:
            return None
        return (f"slurm: {self.submitted} unit(s) submitted, {self.adopted} found queued or running from an earlier "
                f"run; jobs and logs in {self.results / 'slurm'}")


def _states(job_ids: list[str]) -> dict[str, str] | None:
    """squeue's states, or None where it did not answer (a busy or restarting controller)."""
    import subprocess

    try:
        return slurm.job_states(job_ids)
    except (RuntimeError, OSError, subprocess.TimeoutExpired):
        return None


def arrays_alive(book: dict[str, dict], states: dict[str, str]) -> set[str]:
    """The arrays of this sweep with a task still queued or running."""
    return {e["job_id"].split("_")[0] for e in book.values() if states.get(e["job_id"]) in slurm.ALIVE}


def last_words(log: str) -> str:
    """The last line a job's log ends on (its error, most often), or nothing."""
    try:
        lines = [ln.strip() for ln in Path(log).read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return f" ({lines[-1][:200]})" if lines else ""
