"""Fixtures: a tiny random CLIP (built with clip's own classes) and its checkpoint file."""

import fcntl
import os
import shutil
import tempfile
from pathlib import Path

# Subprocesses (train.py, the scripts, torchrun) inherit this: tiny tensors run fastest on one
# thread, and parallel test processes do not oversubscribe the cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Frozen test-set features (clipprompt/feature_cache.py) go to a folder of this session, not ~/.cache.
os.environ.setdefault("CLIPPROMPT_FEATURE_CACHE", tempfile.mkdtemp(prefix="clipprompt-features-"))

import pytest
import torch

from clipprompt.backbones.random_clip import build_random_clip, save_random_clip

pytest_plugins = [
    "slurm_cluster",  # session fixture: a test SLURM
    "tiny_sweep",  # session fixture: the serial tiny sweep
    "ci_policy",  # a skip under CI=true fails; xdist schedules by group
]

# Tiny tensors: one thread is faster than many and leaves the other cores to other work.
torch.set_num_threads(1)


@pytest.fixture
def tiny_clip():
    """A fresh 3-layer ViT CLIP (width 128, 32px input), fp32, on the CPU."""
    return build_random_clip("tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_clip_path(tmp_path_factory) -> str:
    """The tiny CLIP saved as a state dict, to load through the real loading path."""
    return save_random_clip(str(tmp_path_factory.mktemp("clip") / "tiny_clip.pt"))


@pytest.fixture
def images():
    torch.manual_seed(0)
    return torch.randn(4, 3, 32, 32)


def built_once(tmp_path_factory, name: str, build) -> Path:
    """A folder that `build(folder)` fills once per test session, shared by every pytest-xdist worker
    (they take turns on a lock; the first builds, the others find it done)."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder, done = shared / name, shared / f"{name}.done"
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # what a failed build left
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


def pytest_configure(config):
    config.addinivalue_line("markers", "early: a test of a minute or more that needs no shared build: scheduled "
                                       "right after the tiny sweep's group, so that no worker ends the run alone on it")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items):
    """The tests that share the serial tiny sweep go first, as one group: under `-n` (--dist
    loadgroup, set in ci_policy) one worker builds the sweep and runs them while the others run
    everything else, instead of waiting on the sweep's lock. The longest tests that need no shared
    build (`early`: the launchers' own sweeps, which read the serial one's report only at their end)
    come next, so they start at once on the other workers."""
    shared = [item for item in items if "tiny_sweep" in item.fixturenames]
    for item in shared:
        item.add_marker(pytest.mark.xdist_group("tiny_sweep"))
    early = [item for item in items if item not in shared and item.get_closest_marker("early")]
    items[:] = shared + early + [item for item in items if item not in shared and item not in early]
