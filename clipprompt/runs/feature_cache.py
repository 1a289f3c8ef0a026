"""Frozen image features of a test set, computed once and reused across seeds, methods and parts.

A method whose image encoder stays frozen (ZeroshotCLIP, CoOp, CoCoOp, KgCoOp, TCP) computes the
same image features for a test set in every run: 3 seeds × every such method × every protocol
evaluate the same images through the same frozen ViT. Such a method says so by defining
`logits_from_image_features(features)`, where `forward` is `PromptedCLIP`'s
`logits_from_image_features(image_encoder(images))`; a class that overrides `forward` below the
class defining it (SEP, MPL, MaPLe, PromptSRC) is not trusted to be frozen.

A cache file holds the raw encoder outputs in their dtype plus the labels, under a key of
everything they depend on: the backbone file's content hash, the encoder (class, fused attention),
the dataset, split and its exact items (paths and labels, so the class subset and any subsampling),
the test transform and the precision. A file whose stored key differs, or that does not load, is
rebuilt, never trusted. Writes are atomic, so concurrent runs at worst compute it twice.

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

from ..fileio import atomic_write

CACHE_VERSION = 1
ENV = "CLIPPROMPT_FEATURE_CACHE"
_DIGESTS: dict[tuple, str] = {}


def default_dir() -> Path:
    return Path(os.environ.get(ENV) or os.path.expanduser("~/.cache/clipprompt/features"))


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's content (memoised per path, size and modification time)."""
    stat = os.stat(path)
    memo = (str(path), stat.st_size, stat.st_mtime_ns)
    if memo not in _DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _DIGESTS[memo] = digest.hexdigest()
    return _DIGESTS[memo]


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


class FeatureCache:
    """One test set's frozen features on disk, under `key` (a JSON-able dict)."""

    def __init__(self, directory: str | os.PathLike, key: dict):
        self.key = {"version": CACHE_VERSION, **key}
        name = hashlib.sha256(json.dumps(self.key, sort_keys=True).encode()).hexdigest()[:32]
        self.path = Path(directory) / f"{name}.pt"

    def load(self) -> tuple[Tensor, Tensor] | None:
        """(features, labels) when the file exists and was written under exactly this key."""
        try:
            stored = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception:  # absent, torn or foreign: rebuild
            return None
        if not isinstance(stored, dict) or stored.get("key") != json.dumps(self.key, sort_keys=True):
            return None
        return stored["features"], stored["labels"]

    def save(self, features: Tensor, labels: Tensor) -> None:
        record = {"key": json.dumps(self.key, sort_keys=True), "features": features.cpu(), "labels": labels.cpu()}
        atomic_write(self.path, lambda tmp: torch.save(record, tmp))

    def get(self, compute: Callable[[], tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor, bool]:
        """(features, labels, hit): from disk, or computed by `compute()` and stored."""
        loaded = self.load()
        if loaded is not None:
            return (*loaded, True)
        features, labels = compute()
        self.save(features, labels)
        return features, labels, False
