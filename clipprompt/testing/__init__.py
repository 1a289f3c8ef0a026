"""Helpers for tests: tiny on-disk datasets in the real CoOp layouts."""
from .tiny_datasets import make_tiny_dataset, make_tiny_descriptions, tiny_classnames, tiny_wnid

__all__ = ["make_tiny_dataset", "make_tiny_descriptions", "tiny_classnames", "tiny_wnid"]
