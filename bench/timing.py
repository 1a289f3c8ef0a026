"""The one way every benchmark here measures time: warm-up, then the median and spread of N runs.

On CUDA each run is bracketed by `torch.cuda.synchronize`, so the time is the kernels', not the
launch's. The spread, (max - min) / median, says how much to trust a number on a busy machine.
"""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Timing:
    """Milliseconds per call over `runs` timed calls."""

    median_ms: float
    min_ms: float
    max_ms: float
    runs: int

    @property
    def spread(self) -> float:
        """(max - min) / median: 0.1 means the runs differed by 10% of the median."""
        return (self.max_ms - self.min_ms) / self.median_ms if self.median_ms else 0.0

    def per_second(self, items: int) -> float:
        """Throughput at the median time, e.g. images per second for `items` images per call."""
        return items / (self.median_ms / 1000)


def sync(device: torch.device | str) -> None:
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ms(fn: Callable[[], object], device: torch.device | str, runs: int, warmup: int = 1) -> Timing:
    """Call `fn` `warmup` times untimed, then `runs` times timed (at least once)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(1, runs)):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append((time.perf_counter() - start) * 1000)
    return Timing(statistics.median(times), min(times), max(times), len(times))


def reset_peak_memory(device: torch.device | str) -> None:
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mib(device: torch.device | str) -> float:
    """Peak allocated CUDA memory since the last reset; on the CPU the process's peak resident set."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
