"""Run folders from one layout, and whole sweeps through the local launcher on the CPU (2 slots):
a failing run that does not stop the others, `status` while the sweep runs, a killed driver that
takes its children with it, a restart that finishes the sweep, and the same report as serially."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from clipprompt.sweeps import launch
from clipprompt.results import layout
from clipprompt.testing.markers import requires_dassl
from tiny_sweep import driver, make_sweep_data, report, status, sweep_env, wait_for

REPO = Path(__file__).resolve().parent.parent


# ---- layout ------------------------------------------------------------------------------

@pytest.mark.parametrize("key, folder, recorded", [
    (("base2new", "base", "CoOp", "c", "dtd", 16, 1), "base2new/train_base/dtd/shots_16/CoOp/c/seed1", ("base2new", "base")),
    (("base2new", "new", "CoOp", "c", "dtd", 16, 1), "base2new/test_new/dtd/shots_16/CoOp/c/seed1", ("base2new", "new")),
    (("dg", "source", "SEP", "c", "imagenet", 4, 2), "xd/train/imagenet/shots_4/SEP/c/seed2", ("xd", "source")),
    (("xd", "target", "SEP", "c", "imagenet_a", 4, 2), "xd/test/imagenet_a/shots_4/SEP/c/seed2", ("dg", "target")),
    (("few_shot", "shots_2", "MPL", "c", "dtd", 2, 3), "few_shot/dtd/shots_2/MPL/c/seed3", ("few_shot", "shots_2")),
    (("zeroshot", "all", "ZeroshotCLIP", "v", "imagenet", None, None), "zeroshot/imagenet/all/ZeroshotCLIP/v", ("xd", "source")),
    (("zeroshot", "new", "ZeroshotCLIP", "v", "dtd", None, None), "zeroshot/dtd/new/ZeroshotCLIP/v", ("base2new", "new")),
])
def test_layout_folders_and_recorded_parts(key, folder, recorded):
    run = layout.RunKey(*key)
    assert run.folder("/out") == Path("/out", folder) and run.recorded() == recorded


def test_layout_cli_matches_python_and_rejects_bad_parts(capsys):
    assert layout.main(["dir", "/o", "few_shot", "shots_2", "CoOp", "c", "dtd", "2", "1"]) == 0
    assert capsys.readouterr().out == "/o/few_shot/dtd/shots_2/CoOp/c/seed1\tfew_shot\tshots_2\n"
    assert layout.main(["dir", "/o", "base2new", "train", "CoOp", "c", "dtd", "2", "1"]) == 2
    assert "unknown part 'train' of protocol 'base2new'" in capsys.readouterr().err


def _result(folder, **run):
    folder.mkdir(parents=True, exist_ok=True)
    record = dict(trainer="CoOp", dataset="DescribableTextures", seed=1, num_shots=2, protocol="base2new",
                  part="base", config_name="c", metrics={"accuracy": 71.5})
    record.update(run)
    (folder / "result.json").write_text(json.dumps(record))


def test_a_run_is_finished_only_when_its_result_parses_and_matches(tmp_path, capsys):
    key = layout.RunKey("base2new", "base", "CoOp", "c", "dtd", 2, 1)
    folder, expected = key.folder(tmp_path), layout.expected_of(key)
    assert layout.finished(folder, expected) == (False, "no result.json")
    _result(folder)
    assert layout.finished(folder, expected) == (True, "finished")
    _result(folder, seed=2)
    assert layout.finished(folder, expected) == (False, "its result.json records seed 2, not 1")
    _result(folder, protocol=None, part=None, config_name=None)  # an older result: still matches
    assert layout.finished(folder, expected)[0]
    (folder / "result.json").write_text('{"trainer": "CoOp", "metr')  # torn by a kill
    assert layout.finished(folder, expected) == (False, "result.json is not valid")
    # the scripts' check sets a torn result aside, so the run is done again instead of refused
    args = ["finished", str(folder), "--trainer", "CoOp", "--seed", "1"]
    assert layout.main(args) == 1
    assert "was not valid" in capsys.readouterr().out
    assert not (folder / "result.json").exists() and (folder / "result.json.invalid").exists()


def test_scripts_take_their_folders_from_the_layout(tmp_path):
    env = {**os.environ, "OUTPUT": str(tmp_path), "PRINT_DIR": "1", "PYTHON": sys.executable}
    printed = subprocess.run(["bash", "scripts/sep/xd_test.sh", "imagenet_r", "2"], cwd=REPO, env=env,
                             capture_output=True, text=True, check=True).stdout
    folder, *key = printed.rstrip("\n").split("\t")
    assert key == ["xd", "target", "SEP", "vit_b16_ep3_xd", "imagenet_r", "16", "2"]
    assert folder == str(layout.RunKey("xd", "target", "SEP", "vit_b16_ep3_xd", "imagenet_r", 16, 2)
                         .folder(tmp_path))


def test_a_failed_runs_line_is_its_error_not_a_later_warning(tmp_path):
    log = tmp_path / "run.log"
    log.write_text("Loading dataset: EuroSAT\nerror: no EuroSAT folder\n/x/outdated/utils.py:14: Warning: ...\n"
                   "  return warn(\n")
    assert launch.last_line(log) == "error: no EuroSAT folder"
    log.write_text("Traceback (most recent call last):\n  File x\nRuntimeError: CUDA out of memory\n")
    assert launch.last_line(log) == "RuntimeError: CUDA out of memory"
    log.write_text("epoch 1/5\nKilled\n")
    assert launch.last_line(log) == "Killed"


def test_slots_share_the_cores_or_get_a_gpu_each(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert launch.slot_env(1, 4, None)["OMP_NUM_THREADS"] == "4"
    assert launch.slot_env(0, 32, None)["OMP_NUM_THREADS"] == "1"
    assert launch.slot_env(2, 4, ["0", "1", "5", "7"]) == {"CUDA_VISIBLE_DEVICES": "5"}


# ---- a real sweep -------------------------------------------------------------------------

def running_job(output):
    for state_file in (Path(output) / ".sweeps" / "state").glob("*.json"):
        state = json.loads(state_file.read_text())
        if state["state"] == "running" and "train_base__caltech101" in state_file.name:
            return state
    return None


@requires_dassl
@pytest.mark.early
def test_local_launcher_two_slots_failure_kill_restart_status_and_report(tmp_path, tiny_clip_path, request):
    """The serial tiny sweep is asked for only at the end (its report), so this runs beside its build."""
    output = tmp_path / "parallel"
    env = sweep_env(make_sweep_data(tmp_path / "data"), output)
    # eurosat has no data: its trainings fail, their tests are not run, caltech101 goes on
    coop = ["base2new", "coop", "--datasets", "caltech101", "eurosat", "--seeds", "1", "2",
            "--launcher", "local", "--slots", "2"]
    first = subprocess.Popen(driver(coop, env, tiny_clip_path), cwd=REPO, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    state = wait_for(lambda: running_job(output), what="a caltech101 training to start")

    code, table, _ = status(output)  # while the sweep runs
    assert code == 1
    rows = [line.split() for line in table.splitlines()[1:-1]]
    assert any("running" in row for row in rows) and any("missing" in row for row in rows), table

    first.send_signal(signal.SIGTERM)
    out, _ = first.communicate(timeout=120)
    assert first.returncode == 143, out[-3000:]
    assert "Stopped by SIGTERM; the same command resumes." in out
    assert not launch._pid_alive(state["pid"]), "the driver left its child running"
    code, table, _ = status(output)
    assert code == 1 and "stopped" in table

    again = subprocess.run(driver(coop, env, tiny_clip_path), cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=900)
    assert again.returncode == 1, again.stdout[-3000:] + again.stderr[-3000:]
    assert "4 of 8 runs finished." in again.stdout
    assert "scripts/coop/base2new_test.sh eurosat 1: not run (its training failed)" in again.stdout
    zeroshot = subprocess.run(driver(["base2new", "zeroshot", "--datasets", "caltech101", "--launcher", "local",
                                      "--slots", "2"], env, tiny_clip_path), cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=900)
    assert zeroshot.returncode == 0, zeroshot.stdout[-3000:] + zeroshot.stderr[-3000:]

    code, csv_text, _ = status(output, "--format", "csv")
    assert code == 1
    import csv
    rows = list(csv.DictReader(csv_text.splitlines()))
    by = {(r["trainer"], r["dataset"], r["part"], r["seed"]): r for r in rows}
    assert len(rows) == 10
    for seed in ("1", "2"):
        for part in ("base", "new"):
            done = by[("CoOp", "caltech101", part, seed)]
            assert done["state"] == "done" and 0 <= float(done["accuracy"]) <= 100
        failed = by[("CoOp", "eurosat", "base", seed)]
        assert failed["state"] == "failed" and failed["detail"].startswith("error:") and ".log)" in failed["detail"]
        assert by[("CoOp", "eurosat", "new", seed)]["state"] == "failed"
    assert by[("ZeroshotCLIP", "caltech101", "new", "")]["state"] == "done"
    result = json.loads((output / by[("CoOp", "caltech101", "new", "1")]["folder"] / "result.json").read_text())
    assert (result["protocol"], result["part"], result["config_name"]) == ("base2new", "new", "vit_b16_ep50")

    assert report(output) == request.getfixturevalue("tiny_sweep").report  # the same sweep run serially


# ---- the local launcher with small stand-in runs (in-process) ----------------------------------

# A stand-in for train.py: says which signal stopped it, as train.py does, and exits 1.
STAND_IN = r"""
import signal, sys, time
def stop(sig, frame):
    print(f"interrupted by {signal.Signals(sig).name}", flush=True)
    sys.exit(1)
for sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(sig, stop)
print("started", flush=True)
time.sleep(float(sys.argv[1]))
print("done", flush=True)
"""


def stand_in_job(tmp_path, name="run", seconds=60.0, seed=1):
    key = dict(protocol="base2new", part="base", trainer="CoOp", config="c", dataset="dtd", shots=2, seed=seed)
    return launch.Job(name=name, command=[sys.executable, "-c", STAND_IN, str(seconds)], cwd=str(tmp_path),
                      output=str(tmp_path), keys=[key], title=f"{name} title")


def signal_once_started(job, sig):
    """Send `sig` to this process once `job` runs (the driver's signal handlers are in the main thread)."""
    import threading

    def send():
        wait_for(lambda: "\nstarted\n" in (job.log.read_text() if job.log.exists() else ""),
                 what="the run to start")
        os.kill(os.getpid(), sig)

    threading.Thread(target=send, daemon=True).start()


@pytest.fixture
def fresh_children(monkeypatch):
    monkeypatch.setattr(launch, "CHILDREN", launch.Children())


@pytest.mark.parametrize("sig, passed, exit_status", [
    (signal.SIGINT, "SIGINT", 130), (signal.SIGTERM, "SIGTERM", 143), (signal.SIGHUP, "SIGTERM", 129)])
def test_the_driver_passes_the_signal_it_got_and_marks_the_run_stopped(tmp_path, sig, passed, exit_status,
                                                                       fresh_children):
    import io

    job = stand_in_job(tmp_path)
    out = io.StringIO()
    signal_once_started(job, sig)
    with pytest.raises(launch.Stopped) as stop:
        launch.run_local([job], {}, slots=2, out=out)
    assert stop.value.exit_status == exit_status and str(stop.value) == signal.Signals(sig).name
    said = out.getvalue()
    if sig == signal.SIGHUP:  # children run in their own sessions: the hangup reaches them as SIGTERM
        assert "Stopping on SIGHUP (the terminal closed): passing SIGTERM to 1 running run(s)" in said
    else:
        assert f"Stopping: passing {passed} to 1 running run(s)" in said
    assert f"interrupted by {passed}" in job.log.read_text()  # the run's log says the same signal
    assert launch.read_state(job)["state"] == "stopped" and launch.live_state(job) == "stopped"


def test_a_driver_started_with_nohup_keeps_ignoring_sighup(tmp_path, fresh_children):
    import io

    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        job = stand_in_job(tmp_path, seconds=1.0)
        signal_once_started(job, signal.SIGHUP)
        assert launch.run_local([job], {}, slots=2, out=io.StringIO()) == {"run": "ok"}
        assert "done" in job.log.read_text()
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_a_terminal_that_went_away_costs_the_echo_not_the_run(tmp_path, fresh_children):
    class HungUp:
        def write(self, text):
            raise OSError(5, "Input/output error")

        flush = write

    job = stand_in_job(tmp_path, seconds=0.0)
    assert launch.run_job(job, echo=HungUp()) == 0
    assert job.log.read_text().splitlines()[-2:] == ["started", "done"]


def test_each_run_says_its_accuracy_and_time_as_it_ends(tmp_path, fresh_children):
    import io
    import re

    job = stand_in_job(tmp_path, seconds=0.0)
    folder = layout.RunKey(**job.keys[0]).folder(tmp_path)
    job.command = [sys.executable, "-c", f"import json, os; os.makedirs({str(folder)!r}, exist_ok=True); "
                   f"open(os.path.join({str(folder)!r}, 'result.json'), 'w').write(json.dumps(dict("
                   "trainer='CoOp', dataset='dtd', seed=1, num_shots=2, protocol='base2new', part='base', "
                   "config_name='c', metrics={'accuracy': 71.5})))"]
    out = io.StringIO()
    assert launch.run_local([job], {}, slots=2, out=out) == {"run": "ok"}
    assert re.search(r"^\[1/1\] run title: done in \d+\.\d s, accuracy 71\.50$", out.getvalue(), re.M), out.getvalue()


def test_a_stale_state_naming_a_live_process_does_not_block_the_run(tmp_path, fresh_children):
    import io

    job = stand_in_job(tmp_path, seconds=0.0)
    launch.write_state(job, "running", pid=os.getpid())  # a pid the system reused: alive, but not the run
    assert launch.live_state(job) == "stopped"
    assert launch.run_local([job], {}, slots=2, out=io.StringIO()) == {"run": "ok"}
    assert "done" in job.log.read_text()


def test_a_run_held_by_another_driver_is_reported_as_such_not_failed(tmp_path, fresh_children):
    import io

    training, evaluation = stand_in_job(tmp_path, "train"), stand_in_job(tmp_path, "test", seed=2)
    other = subprocess.Popen([sys.executable, "-c", "import sys, time; from clipprompt.sweeps import launch; "
                              f"c = launch.claim(launch.Job('train', [], '', {str(tmp_path)!r})); "
                              "print('claimed', flush=True); time.sleep(60)"],
                             cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline() == "claimed\n"
        launch.write_state(training, "running", pid=other.pid)
        assert launch.live_state(training) == "running"
        out = io.StringIO()
        status = launch.run_local([training, evaluation], {"test": "train"}, slots=2, out=out)
    finally:
        other.kill()
        other.wait()
    assert status == {"train": f"elsewhere (running in another driver, process {other.pid})",
                      "test": "elsewhere (its training runs in another driver)"}
    assert f"[1/2] train title: running in another driver (process {other.pid})" in out.getvalue()
    assert launch.live_state(training) == "stopped"  # its driver is gone
