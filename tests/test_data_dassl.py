"""The Dassl glue in ``datasets/``: registration and ``build_dataset(cfg)``."""
from __future__ import annotations

import pytest

_REASON = "Dassl is not importable; the Dassl dataset glue is not tested"
for _module in ("dassl.config", "dassl.data.datasets"):
    pytest.importorskip(_module, reason=_REASON, exc_type=ImportError)

from dassl.config import get_cfg_default  # noqa: E402
from dassl.data.datasets import DATASET_REGISTRY, Datum, build_dataset  # noqa: E402

import datasets  # noqa: E402,F401  (registers the CoOp datasets)
from clipprompt.data import CATALOG  # noqa: E402
from clipprompt.testing import make_tiny_dataset, tiny_classnames  # noqa: E402


def _cfg(root, name, num_shots=-1, seed=1, subsample="all"):
    cfg = get_cfg_default()
    cfg.DATASET.ROOT = str(root)
    cfg.DATASET.NAME = name
    cfg.DATASET.NUM_SHOTS = num_shots
    cfg.SEED = seed
    if subsample is not None:
        cfg.DATASET.SUBSAMPLE_CLASSES = subsample
    cfg.VERBOSE = False
    return cfg


def test_all_15_datasets_are_registered():
    assert set(CATALOG) <= set(DATASET_REGISTRY.registered_names())
    for name, spec in CATALOG.items():
        cls = DATASET_REGISTRY.get(name)
        assert issubclass(cls, datasets.CoOpDataset)
        assert cls.__name__ == name and cls.spec is spec and cls.template == spec.template


def test_build_caltech101_through_dassl(tmp_path):
    make_tiny_dataset(tmp_path, "Caltech101", num_classes=4, images_per_class=6)
    dataset = build_dataset(_cfg(tmp_path, "Caltech101"))

    assert dataset.num_classes == 4
    assert dataset.classnames == tiny_classnames("Caltech101", 4)
    assert dataset.lab2cname == dict(enumerate(tiny_classnames("Caltech101", 4)))
    assert dataset.template == "a photo of a {}."
    assert (len(dataset.train_x), len(dataset.val), len(dataset.test)) == (12, 4, 8)
    for item in dataset.train_x + dataset.val + dataset.test:
        assert isinstance(item, Datum)
        assert item.impath.startswith(str(tmp_path / "caltech-101" / "101_ObjectCategories"))
        assert dataset.classnames[item.label] == item.classname


def test_few_shot_and_base_classes_through_dassl(tmp_path):
    make_tiny_dataset(tmp_path, "OxfordFlowers", num_classes=5, images_per_class=10)
    dataset = build_dataset(_cfg(tmp_path, "OxfordFlowers", num_shots=2, seed=3, subsample="base"))
    assert dataset.num_classes == 3
    assert dataset.classnames == tiny_classnames("OxfordFlowers", 5)[:3]
    assert sorted(d.label for d in dataset.train_x) == [0, 0, 1, 1, 2, 2]
    assert (tmp_path / "oxford_flowers" / "split_fewshot" / "shot_2-seed_3.json").is_file()


def test_missing_subsample_key_means_all(tmp_path):
    make_tiny_dataset(tmp_path, "EuroSAT", num_classes=3)
    cfg = _cfg(tmp_path, "EuroSAT", subsample=None)
    assert "SUBSAMPLE_CLASSES" not in cfg.DATASET
    assert build_dataset(cfg).num_classes == 3


def test_test_only_variant_uses_test_as_train_x(tmp_path):
    make_tiny_dataset(tmp_path, "ImageNetA", num_classes=3)
    dataset = build_dataset(_cfg(tmp_path, "ImageNetA", num_shots=16))
    assert dataset.train_x == dataset.test and len(dataset.test) == 18
    assert dataset.val is None
    assert dataset.classnames == tiny_classnames("ImageNetA", 3)


def test_missing_data_raises_dataset_error_through_dassl(tmp_path):
    from clipprompt.data import DatasetError

    with pytest.raises(DatasetError, match="DATASETS.md#stanfordcars"):
        build_dataset(_cfg(tmp_path, "StanfordCars"))
