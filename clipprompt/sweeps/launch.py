"""Where the protocol driver's runs execute: here one at a time, here N at once, or on SLURM.

A run is one wrapper-script call (`bash scripts/<method>/<step>.sh ...`); `run_job` executes it
wherever it lands (a thread of the driver, a SLURM node) and keeps its state beside the outputs,
in `OUTPUT/.sweeps/state/<run>.json` (queued, running, failed, stopped; done is read from
result.json) with its output in `OUTPUT/.sweeps/logs/<run>.log`. `clipprompt.protocol status`
reads them. Rerunning a wrapper resumes an interrupted run (train.py resumes its run folder), so
every launcher may simply start an unfinished run again.

- `serial` and `local --slots N`: threads of the driver, each waiting on one child in its own
  process group. With GPUs each slot gets its own (`CUDA_VISIBLE_DEVICES`); on CPU the slots share
  the cores (`OMP_NUM_THREADS` = cores // slots). SIGTERM/SIGINT to the driver are passed on as
  they came, so a run's log names the signal the driver names; SIGHUP (the terminal closed) is
  passed on as SIGTERM (unless the driver runs under nohup). The children save and exit; the
  driver waits for them and exits 128 + the signal's number. A driver holds a claim on each run
  it starts (`flock` on `state/<run>.claim`, dropped by the kernel when the driver dies): a run
  claimed by another live driver is left to it, and a state file is live only while its claim is.
- `slurm`: one submitit job array per step (trainings, then evaluations depending on them).
  A job that times out or is preempted is requeued by submitit (`checkpoint`), a job requeued by
  `scontrol requeue` starts again; both resume through train.py.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ..results import layout
from ..fileio import atomic_write_text

SWEEPS = ".sweeps"
#: environment variables of the scripts that a run carries to wherever it executes.
SCRIPT_ENV = ("DATA", "OUTPUT", "SHOTS", "PYTHON", "CFG", "LOADEP", "SOURCE_DATASET", "PYTHONPATH")


@dataclass
class Job:
    """One run as it travels to a launcher (picklable, JSON-able)."""

    name: str  # unique within OUTPUT: the first run folder, relative, with / as __
    command: list[str]
    cwd: str
    output: str
    env: dict = field(default_factory=dict)
    keys: list[dict] = field(default_factory=list)  # layout.RunKey fields of the folders it writes
    after: list[dict] = field(default_factory=list)  # RunKey fields of the training it needs
    title: str = ""  # the run as the driver names it: its script and arguments, without overrides

    @property
    def log(self) -> Path:
        return Path(self.output) / SWEEPS / "logs" / f"{self.name}.log"

    @property
    def state_file(self) -> Path:
        return Path(self.output) / SWEEPS / "state" / f"{self.name}.json"

    def folders(self, keys=None) -> list[tuple[Path, dict]]:
        out = []
        for k in self.keys if keys is None else keys:
            key = layout.RunKey(**k)
            out.append((key.folder(self.output), layout.expected_of(key)))
        return out

    def finished(self) -> bool:
        return all(layout.finished(folder, expected)[0] for folder, expected in self.folders())

    def training_finished(self) -> bool:
        return all(layout.finished(folder, expected)[0] for folder, expected in self.folders(self.after))


# ---- state -------------------------------------------------------------------------------

def write_state(job: Job, state: str, **info) -> None:
    record = {"state": state, "host": socket.gethostname(), "time": time.time(), "log": str(job.log), **info}
    atomic_write_text(job.state_file, json.dumps(record) + "\n")


def read_state(job: Job) -> dict:
    try:
        return json.loads(job.state_file.read_text())
    except (OSError, ValueError):
        return {}


def _pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError, TypeError):
        return False
    return True


class SlurmError(RuntimeError):
    """SLURM did not answer (squeue kept failing): the driver says so in one line, exit status 1."""


def slurm_states(job_ids: Sequence[str]) -> dict[str, str]:
    """job id -> SLURM state (PENDING, RUNNING, ...) of the jobs still in the queue."""
    ids = sorted({str(j) for j in job_ids if j})
    if not ids:
        return {}
    for attempt in range(10):  # all of the user's jobs: `-j` fails as a whole on one id SLURM forgot
        try:
            done = subprocess.run(["squeue", "--me", "-h", "-r", "-o", "%i %T"], capture_output=True,
                                  text=True, timeout=60)
        except OSError:
            return {}  # no SLURM here
        except subprocess.SubprocessError:
            done = None
        if done is not None and done.returncode == 0:
            break
        time.sleep(min(2 ** attempt, 10))  # a busy slurmctld: an empty answer would read as "all finished"
    else:
        reason = " ".join(done.stderr.split()) if done and done.stderr.strip() else "timed out"
        raise SlurmError(f"squeue keeps failing: {reason}")
    out = done.stdout
    states = {}
    for line in out.splitlines():
        if line.strip():
            job_id, state = line.split()[:2]
            states[job_id] = state
    return {job_id: states[job_id] for job_id in ids if job_id in states}


# ---- claims: which live driver runs a job ------------------------------------------------------

def _claim_file(job: Job) -> Path:
    return job.state_file.with_suffix(".claim")


def claim(job: Job, tries: int = 5):
    """Hold `job` for this process (an open file; closing it, or dying, releases it), or None when
    another live process holds it. A pid alone proves nothing (the system reuses pids); a lock held
    by the kernel for a live process does."""
    path = _claim_file(job)
    path.parent.mkdir(parents=True, exist_ok=True)
    held = open(path, "a+")
    for attempt in range(tries):
        try:
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if attempt == tries - 1:
                held.close()
                return None
            time.sleep(0.05)  # `claimed_by` (status) holds it for a moment to look
    held.seek(0)
    held.truncate()
    held.write(f"{os.getpid()}\n")
    held.flush()
    return held


def claimed_by(job: Job) -> str | None:
    """The pid of the live process that holds `job`'s claim, or None."""
    try:
        claim_file = open(_claim_file(job))
    except OSError:
        return None
    with claim_file:
        try:
            fcntl.flock(claim_file, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return claim_file.read().strip() or "unknown"
    return None


def live_state(job: Job, queue: dict[str, str] | None = None) -> str:
    """done, running, queued, failed, stopped or missing."""
    if job.finished():
        return "done"
    state = read_state(job)
    job_id = state.get("job_id")
    if job_id:
        squeue = queue if queue is not None else slurm_states([job_id])
        slurm = squeue.get(str(job_id))
        if slurm in ("PENDING", "REQUEUED", "CONFIGURING", "REQUEUE_HOLD", "REQUEUE_FED", "SUSPENDED"):
            return "queued"
        if slurm in ("RUNNING", "COMPLETING"):
            return "running"
    kind = state.get("state")
    if kind in ("running", "queued"):
        if job_id is None and state.get("host") == socket.gethostname() and claimed_by(job) is None:
            return "stopped"  # its driver is gone (whatever process now has its pid)
        if job_id is not None:  # left the queue without finishing
            return "failed"
        return kind
    return kind or "missing"


_ERROR_LINE = re.compile(r"^(error: |[\w.]*(Error|Exception|Interrupt)\b)")


def last_line(path: Path) -> str:
    """The last error line of a log (train.py's `error: ...`, a traceback's last line), else its
    last line: warnings printed at shutdown must not hide why a run failed."""
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return next((line for line in reversed(lines) if _ERROR_LINE.match(line)), lines[-1] if lines else "")


# ---- running one job (in the driver or on a node) -----------------------------------------

class Children:
    """The live child process groups of this process, so a signal can reach them all."""

    def __init__(self):
        self.lock, self.procs, self.stopping = threading.Lock(), set(), threading.Event()

    def add(self, proc):
        with self.lock:
            self.procs.add(proc)

    def discard(self, proc):
        with self.lock:
            self.procs.discard(proc)

    def signal_all(self, sig) -> None:
        self.stopping.set()
        with self.lock:
            procs = list(self.procs)
        for proc in procs:
            try:
                os.killpg(proc.pid, sig)
            except OSError:
                pass


CHILDREN = Children()


def run_job(job: Job, extra_env: dict | None = None, echo=None, job_id: str | None = None) -> int:
    """Run `job` to its end, its output appended to its log (and to `echo` when given)."""
    if job.after and not job.training_finished():
        write_state(job, "failed", rc=None, reason="its training did not finish", job_id=job_id)
        with job.log.open("a") as log:
            log.write("not run: its training did not finish\n")
        return 3
    job.log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **job.env, **(extra_env or {})}
    with job.log.open("a", buffering=1) as log:
        log.write(f"$ {' '.join(job.command)}  [{socket.gethostname()} {time.strftime('%Y-%m-%d %H:%M:%S')}]\n")
        proc = subprocess.Popen(job.command, cwd=job.cwd, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, errors="replace", start_new_session=True)
        CHILDREN.add(proc)
        write_state(job, "running", pid=proc.pid, job_id=job_id)
        try:
            for line in proc.stdout:
                log.write(line)
                if echo is not None:
                    try:
                        echo.write(line)
                        echo.flush()
                    except OSError:  # the terminal went away (SIGHUP): the log keeps everything
                        echo = None
            rc = proc.wait()
        finally:
            CHILDREN.discard(proc)
    if rc == 0 and job.finished():
        write_state(job, "done", rc=0, job_id=job_id)
    elif CHILDREN.stopping.is_set():
        write_state(job, "stopped", rc=rc, job_id=job_id)
    else:
        write_state(job, "failed", rc=rc, job_id=job_id)
    return rc


