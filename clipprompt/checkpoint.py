"""Checkpoints that are small, safe to load, and never half-written.

A checkpoint holds what was trained (not CLIP), the optimizer, scheduler and grad-scaler
state, the epoch, and the RNG states needed to resume exactly. It contains only tensors and
plain Python values, so it loads with `torch.load(weights_only=True)`. It is written to a
temporary file in the same folder and renamed into place, so a run killed while saving
leaves the previous checkpoint intact.

The layout is Dassl's: `<output>/<name>/model.pth.tar-<epoch>` plus a `checkpoint` file that
names the latest one, so the CoOp family's tools keep working.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError
from .fileio import atomic_write

LATEST_FILE = "checkpoint"
_EPOCH_FILE = re.compile(r"^model\.pth\.tar-(\d+)$")


def checkpoint_name(epoch: int) -> str:
    return f"model.pth.tar-{epoch}"


def save_checkpoint(directory: str | os.PathLike, state: dict[str, Any], epoch: int) -> str:
    """Write `state` as `<directory>/model.pth.tar-<epoch>` and mark it as the latest."""
    directory = Path(directory)
    path = directory / checkpoint_name(epoch)
    atomic_write(path, lambda tmp: torch.save(state, tmp))
    atomic_write(directory / LATEST_FILE, lambda tmp: Path(tmp).write_text(path.name + "\n"))
    return str(path)


def saved_epochs(directory: str | os.PathLike) -> list[int]:
    """Epochs with a checkpoint file in `directory`, ascending."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = (_EPOCH_FILE.match(p.name) for p in directory.iterdir())
    return sorted(int(m.group(1)) for m in found if m)


def latest_checkpoint(directory: str | os.PathLike) -> str | None:
    """The file the `checkpoint` marker names, else the highest epoch saved, else None."""
    directory = Path(directory)
    marker = directory / LATEST_FILE
    if marker.is_file():
        name = marker.read_text().strip()
        if name and (directory / name).is_file():
            return str(directory / name)
    epochs = saved_epochs(directory)
    return str(directory / checkpoint_name(epochs[-1])) if epochs else None


def find_checkpoint(directory: str | os.PathLike, epoch: int | None = None) -> str:
    """The checkpoint of `epoch` (the latest if None), or a CheckpointError listing what exists."""
    directory = Path(directory)
    path = latest_checkpoint(directory) if epoch is None else directory / checkpoint_name(epoch)
    if path is not None and Path(path).is_file():
        return str(path)
    epochs = saved_epochs(directory)
    wanted = "checkpoint" if epoch is None else f"checkpoint of epoch {epoch}"
    if epochs:
        have = "saved epochs: " + ", ".join(map(str, epochs))
    elif directory.is_dir():
        have = "the folder holds: " + (", ".join(sorted(p.name for p in directory.iterdir())) or "nothing")
    else:
        have = "the folder does not exist"
    raise CheckpointError(f"No {wanted} in {directory} ({have}).")


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint on the CPU with `weights_only=True`; unreadable files give one clear error."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"Checkpoint {path} does not exist.") from None
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"Cannot read checkpoint {path} ({first}); the file is truncated, corrupt, or not one of ours."
        ) from None
    if not isinstance(state, dict) or "state_dict" not in state:
        raise CheckpointError(f"{path} is not a checkpoint of this project (no 'state_dict' entry).")
    return state
