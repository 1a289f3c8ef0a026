"""Missing or broken data fails with one message: the path, what belongs there, where to get it."""
from __future__ import annotations

import json
import os
import pickle
import shutil

import pytest

from clipprompt.data import DatasetError, build_splits, get_spec
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


# ---- split files are validated when read ------------------------------------------------------


def _edit_split(tmp_path, edit, name="Caltech101", num_classes=3):
    dataset_dir = make_tiny_dataset(tmp_path, name, num_classes=num_classes, images_per_class=4)
    path = dataset_dir / get_spec(name).split_file
    data = json.loads(path.read_text())
    text = edit(data)
    path.write_text(text if isinstance(text, str) else json.dumps(data))
    return path


@pytest.mark.parametrize("edit, expected", [
    (lambda d: '{"train": [\n  ["a.jpg", 0, "x"]\n  "b.jpg"]}', "not valid JSON: line 3, column 3: Expecting ',' delimiter"),
    (lambda d: "[]", "found a JSON list"),
    (lambda d: d.pop("val") and json.dumps(d), "a JSON object with 'train', 'val' and 'test' lists of "
     "[relative_path, label, classname]; it has no 'val' list"),
    (lambda d: d.__setitem__("test", {"a": 1}), "'test' is a JSON object"),
    (lambda d: d["train"][1].__setitem__(1, 1.5), "entry 1 of 'train' is [\"face/face_0002.jpg\", 1.5, \"face\"]"),
    (lambda d: d["train"][0].__setitem__(1, True), "entry 0 of 'train' is [\"face/face_0001.jpg\", true, \"face\"]"),
    (lambda d: d["val"].append(["face/face_0001.jpg", 0]), "entry 3 of 'val' is [\"face/face_0001.jpg\", 0]"),
    (lambda d: d["val"][0].__setitem__(1, -1), "expected labels >= 0, found label -1 for "),
    (lambda d: [e.__setitem__(1, 9) for k in d for e in d[k] if e[1] == 2],
     "expected labels 0..2 for its 3 class names, found label(s) 9 ('wild cat') while [2] name no class"),
])
def test_bad_split_files_are_one_line_naming_the_file(tmp_path, edit, expected):
    path = _edit_split(tmp_path, edit)
    error = _error("Caltech101", tmp_path)
    assert error.path == str(path) and expected in str(error)
    assert "DATASETS.md#caltech101" in str(error) and "\n" not in str(error)


def test_a_split_file_that_is_not_utf8_is_one_line_naming_the_file(tmp_path):
    path = _edit_split(tmp_path, lambda d: "")
    path.write_bytes(b'{"train": ["\xff"]}')
    error = _error("Caltech101", tmp_path)
    assert str(error).startswith(f"{path}: expected a readable UTF-8 JSON file ('utf-8' codec can't decode byte 0xff")
    assert error.path == str(path) and "\n" not in str(error)


def test_a_class_without_training_images_is_an_error_naming_it(tmp_path):
    _edit_split(tmp_path, lambda d: d.__setitem__("train", [e for e in d["train"] if e[1] != 1]))
    message = str(_error("Caltech101", tmp_path))
    assert "at least one training image for every class" in message
    assert "1 class(es) have none: 'leopard' (label 1)" in message


def test_a_class_without_test_images_is_a_warning(tmp_path):
    _edit_split(tmp_path, lambda d: d.__setitem__("test", [e for e in d["test"] if e[1] != 2]))
    with pytest.warns(UserWarning, match=r"no test image for 1 class\(es\): 'wild cat' \(label 2\); their accuracy"):
        splits = build_splits("Caltech101", str(tmp_path))
    assert splits["classnames"] == ["face", "leopard", "wild cat"]


def test_missing_data_root_names_the_prepare_command(tmp_path):
    from clipprompt.data.build import validate_dataset

    root = tmp_path / "nowhere"
    with pytest.raises(DatasetError) as info:
        validate_dataset("OxfordFlowers", str(root))
    message = str(info.value)
    assert message.startswith(f"{root}: expected the data root (--root / DATASET.ROOT '{root}') holding oxford_flowers/")
    assert "it does not exist; download it with `python -m clipprompt.data.prepare oxford_flowers --root " in message
    root.write_text("")  # a file where the root should be
    with pytest.raises(DatasetError, match=r"holding oxford_flowers/, but it is not a folder; download it with"):
        validate_dataset("OxfordFlowers", str(root))
    make_tiny_dataset(tmp_path / "other", "DescribableTextures")
    with pytest.raises(DatasetError, match="expected the OxfordFlowers dataset folder; download it with `python -m"):
        validate_dataset("OxfordFlowers", str(tmp_path / "other"))


def test_a_root_that_is_the_dataset_folder_itself_names_the_right_root(tmp_path):
    """`--root data/caltech-101`: no download into caltech-101/caltech-101, the folder above instead."""
    from clipprompt.data.build import validate_dataset
    from clipprompt.data.errors import DataConfigError

    make_tiny_dataset(tmp_path / "data", "Caltech101")
    given = str(tmp_path / "data" / "caltech-101")
    for root in (given, given + "/"):
        with pytest.raises(DataConfigError) as info:
            validate_dataset("Caltech101", root)
        assert str(info.value) == (f"--root {root} is the Caltech101 dataset folder itself; --root should be the "
                                   f"folder that contains caltech-101/, i.e. {tmp_path / 'data'}")
    renamed = tmp_path / "data" / "caltech"  # its files one level up, under another name
    (tmp_path / "data" / "caltech-101").rename(renamed)
    with pytest.raises(DataConfigError, match="is the Caltech101 dataset folder itself"):
        validate_dataset("Caltech101", str(renamed))


def test_validate_dataset_reads_split_files_but_not_image_folders(tmp_path, monkeypatch):
    from clipprompt.data import build
    from clipprompt.data.build import validate_dataset

    _edit_split(tmp_path, lambda d: d["val"][0].__setitem__(1, -2))
    with pytest.raises(DatasetError, match="found label -2"):
        validate_dataset("Caltech101", str(tmp_path))
    make_tiny_dataset(tmp_path, "ImageNet")
    monkeypatch.setattr(build, "read_raw_splits", lambda *a: pytest.fail("ImageNet's folders were listed"))
    validate_dataset("ImageNet", str(tmp_path))


def test_two_labels_with_one_class_name_are_named_in_a_warning(tmp_path):
    def rename(data):
        for split in data.values():
            for entry in split:
                if entry[1] == 2:
                    entry[2] = "leopard"

    path = _edit_split(tmp_path, rename)
    splits = build_splits("Caltech101", str(tmp_path))
    assert splits["classnames"] == ["face", "leopard", "leopard"]
    assert splits["notes"] == [f"class name 'leopard' is shared by labels 1, 2 in {path}: their prompts are identical, "
                               "so a prompt-based model cannot tell these classes apart; rename one of them there."]
    make_tiny_dataset(tmp_path / "clean", "Caltech101", num_classes=3, images_per_class=4)
    assert build_splits("Caltech101", str(tmp_path / "clean"))["notes"] == []
