"""Multi-process training with torchrun: the global-batch sampler, and 2 processes = 1 process."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from clipprompt.runs.distributed import GlobalBatchSampler
from clipprompt.errors import ConfigError
from clipprompt.testing import make_tiny_dataset
from clipprompt.testing.markers import requires_dassl

REPO = Path(__file__).resolve().parent.parent


# ---- the sampler (no Dassl) ----------------------------------------------------------------------


def rank_batches(num_samples, batch_size, world_size, seed=1, epoch=0):
    samplers = [GlobalBatchSampler(num_samples, batch_size, r, world_size, seed) for r in range(world_size)]
    for sampler in samplers:
        sampler.set_epoch(epoch)
    return [list(sampler) for sampler in samplers], samplers[0]


@pytest.mark.parametrize("num_samples, batch_size, world_size", [(22, 4, 2), (24, 8, 4), (10, 6, 3), (5, 8, 1)])
def test_each_global_batch_is_split_into_disjoint_equal_slices(num_samples, batch_size, world_size):
    per_rank, sampler = rank_batches(num_samples, batch_size, world_size)
    global_batches = sampler.global_batches()
    global_batch = min(batch_size, num_samples)
    assert len(global_batches) == num_samples // global_batch == len(sampler)
    for step, batch in enumerate(global_batches):
        slices = [per_rank[r][step] for r in range(world_size)]
        assert all(len(s) == global_batch // world_size for s in slices)
        assert sum(slices, []) == batch  # in order, disjoint, covering the global batch
    seen = [i for batch in global_batches for i in batch]
    assert len(set(seen)) == len(seen) and set(seen) <= set(range(num_samples))


def test_one_permutation_per_seed_and_epoch():
    def order(seed, epoch, world_size=1):
        return rank_batches(20, 4, world_size, seed, epoch)[1].global_batches()

    assert order(1, 0) == order(1, 0) == order(1, 0, world_size=2)  # the world size does not change it
    assert order(1, 0) != order(1, 1)
    assert order(1, 0) != order(2, 0)


def test_global_batch_must_divide_by_the_world_size():
    with pytest.raises(ConfigError, match="divisible by the number of processes"):
        GlobalBatchSampler(20, 6, rank=0, world_size=4)


# ---- torchrun end to end (needs Dassl) -----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def torchrun(nproc, data_root, out, clip_path, *extra):
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
        "--master_addr", "localhost", "--master_port", str(free_port()),
        "train.py", "--root", str(data_root), "--trainer", "CoOp", "--seed", "1",
        "--dataset-config-file", "configs/datasets/caltech101.yaml",
        "--config-file", "configs/trainers/CoOp/vit_b16_ep50.yaml", "--output-dir", str(out),
        "MODEL.BACKBONE.NAME", clip_path, "INPUT.SIZE", "(32, 32)", "INPUT.TRANSFORMS", '["normalize"]',
        "DATALOADER.NUM_WORKERS", "0", "DATALOADER.TRAIN_X.BATCH_SIZE", "4", "DATALOADER.TEST.BATCH_SIZE", "16",
        "OPTIM.MAX_EPOCH", "2", "DATASET.NUM_SHOTS", "4", *extra,
    ]
    env = {**os.environ, "PYTHONWARNINGS": "ignore::UserWarning", "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, timeout=300)


def finished(run):
    assert run.returncode == 0, f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return run


@requires_dassl
def test_two_processes_train_the_same_model_as_one(tmp_path, tiny_clip_path):
    data_root = tmp_path / "data"
    make_tiny_dataset(str(data_root), "Caltech101", num_classes=4, images_per_class=12)
    one, two = tmp_path / "one", tmp_path / "two"
    finished(torchrun(1, data_root, one, tiny_clip_path))
    run = finished(torchrun(2, data_root, two, tiny_clip_path))
    assert "torchrun: 2 process(es), global batch 4" in run.stdout

    a, b = (json.loads((out / "result.json").read_text()) for out in (one, two))
    assert a["metrics"] == b["metrics"] and a["epoch"] == b["epoch"] == 2
    ctx = [torch.load(out / "model" / "model.pth.tar-2", weights_only=True)["state_dict"]["ctx"] for out in (one, two)]
    torch.testing.assert_close(ctx[0], ctx[1], atol=1e-5, rtol=1e-5)
    assert sorted(os.listdir(two / "model")) == ["checkpoint", "model.pth.tar-2"]  # rank 0 alone wrote
    assert [p.name for p in two.glob("log.txt*")] == ["log.txt"]


@requires_dassl
def test_global_batch_not_divisible_by_the_processes_is_one_line(tmp_path, tiny_clip_path):
    data_root = tmp_path / "data"
    make_tiny_dataset(str(data_root), "Caltech101", num_classes=4, images_per_class=12)
    run = torchrun(2, data_root, tmp_path / "out", tiny_clip_path, "DATALOADER.TRAIN_X.BATCH_SIZE", "3")
    assert run.returncode != 0
    assert "must be divisible by the number of processes (2)" in run.stderr
