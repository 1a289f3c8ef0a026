"""Dassl's data loading, with one clear answer to an unreadable image.

Dassl's `DatasetWrapper` lets PIL's error escape from a loader worker as a long traceback.
Here an image that cannot be read either stops the run with one line naming the file
(`DATALOADER.SKIP_BAD_IMAGES False`, the default) or is skipped (`True`). An image that PIL
refuses for its size (more pixels than `PIL.Image.MAX_IMAGE_PIXELS`, PIL's decompression-bomb
guard, which only warns up to twice that) is unreadable like any other.

A skipped image's item is the next readable sample of the split (a batch keeps its shape and
Dassl's collation), marked in keys every item has: `skipped`, the unreadable file's path ("" for
a readable one), `skip_reason` (PIL's error class), and `counted`, False where the stand-in must
not be counted (an evaluation: the skipped image is absent from the results, not replaced by a
neighbour counted twice; training uses the stand-in). The marks travel in the batch because the reading happens in
loader workers: the main process (`ClipTrainer.note_skipped`) prints each skipped file once as a
log line, so it reaches `log.txt` and no warnings filter can hide it, and an evaluation records
them in `result.json`. Images are read by
`clipprompt.data.images.read_rgb`, which reads a 16-bit image as the image it is.
"""

from __future__ import annotations

import sys
import warnings

import torch
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
        skipped, reason = "", ""
        for offset in range(len(self)):
            index = (idx + offset) % len(self)
            try:
                item = super().__getitem__(index)
            except UNREADABLE as exc:
                path = self.data_source[index].impath
                if not self.cfg.DATALOADER.SKIP_BAD_IMAGES:
                    raise UnreadableImageError(
                        f"Cannot read image {path} ({type(exc).__name__}: {exc}); replace or remove it, "
                        "or set DATALOADER.SKIP_BAD_IMAGES True to skip unreadable images."
                    ) from None
                if offset == 0:  # this item's own image (a later unreadable one is reported by its own item)
                    skipped, reason = path, type(exc).__name__
                continue
            return {**item, "skipped": skipped, "skip_reason": reason, "counted": self.is_train or not skipped}
        raise UnreadableImageError("No image of this split can be read.")


def skipped_in(batch) -> list[tuple[str, str]]:
    """(path, error class) of the unreadable files that this batch's items stand in for."""
    return [(path, reason) for path, reason in zip(batch.get("skipped", ()), batch.get("skip_reason", ())) if path]


def counted_rows(batch) -> torch.Tensor | None:
    """Which rows of an evaluation batch count (a bool tensor), or None when all do."""
    counted = batch.get("counted")
    if counted is None or bool(torch.as_tensor(counted).all()):
        return None
    return torch.as_tensor(counted, dtype=torch.bool)
