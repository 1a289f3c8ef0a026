"""Each evaluation writes `result.json` beside its log: the numbers at full precision.

Dassl prints accuracy with one decimal and starts `log.txt-<timestamp>` when `log.txt`
exists, so tables built by parsing logs are fragile. `result.json` holds the metrics, what
was run (trainer, dataset, classes, shots, seed, backbone, the resolved config), the git
commit of the code and, in `cost`, what the run cost (`clipprompt.runs.cost`, given by the trainer
in `run`). Its presence also marks a run folder as finished for the scripts.
"""

from __future__ import annotations

import datetime
import json
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from ..fileio import atomic_write

RESULT_FILE = "result.json"


def git_commit(repo: str | Path | None = None) -> str | None:
    """The commit of the code in `repo` (this checkout by default), '+dirty' if modified; None outside git."""
    repo = Path(repo) if repo else Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    """The software and hardware a result came from, so two result folders can be told apart.

    torch is imported here, not at module level: the report reads results without torch.
    """
    import torch

    cuda = torch.cuda.is_available()
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "cuda": torch.version.cuda,  # the CUDA torch was built with; None for a CPU build
        "cudnn": cudnn,
        "gpu": torch.cuda.get_device_name() if cuda else None,
        "gpu_count": torch.cuda.device_count() if cuda else 0,
        "clip": _version("clip-anytorch") or _version("clip"),
        "dassl": _version("dassl"),
        "numpy": _version("numpy"),
        "executable": sys.executable,
    }


def write_result(output_dir: str | Path, metrics: dict[str, float], run: dict[str, Any], config: str) -> Path:
    """Write `<output_dir>/result.json` atomically and return its path.

    `run` says what was run (trainer, dataset, shots, seed, and where known protocol, part and
    config name); the environment block is added here, so every caller records it.
    """
    record = {
        **run,
        "metrics": {k: float(v) for k, v in metrics.items()},
        "git_commit": git_commit(),
        "finished_at": datetime.datetime.now().isoformat(timespec="seconds"),
        "environment": environment(),
        "config": config,
    }
    path = Path(output_dir) / RESULT_FILE
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2) + "\n"))
    return path
