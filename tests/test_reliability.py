"""Faults through train.py: resume after any kill to the same bits, clean stops, refused resumes,
the run-folder lock, unusable checkpoints, a full disk, non-finite losses, bad output folders.

Most runs are in-process (`train.cli`); a real SIGKILL needs a subprocess. Faults at exact moments
come from `clipprompt.runs.faults` (CLIPPROMPT_FAULT).
"""

import errno
import json
import multiprocessing
import os
import re
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from clipprompt.testing import make_tiny_dataset, make_tiny_descriptions
from clipprompt.testing.markers import requires_dassl

pytestmark = requires_dassl
REPO = Path(__file__).resolve().parent.parent
EVERY_STEP = ["TRAIN.CHECKPOINT_MINUTES", "0.000001"]  # a rolling checkpoint after every step

CONFIGS = {
    "CoOp": ("CoOp/vit_b16_ep50", ["DATALOADER.TRAIN_X.BATCH_SIZE", "4"]),
    "SEP": ("SEP/vit_b16_ep50_batch32", ["DATALOADER.TRAIN_X.BATCH_SIZE", "4", "TRAINER.SEP.PREC", "fp32"]),
    "MPL": ("MPL/vit_b16_c4_ep10_batch1_ctxv1", ["DATALOADER.TRAIN_X.BATCH_SIZE", "2", "DATASET.NUM_SHOTS", "2"]),
    # two randaugment views per image and a description drawn per step (python's random)
    "CoPrompt": ("CoPrompt/vit_b16_ep8", ["TRAINER.COPROMPT.PROMPT_DEPTH", "3", "TRAINER.COPROMPT.PREC", "fp32"]),
}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    make_tiny_dataset(str(root), "Caltech101", num_classes=4, images_per_class=24)
    make_tiny_descriptions(str(root), "Caltech101", num_classes=4)
    return root


def args(data_root, out, clip_path, *extra, trainer="CoOp", flags=()):
    config, trainer_extra = CONFIGS[trainer]
    return [
        *flags, "--root", str(data_root), "--trainer", trainer, "--seed", "3",
        "--dataset-config-file", str(REPO / "configs/datasets/caltech101.yaml"),
        "--config-file", str(REPO / f"configs/trainers/{config}.yaml"), "--output-dir", str(out),
        "MODEL.BACKBONE.NAME", clip_path, "INPUT.SIZE", "(32, 32)", "DATALOADER.NUM_WORKERS", "0",
        "DATALOADER.TEST.BATCH_SIZE", "32", "DATASET.NUM_SHOTS", "4", "OPTIM.MAX_EPOCH", "2",
        *trainer_extra, *extra,
    ]


def cli(argv, capsys, fault=None):
    """train.py in this process: (status, stdout, stderr)."""
    import train

    if fault:
        os.environ["CLIPPROMPT_FAULT"] = fault
    try:
        status = train.cli(argv)
    finally:
        os.environ.pop("CLIPPROMPT_FAULT", None)
    out, err = capsys.readouterr()
    return status, out, err


def forked(argv, tmp_path, fault=None, new_session=False, wait=True):
    """train.cli in a forked child (a real process, without a fresh interpreter's start-up time):
    its exit status, or minus the signal that killed it, with its stdout and stderr."""
    logs = tmp_path / f"child-{time.monotonic_ns()}"
    pid = os.fork()
    if pid == 0:  # the child
        status = 3
        try:
            if new_session:
                os.setsid()
            with open(f"{logs}.out", "w", buffering=1) as out, open(f"{logs}.err", "w", buffering=1) as err:
                sys.stdout, sys.stderr = out, err
                os.dup2(err.fileno(), 2)
                if fault:
                    os.environ["CLIPPROMPT_FAULT"] = fault
                import train

                status = train.cli(argv)
                out.flush(), err.flush()
        finally:
            os._exit(status)

    def result():
        _, code = os.waitpid(pid, 0)
        code = -os.WTERMSIG(code) if os.WIFSIGNALED(code) else os.WEXITSTATUS(code)
        read = lambda suffix: Path(f"{logs}.{suffix}").read_text() if Path(f"{logs}.{suffix}").exists() else ""  # noqa: E731
        return code, read("out"), read("err")

    return result() if wait else result


def weights(out, epoch=2):
    return torch.load(Path(out) / "model" / f"model.pth.tar-{epoch}", weights_only=True)


def metrics(out):
    return json.loads((Path(out) / "result.json").read_text())


def assert_same_run(a, b):
    sa, sb = weights(a), weights(b)
    assert sa["state_dict"].keys() == sb["state_dict"].keys()
    assert all(torch.equal(sa["state_dict"][k], sb["state_dict"][k]) for k in sa["state_dict"])
    assert metrics(a)["metrics"] == metrics(b)["metrics"]


def one_line(err):
    lines = [line for line in err.splitlines() if line.strip() and "Evaluating" not in line]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
    return lines[-1]


_STRAIGHT = {}


@pytest.fixture
def straight(data_root, tiny_clip_path, tmp_path_factory, capsys):
    """The uninterrupted run of a trainer (once per module)."""

    def get(trainer):
        if trainer not in _STRAIGHT:
            out = tmp_path_factory.mktemp(f"straight-{trainer}")
            status, _, err = cli(args(data_root, out, tiny_clip_path, trainer=trainer), capsys)
            assert status == 0, err[-3000:]
            _STRAIGHT[trainer] = out
        return _STRAIGHT[trainer]

    return get


