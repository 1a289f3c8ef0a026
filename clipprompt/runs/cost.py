"""What a run cost, for result.json's `cost` block: wall times, throughput, peak memory, parameters.

Researchers compare methods by these as well as by accuracy. A resumed run carries its training
clock in the checkpoint (:class:`TrainingClock` is saved with the training state), so
`train_seconds` and `train_images` cover every segment of the run: steps done after a segment's
last checkpoint are lost with it and counted once, when the next segment does them again. Peak
memory is the process's, so for a resumed run it is that of the last segment (the one that
evaluated); CUDA's peak is counted from the trainer's start, RSS from the process's. Under
torchrun the numbers are rank 0's: its share of the images, its memory. torch is imported inside
the functions that need it.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

MIB = 2 ** 20


@dataclass
class TrainingClock:
    """Seconds spent in the training loop and images trained on, over every segment of a run."""

    seconds: float = 0.0  # carried from earlier segments, plus this one's so far once stopped
    images: int = 0
    segments: int = 0  # processes that trained this run (1 unless resumed)
    _started: float | None = field(default=None, repr=False)

    def start(self) -> None:
        self._started = time.monotonic()
        self.segments += 1

    def stop(self) -> None:
        self.seconds = self.elapsed()
        self._started = None

    def elapsed(self) -> float:
        return self.seconds + (time.monotonic() - self._started if self._started is not None else 0.0)

    @property
    def trained(self) -> bool:
        return self.segments > 0

    def state_dict(self) -> dict:
        """What a checkpoint keeps: the time so far, including the running segment's."""
        return {"seconds": self.elapsed(), "images": self.images, "segments": self.segments}

    def load_state_dict(self, state: dict) -> None:
        self.seconds = float(state.get("seconds", 0.0))
        self.images = int(state.get("images", 0))
        self.segments = int(state.get("segments", 0))


def peak_rss_mib() -> float | None:
    """The process's peak resident memory (MiB); None where the platform cannot say (Windows)."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MIB if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def reset_peak_gpu_memory(device) -> None:
    """Start CUDA's peak count afresh (a process that runs several trainings reports each one's own)."""
    import torch

    if getattr(device, "type", str(device)) == "cuda" and torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats(device)


def peak_gpu_mib(device) -> float | None:
    """CUDA's peak allocated memory on `device` (MiB); None on a CPU or any other device."""
    import torch

    if getattr(device, "type", str(device)) != "cuda" or not torch.cuda.is_available():
        return None
    return torch.cuda.max_memory_allocated(device) / MIB


def trainable_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def record(clock: TrainingClock, eval_seconds: float, model, device) -> dict:
    """result.json's `cost` block. Training fields are None where this run trained nothing (evaluation only)."""
    seconds = clock.elapsed() if clock.trained else None
    return {
        "train_seconds": seconds,
        "train_images": clock.images if clock.trained else None,
        "train_images_per_second": clock.images / seconds if seconds else None,
        "train_segments": clock.segments,
        "eval_seconds": eval_seconds,
        "peak_gpu_memory_mib": peak_gpu_mib(device),
        "peak_rss_mib": peak_rss_mib(),
        "trainable_parameters": trainable_parameters(model),
    }
