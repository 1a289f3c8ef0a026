"""The SLURM launcher: its job function through submitit's local executor, then a tiny protocol on a
real one-node SLURM (tests/slurm_cluster.py) with a job requeued mid-run, resubmission that is
idempotent, `status`, and the same report as a serial run."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clipprompt.sweeps import launch
from clipprompt.results import layout
from clipprompt.testing.markers import requires_dassl
from tiny_sweep import OVERRIDES, make_sweep_data, report, status, sweep_env, wait_for

REPO = Path(__file__).resolve().parent.parent
submitit = pytest.importorskip("submitit", reason="submitit is not installed (pip install -e .[slurm])")

KEY = dict(protocol="base2new", part="base", trainer="CoOp", config="c", dataset="dtd", shots=2, seed=1)


def fake_job(tmp_path, body):
    folder = layout.RunKey(**KEY).folder(tmp_path)
    result = json.dumps(dict(trainer="CoOp", dataset="dtd", seed=1, num_shots=2, protocol="base2new", part="base",
                             config_name="c", metrics={"accuracy": 50.0}))
    script = body.replace("RESULT", f"mkdir -p {folder} && echo '{result}' > {folder}/result.json")
    return launch.Job(name="fake", command=["bash", "-c", script], cwd=str(tmp_path), output=str(tmp_path),
                      keys=[KEY])


def test_job_function_through_submitits_local_executor(tmp_path):
    executor = submitit.LocalExecutor(folder=str(tmp_path / "submitit"))
    executor.update_parameters(timeout_min=5)
    ok = fake_job(tmp_path / "ok", "echo training; RESULT")
    assert executor.submit(launch.SlurmJob(ok)).result() == 0
    assert launch.live_state(ok) == "done" and launch.read_state(ok)["state"] == "done"
    assert "training" in ok.log.read_text()

    bad = fake_job(tmp_path / "bad", "echo 'error: no data here' >&2; exit 2")
    with pytest.raises(Exception, match="exit status 2"):
        executor.submit(launch.SlurmJob(bad)).result()
    assert launch.live_state(bad) == "failed" and launch.last_line(bad.log) == "error: no data here"

    requeued = launch.SlurmJob(ok).checkpoint()  # on timeout or preemption: the same run again
    assert isinstance(requeued, submitit.helpers.DelayedSubmission) and requeued.function.job == ok


def squeue_ids():
    out = subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True).stdout
    return set(out.split())


@requires_dassl
@pytest.mark.early
def test_tiny_protocol_on_a_real_slurm_with_a_requeued_job(slurm_cluster, tmp_path, tiny_clip_path, request):
    """The serial tiny sweep is asked for only at the end (its report), so this runs beside its build."""
    output = tmp_path / "slurm"
    env = sweep_env(make_sweep_data(tmp_path / "data"), output)
    tail = ["--", "MODEL.BACKBONE.NAME", tiny_clip_path, *OVERRIDES]
    coop = [sys.executable, "-m", "clipprompt.protocol", "base2new", "coop", "--datasets", "caltech101",
            "--seeds", "1", "2", "--launcher", "slurm", "--cpus-per-job", "1", "--time-min", "20", "--no-wait", *tail]
    first = subprocess.run(coop, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.count("submitted 2 run(s) as job array") == 2  # trainings, then their tests
    queued = squeue_ids()
    assert len(queued) == 4

    again = subprocess.run(coop, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "submitted" not in again.stdout, again.stdout + again.stderr
    assert squeue_ids() == queued  # nothing submitted twice

    def a_training_running():
        for state_file in (output / ".sweeps" / "state").glob("*train_base*seed1.json"):
            state = json.loads(state_file.read_text())
            if state["state"] == "running":
                return state
    state = wait_for(a_training_running, what="the seed-1 training to start on SLURM")
    code, table, _ = status(output)
    assert code == 1 and "running" in table and "queued" in table, table
    # requeue within train.py's first seconds (its imports), so that the requeue interrupts the run
    time.sleep(1)
    subprocess.run(["scontrol", "requeue", state["job_id"]], check=True)  # held cred_expire (10 s), then rerun

    zeroshot = subprocess.run([sys.executable, "-m", "clipprompt.protocol", "base2new", "zeroshot", "--datasets",
                               "caltech101", "--launcher", "slurm", *tail], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=900)
    assert zeroshot.returncode == 0, zeroshot.stdout + zeroshot.stderr
    wait_for(lambda: not launch.slurm_states(sorted(queued)), timeout=900, what="the sweep to leave the queue")

    code, table, _ = status(output)
    assert code == 0, table
    assert table.count(" done ") == 6 and table.splitlines()[-1] == "6 done"
    requeued_log = next((output / ".sweeps" / "logs").glob("*train_base*seed1.log")).read_text()
    assert requeued_log.count("$ bash") == 2  # started, cancelled by the requeue, started again, finished

    assert report(output) == request.getfixturevalue("tiny_sweep").report  # the same sweep run serially
