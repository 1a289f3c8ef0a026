"""One process per run folder: an advisory lock that the operating system releases when we die.

`fcntl.flock` on `<output>/.lock` is held for the whole run. A second process on the same folder
(two identical commands started together, a restarted driver while the old run still trains)
is refused in one line; a killed run leaves no stale lock, since the kernel drops it with the
process. The lock file holds the owner's pid, for the message.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ..errors import UserError

LOCK_FILE = ".lock"


class RunFolderBusy(UserError):
    """Another live process holds the run folder."""


class RunLock:
    def __init__(self, folder: str | os.PathLike):
        self.path = Path(folder) / LOCK_FILE
        self._file = None

    def acquire(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            owner = f.read().strip() or "unknown"
            f.close()
            raise RunFolderBusy(
                f"{self.path.parent} is in use by another run (process {owner}); wait for it to finish, "
                "stop it, or choose another --output-dir."
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._file = f
        return self

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing drops the flock
            self._file = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