# ---- resume to the same bits ---------------------------------------------------------------


@pytest.mark.parametrize("trainer, workers, stop", [
    ("CoOp", 0, "2.2"),  # mid-epoch
    ("CoOp", 2, "1.4"),  # between epochs (4 steps per epoch)
    ("SEP", 0, "2.1"),
    ("SEP", 2, "1.3"),
    ("MPL", 0, "1.4"),
    ("MPL", 2, "2.3"),
    ("CoPrompt", 0, "2.2"),
    ("CoPrompt", 2, "1.3"),
])
def test_sigterm_then_same_command_ends_bit_identical(data_root, tiny_clip_path, tmp_path, capsys, straight,
                                                      trainer, workers, stop):
    reference = straight(trainer)
    out = tmp_path / "run"
    argv = args(data_root, out, tiny_clip_path, "DATALOADER.NUM_WORKERS", str(workers), trainer=trainer)
    status, stdout, err = cli(argv, capsys, fault=f"sigterm@{stop}")
    assert status == 1
    epoch, step = stop.split(".")
    line = one_line(err)
    assert line.startswith("interrupted by SIGTERM (") and line.endswith("the same command resumes."), line
    assert not (out / "result.json").exists()
    assert line in (out / "log.txt").read_text()  # the log ends with why the run stopped

    status, stdout, err = cli(argv, capsys)
    assert status == 0, err[-3000:]
    assert "Resumed from" in stdout
    assert_same_run(reference, out)
    if trainer == "SEP":  # one file per checkpoint: the trained prototypes are inside it
        assert "Restored SEP's trained prototypes" in stdout
        assert sorted(os.listdir(out / "model")) == ["checkpoint", "model.pth.tar-2"]
        assert torch.equal(weights(out)["training"]["prototypes"], weights(reference)["training"]["prototypes"])


def test_sigkill_mid_epoch_and_during_a_save(data_root, tiny_clip_path, tmp_path, straight):
    out = tmp_path / "run"
    argv = args(data_root, out, tiny_clip_path, *EVERY_STEP)
    code, _, _ = forked(argv, tmp_path, fault="sigkill@2.3")
    assert code == -signal.SIGKILL
    assert sorted(os.listdir(out / "model")) == ["checkpoint", "resume.pth.tar-2.2"]  # only the newest rolling one
    assert "epoch [2/2] batch [3/4]" in (out / "log.txt").read_text()  # every line reached the log before the kill

    code, stdout, _ = forked(argv, tmp_path, fault="sigkill@save:1")  # killed while writing resume.pth.tar-2.3
    assert code == -signal.SIGKILL and "continuing at epoch 2, step 3" in stdout
    temporaries = [p.name for p in (out / "model").iterdir() if p.name.endswith(".tmp")]
    assert len(temporaries) == 1 and temporaries[0].startswith(".resume.pth.tar-2.3.")
    assert (out / "model" / "resume.pth.tar-2.2").is_file()

    code, stdout, err = forked(argv, tmp_path)
    assert code == 0, err[-3000:]
    assert f"Removed {out / 'model' / temporaries[0]}, left by a run killed while saving" in stdout
    assert "continuing at epoch 2, step 3" in stdout
    assert not [p for p in (out / "model").iterdir() if p.name.endswith(".tmp")]
    assert_same_run(straight("CoOp"), out)


def test_ctrl_c_to_the_process_group_with_workers(data_root, tiny_clip_path, tmp_path):
    out = tmp_path / "run"
    argv = args(data_root, out, tiny_clip_path, "DATALOADER.NUM_WORKERS", "2")
    code, _, err = forked(argv, tmp_path, fault="sigint-group@1.2", new_session=True)
    assert code == 1, err[-3000:]
    assert one_line(err).startswith("interrupted by SIGINT (epoch 1 of 2, after step 2); checkpoint ")
    assert (out / "model" / "resume.pth.tar-1.2").is_file()


def test_a_hangup_stops_like_sigterm_and_the_same_command_resumes(data_root, tiny_clip_path, tmp_path, straight):
    """A terminal or SSH session that drops sends SIGHUP to the whole process group, workers included."""
    out = tmp_path / "run"
    argv = args(data_root, out, tiny_clip_path, "DATALOADER.NUM_WORKERS", "2")
    code, _, err = forked(argv, tmp_path, fault="sighup-group@2.2", new_session=True)
    assert code == 1, err[-3000:]
    line = one_line(err)
    assert line == (f"interrupted by SIGHUP (epoch 2 of 2, after step 2); checkpoint {out / 'model' / 'resume.pth.tar-2.2'} "
                    "is kept; the same command resumes.")
    assert line in (out / "log.txt").read_text()
    code, stdout, err = forked(argv, tmp_path)
    assert code == 0 and "continuing at epoch 2, step 3" in stdout, err[-3000:]
    assert_same_run(straight("CoOp"), out)


