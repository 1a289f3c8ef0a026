"""Errors caused by the user's input rather than by a bug: `train.py` prints them as one line.

Each message names the problem and the fix; the command line shows it without a traceback
and exits with status 2. A `RunFault` (signal, full disk, non-finite loss) is one line with
status 1. Everything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input (config, data, backbone, checkpoint): shown as one clear line."""


class ConfigError(UserError, KeyError):
    """An unknown config key or a value the trainer cannot use."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class CheckpointError(UserError):
    """A checkpoint that is missing, truncated, or of another model."""


class RunFault(Exception):
    """A run stopped by something that happened while it ran (a signal, a full disk, a non-finite
    loss), not by its input: `train.py` prints it as one line and exits with status 1."""


class RunInterrupted(RunFault):
    """SIGTERM, SIGINT or SIGHUP: the rolling checkpoint was saved; the same command resumes."""


class DiskFull(RunFault):
    """No space left while writing a file; the previous checkpoint is intact."""


class NonFiniteLoss(RunFault):
    """The loss was NaN or infinite for several steps in a row."""
