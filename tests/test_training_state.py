"""The Dassl-free core of resuming: checkpoint files, stored config, RNG, replayable data order, lock, log."""

import errno
import os
import random

import numpy as np
import pytest
import torch

import clipprompt.runs.checkpoint as checkpoint
from clipprompt.runs.checkpoint import (
    load_latest_usable,
    progress_name,
    progress_of,
    remove_stale_temporaries,
    save_progress,
    write_state,
)
from clipprompt.errors import CheckpointError, DiskFull
from clipprompt.runs.resumable_data import ResumableBatchSampler, SeededSamples
from clipprompt.runs.log import RunLog
from clipprompt.results.identity import differences as config_differences
from clipprompt.runs.training_state import Progress, rng_state, set_rng_state


def test_progress_names_round_trip_and_order():
    assert progress_name(Progress(2, 0)) == "model.pth.tar-2"
    assert progress_name(Progress(2, 7)) == "resume.pth.tar-3.7"
    assert progress_of("resume.pth.tar-3.7") == Progress(2, 7) and progress_of("model.pth.tar-2") == Progress(2, 0)
    assert progress_of("checkpoint") is None
    assert Progress(1, 0) < Progress(1, 5) < Progress(2, 0)


def test_rolling_checkpoints_keep_only_the_newest_and_the_kept(tmp_path):
    keep = lambda p: p.steps == 0 and p.epochs % 2 == 0  # noqa: E731  (as CHECKPOINT_FREQ 2)
    for progress in [Progress(0, 1), Progress(0, 2), Progress(1, 0), Progress(1, 3), Progress(2, 0), Progress(2, 1)]:
        save_progress(tmp_path, {"state_dict": {}, "p": list(progress.__dict__.values())}, progress, keep)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "model.pth.tar-2", "resume.pth.tar-3.1"]
    assert (tmp_path / "checkpoint").read_text().strip() == "model.pth.tar-2"  # the latest epoch-end file


def test_latest_unreadable_checkpoint_falls_back(tmp_path):
    save_progress(tmp_path, {"state_dict": {"x": torch.ones(1)}}, Progress(1, 0))
    save_progress(tmp_path, {"state_dict": {"x": torch.ones(1000)}}, Progress(1, 2))
    latest = tmp_path / "resume.pth.tar-2.2"
    latest.write_bytes(latest.read_bytes()[:300])
    said = []
    path, state = load_latest_usable(tmp_path, report=said.append)
    assert path.name == "model.pth.tar-1" and said and str(latest) in said[0] and "Falling back" in said[0]
    (tmp_path / "model.pth.tar-1").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"Cannot read checkpoint .*resume.pth.tar-2.2.*No earlier checkpoint"):
        load_latest_usable(tmp_path, report=said.append)
    assert load_latest_usable(tmp_path / "none") is None


def test_disk_full_is_one_error_and_leaves_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "model.pth.tar-1"
    write_state(path, {"state_dict": {"x": torch.zeros(3)}})
    before = path.read_bytes()

    def full(f, data):
        f.write(bytes(data)[:10])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "write_bytes", full)
    with pytest.raises(DiskFull, match=rf"^disk full while writing {path}; the previous checkpoint is intact"):
        write_state(path, {"state_dict": {"x": torch.ones(3)}})
    assert path.read_bytes() == before and os.listdir(tmp_path) == [path.name]


def test_stale_temporaries_of_our_writers_are_removed(tmp_path):
    ours = [tmp_path / ".resume.pth.tar-1.2.abc123.tmp", tmp_path / ".result.json.x1.tmp"]
    theirs = [tmp_path / ".other.tmp", tmp_path / "notes.tmp"]
    for p in ours + theirs:
        p.write_text("x")
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted(ours)
    assert all(p.exists() for p in theirs)


def test_config_differences_ignore_keys_that_cannot_change_the_result():
    stored = {"OPTIM.LR": 0.002, "SEED": 1, "DATALOADER.NUM_WORKERS": 4, "OUTPUT_DIR": "a", "INPUT.SIZE": [32, 32]}
    current = {**stored, "DATALOADER.NUM_WORKERS": 0, "OUTPUT_DIR": "b", "INPUT.SIZE": (32, 32)}
    assert config_differences(stored, current) == []
    current.update({"OPTIM.LR": 0.5, "SEED": 2})
    assert config_differences(stored, current) == ["OPTIM.LR (0.002 -> 0.5)", "SEED (1 -> 2)"]


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    path = tmp_path / "rng.pt"
    write_state(path, {"state_dict": {}, "rng": rng_state()})
    expected = random.random(), np.random.rand(), torch.rand(1)
    set_rng_state(torch.load(path, weights_only=True)["rng"])
    assert (random.random(), np.random.rand()) == expected[:2] and torch.equal(torch.rand(1), expected[2])


def test_batches_replay_from_any_step_and_split_over_ranks_as_one():
    full = ResumableBatchSampler(10, 4, seed=5)
    full.set_epoch(3)
    batches = list(full)
    assert len(batches) == 2 and len({i for b in batches for i, _ in b}) == 8  # last incomplete batch dropped
    resumed = ResumableBatchSampler(10, 4, seed=5)
    resumed.set_epoch(3, start=1)
    assert list(resumed) == batches[1:] and len(resumed) == 1
    ranks = [ResumableBatchSampler(10, 4, rank=r, world_size=2, seed=5) for r in range(2)]
    for r in ranks:
        r.set_epoch(3)
    assert [a + b for a, b in zip(*map(list, ranks))] == batches  # the same samples and seeds as one process
    other = ResumableBatchSampler(10, 4, seed=5)
    other.set_epoch(4)
    assert list(other) != batches
    sequential = ResumableBatchSampler(10, 4, seed=5, shuffle=False)
    assert [[i for i, _ in b] for b in sequential] == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_seeded_samples_fix_augmentation_and_leave_the_main_rng_alone():
    class Noisy:
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return torch.rand(1).item(), random.random(), np.random.rand()

    data = SeededSamples(Noisy())
    torch.manual_seed(0)
    before = torch.get_rng_state(), random.getstate()
    a = data[(1, 42)]
    assert torch.equal(torch.get_rng_state(), before[0]) and random.getstate() == before[1]
    assert data[(1, 42)] == a and data[(1, 43)] != a


def test_run_log_keeps_lines_until_attached_and_flushes_each(tmp_path, capsys):
    import sys

    log = RunLog(sys.stdout)
    log.write("before the folder exists\n")
    path = log.attach(str(tmp_path))
    log.write("after\n")
    assert open(path).read() == "before the folder exists\nafter\n"  # already on disk, file still open
    log.close()
    again = RunLog(sys.stdout)
    assert os.path.basename(again.attach(str(tmp_path))).startswith("log.txt-")
    again.close()
