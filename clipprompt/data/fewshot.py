"""Deterministic K-shot sampling with an on-disk cache.

The cache makes the exact images behind a reported number inspectable and
shareable. It stores paths relative to the image folder, so moving the data
root (or mounting it elsewhere on a cluster) does not invalidate it.
"""
from __future__ import annotations

import json
import logging
import os
import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from ..fileio import atomic_write
from .records import Record

logger = logging.getLogger(__name__)

MAX_VAL_SHOTS = 4  # CoOp caps the few-shot val split at 4 images per class
CACHE_VERSION = 1  # bump when sampling changes: caches of another version are redrawn


def sample_few_shot(records: Sequence[Record], num_shots: int, seed: int) -> list[Record]:
    """Pick ``num_shots`` records per class, or all of a class that has fewer.

    Uses a private ``random.Random(seed)`` so the result depends only on the
    inputs, never on what else touched the global RNG. ``num_shots < 1``
    returns every record.
    """
    if num_shots < 1:
        return list(records)
    by_label: dict[int, list[Record]] = defaultdict(list)
    for record in records:
        by_label[record.label].append(record)
    rng = random.Random(seed)
    sampled: list[Record] = []
    for label in sorted(by_label):
        items = by_label[label]
        sampled.extend(items if len(items) <= num_shots else rng.sample(items, num_shots))
    return sampled


def cache_path(cache_dir: str, num_shots: int, seed: int) -> str:
    """Where the K-shot split for one seed is cached (CoOp's naming, JSON instead of pickle)."""
    return os.path.join(cache_dir, f"shot_{num_shots}-seed_{seed}.json")


def _encode(records: Sequence[Record], image_dir: str) -> list[list]:
    return [[os.path.relpath(r.impath, image_dir), r.label, r.classname] for r in records]


def _key(impath: str, label: int, classname: str) -> tuple[str, int, str]:
    return os.path.normpath(impath), int(label), str(classname)


def _decode(rows: list[list], image_dir: str, pool: Sequence[Record]) -> list[Record] | None:
    """Map cached rows back onto ``pool``; None if any row is not in it."""
    index = {_key(r.impath, r.label, r.classname): r for r in pool}
    found = [index.get(_key(os.path.join(image_dir, rel), label, name)) for rel, label, name in rows]
    return None if any(r is None for r in found) else found


def _load(path: str, image_dir: str, train: Sequence[Record],
          val: Sequence[Record] | None) -> tuple[list[Record], list[Record] | None] | None:
    """Return the cached split, or None if it is unreadable or no longer matches the data."""
    try:
        with open(path, encoding="utf-8") as f:
            payload = json.load(f)
        if payload.get("version") != CACHE_VERSION:
            logger.warning("Few-shot cache %s was drawn by another sampler version (%s, now %s); recreating it",
                           path, payload.get("version"), CACHE_VERSION)
            return None
        cached_train = _decode(payload["train"], image_dir, train)
        cached_val = _decode(payload["val"], image_dir, val) if val is not None else []
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("Ignoring unreadable few-shot cache %s (%s)", path, exc)
        return None
    # A cache drawn from a different split file would silently change results.
    if cached_train is None or cached_val is None:
        logger.warning("Few-shot cache %s does not match the current split; recreating it", path)
        return None
    return cached_train, (cached_val if val is not None else None)


def load_or_create_few_shot(
    cache_dir: str,
    image_dir: str,
    train: Sequence[Record],
    val: Sequence[Record] | None,
    num_shots: int,
    seed: int,
) -> tuple[list[Record], list[Record] | None]:
    """Return the K-shot ``(train, val)``, reading or writing ``cache_dir``.

    Train gets ``num_shots`` per class and val ``min(num_shots, 4)``, as in
    CoOp. Pass ``val=None`` when val must stay untouched (ImageNet, whose val
    is the test set). ``num_shots < 1`` returns the inputs and caches nothing.
    A read-only data folder only costs the cache, not the run.
    """
    if num_shots < 1:
        return list(train), (list(val) if val is not None else None)

    path = cache_path(cache_dir, num_shots, seed)
    if os.path.isfile(path):
        cached = _load(path, image_dir, train, val)
        if cached is not None:
            logger.info("Loaded few-shot split from %s", path)
            return cached

    few_train = sample_few_shot(train, num_shots, seed)
    few_val = sample_few_shot(val, min(num_shots, MAX_VAL_SHOTS), seed) if val is not None else None
    payload = {
        "version": CACHE_VERSION,
        "num_shots": num_shots,
        "seed": seed,
        "train": _encode(few_train, image_dir),
        "val": _encode(few_val, image_dir) if few_val is not None else None,
    }
    try:
        atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(payload), encoding="utf-8"))
        logger.info("Saved few-shot split to %s", path)
    except OSError as exc:
        logger.warning("Could not cache few-shot split at %s (%s); continuing without it", path, exc)
    return few_train, (list(few_val) if few_val is not None else None)
