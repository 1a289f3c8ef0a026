"""Errors caused by the user's input rather than by a bug: `train.py` prints them as one line.

Each message names the problem and the fix; the command line shows it without a traceback
and exits with status 2. Everything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input (config, data, backbone, checkpoint): shown as one clear line."""


class ConfigError(UserError, KeyError):
    """An unknown config key or a value the trainer cannot use."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class CheckpointError(UserError):
    """A checkpoint that is missing, truncated, or of another model."""
