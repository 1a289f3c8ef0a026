"""Dassl's data loading, with one clear answer to an unreadable image.

Dassl's `DatasetWrapper` lets PIL's error escape from a loader worker as a long traceback.
Here an image that cannot be read either stops the run with one line naming the file
(`DATALOADER.SKIP_BAD_IMAGES False`, the default) or is replaced by the next readable sample
of the split with a warning naming it (`True`). An image that PIL refuses for its size
(more pixels than `PIL.Image.MAX_IMAGE_PIXELS`, PIL's decompression-bomb guard, which only
warns up to twice that) is unreadable like any other. Images are read by
`clipprompt.data.images.read_rgb`, which reads a 16-bit image as the image it is.
"""

from __future__ import annotations

import sys
import warnings

from PIL import Image

from clipprompt.data.images import read_rgb
from clipprompt.errors import UserError

from ._dassl import DatasetWrapper

# Dassl's DatasetWrapper reads every image through its module's `read_image` (PIL's convert("RGB"),
# which turns a 16-bit PNG white): the project's reader scales such images to 8 bits instead.
sys.modules[DatasetWrapper.__module__].read_image = read_rgb

# PIL's errors for broken, truncated, foreign or oversized files
UNREADABLE = (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning)


class UnreadableImageError(UserError):
    """An image file that PIL cannot open."""


def refuse_oversized_images() -> None:
    """Make PIL's DecompressionBombWarning an exception in this (loader) process.

    A filter installed once per process (again only if another filter now comes first), rather
    than `warnings.catch_warnings` around every read: entering that per image would reset the
    once-per-location registry and repeat every other warning of the run.
    """
    first = next((f for f in warnings.filters if issubclass(Image.DecompressionBombWarning, f[2])), None)
    if first is None or first[0] != "error":
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
