"""Each evaluation writes `result.json` beside its log: the numbers at full precision.

Dassl prints accuracy with one decimal and starts `log.txt-<timestamp>` when `log.txt`
exists, so tables built by parsing logs are fragile. `result.json` holds the metrics, what
was run (trainer, dataset, classes, shots, seed, backbone, the resolved config) and the git
commit of the code. Its presence also marks a run folder as finished for the scripts.
"""

from __future__ import annotations

import datetime
import json
import subprocess
from pathlib import Path
from typing import Any

from .fileio import atomic_write

RESULT_FILE = "result.json"


def git_commit(repo: str | Path | None = None) -> str | None:
    """The commit of the code in `repo` (this checkout by default), '+dirty' if modified; None outside git."""
    repo = Path(repo) if repo else Path(__file__).resolve().parent.parent
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


def write_result(output_dir: str | Path, metrics: dict[str, float], run: dict[str, Any], config: str) -> Path:
    """Write `<output_dir>/result.json` atomically and return its path."""
    record = {
        **run,
        "metrics": {k: float(v) for k, v in metrics.items()},
        "git_commit": git_commit(),
        "finished_at": datetime.datetime.now().isoformat(timespec="seconds"),
        "config": config,
    }
    path = Path(output_dir) / RESULT_FILE
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2) + "\n"))
    return path
