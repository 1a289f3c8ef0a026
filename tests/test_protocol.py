"""The protocol driver: plans, a fake runner for failures, and one real base-to-new run (Dassl)."""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clipprompt.sweeps import launch, driver as protocol
from clipprompt.results import protocols
from clipprompt.testing import make_tiny_dataset
from clipprompt.testing.markers import requires_dassl

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _output_in_tmp(tmp_path, monkeypatch):
    """The driver keeps each run's state under OUTPUT/.sweeps: never in the repository."""
    monkeypatch.setenv("OUTPUT", str(tmp_path / "output"))


def scripts(runs):
    return [" ".join([run.script.name, *run.args]) for run in runs]


def test_dataset_lists_come_from_the_catalog():
    assert len(protocols.BASE2NEW) == 11 and len(protocols.XD_TARGETS) == 10 and len(protocols.DG_TARGETS) == 4
    assert protocols.SOURCE not in protocols.XD_TARGETS
    assert set(protocols.BASE2NEW + protocols.DG_TARGETS) <= set(protocols.CONFIG_OF.values())


def test_plans():
    base2new = protocol.plan("base2new", "coop")
    assert len(base2new) == 11 * 3 * 2
    assert scripts(base2new[:2]) == ["base2new_train.sh imagenet 1", "base2new_test.sh imagenet 1"]
    assert base2new[1].after is base2new[0]
    xd = protocol.plan("xd", "cocoop", seeds=[1, 2])
    assert scripts(xd)[:3] == ["xd_train.sh 1", "xd_test.sh caltech101 1", "xd_test.sh oxford_pets 1"]
    assert len(xd) == 2 * 11 and xd[0].script.parent.name == "cocoop"
    dg = protocol.plan("dg", "coop", seeds=[1])
    assert scripts(dg) == ["xd_train.sh 1", *(f"xd_test.sh {d} 1" for d in protocols.DG_TARGETS)]
    few = protocol.plan("few_shot", "coop", datasets=["dtd"], seeds=[1, 2], shots=[1, 16])
    assert scripts(few) == ["few_shot.sh dtd 1 1", "few_shot.sh dtd 2 1", "few_shot.sh dtd 1 16", "few_shot.sh dtd 2 16"]
    assert len(protocol.plan("few_shot", "coop")) == 11 * 5 * 3


def test_evaluation_only_method_runs_once_per_dataset_without_seeds():
    assert scripts(protocol.plan("base2new", "zeroshot", datasets=["dtd", "eurosat"])) == [
        "base2new_test.sh dtd", "base2new_test.sh eurosat"]
    assert scripts(protocol.plan("dg", "zeroshot")) == [
        "xd_test.sh imagenet", *(f"xd_test.sh {d}" for d in protocols.DG_TARGETS)]


@pytest.mark.parametrize("args, message", [
    (["base2new", "cop"], "No method scripts in scripts/cop/. Did you mean coop?"),
    (["few_shot", "zeroshot"], "scripts/zeroshot/ has no few_shot.sh"),
    (["base2new", "coop", "--datasets", "caltech"], "Unknown dataset 'caltech'. Did you mean caltech101?"),
])
def test_bad_names_exit_2_with_one_line(args, message, capsys):
    assert protocol.main(args, runner=lambda cmd: pytest.fail("ran")) == 2
    assert message in capsys.readouterr().err



@pytest.mark.parametrize("args, message", [
    (["base2new", "coop", "--launcher", "local", "--slots", "0"], "--slots must be at least 1"),
    (["base2new", "coop", "--launcher", "slurm", "--sbatch", "qos"], "--sbatch takes KEY=VALUE, got 'qos'"),
    (["base2new", "coop", "--launcher", "slurm"], "--launcher slurm needs submitit: pip install -e .[slurm]"),
])
def test_bad_launcher_options_exit_2_naming_the_option(args, message, capsys, monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "submitit" else find_spec(name, *a))
    with pytest.raises(SystemExit) as exit_:
        protocol.main(args, runner=lambda cmd: pytest.fail("ran"))
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.splitlines()[-1].endswith(f"error: {message}") and "Traceback" not in err