def test_random_kills_always_end_with_the_uninterrupted_weights(data_root, tiny_clip_path, tmp_path, straight):
    """Fault injection: SIGKILL at random steps and in the middle of random saves, then the same command."""
    rng = random.Random(int(os.environ.get("FAULT_SEED", "0")))
    for attempt in range(5):
        out = tmp_path / f"run{attempt}"
        argv = args(data_root, out, tiny_clip_path, *EVERY_STEP)
        kills = []
        while len(kills) < 4 and not (out / "result.json").exists():
            if rng.random() < 0.5:  # a step or a save chosen at random
                fault = f"sigkill@{rng.randint(1, 2)}.{rng.randint(1, 4)}"
            else:
                fault = f"sigkill@save:{rng.randint(1, 4)}"
            code, _, err = forked(argv, tmp_path, fault=fault)
            kills.append((fault, code))
            assert code in (0, -signal.SIGKILL), (kills, err[-3000:])
        if not (out / "result.json").exists():
            code, _, err = forked(argv, tmp_path)
            assert code == 0, (kills, err[-3000:])
        assert any(code == -signal.SIGKILL for _, code in kills), kills
        assert_same_run(straight("CoOp"), out)


# ---- refused resumes -----------------------------------------------------------------------


def interrupted(data_root, tiny_clip_path, out, capsys, stop="2.2", *extra):
    status, _, err = cli(args(data_root, out, tiny_clip_path, *extra), capsys, fault=f"sigterm@{stop}")
    assert status == 1, err[-3000:]


def test_resume_with_another_configuration_is_refused(data_root, tiny_clip_path, tmp_path, capsys, straight):
    out = tmp_path / "run"
    interrupted(data_root, tiny_clip_path, out, capsys)
    changed = args(data_root, out, tiny_clip_path, "OPTIM.LR", "0.5", "DATASET.SUBSAMPLE_CLASSES", "base")
    changed[changed.index("--seed") + 1] = "4"
    status, _, err = cli(changed, capsys)
    assert status == 2
    line = one_line(err)
    assert line.startswith("error: Cannot resume from ") and "another configuration" in line
    assert "OPTIM.LR (0.002 -> 0.5)" in line and "SEED (3 -> 4)" in line and "DATASET.SUBSAMPLE_CLASSES" in line
    # Keys that cannot change the result may differ: the run resumes to the same bits.
    same = args(data_root, out, tiny_clip_path, "DATALOADER.NUM_WORKERS", "2", "TRAIN.PRINT_FREQ", "1")
    status, _, err = cli(same, capsys)
    assert status == 0, err[-3000:]
    assert_same_run(straight("CoOp"), out)


def test_model_of_another_trainer_or_backbone_is_refused(data_root, tiny_clip_path, tmp_path, capsys, straight):
    from clipprompt.backbones.random_clip import save_random_clip
    from clipprompt.runs.feature_cache import file_digest

    trained = straight("CoOp")
    digest = file_digest(tiny_clip_path)
    assert weights(trained)["backbone_sha256"] == digest and metrics(trained)["backbone_sha256"] == digest
    (tmp_path / "other").mkdir()  # another CLIP under the same file name
    other_clip = save_random_clip(str(tmp_path / "other" / Path(tiny_clip_path).name), seed=1)
    cases = [
        ("CoOp", ["MODEL.BACKBONE.NAME", other_clip],
         f"was trained with backbone {tiny_clip_path} (sha256 {digest[:12]}), not {other_clip} "
         f"(sha256 {file_digest(other_clip)[:12]}): another CLIP (MODEL.BACKBONE.NAME)."),
        ("MPL", [], "was saved by trainer CoOp, not MPL."),
    ]
    for trainer, extra, message in cases:
        status, _, err = cli(args(data_root, tmp_path / "eval", tiny_clip_path, *extra, trainer=trainer,
                                  flags=["--eval-only", "--model-dir", str(trained)]), capsys)
        assert status == 2 and one_line(err).endswith(message), err[-2000:]
    assert not (tmp_path / "eval").exists()  # refused before the output folder was made
    # The same CLIP under another name is the same backbone.
    copy = tmp_path / "copy.pt"
    shutil.copy(tiny_clip_path, copy)
    status, _, err = cli(args(data_root, tmp_path / "copy", str(copy), flags=["--eval-only", "--model-dir", str(trained)]),
                         capsys)
    assert status == 0 and metrics(tmp_path / "copy")["metrics"] == metrics(trained)["metrics"], err[-2000:]
    # Base-trained weights evaluate on other classes (the base-to-new protocol).
    status, _, err = cli(args(data_root, tmp_path / "new", tiny_clip_path, "DATASET.SUBSAMPLE_CLASSES", "new",
                              flags=["--eval-only", "--model-dir", str(trained)]), capsys)
    assert status == 0, err[-2000:]


def test_resume_with_another_clip_under_the_same_name_is_refused(data_root, tiny_clip_path, tmp_path, capsys):
    from clipprompt.backbones.random_clip import save_random_clip
    from clipprompt.runs.feature_cache import file_digest

    clip = tmp_path / "clip.pt"
    shutil.copy(tiny_clip_path, clip)
    out = tmp_path / "run"
    interrupted(data_root, str(clip), out, capsys)
    before = file_digest(clip)
    save_random_clip(str(clip), seed=1)  # the file replaced by another CLIP
    status, _, err = cli(args(data_root, out, str(clip)), capsys)
    assert status == 2
    assert one_line(err) == (f"error: {out / 'model' / 'resume.pth.tar-2.2'} was trained with backbone {clip} "
                             f"(sha256 {before[:12]}), not {clip} (sha256 {file_digest(clip)[:12]}): another CLIP "
                             "(MODEL.BACKBONE.NAME).")


