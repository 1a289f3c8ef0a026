"""The run's `log.txt`: every line printed reaches the file as it is printed.

Dassl's logger never flushes, so a killed run leaves an empty log. `RunLog` replaces stdout with
a tee that writes and flushes each write. It starts before the output folder may be created (an
input error must leave no folder behind): lines printed until `attach` are kept in memory and
written first. Like Dassl, an existing `log.txt` is kept and the new log is `log.txt-<timestamp>`.
"""

from __future__ import annotations

import io
import os
import sys
import time


class RunLog(io.TextIOBase):
    def __init__(self, console=None):
        self.console = console if console is not None else sys.stdout
        self._pending: list[str] = []
        self.file = None
        self.path = None

    def write(self, text: str) -> int:
        self.console.write(text)
        if self.file is not None:
            try:
                self.file.write(text)
                self.file.flush()
            except OSError:  # a full disk must not turn every print into an error
                self.file = None
        elif self._pending is not None:
            self._pending.append(text)
        return len(text)

    def write_file_only(self, text: str) -> None:
        if self.file is not None:
            try:
                self.file.write(text)
                self.file.flush()
            except OSError:
                pass

    def flush(self) -> None:
        self.console.flush()

    @property
    def encoding(self):
        return getattr(self.console, "encoding", "utf-8")

    def isatty(self) -> bool:
        return self.console.isatty()

    def fileno(self) -> int:
        return self.console.fileno()

    def attach(self, folder: str) -> str:
        """Start writing `<folder>/log.txt` (or `log.txt-<timestamp>`), beginning with what was printed."""
        path = os.path.join(folder, "log.txt")
        if os.path.exists(path):
            path += time.strftime("-%Y-%m-%d-%H-%M-%S")
        self.file = open(path, "w", buffering=1)
        self.file.write("".join(self._pending))
        self.file.flush()
        self._pending = None
        self.path = path
        return path

    def mute(self) -> None:
        """Print nothing and keep nothing (a torchrun rank other than 0: rank 0's log is the run's)."""
        self.console, self._pending = open(os.devnull, "w"), None

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