def test_a_script_that_cannot_say_its_folder_exits_2_with_one_line(tmp_path, capsys):
    method = tmp_path / "scripts" / "broken"
    method.mkdir(parents=True)
    for step in ("base2new_train", "base2new_test"):
        (method / f"{step}.sh").write_text('echo "no layout for this run" >&2; exit 2\n')
    code = protocol.main(["base2new", "broken", "--datasets", "dtd", "--seeds", "1"],
                         runner=lambda cmd: pytest.fail("ran"), scripts_dir=tmp_path / "scripts")
    err = capsys.readouterr().err
    assert code == 2 and err in (f"error: {method / s}.sh dtd 1: no layout for this run\n"
                                 for s in ("base2new_train", "base2new_test"))


def test_status_of_a_folder_without_a_sweep_exits_2_with_one_line(tmp_path, capsys):
    assert protocol.main(["status", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (f"error: no runs planned by the protocol driver under {tmp_path} "
                                       "(.sweeps/manifests/)\n")


def test_status_when_squeue_keeps_failing_exits_1_with_one_line(tmp_path, capsys, monkeypatch):
    key = dict(protocol="base2new", part="base", trainer="CoOp", config="c", dataset="dtd", shots=2, seed=1)
    job = launch.Job(name="run", command=["bash", "x.sh"], cwd=str(tmp_path), output=str(tmp_path), keys=[key])
    protocol.write_manifest("base2new-coop", [job])
    launch.write_state(job, "queued", job_id="12_0")
    failing = subprocess.CompletedProcess([], 1, "", "slurm_load_jobs error: Unable to contact\n  slurm controller\n")
    monkeypatch.setattr(launch.subprocess, "run", lambda *a, **k: failing)
    monkeypatch.setattr(launch.time, "sleep", lambda s: None)
    assert protocol.main(["status", str(tmp_path)]) == 1
    assert capsys.readouterr().err == (
        "error: squeue keeps failing: slurm_load_jobs error: Unable to contact slurm controller\n")


class FakeRunner:
    def __init__(self, fail=()):
        self.fail, self.commands = set(fail), []

    def __call__(self, command):
        self.commands.append(command)
        call = " ".join([Path(command[1]).name, *command[2:]])
        return 3 if any(call.startswith(f) for f in self.fail) else 0


ISSUE_ITEM_3 = ["base2new", "coop", "--datasets", "caltech101", "--seeds", "1", "2", "--", "OPTIM.MAX_EPOCH", "1"]


@pytest.mark.parametrize("override, message", [
    (["DATASET.NUM_SHOTS", "2"], "DATASET.NUM_SHOTS cannot be overridden in a protocol run: the training shots name "
     "the run folder: give them as SHOTS=K in the environment (scripts and driver), or --shots K for the driver's few_shot."),
    (["SEED", "3"], "SEED cannot be overridden in a protocol run: the seed names the run folder: give it as the "
     "script's SEED argument, or --seeds for the driver."),
    (["DATASET.SUBSAMPLE_CLASSES", "all"], "DATASET.SUBSAMPLE_CLASSES cannot be overridden in a protocol run"),
    (["DATASET.NAME", "DescribableTextures"], "DATASET.NAME cannot be overridden in a protocol run: the dataset names "
     "the run folder: give it as the script's DATASET argument, or --datasets for the driver."),
])
@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]])
def test_protocol_owned_overrides_are_refused_before_anything_runs(override, message, dry_run, capsys, tmp_path):
    """Issue 20, item 3: `... -- DATASET.NUM_SHOTS 2` trained, then every test failed. Now refused in one
    line, before any run starts or any sweep state is written; SHOTS=2 is the way (the tiny sweep uses it)."""
    argv = [*ISSUE_ITEM_3[:7], *dry_run, *ISSUE_ITEM_3[7:], *override]
    assert protocol.main(argv, runner=lambda cmd: pytest.fail("ran")) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: " + message) and len(captured.err.strip().splitlines()) == 1
    assert captured.out == "" and not (tmp_path / "output").exists()


def test_a_bad_tag_is_refused_before_anything_runs(capsys):
    assert protocol.main(["base2new", "coop", "--tag", "lr/0.1"], runner=lambda cmd: pytest.fail("ran")) == 2
    assert capsys.readouterr().err == "error: tag 'lr/0.1': use letters, digits and . _ + - (starting with a " \
        "letter or digit)\n"