def earlier_release(state: dict) -> dict:
    """A checkpoint as the release before recorded configurations wrote it (Dassl's entries)."""
    return {key: state[key] for key in ("state_dict", "epoch", "optimizer", "scheduler", "val_result")}


def test_a_run_folder_of_an_earlier_release(data_root, tiny_clip_path, tmp_path, capsys, straight):
    trained = straight("CoOp")
    old = tmp_path / "old"
    (old / "model").mkdir(parents=True)
    torch.save({**earlier_release(weights(trained)), "epoch": 1}, old / "model" / "model.pth.tar-1")  # epoch 1 of 2
    # Resumed under a changed configuration, it would go on without a word: refused.
    status, stdout, err = cli(args(data_root, old, tiny_clip_path, "OPTIM.LR", "0.5"), capsys)
    assert status == 2 and "Resumed" not in stdout
    assert one_line(err) == (
        f"error: Cannot resume from {old / 'model' / 'model.pth.tar-1'}: it was written by an earlier release, which "
        "recorded no configuration, so a changed one (learning rate, classes, seed ...) cannot be detected; train "
        f"again in another --output-dir (or delete {old / 'model'})."
    )
    # Evaluated, but marked unverified (not counted as a finished training).
    torch.save(earlier_release(weights(trained)), old / "model" / "model.pth.tar-2")
    evaluated = tmp_path / "eval"
    status, stdout, err = cli(args(data_root, evaluated, tiny_clip_path, flags=["--eval-only", "--model-dir", str(old)]),
                              capsys)
    assert status == 0, err[-3000:]
    why = (f"{old / 'model' / 'model.pth.tar-2'} is a checkpoint of an earlier release, which recorded no "
           "configuration: its classes, backbone and whether its training finished are unchecked")
    assert f'Notice: {why}; result.json marks this evaluation "verified": false.\n' in stdout
    result = metrics(evaluated)
    assert result["verified"] is False and result["unverified_reason"] == why and "training_finished" not in result
    assert result["metrics"] == metrics(trained)["metrics"] and metrics(trained)["verified"] is True


def test_explicit_resume_of_nothing_is_an_error(data_root, tiny_clip_path, tmp_path, capsys):
    status, _, err = cli(args(data_root, tmp_path / "out", tiny_clip_path, flags=["--resume", str(tmp_path / "nope")]),
                         capsys)
    assert status == 2 and one_line(err) == f"error: --resume {tmp_path / 'nope'}: no such folder (give the output folder of the run to resume)."



def test_explicit_resume_of_a_folder_without_checkpoints_is_an_error(data_root, tiny_clip_path, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    status, _, err = cli(args(data_root, tmp_path / "out", tiny_clip_path, flags=["--resume", str(empty)]), capsys)
    assert status == 2 and one_line(err) == f"error: --resume {empty}: no checkpoint in {empty / 'model'}."


def test_resume_on_other_classes_is_refused(own_data_root, tiny_clip_path, tmp_path, capsys):
    out = tmp_path / "run"
    status, _, err = cli(args(own_data_root, out, tiny_clip_path), capsys, fault="sigterm@2.2")
    assert status == 1, err[-3000:]
    split_file = own_data_root / "caltech-101" / "split_zhou_Caltech101.json"  # the data changed since
    split_file.write_text(split_file.read_text().replace('"sea horse"', '"hippocampus"'))
    assert "hippocampus" in split_file.read_text()
    status, _, err = cli(args(own_data_root, out, tiny_clip_path), capsys)
    assert status == 2
    assert one_line(err) == (
        f"error: {out / 'model' / 'resume.pth.tar-2.2'} was trained on other classes (4: face, leopard, wild cat, "
        "sea horse) than this run's 4 (check the dataset and DATASET.SUBSAMPLE_CLASSES)."
    )


def test_a_sampler_that_cannot_resume_is_refused_under_torchrun(data_root, tiny_clip_path, tmp_path, capsys,
                                                                 monkeypatch):
    for name, value in (("WORLD_SIZE", "1"), ("RANK", "0"), ("LOCAL_RANK", "0")):  # torchrun, one process
        monkeypatch.setenv(name, value)
    out = tmp_path / "run"
    status, _, err = cli(args(data_root, out, tiny_clip_path, "DATALOADER.TRAIN_X.SAMPLER", "RandomClassSampler",
                              "DATALOADER.TRAIN_X.N_INS", "2"), capsys)
    assert status == 2
    assert one_line(err) == (
        "error: DATALOADER.TRAIN_X.SAMPLER 'RandomClassSampler' is not supported with torchrun; "
        "multi-process training draws random global batches (RandomSampler)."
    )
    assert not out.exists()


def test_a_signal_while_building_stops_at_once(data_root, tiny_clip_path, tmp_path, capsys, monkeypatch):
    import trainers.base

    def signalled(*args):
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(trainers.base, "check_input_size", signalled)
    out = tmp_path / "run"
    status, _, err = cli(args(data_root, out, tiny_clip_path), capsys)
    assert status == 1
    assert one_line(err) == "interrupted by SIGTERM; the same command resumes from the last checkpoint."
    assert not out.exists()

# ---- the run-folder lock -------------------------------------------------------------------


def test_a_live_run_folder_is_refused_and_a_dead_one_is_not(tmp_path):
    from clipprompt.runs.lock import RunFolderBusy, RunLock

    held = RunLock(tmp_path).acquire()
    with pytest.raises(RunFolderBusy, match=rf"{tmp_path} is in use by another run \(process {os.getpid()}\)"):
        RunLock(tmp_path).acquire()
    held.release()
    RunLock(tmp_path).acquire().release()
    # A process killed while holding it leaves no stale lock.
    code = f"from clipprompt.runs.lock import RunLock; import os; RunLock({str(tmp_path)!r}).acquire(); os._exit(9)"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=False)
    RunLock(tmp_path).acquire().release()


