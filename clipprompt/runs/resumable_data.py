"""A training data order that a resumed run can replay from any step, bit for bit (Dassl-free).

Two things make an epoch's data depend on more than (seed, epoch) in a plain DataLoader: the
sampler draws its permutation from the global RNG, and random augmentation consumes an RNG
whose state depends on everything before it (the main process's, or each worker's, whose
sequence of samples depends on the worker count). Here:

- `ResumableBatchSampler` (a `GlobalBatchSampler`) draws each epoch's order from (seed, epoch)
  and can start at any batch; it yields `(index, sample_seed)` pairs, the seed drawn from
  (seed, epoch, position in the epoch);
- `SeededSamples` seeds Python's, NumPy's and torch's RNGs with that seed before reading the
  sample (in the main process it puts Python's and torch's states back afterwards).

So every sample's augmentation is fixed by (seed, epoch, position): the same with 0 or N workers,
in one process or N under torchrun, straight through or resumed mid-epoch.
"""

from __future__ import annotations

import random
import signal
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from .distributed import GlobalBatchSampler, mix_seed


class ResumableBatchSampler(GlobalBatchSampler):
    """Seeded global batches (this rank's slice), from batch `start` of the epoch on."""

    def __init__(self, num_samples: int, batch_size: int, rank: int = 0, world_size: int = 1, seed: int = 0,
                 shuffle: bool = True):
        super().__init__(num_samples, batch_size, rank=rank, world_size=world_size, seed=seed)
        self.shuffle = shuffle
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def global_batches(self) -> list[list[int]]:
        if self.shuffle:
            return super().global_batches()
        n = self.global_batch
        return [list(range(i, i + n)) for i in range(0, self.num_samples - n + 1, n)]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        first = self.rank * self.local_batch
        n = self.global_batch
        for b, batch in enumerate(self.global_batches()):
            if b < self.start:
                continue
            positions = range(b * n + first, b * n + first + self.local_batch)
            indices = batch[first : first + self.local_batch]
            yield [(i, mix_seed(self.seed, self.epoch, p)) for i, p in zip(indices, positions)]

    def __len__(self) -> int:
        return super().__len__() - self.start


class SeededSamples(Dataset):
    """`dataset[index]` read with every RNG seeded from the sampler's per-sample seed."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item):
        index, seed = item
        in_worker = get_worker_info() is not None
        if not in_worker:  # the main process: leave the training step's RNG streams untouched
            saved = random.getstate(), torch.default_generator.get_state()
        random.seed(seed)
        np.random.seed(seed)  # NumPy's state is not put back (slow to copy); no training step draws from it
        torch.default_generator.manual_seed(seed)  # transforms run on the CPU
        try:
            return self.dataset[index]
        finally:
            if not in_worker:
                random.setstate(saved[0])
                torch.default_generator.set_state(saved[1])


def quiet_worker(worker_id: int) -> None:
    """Loader workers leave SIGINT/SIGTERM/SIGHUP to the main process, which stops them after saving."""
    from .stopping import SIGNALS

    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def stop_workers(batches) -> None:
    """Stop a loader iterator's `quiet_worker`s now, also when an exception ends the epoch.

    An error re-raised from a worker keeps the iterator alive in a reference cycle, so its workers
    would outlive the run; at exit multiprocessing stops them with SIGTERM, which they ignore, and
    the process would wait for them forever. (A no-op for an iterator without workers, or done.)"""
    shutdown = getattr(batches, "_shutdown_workers", None)  # torch's DataLoader iterator with workers
    if shutdown is not None:
        shutdown()