def test_a_tag_gives_the_runs_their_own_folders(capsys, monkeypatch):
    runner = FakeRunner()
    monkeypatch.setenv("TAG", "ignored")  # --tag wins over the environment's TAG
    assert protocol.main([*ISSUE_ITEM_3[:2], "--datasets", "dtd", "--seeds", "1", "--tag", "lr0.1"], runner=runner) == 0
    jobs = [protocol.resolve(run, (), "lr0.1") for run in protocol.plan("base2new", "coop", ["dtd"], [1])]
    assert [job.name for job in jobs] == ["base2new__train_base__dtd__shots_16__CoOp@lr0.1__vit_b16_ep50__seed1",
                                          "base2new__test_new__dtd__shots_16__CoOp@lr0.1__vit_b16_ep50__seed1"]
    assert all(job.env["TAG"] == "lr0.1" and job.keys[0]["tag"] == "lr0.1" for job in jobs)


def test_continues_past_failures_and_lists_them(capsys):
    runner = FakeRunner(fail=["base2new_train.sh dtd 2", "base2new_test.sh eurosat 1"])
    code = protocol.main(["base2new", "coop", "--datasets", "dtd", "eurosat", "--seeds", "1", "2",
                          "--", "OPTIM.MAX_EPOCH", "1"], runner=runner)
    assert code == 1
    ran = [" ".join([Path(c[1]).name, *c[2:]]) for c in runner.commands]
    assert ran == [  # the test of dtd seed 2 is not run: its training failed; everything else is
        "base2new_train.sh dtd 1 OPTIM.MAX_EPOCH 1", "base2new_test.sh dtd 1 OPTIM.MAX_EPOCH 1",
        "base2new_train.sh dtd 2 OPTIM.MAX_EPOCH 1",
        "base2new_train.sh eurosat 1 OPTIM.MAX_EPOCH 1", "base2new_test.sh eurosat 1 OPTIM.MAX_EPOCH 1",
        "base2new_train.sh eurosat 2 OPTIM.MAX_EPOCH 1", "base2new_test.sh eurosat 2 OPTIM.MAX_EPOCH 1",
    ]
    out = capsys.readouterr().out
    summary = out[out.index("5 of 8 runs finished."):]
    assert summary.splitlines()[1:] == [
        "3 failed or not run:",
        "  scripts/coop/base2new_train.sh dtd 2: failed (exit status 3)",
        "  scripts/coop/base2new_test.sh dtd 2: not run (its training failed)",
        "  scripts/coop/base2new_test.sh eurosat 1: failed (exit status 3)",
    ]


def test_all_finished_exits_0(capsys):
    runner = FakeRunner()
    assert protocol.main(["dg", "coop", "--seeds", "1"], runner=runner) == 0
    assert len(runner.commands) == 5 and "5 of 5 runs finished." in capsys.readouterr().out


def test_overrides_come_in_pairs_and_dry_run_prints(capsys):
    with pytest.raises(SystemExit) as exit_:
        protocol.main(["xd", "coop", "--", "OPTIM.MAX_EPOCH"], runner=FakeRunner())
    assert exit_.value.code == 2
    assert protocol.main(["xd", "coop", "--seeds", "1", "--datasets", "dtd", "--dry-run", "--",
                          "INPUT.SIZE", "(32, 32)"], runner=lambda c: pytest.fail("ran")) == 0
    assert capsys.readouterr().out.splitlines() == [
        "bash scripts/coop/xd_train.sh 1 INPUT.SIZE '(32, 32)'",
        "bash scripts/coop/xd_test.sh dtd 1 INPUT.SIZE '(32, 32)'",
    ]


WRAPPER_ARGS = {"base2new_train.sh": ["dtd", "1"], "base2new_test.sh": ["dtd", "1"], "xd_train.sh": ["1"],
                "xd_test.sh": ["dtd", "1"], "few_shot.sh": ["dtd", "1", "2"],
                "teacher_train.sh": ["dtd", "1"], "teacher_xd_train.sh": ["1"]}  # PromptKD's teacher step