def test_a_run_killed_with_its_loader_workers_alive_leaves_no_lock(data_root, tiny_clip_path, tmp_path, straight):
    """SIGKILL reaches the run, not its workers, which live on for a moment: the lock is not theirs."""
    out = tmp_path / "run"
    argv = args(data_root, out, tiny_clip_path, "DATALOADER.NUM_WORKERS", "2", *EVERY_STEP)
    code, _, _ = forked(argv, tmp_path, fault="sigkill@1.2")
    assert code == -signal.SIGKILL
    code, stdout, err = forked(argv, tmp_path)  # at once: the orphaned workers have not noticed yet
    assert code == 0, err[-3000:]
    assert "continuing at epoch 1, step 2" in stdout  # the checkpoint after step 1 (the kill came before step 2's)
    assert_same_run(straight("CoOp"), out)


def test_a_forked_child_does_not_hold_the_lock(tmp_path):
    from clipprompt.runs.lock import RunLock

    held = RunLock(tmp_path).acquire()
    ready, started = os.pipe()
    pid = os.fork()
    if pid == 0:  # a child (a loader worker) that outlives its parent's release
        os.write(started, b"1")
        time.sleep(3)
        os._exit(0)
    try:
        assert os.read(ready, 1) == b"1"  # the child runs
        held.release()
        RunLock(tmp_path).acquire().release()  # free while the child still lives
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_two_identical_commands_started_together(data_root, tiny_clip_path, tmp_path):
    out = tmp_path / "run"
    argv = args(data_root, out, tiny_clip_path, "OPTIM.MAX_EPOCH", "2", *EVERY_STEP)
    results = [wait() for wait in [forked(argv, tmp_path, wait=False) for _ in range(2)]]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], [r[2][-2000:] for r in results]
    loser = next(err for code, _, err in results if code == 2)
    line = one_line(loser)
    assert "is in use by another run" in line or "already holds a finished run" in line, line
    assert [p.name for p in out.glob("log.txt*")] == ["log.txt"]  # one writer, one log


# ---- unusable checkpoints and a full disk ----------------------------------------------------


def test_truncated_latest_checkpoint_falls_back_to_the_previous(data_root, tiny_clip_path, tmp_path, capsys,
                                                                 straight):
    out = tmp_path / "run"
    interrupted(data_root, tiny_clip_path, out, capsys, "2.2", "TRAIN.CHECKPOINT_FREQ", "1")
    latest = out / "model" / "resume.pth.tar-2.2"
    latest.write_bytes(latest.read_bytes()[:500])
    argv = args(data_root, out, tiny_clip_path, "TRAIN.CHECKPOINT_FREQ", "1")
    status, stdout, err = cli(argv, capsys)
    assert status == 0, err[-3000:]
    assert f"Cannot read checkpoint {latest}" in stdout and "Falling back to the previous checkpoint" in stdout
    assert "continuing at epoch 2\n" in stdout
    assert_same_run(straight("CoOp"), out)


def test_no_usable_checkpoint_names_the_file(data_root, tiny_clip_path, tmp_path, capsys):
    out = tmp_path / "run"
    interrupted(data_root, tiny_clip_path, out, capsys)
    latest = out / "model" / "resume.pth.tar-2.2"
    latest.write_bytes(b"garbage")
    status, _, err = cli(args(data_root, out, tiny_clip_path), capsys)
    assert status == 2
    line = one_line(err)
    assert line.startswith(f"error: Cannot read checkpoint {latest} (") and "No earlier checkpoint is usable" in line


def test_disk_full_while_saving(data_root, tiny_clip_path, tmp_path, capsys, monkeypatch, straight):
    import clipprompt.runs.checkpoint as checkpoint

    calls = []
    original = checkpoint.write_bytes

    def fill_up(f, data):
        calls.append(1)
        if len(calls) == 2:
            f.write(bytes(data)[:100])
            raise OSError(errno.ENOSPC, "No space left on device")
        original(f, data)

    monkeypatch.setattr(checkpoint, "write_bytes", fill_up)
    out = tmp_path / "run"
    argv = args(data_root, out, tiny_clip_path)
    status, _, err = cli(argv, capsys)
    assert status == 1
    final = out / "model" / "model.pth.tar-2"
    assert one_line(err) == (f"error: disk full while writing {final}; the previous checkpoint is intact; "
                             "the same command resumes once there is space.")
    assert sorted(os.listdir(out / "model")) == ["checkpoint", "model.pth.tar-1"]
    assert "disk full while writing" in (out / "log.txt").read_text()
    monkeypatch.setattr(checkpoint, "write_bytes", original)
    status, _, err = cli(argv, capsys)
    assert status == 0, err[-3000:]
    assert_same_run(straight("CoOp"), out)



