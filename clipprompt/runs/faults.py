"""Test-only fault injection: make a run fail at an exact moment, chosen by `CLIPPROMPT_FAULT`.

Real faults (a SIGKILL, a scheduler's SIGTERM, a NaN) arrive at moments a test cannot pick. With
`CLIPPROMPT_FAULT` set to comma-separated actions, the run produces one itself:

- `sigterm@E.S` / `sigint@E.S` / `sighup@E.S` / `sigkill@E.S`: send that signal to this process right
  after step S (1-based) of epoch E (1-based); `sigterm-group@E.S` / `sigint-group@E.S` /
  `sighup-group@E.S` send it to the whole process group (data-loader workers included), as Ctrl-C,
  SLURM and a closing terminal do;
- `sigkill@save:N`: SIGKILL in the middle of the N-th checkpoint save (its temporary file
  written, not yet renamed into place);
- `nan@E.S`: the loss of that step and every later one is NaN.

Unset (always, outside tests) it does nothing.
"""

from __future__ import annotations

import os
import signal

ENV = "CLIPPROMPT_FAULT"
_saves = 0


def _actions() -> list[tuple[str, str]]:
    spec = os.environ.get(ENV, "")
    return [tuple(part.split("@", 1)) for part in spec.split(",") if "@" in part]


def after_step(epoch: int, step: int) -> None:
    for action, where in _actions():
        name, _, group = action.partition("-")
        if name in ("sigterm", "sigint", "sighup", "sigkill") and where == f"{epoch}.{step}":
            if group:
                os.killpg(os.getpgrp(), getattr(signal, name.upper()))
            else:
                os.kill(os.getpid(), getattr(signal, name.upper()))


def reset() -> None:
    """Count saves from the start of a run (train.py calls it; a forked test child inherits the count)."""
    global _saves
    _saves = 0


def during_save() -> None:
    global _saves
    _saves += 1
    for action, where in _actions():
        if action == "sigkill" and where == f"save:{_saves}":
            os.kill(os.getpid(), signal.SIGKILL)


def forced_nan(epoch: int, step: int) -> bool:
    for action, where in _actions():
        if action == "nan":
            e, s = (int(v) for v in where.split("."))
            if (epoch, step) >= (e, s):
                return True
    return False