# ---- local: N slots ------------------------------------------------------------------------

def slot_env(slot: int, slots: int, gpus: Sequence[str] | None) -> dict:
    """What one slot's runs see: their own GPU, or their share of the CPU cores."""
    if gpus:
        return {"CUDA_VISIBLE_DEVICES": str(gpus[slot % len(gpus)])}
    threads = str(max(1, (os.cpu_count() or 1) // slots))
    return {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "CUDA_VISIBLE_DEVICES": ""}


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 60 else f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


def outcome(job: Job, seconds: float) -> str:
    """What a finished run says on the terminal: its time and its accuracy (per folder it wrote)."""
    accuracies = []
    for (folder, _), key in zip(job.folders(), job.keys):
        record = layout.read_result(folder)
        value = layout.accuracy(record) if record else None
        if value is not None:
            accuracies.append((key.get("part"), value))
    said = f"done in {_duration(seconds)}"
    if len(accuracies) == 1:
        said += f", accuracy {accuracies[0][1]:.2f}"
    elif accuracies:
        said += ", accuracy " + ", ".join(f"{value:.2f} ({part})" for part, value in accuracies)
    return said


#: what the driver passes to its runs for each signal it stops on. The runs live in their own
#: sessions, so a terminal's hangup never reaches them: SIGHUP is passed on as SIGTERM.
PASSED_ON = {signal.SIGTERM: signal.SIGTERM, signal.SIGINT: signal.SIGINT, signal.SIGHUP: signal.SIGTERM}
ELSEWHERE = "elsewhere"  # status of a run that another live driver runs: not a failure of this one


def run_local(jobs: list[Job], after: dict[str, str | None], slots: int = 1, gpus=None,
              runner: Callable | None = None, out=sys.stdout) -> dict[str, str]:
    """Run the jobs on `slots` slots, each after the job it depends on (`after`: name -> name).

    Returns name -> status text ("ok", "failed (exit status N)", "not run (...)", "stopped",
    "elsewhere (...)" for a run another live driver holds)."""
    status: dict[str, str] = {}
    pending = list(jobs)
    running: dict[str, threading.Thread] = {}
    free = list(range(slots))
    lock = threading.Condition()
    total = len(jobs)
    order = {job.name: i for i, job in enumerate(jobs, 1)}

    def say(job: Job, note: str = "") -> None:
        try:
            print(f"[{order[job.name]}/{total}] {job.title}" + (f": {note}" if note else ""), file=out, flush=True)
        except OSError:  # the terminal went away: the runs and their logs go on
            pass

    def work(job: Job, slot: int, held):
        started = time.monotonic()
        try:
            if runner is not None:
                rc = runner(job.command)
            else:
                rc = run_job(job, slot_env(slot, slots, gpus) if slots > 1 or gpus else None,
                             echo=out if slots == 1 else None)
        except Exception as error:  # a launcher bug must not hang the sweep
            try:
                print(f"error running {job.name}: {error}", file=sys.stderr)
            except OSError:
                pass
            rc = -1
        finally:
            if held is not None:
                held.close()
        with lock:
            if rc == 0:
                status[job.name] = "ok"
                say(job, outcome(job, time.monotonic() - started))
            elif CHILDREN.stopping.is_set():
                status[job.name] = "stopped"
            else:
                status[job.name] = f"failed (exit status {rc})"
                say(job, status[job.name])
            free.append(slot)
            del running[job.name]
            lock.notify_all()

    stop_on = [signal.SIGTERM, signal.SIGINT]
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:  # nohup: the hangup is not ours to act on
        stop_on.append(signal.SIGHUP)
    previous = {sig: signal.getsignal(sig) for sig in stop_on}
    received = []

    def on_signal(sig, frame):
        received.append(sig)
        passed = PASSED_ON[signal.Signals(sig)]
        CHILDREN.signal_all(passed)
        why = f" on {signal.Signals(sig).name} (the terminal closed)" if sig == signal.SIGHUP else ""
        try:
            print(f"Stopping{why}: passing {passed.name} to {len(running)} running run(s)", file=out, flush=True)
        except OSError:
            pass

    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        for sig in previous:
            signal.signal(sig, on_signal)
    try:
        with lock:
            while pending or running:
                if received:
                    for job in pending:
                        status[job.name] = "not run (driver stopped)"
                    pending = []
                started = False
                for job in list(pending):
                    dep = after.get(job.name)
                    if dep is not None and dep not in status:
                        continue  # its training is still to come
                    if dep is not None and status[dep].startswith(ELSEWHERE):
                        pending.remove(job)
                        status[job.name] = f"{ELSEWHERE} (its training runs in another driver)"
                        say(job, "not run, its training runs in another driver")
                        continue
                    if dep is not None and status[dep] != "ok":
                        pending.remove(job)
                        status[job.name] = "not run (its training failed)"
                        if runner is None:
                            write_state(job, "failed", rc=None, reason="its training failed")
                            job.log.parent.mkdir(parents=True, exist_ok=True)
                            job.log.write_text("not run: its training failed\n")
                        say(job, "not run, its training failed")
                        continue
                    if runner is None and job.finished():  # nothing to start (the script would skip it too)
                        pending.remove(job)
                        status[job.name] = "ok"
                        say(job, "finished already")
                        continue
                    if not free:
                        break
                    held = claim(job) if runner is None else None
                    if runner is None and held is None:  # another live driver runs it
                        pending.remove(job)
                        holder = claimed_by(job)
                        status[job.name] = f"{ELSEWHERE} (running in another driver, process {holder})"
                        say(job, f"running in another driver (process {holder})")
                        continue
                    if held is not None and read_state(job).get("job_id") and live_state(job) in ("queued", "running"):
                        held.close()  # a SLURM job of an earlier sweep has it
                        pending.remove(job)
                        status[job.name] = f"{ELSEWHERE} (in SLURM job {read_state(job)['job_id']})"
                        say(job, status[job.name][len(ELSEWHERE) + 2:-1])
                        continue
                    pending.remove(job)
                    slot = free.pop(0)
                    say(job)
                    running[job.name] = threading.Thread(target=work, args=(job, slot, held), daemon=True)
                    running[job.name].start()
                    started = True
                if not started:
                    lock.wait(0.2)
    finally:
        if in_main:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    if received:
        raise Stopped(received[0])
    return status


class Stopped(Exception):
    """The driver was told to stop (its children have stopped too)."""

    def __init__(self, sig):
        super().__init__(signal.Signals(sig).name)
        self.exit_status = 128 + int(sig)


# ---- SLURM through submitit ----------------------------------------------------------------

class SlurmJob:
    """The function a SLURM job runs: one run; requeued (to resume) on timeout or preemption."""

    def __init__(self, job: Job):
        self.job = job

    def __call__(self) -> int:
        job_id = os.environ.get("SLURM_ARRAY_JOB_ID")
        job_id = f"{job_id}_{os.environ['SLURM_ARRAY_TASK_ID']}" if job_id else os.environ.get("SLURM_JOB_ID")
        rc = run_job(self.job, job_id=job_id)
        if rc != 0:
            raise RuntimeError(f"{self.job.name}: exit status {rc}; log: {self.job.log}")
        return rc

    def checkpoint(self, *args, **kwargs):
        import submitit

        return submitit.helpers.DelayedSubmission(SlurmJob(self.job))


@dataclass
class SlurmOptions:
    partition: str | None = None
    account: str | None = None
    gpus_per_job: int = 0
    cpus_per_job: int = 1
    mem_gb: float | None = None
    time_min: int = 60
    array_parallelism: int = 64
    sbatch: dict = field(default_factory=dict)  # extra sbatch options, e.g. {"qos": "high"}

    def parameters(self) -> dict:
        """submitit.SlurmExecutor's parameters."""
        params = dict(gpus_per_node=self.gpus_per_job or None, cpus_per_task=self.cpus_per_job,
                      time=self.time_min, array_parallelism=self.array_parallelism,
                      partition=self.partition, account=self.account,
                      mem=f"{int(self.mem_gb * 1024)}M" if self.mem_gb else None)
        return {k: v for k, v in params.items() if v is not None}


def submit_slurm(steps: list[list[Job]], options: SlurmOptions, out=sys.stdout) -> list[str]:
    """Submit one job array per step, each step after the previous one; returns the job ids.

    Finished runs are skipped; a run whose job is still queued or running is not submitted again
    (its job id joins the dependencies of the next step)."""
    import submitit

    folder = Path(steps[0][0].output) / SWEEPS / "slurm" if steps and steps[0] else Path(".")
    executor = submitit.SlurmExecutor(folder=str(folder / "%j"), max_num_timeout=10)
    submitted: list[str] = []
    previous: list[str] = []
    for step in steps:
        queue = slurm_states([read_state(job).get("job_id") for job in step])
        todo, waiting = [], []
        for job in step:
            state = live_state(job, queue)
            if state == "done":
                print(f"done: {job.name}", file=out)
            elif state in ("queued", "running"):
                print(f"already {state}: {job.name} (job {read_state(job)['job_id']})", file=out)
                waiting.append(str(read_state(job)["job_id"]))
            else:
                todo.append(job)
        deps = sorted({j.split("_")[0] for j in previous})
        executor.update_parameters(**options.parameters(), additional_parameters={"requeue": True, **options.sbatch},
                                   dependency="afterany:" + ":".join(deps) if deps else None,
                                   signal_delay_s=60, job_name="clipprompt")
        ids = []
        if todo:
            with executor.batch():
                handles = [executor.submit(SlurmJob(job)) for job in todo]
            for job, handle in zip(todo, handles):
                write_state(job, "queued", job_id=handle.job_id)
                ids.append(handle.job_id)
            print(f"submitted {len(todo)} run(s) as job array {handles[0].job_id.split('_')[0]}", file=out)
        submitted += ids
        previous = ids + waiting
    return submitted


def wait_slurm(job_ids: Sequence[str], poll_s: float = 2.0) -> None:
    """Until none of the jobs is in the queue any more."""
    while slurm_states(job_ids):
        time.sleep(poll_s)
