"""Exceptions of the data layer.

Both are :class:`clipprompt.errors.UserError`, so ``train.py`` reports them as
one line instead of a traceback: they are caused by the user's data or
config, not by a bug.
"""
from __future__ import annotations

import os

from clipprompt.errors import UserError


class DataConfigError(UserError, ValueError):
    """A dataset setting that cannot work: unknown name, bad ``SUBSAMPLE_CLASSES``."""


class EmptyClassError(UserError, ValueError):
    """A class without (readable) training images where every class needs some (SEP's class means).

    Split validation rejects a class without training images before a run; this remains for
    classes whose every training image was skipped as unreadable (``DATALOADER.SKIP_BAD_IMAGES``).
    """


class DatasetError(UserError, RuntimeError):
    """A dataset file or folder is missing or unusable.

    The message always carries three things, so a user can fix the problem
    without reading our code: the path we looked at, what should be there,
    and where to get it (usually a ``DATASETS.md`` section).
    """

    def __init__(self, path: str | os.PathLike[str], expected: str, hint: str = "") -> None:
        # Pass every field to RuntimeError so the exception survives pickling
        # (e.g. when raised inside a DataLoader worker).
        super().__init__(os.fspath(path), expected, hint)
        self.path = os.fspath(path)
        self.expected = expected
        self.hint = hint

    def __str__(self) -> str:
        message = f"{self.path}: expected {self.expected}"
        if self.hint:
            message += f"; {self.hint}"
        return message


class MissingImageError(DatasetError):
    """An image that a split lists does not exist (the image folder is probably misplaced)."""


class PrepareError(UserError, RuntimeError):
    """A dataset could not be downloaded or unpacked; the message says why and what to do."""
