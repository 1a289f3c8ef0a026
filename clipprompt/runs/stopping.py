"""SIGTERM, SIGINT and SIGHUP (what SLURM, Ctrl-C and a dropped terminal or SSH session send) end
a run cleanly instead of with a traceback (SIGHUP's default would end it at once, with no checkpoint).

While steps run (`deferring()`), a signal only sets `requested`: the trainer finishes the current
step, saves its rolling checkpoint and raises `RunInterrupted`. Anywhere else (building, evaluating)
the signal raises `RunInterrupted` at once; so does a second signal while one is pending.
"""

from __future__ import annotations

import contextlib
import signal

from ..errors import RunInterrupted

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class StopRequests:
    def __init__(self):
        self.requested: str | None = None
        self._defer = False
        self._previous = {}

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self._defer and self.requested is None:
            self.requested = name
            return
        self.requested = name
        raise RunInterrupted(f"interrupted by {name}; the same command resumes from the last checkpoint.")

    def install(self) -> "StopRequests":
        for sig in SIGNALS:
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    @contextlib.contextmanager
    def deferring(self):
        self._defer = True
        try:
            yield
        finally:
            self._defer = False


NO_STOPS = StopRequests()  # a trainer used outside train.py: nothing installed, never requested