def test_disk_full_while_writing_the_result(data_root, tiny_clip_path, tmp_path, capsys, monkeypatch, straight):
    import clipprompt.results.result_file as results

    def full(path, write):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    original = results.atomic_write
    monkeypatch.setattr(results, "atomic_write", full)
    out = tmp_path / "run"
    argv = args(data_root, out, tiny_clip_path)
    status, _, err = cli(argv, capsys)
    assert status == 1
    assert one_line(err) == (f"error: disk full while writing {out / 'result.json'} (No space left on device); the last "
                             "checkpoint is intact; the same command resumes once there is space.")
    monkeypatch.setattr(results, "atomic_write", original)
    status, stdout, err = cli(argv, capsys)
    assert status == 0, err[-3000:]
    assert "continuing at epoch 3" in stdout  # nothing left to train: the evaluation runs again
    assert_same_run(straight("CoOp"), out)

# ---- never silently wrong ------------------------------------------------------------------


def test_non_finite_loss_stops_the_run(data_root, tiny_clip_path, tmp_path, capsys):
    out = tmp_path / "run"
    status, stdout, err = cli(args(data_root, out, tiny_clip_path), capsys, fault="nan@1.2")
    assert status == 1
    assert one_line(err) == (
        "error: the loss is nan at epoch 2, step 2 (5 steps in a row); the run stopped, its last good checkpoint "
        "is kept and no result was written; try a lower OPTIM.LR, or TRAINER.<NAME>.PREC fp32."
    )
    assert "Non-finite loss at epoch 1, step 2: step skipped" in stdout
    assert not (out / "result.json").exists()
    kept = torch.load(out / "model" / "model.pth.tar-1", weights_only=True)["state_dict"]
    assert all(torch.isfinite(v).all() for v in kept.values())


def test_huge_learning_rate_is_not_reported_as_a_result(data_root, tiny_clip_path, tmp_path, capsys):
    out = tmp_path / "run"
    status, _, err = cli(args(data_root, out, tiny_clip_path, "OPTIM.LR", "1e30", "OPTIM.MAX_EPOCH", "4"), capsys)
    assert status == 1 and "steps in a row); the run stopped" in one_line(err)
    assert not (out / "result.json").exists()


def test_eval_only_of_an_unfinished_run(data_root, tiny_clip_path, tmp_path, capsys, straight):
    out = tmp_path / "run"
    interrupted(data_root, tiny_clip_path, out, capsys, "1.4")  # epoch 1 of 2 saved
    evaluated = tmp_path / "eval"
    eval_args = ["--eval-only", "--model-dir", str(out)]
    status, _, err = cli(args(data_root, evaluated, tiny_clip_path, flags=eval_args), capsys)
    assert status == 2
    assert one_line(err) == (
        f"error: {out} holds an unfinished training run (epoch 1 of 2 finished); run its training command again "
        "to finish it, or evaluate epoch 1 with --load-epoch 1."
    )

    status, stdout, err = cli(args(data_root, evaluated, tiny_clip_path, "DATALOADER.NUM_WORKERS", "512",
                                   flags=[*eval_args, "--load-epoch", "1", "--protocol", "base2new"]), capsys)
    assert status == 0, err[-3000:]
    assert "DATALOADER.NUM_WORKERS 512 is more than the " in stdout
    assert "Caltech101, all classes (4), 4 shots, seed 3: accuracy " in stdout
    assert stdout.rstrip().endswith(f"Result written to {evaluated / 'result.json'}")
    assert metrics(evaluated)["training_finished"] is False and metrics(evaluated)["max_epoch"] == 2
    assert metrics(evaluated)["protocol"] == "base2new"
    assert metrics(straight("CoOp"))["training_finished"] is True



def test_eval_only_of_a_finished_best_val_run(data_root, tiny_clip_path, tmp_path, capsys):
    out, evaluated = tmp_path / "run", tmp_path / "eval"
    best_val = ("TEST.FINAL_MODEL", "best_val", "OPTIM.LR", "1e-12")  # equal val accuracies: epoch 1 stays best
    status, _, err = cli(args(data_root, out, tiny_clip_path, *best_val), capsys)
    assert status == 0, err[-3000:]
    assert metrics(out)["epoch"] == 1 and metrics(out)["training_finished"] is True
    status, stdout, err = cli(args(data_root, evaluated, tiny_clip_path, *best_val,
                                   flags=["--eval-only", "--model-dir", str(out)]), capsys)
    assert status == 0, err[-3000:]
    assert f"Loaded {out / 'model' / 'model-best.pth.tar'} (epoch 1)\n" in stdout
    assert metrics(evaluated)["training_finished"] is True and metrics(evaluated)["max_epoch"] == 2

# ---- output folders ------------------------------------------------------------------------


def test_output_dir_that_is_a_file(data_root, tiny_clip_path, tmp_path, capsys):
    file = tmp_path / "file"
    file.write_text("x")
    for out, message in ((file, f"error: --output-dir {file} is a file, not a folder; choose another --output-dir."),
                         (file / "run", f"error: --output-dir {file / 'run'} cannot be created: {file} is a file, not a folder.")):
        status, _, err = cli(args(data_root, out, tiny_clip_path), capsys)
        assert status == 2 and one_line(err).startswith(message)


