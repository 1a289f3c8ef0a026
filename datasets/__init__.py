"""Dassl glue: importing this package registers the 15 CoOp datasets."""
from .coop_datasets import REGISTERED, CoOpDataset

__all__ = ["CoOpDataset", "REGISTERED"]
