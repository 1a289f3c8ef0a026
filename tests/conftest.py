"""Fixtures: a tiny random CLIP (built with clip's own classes) and its checkpoint file."""

import os
import tempfile

# Subprocesses (train.py, the scripts, torchrun) inherit this: tiny tensors run fastest on one
# thread, and parallel test processes do not oversubscribe the cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Frozen test-set features (clipprompt/feature_cache.py) go to a folder of this session, not ~/.cache.
os.environ.setdefault("CLIPPROMPT_FEATURE_CACHE", tempfile.mkdtemp(prefix="clipprompt-features-"))

import pytest
import torch

from clipprompt.random_clip import build_random_clip, save_random_clip

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
