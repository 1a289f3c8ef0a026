"""Dassl's data loading, with one clear answer to an unreadable image.

Dassl's `DatasetWrapper` lets PIL's error escape from a loader worker as a long traceback.
Here an image that cannot be read either stops the run with one line naming the file
(`DATALOADER.SKIP_BAD_IMAGES False`, the default) or is replaced by the next readable sample
of the split with a warning naming it (`True`). An image that PIL refuses for its size
(more pixels than `PIL.Image.MAX_IMAGE_PIXELS`, PIL's decompression-bomb guard, which only
warns up to twice that) is unreadable like any other.
"""

from __future__ import annotations

import warnings

from PIL import Image

from clipprompt.errors import UserError

from ._dassl import DatasetWrapper

# PIL's errors for broken, truncated, foreign or oversized files
UNREADABLE = (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning)


class UnreadableImageError(UserError):
    """An image file that PIL cannot open."""


def refuse_oversized_images() -> None:
    """Turn PIL's DecompressionBombWarning into an exception in this (loader) process.

    Installed once per process rather than around every read: entering `warnings.catch_warnings`
    per image would reset the once-per-location registry and repeat every other warning.
    """
    if not any(f[0] == "error" and f[2] is Image.DecompressionBombWarning for f in warnings.filters):
        warnings.filterwarnings("error", category=Image.DecompressionBombWarning)


class CheckedDatasetWrapper(DatasetWrapper):
    def __getitem__(self, idx):
        refuse_oversized_images()
        for offset in range(len(self)):
            index = (idx + offset) % len(self)
            try:
                return super().__getitem__(index)
            except UNREADABLE as exc:
                path = self.data_source[index].impath
                if not self.cfg.DATALOADER.SKIP_BAD_IMAGES:
                    raise UnreadableImageError(
                        f"Cannot read image {path} ({type(exc).__name__}: {exc}); replace or remove it, "
                        "or set DATALOADER.SKIP_BAD_IMAGES True to skip unreadable images."
                    ) from None
                warnings.warn(f"Skipping unreadable image {path} ({type(exc).__name__})", stacklevel=2)
        raise UnreadableImageError("No image of this split can be read.")
