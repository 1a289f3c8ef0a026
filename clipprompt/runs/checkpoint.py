"""Checkpoints that are small, safe to load, never half-written, and kept within bounded disk.

A checkpoint holds what was trained (not CLIP), the optimizer, scheduler and grad-scaler
state, where the run stood, the RNG states and the resolved configuration (see
`clipprompt.runs.training_state`). It contains only tensors and plain Python values, so it loads with
`torch.load(weights_only=True)`. It is serialised in memory, written to a temporary file in the
same folder, flushed to disk and renamed into place: a run killed or out of disk while saving
leaves the previous checkpoint intact, and a full disk is one clear `DiskFull` error.

Layout, in `<output>/model/`:
- `model.pth.tar-<E>`: after epoch E (Dassl's name; `checkpoint` names the latest of these);
- `resume.pth.tar-<E>.<S>`: within epoch E, after step S (written every
  `TRAIN.CHECKPOINT_MINUTES`, and on SIGTERM/SIGINT).
Every run keeps a rolling checkpoint: each new one replaces the previous rolling one once it is
complete; the final epoch's and those `TRAIN.CHECKPOINT_FREQ` asks for are kept.
"""

from __future__ import annotations

import errno
import io
import os
import re
from pathlib import Path
from typing import Any, Callable

import torch

from . import faults
from ..errors import CheckpointError, DiskFull
from ..fileio import atomic_write
from .training_state import Progress

LATEST_FILE = "checkpoint"
_EPOCH_FILE = re.compile(r"^model\.pth\.tar-(\d+)$")
_PARTIAL_FILE = re.compile(r"^resume\.pth\.tar-(\d+)\.(\d+)$")
# Temporary files of our own writers (fileio.atomic_write names them .<name>.<random>.tmp).
_OUR_TEMPORARY = re.compile(r"^\.(model|resume|checkpoint|result\.json|model-best)[^/]*\.tmp$")


def checkpoint_name(epoch: int) -> str:
    return f"model.pth.tar-{epoch}"


def progress_name(progress: Progress) -> str:
    if progress.steps == 0:
        return checkpoint_name(progress.epochs)
    return f"resume.pth.tar-{progress.epochs + 1}.{progress.steps}"


def progress_of(name: str) -> Progress | None:
    """The progress a checkpoint file name stands for, None for other files."""
    if m := _EPOCH_FILE.match(name):
        return Progress(int(m.group(1)), 0)
    if m := _PARTIAL_FILE.match(name):
        return Progress(int(m.group(1)) - 1, int(m.group(2)))
    return None


def write_state(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Serialise `state` and write it atomically; a full disk raises `DiskFull` naming the file."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getbuffer()

    def write(tmp):
        with open(tmp, "wb") as f:
            write_bytes(f, data)
            f.flush()
            os.fsync(f.fileno())
        faults.during_save()

    try:
        atomic_write(path, write)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(
                f"disk full while writing {path}; the previous checkpoint is intact; the same command resumes "
                "once there is space."
            ) from None
        raise


def write_bytes(f, data) -> None:
    """The one place checkpoint bytes reach a file (tests patch it to simulate a full disk)."""
    f.write(data)


def save_checkpoint(directory: str | os.PathLike, state: dict[str, Any], epoch: int) -> str:
    """Write `state` as `<directory>/model.pth.tar-<epoch>` and mark it as the latest."""
    return save_progress(directory, state, Progress(epoch, 0))


def save_progress(
    directory: str | os.PathLike,
    state: dict[str, Any],
    progress: Progress,
    keep: Callable[[Progress], bool] = lambda p: True,
) -> str:
    """Write the checkpoint of `progress`, then remove older ones that `keep` does not keep.

    The `checkpoint` marker names the latest epoch-end file (what evaluation loads)."""
    directory = Path(directory)
    path = directory / progress_name(progress)
    write_state(path, state)
    if progress.steps == 0:
        atomic_write(directory / LATEST_FILE, lambda tmp: Path(tmp).write_text(path.name + "\n"))
    for older, older_path in saved_checkpoints(directory):
        if older < progress and not keep(older):
            older_path.unlink(missing_ok=True)
    return str(path)


def saved_checkpoints(directory: str | os.PathLike) -> list[tuple[Progress, Path]]:
    """Every checkpoint file in `directory` with its progress, newest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(progress_of(p.name), p) for p in directory.iterdir()]
    return sorted(((g, p) for g, p in found if g is not None), reverse=True)


def saved_epochs(directory: str | os.PathLike) -> list[int]:
    """Epochs with an epoch-end checkpoint file in `directory`, ascending."""
    return sorted(g.epochs for g, _ in saved_checkpoints(directory) if g.steps == 0)


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


def load_latest_usable(directory: str | os.PathLike, report=print) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint in `directory` that loads, saying which unreadable ones were passed over.

    None when there is no checkpoint; a CheckpointError naming the file and why when none loads."""
    candidates = saved_checkpoints(directory)
    if not candidates:
        return None
    failure = None
    for progress, path in candidates:
        try:
            return path, load_checkpoint(path)
        except CheckpointError as exc:
            failure = failure or exc
            report(f"{exc} Falling back to the previous checkpoint.")
    raise CheckpointError(f"{failure} No earlier checkpoint is usable; delete {directory} to start again.")


def remove_stale_temporaries(*directories: str | os.PathLike) -> list[Path]:
    """Delete temporary files that our writers leave when killed mid-save (call with the run lock held)."""
    removed = []
    for directory in directories:
        directory = Path(directory)
        if directory.is_dir():
            for p in directory.iterdir():
                if _OUR_TEMPORARY.match(p.name) and p.is_file():
                    p.unlink(missing_ok=True)
                    removed.append(p)
    return removed
