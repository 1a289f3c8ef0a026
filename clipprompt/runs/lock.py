"""One process per run folder: an advisory lock that dies with the run that took it.

`fcntl.flock` on `<output>/.lock` is held for the whole run. A second process on the same folder
(two identical commands started together, a restarted driver while the old run still trains)
is refused in one line; a killed run leaves no stale lock, since the kernel drops it with the
process. The lock file holds the owner's pid, for the message.

A flock belongs to the open file, and a forked child (a DataLoader worker) shares its parent's
open files: after a `kill -9` of the run its workers, which notice their parent's death only
seconds later, would keep the folder locked. So every forked child closes its copy at once
(`os.register_at_fork`); the lock stays the parent's alone. (POSIX record locks, `fcntl.lockf`,
are per process and not inherited, but two locks of one process never conflict and closing any
descriptor of the file drops them: an in-process second run would not be refused.)
"""

from __future__ import annotations

import fcntl
import os
import weakref
from pathlib import Path

from ..errors import UserError

LOCK_FILE = ".lock"
_HELD: "weakref.WeakSet[RunLock]" = weakref.WeakSet()


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
        _HELD.add(self)
        return self

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing drops the flock (once no forked child shares it: none does)
            self._file = None
        _HELD.discard(self)

    def _drop_in_child(self) -> None:
        """In a forked child: close the inherited descriptor (the parent keeps the lock)."""
        if self._file is not None:
            self._file.close()  # its buffer is empty (acquire flushed it)
            self._file = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _after_fork_in_child() -> None:
    for lock in list(_HELD):
        lock._drop_in_child()
    _HELD.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)