def test_every_wrapper_runs_an_existing_config_of_its_trainer(tmp_path):
    """Each scripts/<method>/*.sh, asked where its run lives (PRINT_DIR, as the driver asks), names a
    trainer and a config file that exists; every method folder has its base-to-new pair."""
    methods = sorted(d for d in (REPO / "scripts").iterdir() if d.is_dir() and d.name != "common")
    assert {d.name for d in methods} >= {"sep", "mpl", "coop", "cocoop", "kgcoop", "tcp", "maple", "promptsrc",
                                         "zeroshot"}
    env = {**os.environ, "PRINT_DIR": "1", "OUTPUT": str(tmp_path), "PYTHON": sys.executable}
    for method in methods:
        wrappers = sorted(method.glob("*.sh"))
        assert "base2new_test.sh" in {w.name for w in wrappers}, method  # each method's other protocols: as its authors run them
        for wrapper in wrappers:
            args = WRAPPER_ARGS[wrapper.name][:1] if method.name == "zeroshot" else WRAPPER_ARGS[wrapper.name]
            run = subprocess.run(["bash", str(wrapper), *args], cwd=REPO, env=env, capture_output=True, text=True)
            assert run.returncode == 0, f"{wrapper}: {run.stderr}"
            folder, *key = run.stdout.splitlines()[0].split("\t")
            trainer, config = key[2], key[3]
            assert (REPO / "configs" / "trainers" / trainer / f"{config}.yaml").is_file(), (wrapper, trainer, config)
            assert Path(folder).is_relative_to(tmp_path) and f"/{trainer}/{config}" in folder, (wrapper, folder)


@requires_dassl
def test_base2new_end_to_end_then_the_report(tiny_sweep):
    """The serial sweep of the session (tests/tiny_sweep.py): CoOp seeds 1 2 through the driver."""
    assert "4 of 4 runs finished." in tiny_sweep.driver_output
    table = subprocess.run([sys.executable, "-m", "clipprompt.report", str(tiny_sweep.output), "--compare"],
                           cwd=REPO, capture_output=True, text=True)
    assert table.returncode == 0, table.stderr
    text = table.stdout
    assert "### Base-to-new: CoOp (vit_b16_ep50, 2 shots)" in text
    caltech = next(line for line in text.splitlines() if line.startswith("| caltech101 |"))
    cells = [c.strip() for c in caltech.strip("|").split("|")]
    # Base and New as the mean ± spread of the two seeds, then HM: numbers from the runs
    assert [re.fullmatch(r"\d+\.\d\d( ± \d+\.\d\d)?", c) is not None for c in cells[1:]] == [True] * 3, caltech
    assert "±" in cells[1] and "±" in cells[2]
    assert "| imagenet | – | – | – |" in text
    assert re.search(r"\| Average \(11\) \| \d+\.\d\d \(avg 1/11\) \| \d+\.\d\d \(avg 1/11\) \|", text)
    # --compare: our per-dataset numbers beside the published ones; no average of ours over one dataset
    assert "| CoOp | caltech101 | base | " in text and "| CoOp | average | hm | – | 71.66 [" in text


@requires_dassl
@pytest.mark.early
def test_xd_dg_and_few_shot_end_to_end_then_the_report(tmp_path, tiny_clip_path):
    """Cross-dataset, domain generalization and few-shot through the driver, on tiny real-layout data."""
    data = tmp_path / "data"
    for name in ("ImageNet", "Caltech101", "ImageNetA"):
        make_tiny_dataset(str(data), name, num_classes=4, images_per_class=4)
    env = {**os.environ, "DATA": str(data), "OUTPUT": str(tmp_path / "output"), "SHOTS": "1",
           "PYTHON": sys.executable, "PYTHONWARNINGS": "ignore::UserWarning"}
    overrides = ["MODEL.BACKBONE.NAME", tiny_clip_path, "INPUT.SIZE", "(32, 32)", "DATALOADER.NUM_WORKERS", "0",
                 "DATALOADER.TEST.BATCH_SIZE", "8", "OPTIM.MAX_EPOCH", "1"]
    outputs = {}
    for args, runs in ((["xd", "coop", "--datasets", "caltech101"], 2),
                       (["dg", "coop", "--datasets", "imagenet_a"], 2),
                       (["few_shot", "coop", "--datasets", "caltech101", "--shots", "1"], 1)):
        run = subprocess.run([sys.executable, "-m", "clipprompt.protocol", *args, "--seeds", "1", "--", *overrides],
                             cwd=REPO, env=env, capture_output=True, text=True)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        assert f"{runs} of {runs} runs finished." in run.stdout
        outputs[args[0]] = run.stdout
    assert "xd_train.sh 1: finished already" in outputs["dg"]  # dg reuses the cross-dataset ImageNet model

    table = subprocess.run([sys.executable, "-m", "clipprompt.report", str(tmp_path / "output")],
                           cwd=REPO, capture_output=True, text=True)
    assert table.returncode == 0, table.stderr
    text = table.stdout
    for heading in ("Cross-dataset", "Domain generalization", "Few-shot"):
        assert heading in text, text
    assert "–" in text  # the datasets that were not run are gaps, not zeros


