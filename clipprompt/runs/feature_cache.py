"""Frozen image features of a test set, computed once and reused across seeds, methods and parts.

A method whose image encoder stays frozen (ZeroshotCLIP, CoOp, CoCoOp, KgCoOp, TCP) computes the
same image features for a test set in every run: 3 seeds × every such method × every protocol
evaluate the same images through the same frozen ViT. Such a method says so by defining
`logits_from_image_features(features)`, where `forward` is `PromptedCLIP`'s
`logits_from_image_features(image_encoder(images))`; a class that overrides `forward` below the
class defining it (SEP, MPL, MaPLe, PromptSRC) is not trusted to be frozen.

A cache file holds the raw encoder outputs in their dtype plus the labels (and the unreadable
images an evaluation left out, `DATALOADER.SKIP_BAD_IMAGES`, so a read says which), under a key of
everything they depend on: the backbone file's content hash and kind (`openai-vit`, `openai-resnet`,
`openclip-vit`, ...: the library and image tower), the encoder (class, fused attention),
the dataset, split and its exact items (paths and labels, so the class subset and any subsampling),
the test transform and the precision. Beside them it holds the sha256 of the tensors' bytes: a file
whose stored key differs, that does not load, or whose tensors no longer match their checksum (a
damaged file that still loads) is rebuilt, never trusted. Writes are atomic, so concurrent runs at
worst compute it twice.

The cache is optional: it must never cost a result. Any error reading or writing it (a read-only
HOME, an unwritable or full folder, a file where the folder should be) is one line, and the
evaluation goes on with the features it computed.

Where: MODEL.FEATURE_CACHE_DIR, else $CLIPPROMPT_FEATURE_CACHE, else ~/.cache/clipprompt/features;
MODEL.FEATURE_CACHE False (train.py --no-feature-cache) turns it off.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from ..fileio import atomic_write, file_digest  # noqa: F401  (file_digest: the backbone's sha256)

CACHE_VERSION = 2  # 2: with the checksum of the tensors
ENV = "CLIPPROMPT_FEATURE_CACHE"


def default_dir() -> Path:
    return Path(os.environ.get(ENV) or os.path.expanduser("~/.cache/clipprompt/features"))


def _defined_in(cls: type, name: str) -> type | None:
    return next((c for c in cls.__mro__ if name in vars(c)), None)


def uses_frozen_features(model) -> bool:
    """True when `model`'s (a model or its class) logits come from frozen image features.

    A model that wraps another (DePT) answers for itself with `image_features_are_frozen()`."""
    if not isinstance(model, type) and hasattr(model, "image_features_are_frozen"):
        return model.image_features_are_frozen()
    cls = model if isinstance(model, type) else type(model)
    owner = _defined_in(cls, "logits_from_image_features")
    if owner is None:
        return False
    mro = cls.__mro__
    return mro.index(_defined_in(cls, "forward")) >= mro.index(owner)  # forward not overridden below it


def items_digest(items) -> str:
    """Digest of a Dassl data source's (impath, label) list with each file's size and modification
    time: the exact images, their order, and a re-written image file."""
    digest = hashlib.sha256()
    for item in items:
        try:
            stat = os.stat(item.impath)
            seen = f"{stat.st_size}\t{stat.st_mtime_ns}"
        except OSError:
            seen = "missing"
        digest.update(f"{item.impath}\t{item.label}\t{seen}\n".encode())
    return digest.hexdigest()


def tensors_digest(*tensors: Tensor, notes=()) -> str:
    """sha256 of tensors' dtypes, shapes and bytes (and JSON-able `notes`): what a cache file's content
    is checked against."""
    digest = hashlib.sha256(json.dumps(list(notes)).encode())
    for tensor in tensors:
        digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _reason(exc: BaseException) -> str:
    """An error in a few words: an OSError's strerror, else the first line of its message."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


class FeatureCache:
    """One test set's frozen features on disk, under `key` (a JSON-able dict)."""

    def __init__(self, directory: str | os.PathLike, key: dict):
        self.key = {"version": CACHE_VERSION, **key}
        name = hashlib.sha256(json.dumps(self.key, sort_keys=True).encode()).hexdigest()[:32]
        self.path = Path(directory) / f"{name}.pt"

    def load(self, report: Callable[[str], None] = print) -> tuple[Tensor, Tensor, list] | None:
        """(features, labels, skipped) when the file exists, was written under exactly this key and its
        tensors match their checksum; else None (with a line through `report` for a file that
        exists but cannot be used)."""
        try:
            stored = torch.load(self.path, map_location="cpu", weights_only=True)
        except OSError:  # absent, or the folder cannot be read: saving says so if it cannot write either
            return None
        except Exception as exc:  # torn or foreign
            report(f"Frozen image features in {self.path} cannot be read ({type(exc).__name__}): computing them anew")
            return None
        if not isinstance(stored, dict) or stored.get("key") != json.dumps(self.key, sort_keys=True):
            return None
        features, labels, skipped = stored.get("features"), stored.get("labels"), stored.get("skipped", [])
        if not (isinstance(features, Tensor) and isinstance(labels, Tensor)
                and stored.get("sha256") == tensors_digest(features, labels, notes=skipped)):
            report(f"Frozen image features in {self.path} do not match their checksum (a damaged file): computing them anew")
            return None
        return features, labels, skipped

    def save(self, features: Tensor, labels: Tensor, skipped=()) -> None:
        features, labels, skipped = features.cpu(), labels.cpu(), [list(entry) for entry in skipped]
        record = {"key": json.dumps(self.key, sort_keys=True), "features": features, "labels": labels,
                  "skipped": skipped, "sha256": tensors_digest(features, labels, notes=skipped)}
        atomic_write(self.path, lambda tmp: torch.save(record, tmp))

    def get(self, compute: Callable[[], tuple[Tensor, Tensor, list]],
            report: Callable[[str], None] = print) -> tuple[Tensor, Tensor, list, str]:
        """(features, labels, skipped, how): `how` is "read" (from disk), "written" (computed by
        `compute()` and stored) or "not cached" (computed; the file could not be written, which
        `report` says). `skipped`: the [path, error] of each unreadable image left out."""
        loaded = self.load(report)
        if loaded is not None:
            return (*loaded, "read")
        features, labels, skipped = compute()
        try:
            self.save(features, labels, skipped)
        except Exception as exc:  # any OSError (read-only, full, a file in the folder's place), torch's RuntimeError
            report(f"Frozen image features not cached: cannot write {self.path} ({_reason(exc)}); "
                   "evaluating without the cache")
            return features, labels, skipped, "not cached"
        return features, labels, skipped, "written"
