"""Dassl's data loading, with one clear answer to an unreadable image.

Dassl's `DatasetWrapper` lets PIL's error escape from a loader worker as a long traceback.
Here an image that cannot be read either stops the run with one line naming the file
(`DATALOADER.SKIP_BAD_IMAGES False`, the default) or is replaced by the next readable sample
of the split with a warning naming it (`True`).
"""

from __future__ import annotations

import warnings

from clipprompt.errors import UserError

from ._dassl import DatasetWrapper


class UnreadableImageError(UserError):
    """An image file that PIL cannot open."""


class CheckedDatasetWrapper(DatasetWrapper):
    def __getitem__(self, idx):
        for offset in range(len(self)):
            index = (idx + offset) % len(self)
            try:
                return super().__getitem__(index)
            except (OSError, SyntaxError, ValueError) as exc:  # PIL's errors for broken files
                path = self.data_source[index].impath
                if not self.cfg.DATALOADER.SKIP_BAD_IMAGES:
                    raise UnreadableImageError(
                        f"Cannot read image {path} ({type(exc).__name__}: {exc}); replace or remove it, "
                        "or set DATALOADER.SKIP_BAD_IMAGES True to skip unreadable images."
                    ) from None
                warnings.warn(f"Skipping unreadable image {path} ({type(exc).__name__})", stacklevel=2)
        raise UnreadableImageError("No image of this split can be read.")