def test_unwritable_output_dir_is_found_before_any_work(data_root, tiny_clip_path, tmp_path, capsys, monkeypatch):
    import tempfile

    out = tmp_path / "run"
    (out / "model").mkdir(parents=True)

    def read_only(*args, dir=None, **kwargs):
        if Path(dir) == out / "model":
            raise OSError(errno.EROFS, "Read-only file system")
        return real(*args, dir=dir, **kwargs)

    real = tempfile.TemporaryFile
    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    status, stdout, err = cli(args(data_root, out, tiny_clip_path), capsys)
    assert status == 2
    assert one_line(err) == f"error: --output-dir {out} is not writable: cannot write in {out / 'model'} (Read-only file system)."
    assert "Loading CLIP" not in stdout


def test_input_error_leaves_no_output_folder(tiny_clip_path, tmp_path, capsys):
    out = tmp_path / "run"
    status, _, err = cli(args(tmp_path / "no-data", out, tiny_clip_path), capsys)
    assert status == 2 and "caltech-101" in one_line(err)
    assert not out.exists()


# ---- bad data (earlier tests) -----------------------------------------------------------------


def corrupt_a_training_image(data_root):
    split = json.loads((data_root / "caltech-101" / "split_zhou_Caltech101.json").read_text())
    path = data_root / "caltech-101" / "101_ObjectCategories" / split["train"][0][0]
    path.write_bytes(b"not an image")
    return path


@pytest.fixture
def own_data_root(tmp_path):
    root = tmp_path / "data"
    make_tiny_dataset(str(root), "Caltech101", num_classes=4, images_per_class=24)
    return root


@pytest.mark.parametrize("workers", ["0", "2"])  # with workers, torch re-raises it wrapped in the worker's traceback
def test_unreadable_image_stops_with_its_path(own_data_root, tmp_path, tiny_clip_path, capsys, workers):
    bad = corrupt_a_training_image(own_data_root)
    status, _, err = cli(args(own_data_root, tmp_path / "out", tiny_clip_path, "DATASET.NUM_SHOTS", "24",
                              "DATALOADER.NUM_WORKERS", workers), capsys)
    assert status == 2
    assert f"error: Cannot read image {bad}" in err and "SKIP_BAD_IMAGES" in err
    assert "Traceback" not in err
    assert one_line(err).startswith(f"error: Cannot read image {bad} (UnidentifiedImageError: ")
    assert one_line(err).endswith("or set DATALOADER.SKIP_BAD_IMAGES True to skip unreadable images.")
    # Its workers (which ignore SIGTERM) are stopped: multiprocessing's exit would wait for them forever.
    assert not multiprocessing.active_children()



def test_a_split_without_a_readable_image(own_data_root, tmp_path, tiny_clip_path, capsys):
    split = json.loads((own_data_root / "caltech-101" / "split_zhou_Caltech101.json").read_text())
    for row in split["train"]:
        (own_data_root / "caltech-101" / "101_ObjectCategories" / row[0]).write_bytes(b"not an image")
    argv = args(own_data_root, tmp_path / "out", tiny_clip_path, "DATASET.NUM_SHOTS", "1",
                "DATALOADER.SKIP_BAD_IMAGES", "True")
    status, _, err = cli(argv, capsys)
    assert status == 2
    assert one_line(err) == "error: No image of this split can be read."

