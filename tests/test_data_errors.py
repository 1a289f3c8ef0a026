"""Missing or broken data fails with one message: the path, what belongs there, where to get it."""
from __future__ import annotations

import json
import os
import pickle
import shutil

import pytest

from clipprompt.data import DatasetError, build_splits
from clipprompt.errors import UserError
from clipprompt.testing import make_tiny_dataset, tiny_wnid


def _error(name: str, root) -> DatasetError:
    with pytest.raises(DatasetError) as info:
        build_splits(name, str(root))
    return info.value


def test_missing_dataset_folder(tmp_path):
    error = _error("Caltech101", tmp_path)
    assert error.path == str(tmp_path / "caltech-101")
    assert str(tmp_path / "caltech-101") in str(error)
    assert "DATASETS.md#caltech101" in str(error)
    assert "data.caltech.edu" in str(error)  # where to get the images


def test_missing_split_file_is_an_error_not_a_new_random_split(tmp_path):
    dataset_dir = make_tiny_dataset(tmp_path, "OxfordPets")
    split_path = dataset_dir / "split_zhou_OxfordPets.json"
    split_path.unlink()
    error = _error("OxfordPets", tmp_path)
    message = str(error)
    assert str(split_path) in message and "split file" in message
    assert "DATASETS.md#oxfordpets" in message and "drive.google.com" in message
    assert not split_path.exists()  # CoOp would have written a fresh random split here
    assert not (dataset_dir / "split_fewshot").exists()


def test_missing_image_folder(tmp_path):
    dataset_dir = make_tiny_dataset(tmp_path, "EuroSAT")
    shutil.rmtree(dataset_dir / "2750")
    error = _error("EuroSAT", tmp_path)
    assert error.path == str(dataset_dir / "2750")
    assert "image folder" in str(error) and "DATASETS.md#eurosat" in str(error)


def test_split_file_pointing_at_missing_images(tmp_path):
    """The usual mistake: archive extracted one level too deep or too shallow."""
    dataset_dir = make_tiny_dataset(tmp_path, "Food101")
    os.rename(dataset_dir / "images", dataset_dir / "images_old")
    (dataset_dir / "images").mkdir()
    error = _error("Food101", tmp_path)
    assert error.path.startswith(str(dataset_dir / "images"))
    assert "split_zhou_Food101.json" in str(error) and "DATASETS.md#food101" in str(error)


def test_malformed_split_file(tmp_path):
    dataset_dir = make_tiny_dataset(tmp_path, "UCF101")
    (dataset_dir / "split_zhou_UCF101.json").write_text(json.dumps({"train": [], "test": []}))
    error = _error("UCF101", tmp_path)
    assert "'val'" in str(error) and "DATASETS.md#ucf101" in str(error)


def test_inconsistent_class_names_in_split_file(tmp_path):
    dataset_dir = make_tiny_dataset(tmp_path, "SUN397", num_classes=2)
    path = dataset_dir / "split_zhou_SUN397.json"
    split = json.loads(path.read_text())
    split["test"][0][2] = "renamed"
    path.write_text(json.dumps(split))
    with pytest.raises(DatasetError, match="one class name per label"):
        build_splits("SUN397", str(tmp_path))


def test_missing_fgvc_list_file(tmp_path):
    dataset_dir = make_tiny_dataset(tmp_path, "FGVCAircraft")
    (dataset_dir / "images_variant_val.txt").unlink()
    error = _error("FGVCAircraft", tmp_path)
    assert error.path == str(dataset_dir / "images_variant_val.txt")
    assert "DATASETS.md#fgvcaircraft" in str(error)


def test_missing_imagenet_classnames(tmp_path):
    dataset_dir = make_tiny_dataset(tmp_path, "ImageNet")
    (dataset_dir / "classnames.txt").unlink()
    error = _error("ImageNet", tmp_path)
    assert error.path == str(dataset_dir / "classnames.txt") and "wnid" in str(error)


def test_variant_without_any_classnames_names_both_places(tmp_path):
    make_tiny_dataset(tmp_path, "ImageNetA")
    (tmp_path / "imagenet" / "classnames.txt").unlink()
    message = str(_error("ImageNetA", tmp_path))
    assert str(tmp_path / "imagenet-adversarial" / "classnames.txt") in message
    assert str(tmp_path / "imagenet" / "classnames.txt") in message
    assert "DATASETS.md#imageneta" in message


def test_variant_folder_unknown_to_classnames(tmp_path):
    dataset_dir = make_tiny_dataset(tmp_path, "ImageNetR", num_classes=2)
    shutil.copytree(dataset_dir / "imagenet-r" / tiny_wnid(1), dataset_dir / "imagenet-r" / "n99999999")
    with pytest.raises(DatasetError, match="n99999999"):
        build_splits("ImageNetR", str(tmp_path))


def test_imagenetv2_non_numeric_folder(tmp_path):
    dataset_dir = make_tiny_dataset(tmp_path, "ImageNetV2", num_classes=2)
    (dataset_dir / "imagenetv2-matched-frequency-format-val" / "extra").mkdir()
    with pytest.raises(DatasetError, match="'extra'"):
        build_splits("ImageNetV2", str(tmp_path))


def test_errors_are_user_errors_and_survive_pickling(tmp_path):
    error = _error("DescribableTextures", tmp_path)
    assert isinstance(error, UserError) and isinstance(error, RuntimeError)
    clone = pickle.loads(pickle.dumps(error))
    assert str(clone) == str(error) and clone.path == error.path
