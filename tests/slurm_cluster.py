"""A real single-node SLURM on localhost for the tests: munged, slurmctld and slurmd from Debian's
`slurm-wlm`, started for the session and stopped afterwards (`.ci/slurm_setup.sh` installs them).

No cgroups (proctrack/linuxproc, task/none) so it runs in a container. Job credentials expire after
10 s (`AuthInfo=cred_expire`, 120 s by default), which is also how long SLURM holds a requeued job
before it runs again. The configuration lives in a temporary folder; clients find it through
SLURM_CONF, which the fixture sets for the session.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

CONF = """\
ClusterName=clipprompt-test
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AuthType=auth/munge
AuthInfo=cred_expire=10
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobRequeue=1
ReturnToService=2
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
KillWait=5
MinJobAge=300
NodeName={host} CPUs={cpus} RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def why_no_slurm() -> str | None:
    missing = [b for b in ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol") if not shutil.which(b)]
    if missing:
        return f"SLURM is not installed ({', '.join(missing)} missing; run .ci/slurm_setup.sh)"
    if os.geteuid() != 0:
        return "the test SLURM's slurmd must run as root"
    try:
        import submitit  # noqa: F401
    except ImportError:
        return "submitit is not installed (pip install -e .[slurm])"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _munge_works() -> bool:
    try:
        token = subprocess.run(["munge", "-n"], capture_output=True, timeout=10)
        return token.returncode == 0 and subprocess.run(["unmunge"], input=token.stdout, capture_output=True,
                                                        timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _wait(condition, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        if condition():
            return
        time.sleep(0.3)
    raise RuntimeError(f"test SLURM: {what} did not happen within {timeout} s")


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """Yields the configuration folder of a running one-node SLURM (SLURM_CONF is set meanwhile)."""
    reason = why_no_slurm()
    if reason:
        pytest.skip(reason)
    d = tmp_path_factory.mktemp("slurm")
    (d / "state").mkdir()
    (d / "spool").mkdir()
    host = socket.gethostname()
    conf = d / "slurm.conf"
    conf.write_text(CONF.format(host=host, d=d, ctld_port=_free_port(), d_port=_free_port(),
                                cpus=os.cpu_count() or 1))
    started: list[subprocess.Popen] = []
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(conf)
    try:
        if not _munge_works():
            Path("/run/munge").mkdir(parents=True, exist_ok=True)
            started.append(subprocess.Popen(["munged", "--foreground", "--force"], stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL))
            _wait(_munge_works, 30, "munged answering")
        for daemon in ("slurmctld", "slurmd"):
            started.append(subprocess.Popen([daemon, "-D", "-f", str(conf)], stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL, env={**os.environ, "SLURM_CONF": str(conf)}))
        _wait(lambda: "idle" in subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True).stdout,
              60, "the node becoming idle")
        yield d
    finally:
        subprocess.run(["scancel", "--user", "root"], capture_output=True)
        try:  # let slurmd end the jobs' steps before it stops, so no slurmstepd outlives the session
            _wait(lambda: not subprocess.run(["squeue", "-h"], capture_output=True, text=True).stdout.strip(), 30,
                  "the queue emptying")
        except RuntimeError:
            pass
        for proc in reversed(started):
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