def test_unreadable_image_is_skipped_when_asked(own_data_root, tmp_path, tiny_clip_path):
    """The notice is a log line of the main process (the image is read in a worker), which no
    warnings filter hides."""
    bad = corrupt_a_training_image(own_data_root)
    out = tmp_path / "out"
    argv = args(own_data_root, out, tiny_clip_path, "OPTIM.MAX_EPOCH", "1", "DATASET.NUM_SHOTS", "24",
                "DATALOADER.SKIP_BAD_IMAGES", "True", "DATALOADER.NUM_WORKERS", "2")
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    run = subprocess.run([sys.executable, "train.py", *argv], cwd=REPO, capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    line = f"Skipped unreadable image {bad} (UnidentifiedImageError): training uses the next readable image in its place"
    assert run.stdout.count(line) == 1 and (out / "log.txt").read_text().count(line) == 1
    assert metrics(out)["skipped_images"] == 0  # the test set was read whole


def test_a_skipped_test_image_is_left_out_of_the_results(own_data_root, tmp_path, tiny_clip_path, capsys):
    """Counted as if the split did not list it: not replaced by its neighbour, counted twice."""
    split_file = own_data_root / "caltech-101" / "split_zhou_Caltech101.json"
    split = json.loads(split_file.read_text())
    without = tmp_path / "without"  # the same data, the image's entry removed from the split
    shutil.copytree(own_data_root, without)
    entry = split["test"][5]
    (without / "caltech-101" / "split_zhou_Caltech101.json").write_text(
        json.dumps({**split, "test": [row for row in split["test"] if row != entry]}))
    bad = own_data_root / "caltech-101" / "101_ObjectCategories" / entry[0]
    bad.write_bytes(b"not an image")

    skip = ("OPTIM.MAX_EPOCH", "1", "DATALOADER.SKIP_BAD_IMAGES", "True", "DATALOADER.TEST.BATCH_SIZE", "8")
    status, _, err = cli(args(without, tmp_path / "reference", tiny_clip_path, *skip), capsys)
    assert status == 0, err[-3000:]
    reference = metrics(tmp_path / "reference")
    line = f"Skipped unreadable image {bad} (UnidentifiedImageError): left out of the test results"
    for name, workers, flags in (("plain", "2", ["--no-feature-cache"]), ("cached", "0", []),
                                 ("from-cache", "0", ["--eval-only", "--model-dir", str(tmp_path / "cached")])):
        out = tmp_path / name
        status, stdout, err = cli(args(own_data_root, out, tiny_clip_path, *skip, "DATALOADER.NUM_WORKERS", workers,
                                       flags=flags), capsys)
        assert status == 0, err[-3000:]
        result = metrics(out)
        assert result["metrics"] == reference["metrics"], name
        assert result["num_images"] == reference["num_images"] == len(split["test"]) - 1
        assert result["skipped_images"] == 1 and result["skipped_image_files"] == [str(bad)]
        assert reference["skipped_images"] == 0 and reference["skipped_image_files"] == []
        log = (out / "log.txt").read_text()
        assert log.count(line) == 1 and stdout.count(line) == 1, name
        assert ("Frozen image features read from" in stdout) == (name == "from-cache")
        total = len(split["test"])
        assert f"1 unreadable image(s) left out of the test results ({total - 1} of {total} evaluated)" in log


def test_missing_images_are_named(own_data_root, tmp_path, tiny_clip_path, capsys):
    split = json.loads((own_data_root / "caltech-101" / "split_zhou_Caltech101.json").read_text())
    gone = [own_data_root / "caltech-101" / "101_ObjectCategories" / row[0] for row in split["test"][3:5]]
    for path in gone:
        path.unlink()
    status, _, err = cli(args(own_data_root, tmp_path / "out", tiny_clip_path), capsys)
    assert status == 2
    assert "2 of" in err and all(str(p) in err for p in gone)


def test_finished_run_is_not_overwritten(data_root, tmp_path, tiny_clip_path, capsys):
    out = tmp_path / "out"
    argv = args(data_root, out, tiny_clip_path, "OPTIM.MAX_EPOCH", "1")
    assert cli(argv, capsys)[0] == 0
    before = (out / "result.json").read_text()
    status, _, err = cli(argv, capsys)
    assert status == 2 and "already holds a finished run" in err and "--overwrite" in err
    assert (out / "result.json").read_text() == before
    status, stdout, _ = cli(args(data_root, out, tiny_clip_path, "OPTIM.MAX_EPOCH", "1", flags=["--overwrite"]), capsys)
    assert status == 0 and "removed the previous result" in stdout
    assert "No checkpoint found, train from scratch" in stdout


def test_same_seed_same_weights_other_seed_differs(data_root, tmp_path, tiny_clip_path, capsys):
    outs = []
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        out = tmp_path / name
        argv = args(data_root, out, tiny_clip_path, "OPTIM.MAX_EPOCH", "2")
        argv[argv.index("--seed") + 1] = seed
        assert cli(argv, capsys)[0] == 0
        outs.append(weights(out)["state_dict"]["ctx"])
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(outs[0], outs[2])


# ---- what a person sees on a terminal ------------------------------------------------------


@requires_dassl
def test_a_terminal_shows_a_progress_bar_with_eta_and_log_txt_keeps_plain_lines(data_root, tiny_clip_path, tmp_path):
    """train.py under a pseudo-terminal: tqdm bars (steps, ETA, loss, lr) on the screen, none in log.txt."""
    import fcntl
    import pty
    import select
    import struct
    import subprocess
    import sys
    import termios

    out = tmp_path / "run"
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))  # a terminal has a size
    env = {**os.environ, "PYTHONPATH": str(REPO), "TQDM_MININTERVAL": "0"}  # every step drawn, however fast
    argv = args(data_root, out, tiny_clip_path, flags=["--no-feature-cache"])  # so that evaluation reads images
    process = subprocess.Popen([sys.executable, str(REPO / "train.py"), *argv],
                               cwd=REPO, stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    screen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        screen += chunk
    os.close(master)
    assert process.wait(timeout=120) == 0, screen.decode(errors="replace")[-3000:]
    text = screen.decode(errors="replace")
    assert "epoch 1/2" in text and "epoch 2/2" in text  # one bar per epoch
    assert re.search(r"\d+/\d+ \[\d\d:\d\d<\d\d:\d\d", text), "no tqdm bar with elapsed<ETA"
    assert "loss=" in text and "acc=" in text
    for epoch in (1, 2):  # the line that stays when the epoch's bar is gone, on screen and in the log
        assert re.search(rf"\repoch {epoch}/2 done: loss [\d.]+, acc [\d.]+%, lr [\d.e-]+, 0:00:\d\d\r?\n", text)
    assert "Evaluating (test)" in text
    assert f"Result written to {out / 'result.json'}" in text
    assert re.search(r"Caltech101, all classes \(4\), 4 shots, seed 3: accuracy \d+\.\d\d", text)
    log = (out / "log.txt").read_text()
    assert "\r" not in log and "<00:" not in log  # the log file keeps plain lines
    assert "epoch [2/2] batch [" in log and "Result written to" in log
    assert re.search(r"^epoch 2/2 done: loss", log, re.M)
