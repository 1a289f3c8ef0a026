"""Multi-process training with `torchrun`: process group set-up and a global-batch sampler (Dassl-free).

`torchrun --nproc_per_node N train.py ...` starts N processes with `RANK`, `LOCAL_RANK` and
`WORLD_SIZE` set. The config's train batch size stays the GLOBAL batch: `GlobalBatchSampler` cuts
one permutation per epoch, drawn from (seed, epoch), into global batches and gives rank r the
r-th equal slice of each. DistributedDataParallel averages the ranks' gradients of their slice
mean losses, which is the gradient of the global-batch mean loss: N processes train the same
model as one, up to the order of float additions.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from ..errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands; `launched` is True under torchrun (WORLD_SIZE set), even for 1 process."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    launched: bool = False

    @classmethod
    def from_env(cls) -> "DistInfo":
        if "WORLD_SIZE" not in os.environ:
            return cls()
        return cls(
            rank=int(os.environ.get("RANK", 0)),
            local_rank=int(os.environ.get("LOCAL_RANK", 0)),
            world_size=int(os.environ["WORLD_SIZE"]),
            launched=True,
        )

    @property
    def distributed(self) -> bool:
        """More than one process: a process group exists and gradients are synchronised."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes logs, tensorboard, checkpoints and result.json."""
        return self.rank == 0


def init_distributed(use_cuda: bool) -> DistInfo:
    """Under torchrun with WORLD_SIZE > 1, join the process group: nccl with one GPU per
    LOCAL_RANK when CUDA is used, gloo on the CPU. A plain `python train.py` does nothing."""
    info = DistInfo.from_env()
    if use_cuda and info.launched:
        torch.cuda.set_device(info.local_rank)
    if info.distributed and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return info


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shared_seed(seed: int) -> int:
    """`seed` if fixed (>= 0), else a random one drawn by rank 0 and shared with every rank."""
    if seed >= 0:
        return seed
    value = [random.SystemRandom().randrange(2**31)]
    if dist.is_available() and dist.is_initialized():
        dist.broadcast_object_list(value, src=0)
    return value[0]


def mix_seed(*values: int) -> int:
    """One 32-bit seed from several non-negative integers (e.g. seed and epoch)."""
    return int(np.random.SeedSequence([int(v) for v in values]).generate_state(1)[0])


class GlobalBatchSampler(Sampler[list[int]]):
    """Rank `rank`'s slice of each global batch of one seeded permutation per epoch.

    Each epoch's permutation of `range(num_samples)` comes from a generator seeded with
    (seed, epoch) alone, so every rank, and a resumed run, draws the same one. It is cut into
    global batches of `batch_size`; the last, incomplete one is dropped, as Dassl does, unless the
    data set is smaller than one batch (then all of it is the one batch). Rank r gets elements
    [r*b, (r+1)*b) of each global batch, b = global batch / world size. Call `set_epoch` first.
    """

    def __init__(self, num_samples: int, batch_size: int, rank: int = 0, world_size: int = 1, seed: int = 0):
        if num_samples <= 0:
            raise ConfigError("The training set is empty.")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in a world of size {world_size}")
        self.global_batch = min(batch_size, num_samples)
        if self.global_batch % world_size:
            what = "DATALOADER.TRAIN_X.BATCH_SIZE" if batch_size <= num_samples else "the training set size"
            raise ConfigError(
                f"The global batch ({what}: {self.global_batch}) must be divisible by the number of "
                f"processes ({world_size}); choose a batch size that is a multiple of {world_size}."
            )
        self.num_samples, self.rank, self.world_size, self.seed = num_samples, rank, world_size, seed
        self.local_batch = self.global_batch // world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def global_batches(self) -> list[list[int]]:
        """The epoch's global batches (the same on every rank)."""
        generator = torch.Generator().manual_seed(mix_seed(self.seed, self.epoch))
        order = torch.randperm(self.num_samples, generator=generator).tolist()
        n = self.global_batch
        return [order[i : i + n] for i in range(0, len(order) - n + 1, n)]

    def __iter__(self) -> Iterator[list[int]]:
        start = self.rank * self.local_batch
        for batch in self.global_batches():
            yield batch[start : start + self.local_batch]

    def __len__(self) -> int:
        return self.num_samples // self.global_batch