# ---- first mistakes and duplicates, before anything runs ------------------------------------

def test_duplicate_seeds_datasets_and_shots_are_planned_once(capsys):
    runner = FakeRunner()
    assert protocol.main(["few_shot", "coop", "--datasets", "dtd", "dtd", "--seeds", "1", "1", "2",
                          "--shots", "2", "2"], runner=runner) == 0
    ran = [" ".join([Path(c[1]).name, *c[2:]]) for c in runner.commands]
    assert ran == ["few_shot.sh dtd 1 2", "few_shot.sh dtd 2 2"]
    out = capsys.readouterr().out
    assert out.splitlines()[:3] == ["--datasets names dtd more than once: each run is planned once.",
                                    "--seeds names 1 more than once: each run is planned once.",
                                    "--shots names 2 more than once: each run is planned once."]
    assert "2 of 2 runs finished." in out


def test_overrides_without_the_double_dash_get_a_one_line_hint(capsys):
    code = protocol.main(["base2new", "coop", "--seeds", "1", "MODEL.BACKBONE.NAME", "x"],
                         runner=lambda cmd: pytest.fail("ran"))
    assert code == 2
    assert capsys.readouterr().err == ("error: put config overrides after --: python -m clipprompt.protocol "
                                       "base2new coop --seeds 1 -- MODEL.BACKBONE.NAME x\n")


@pytest.mark.parametrize("overrides, message", [
    (["OPTIM.LRR", "0.1"], "Unknown config key OPTIM.LRR (on the command line). Did you mean OPTIM.LR?"),
    (["OPTIM.MAX_EPOCH", "many"], "Type mismatch for OPTIM.MAX_EPOCH (on the command line): 'many' is not an "
                                  "integer (it was 1)."),
    (["OPTIM.LR", "-1"], "OPTIM.LR is -1.0; it must be > 0 (learning rate)."),
    (["TRAINER.COOP.N_CTXX", "4"], "Unknown config key TRAINER.COOP.N_CTXX (on the command line). "
                                   "Did you mean TRAINER.COOP.N_CTX?"),
])
def test_a_bad_override_is_refused_before_any_run_with_train_pys_message(overrides, message, capsys):
    code = protocol.main(["base2new", "coop", "--seeds", "1", "--", "OPTIM.MAX_EPOCH", "1", *overrides],
                         runner=lambda cmd: pytest.fail("ran"))
    err = capsys.readouterr().err
    assert code == 2 and err == f"error: {message}\n"


def test_help_lists_the_status_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        protocol.main(["--help"])
    assert exit_.value.code == 0
    assert "python -m clipprompt.protocol status OUTPUT" in " ".join(capsys.readouterr().out.split())


def test_an_output_below_a_file_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("OUTPUT", str(tmp_path / "file" / "output"))
    code = protocol.main(["base2new", "coop", "--datasets", "dtd", "--seeds", "1"],
                         runner=lambda cmd: pytest.fail("ran"))
    out, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in out + err
    assert err.startswith(f"error: OUTPUT {tmp_path / 'file' / 'output'} cannot hold the sweep: Not a directory (")
    assert err.endswith("); set OUTPUT to a folder you can write in\n") and err.count("\n") == 1


