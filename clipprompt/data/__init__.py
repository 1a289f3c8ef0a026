"""Dassl-free dataset layer: catalog, readers, few-shot sampling, base/new splits.

Nothing here imports Dassl; ``datasets/`` wraps :func:`build_splits` for it.
"""
from .build import DatasetSplits, build_splits, dataset_paths, read_raw_splits
from .catalog import CATALOG, DatasetSpec, Layout, get_spec
from .errors import DataConfigError, DatasetError, MissingImageError, PrepareError
from .fewshot import load_or_create_few_shot, sample_few_shot
from .records import Record, read_split_file
from .subsample import SUBSAMPLE_CHOICES, subsample_classes

__all__ = [
    "CATALOG",
    "DataConfigError",
    "DatasetError",
    "DatasetSpec",
    "DatasetSplits",
    "Layout",
    "MissingImageError",
    "PrepareError",
    "Record",
    "SUBSAMPLE_CHOICES",
    "build_splits",
    "dataset_paths",
    "get_spec",
    "load_or_create_few_shot",
    "read_raw_splits",
    "read_split_file",
    "sample_few_shot",
    "subsample_classes",
]
