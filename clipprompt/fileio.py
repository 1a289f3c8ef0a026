"""Files written whole or not at all, readable by the user's group, and a file's sha256: torch-free, for
every writer and reader.

`atomic_write` writes to a temporary file in the destination folder and renames it into place,
so a run killed while saving leaves the previous file intact. `tempfile.mkstemp` creates files
with mode 0600; the result is given the mode a plain `open()` would (0666 less the umask), so
checkpoints and results are readable by the rest of a research group.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

_DIGESTS: dict[tuple, str] = {}


def default_file_mode() -> int:
    """0666 less the process umask: what `open(path, "w")` would create."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call `write(tmp_path)`, then rename the temporary file onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's content (memoised per path, size and modification time)."""
    stat = os.stat(path)
    memo = (str(path), stat.st_size, stat.st_mtime_ns)
    if memo not in _DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _DIGESTS[memo] = digest.hexdigest()
    return _DIGESTS[memo]
