"""Base-to-new class splits (CoCoOp protocol).

Classes are split by sorted label: the first half (rounded up) are *base*
classes used for training, the rest are *new* classes seen only at test
time. Each half is relabelled to ``0..m-1`` so a model sees a plain
m-way problem.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from .errors import DataConfigError
from .records import Record

SUBSAMPLE_CHOICES = ("all", "base", "new")


def check_subsample(subsample: str) -> None:
    """Fail early, before any work, on a value other than all/base/new."""
    if subsample not in SUBSAMPLE_CHOICES:
        raise DataConfigError(
            f"subsample must be one of {', '.join(map(repr, SUBSAMPLE_CHOICES))}, got {subsample!r}"
        )


def select_labels(labels: Sequence[int], subsample: str) -> list[int]:
    """The sorted original labels kept by ``subsample``."""
    check_subsample(subsample)
    ordered = sorted(set(labels))
    if subsample == "all":
        return ordered
    half = math.ceil(len(ordered) / 2)
    return ordered[:half] if subsample == "base" else ordered[half:]


def subsample_classes(*splits: Sequence[Record], subsample: str = "all") -> tuple[list[Record], ...]:
    """Keep the ``subsample`` classes in every split and relabel them ``0..m-1``.

    The label set is the union over all splits. ``"all"`` returns the splits
    unchanged (as lists).
    """
    labels = {record.label for split in splits for record in split}
    selected = select_labels(list(labels), subsample)
    if subsample == "all":
        return tuple(list(split) for split in splits)
    if not selected:
        raise DataConfigError(
            f"subsample={subsample!r} selects no classes: the data has only "
            f"{len(labels)} class(es)"
        )
    new_label = {old: new for new, old in enumerate(selected)}
    return tuple(
        [dataclasses.replace(r, label=new_label[r.label]) for r in split if r.label in new_label]
        for split in splits
    )