def test_runs_left_to_another_driver_are_listed_apart_and_are_not_failures(monkeypatch, capsys):
    def another_driver_has_the_training(jobs, after, **kwargs):
        train, test = jobs
        return {train.name: "elsewhere (running in another driver, process 4242)",
                test.name: "elsewhere (its training runs in another driver)"}

    monkeypatch.setattr(launch, "run_local", another_driver_has_the_training)
    assert protocol.main(["base2new", "coop", "--datasets", "dtd", "--seeds", "1"], runner=FakeRunner()) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-4:] == [
        "0 of 2 runs finished.",
        "2 left to another driver (status shows when they are done):",
        "  scripts/coop/base2new_train.sh dtd 1: running in another driver, process 4242",
        "  scripts/coop/base2new_test.sh dtd 1: its training runs in another driver",
    ]


def test_checking_common_overrides_imports_no_torch():
    """The check runs before every sweep: Dassl's defaults and this project's keys only, unless a
    TRAINER key (whose nodes need every method's module) is given."""
    code = ("import sys; from clipprompt.sweeps.driver import check_overrides; "
            "check_overrides(['OPTIM.LR', '0.1', 'INPUT.SIZE', '(32, 32)', 'MODEL.BACKBONE.NAME', 'x.pt']); "
            "print('torch' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout == "False\n", run.stderr
@requires_dassl
def test_a_sweep_again_with_another_lr_is_refused_on_screen_and_keeps_every_result(tiny_sweep, tmp_path):
    """Issue 20: the same sweep with another OPTIM.LR reused the finished runs silently. Now each training
    is refused (the differing key on screen, not only in .sweeps/logs) and no result changes; the same
    command again finds every run finished."""
    from tiny_sweep import driver, sweep_env

    output = tmp_path / "copy"
    shutil.copytree(tiny_sweep.output, output)
    results = {p: p.read_bytes() for p in output.rglob("result.json")}
    env = sweep_env(tiny_sweep.data, output)
    args = ["base2new", "coop", "--datasets", "caltech101", "--seeds", "1"]  # one seed: each run is a process
    run = subprocess.run([*driver(args, env, tiny_sweep.clip), "OPTIM.LR", "0.5"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]
    assert "scripts/coop/base2new_train.sh caltech101 1: failed (exit status 2): error: " in run.stdout
    assert "scripts/coop/base2new_test.sh caltech101 1: not run (its training failed)" in run.stdout
    assert "OPTIM.LR (0.002 -> 0.5)" in run.stdout.split("failed or not run:")[1]
    assert {p: p.read_bytes() for p in output.rglob("result.json")} == results
    again = subprocess.run(driver(args, env, tiny_sweep.clip), cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0 and "2 of 2 runs finished." in again.stdout
    assert again.stdout.count(": finished already") == 2


@requires_dassl
def test_slurm_compares_finished_runs_here_before_submitting(tiny_sweep, tmp_path, monkeypatch, capfd):
    """SLURM does not resubmit a finished run: the driver compares its configuration first, so another
    OPTIM.LR is refused (and nothing of it submitted), and the same command submits nothing."""
    from tiny_sweep import OVERRIDES, sweep_env

    output = tmp_path / "copy"
    shutil.copytree(tiny_sweep.output, output)
    results = {p: p.read_bytes() for p in output.rglob("result.json")}
    for key, value in sweep_env(tiny_sweep.data, output).items():
        monkeypatch.setenv(key, value)
    submitted = []
    monkeypatch.setattr(launch, "submit_slurm", lambda steps, options, out: submitted.extend(steps) or [])
    monkeypatch.setattr(launch, "wait_slurm", lambda ids: None)
    argv = ["base2new", "coop", "--datasets", "caltech101", "--seeds", "1", "--launcher", "slurm",
            "--", "MODEL.BACKBONE.NAME", tiny_sweep.clip, *OVERRIDES]
    assert protocol.main([*argv, "OPTIM.LR", "0.5"]) == 1
    out = capfd.readouterr().out
    assert submitted == [] and out.count("failed (exit status 2): error: ") == 2 * 2  # as checked, and in the summary
    assert "OPTIM.LR (0.002 -> 0.5)" in out and {p: p.read_bytes() for p in output.rglob("result.json")} == results
    # the same command: every run is the same finished run, handed to submit_slurm, which skips what is done
    assert protocol.main(argv) == 0 and "2 of 2 runs finished." in capfd.readouterr().out
    assert len([job for step in submitted for job in step]) == 2 and all(job.finished() for step in submitted
                                                                         for job in step)
