"""Every on-disk layout reads back into the splits and class names that were written."""
from __future__ import annotations

import json
import os
import shutil

import pytest

from clipprompt.data import CATALOG, Layout, Record, build_splits, read_split_file
from clipprompt.data.records import read_fgvc_aircraft
from clipprompt.testing import make_tiny_dataset, tiny_classnames, tiny_wnid

NUM_CLASSES = 4
PER_CLASS = 6  # split 3 train / 1 val / 2 test per class by the builder


@pytest.mark.parametrize("name", list(CATALOG))
def test_every_layout_reads_back(tmp_path, name):
    make_tiny_dataset(tmp_path, name, num_classes=NUM_CLASSES, images_per_class=PER_CLASS)
    splits = build_splits(name, str(tmp_path))
    spec = CATALOG[name]

    assert splits["classnames"] == tiny_classnames(name, NUM_CLASSES)
    assert splits["template"] == spec.template
    for key in ("train", "val", "test"):
        for record in splits[key]:
            assert isinstance(record, Record)
            assert os.path.isabs(record.impath) and os.path.isfile(record.impath)
            assert splits["classnames"][record.label] == record.classname
    assert {r.label for r in splits["test"]} == set(range(NUM_CLASSES))

    if spec.test_only:
        assert splits["train"] == splits["test"] and splits["val"] == []
        assert len(splits["test"]) == NUM_CLASSES * PER_CLASS
    elif spec.layout is Layout.IMAGENET:
        assert splits["val"] == splits["test"]
        assert len(splits["train"]) == len(splits["test"]) == NUM_CLASSES * PER_CLASS
        assert not {r.impath for r in splits["train"]} & {r.impath for r in splits["test"]}
    else:
        sizes = [len(splits[k]) for k in ("train", "val", "test")]
        assert sizes == [3 * NUM_CLASSES, 1 * NUM_CLASSES, 2 * NUM_CLASSES]
        paths = [{r.impath for r in splits[k]} for k in ("train", "val", "test")]
        assert not (paths[0] & paths[1] or paths[0] & paths[2] or paths[1] & paths[2])


def test_read_split_file_joins_relative_paths_and_keeps_names(tmp_path):
    image_dir = tmp_path / "imgs"
    (image_dir / "a").mkdir(parents=True)
    for name in ("x.jpg", "y.jpg", "z.jpg"):
        (image_dir / "a" / name).write_bytes(b"")
    split = {
        "train": [["a/x.jpg", 0, "wild_cat"]],
        "val": [["a/y.jpg", "0", "wild_cat"]],
        "test": [["a/z.jpg", 0, "wild_cat"]],
    }
    path = tmp_path / "split.json"
    path.write_text(json.dumps(split))

    out = read_split_file(str(path), str(image_dir))
    assert out["train"] == [Record(str(image_dir / "a" / "x.jpg"), 0, "wild_cat")]
    assert out["val"][0].label == 0  # labels are coerced to int
    assert out["test"][0].classname == "wild_cat"  # names are used as written


def test_stanford_cars_paths_are_relative_to_the_dataset_folder(tmp_path):
    dataset_dir = make_tiny_dataset(tmp_path, "StanfordCars")
    splits = build_splits("StanfordCars", str(tmp_path))
    assert all(r.impath.startswith(str(dataset_dir / "cars_train")) for r in splits["train"])
    assert all(r.impath.startswith(str(dataset_dir / "cars_test")) for r in splits["test"])


def test_fgvc_aircraft_labels_follow_variants_txt(tmp_path):
    dataset_dir = make_tiny_dataset(tmp_path, "FGVCAircraft", num_classes=3)
    # Reverse the label order in variants.txt: labels must follow it, not the txt lists.
    names = (dataset_dir / "variants.txt").read_text().splitlines()
    (dataset_dir / "variants.txt").write_text("\n".join(reversed(names)) + "\n")
    splits = read_fgvc_aircraft(str(dataset_dir), str(dataset_dir / "images"))
    label_of = {r.classname: r.label for r in splits["train"]}
    assert label_of == {name: 2 - i for i, name in enumerate(names)}
    assert all(r.impath.endswith(".jpg") for r in splits["test"])


def test_imagenet_a_subset_is_relabelled_and_named_through_imagenet(tmp_path):
    make_tiny_dataset(tmp_path, "ImageNetA", num_classes=3)
    listed = (tmp_path / "imagenet" / "classnames.txt").read_text().splitlines()
    assert len(listed) > 3  # classnames.txt covers more classes than the subset
    splits = build_splits("ImageNetA", str(tmp_path))
    assert splits["classnames"] == tiny_classnames("ImageNetA", 3)
    folder_of = {r.label: os.path.basename(os.path.dirname(r.impath)) for r in splits["test"]}
    assert folder_of == {0: tiny_wnid(1), 1: tiny_wnid(3), 2: tiny_wnid(5)}
    assert not any(r.impath.endswith("README.txt") for r in splits["test"])


def test_imagenetv2_folder_index_is_the_classnames_line(tmp_path):
    make_tiny_dataset(tmp_path, "ImageNetV2", num_classes=3)
    splits = build_splits("ImageNetV2", str(tmp_path))
    for record in splits["test"]:
        assert os.path.basename(os.path.dirname(record.impath)) == str(record.label)
    assert splits["classnames"] == tiny_classnames("ImageNetV2", 3)


def test_variant_prefers_its_own_classnames_copy(tmp_path):
    dataset_dir = make_tiny_dataset(tmp_path, "ImageNetSketch", num_classes=2)
    own_copy = f"{tiny_wnid(0)} goldfish\n{tiny_wnid(1)} great white shark\n"
    (dataset_dir / "classnames.txt").write_text(own_copy)
    assert build_splits("ImageNetSketch", str(tmp_path))["classnames"] == ["goldfish", "great white shark"]


def test_imagenet_and_variants_share_one_root(tmp_path):
    for name in ("ImageNetR", "ImageNet", "ImageNetV2"):
        make_tiny_dataset(tmp_path, name, num_classes=3)
    assert build_splits("ImageNet", str(tmp_path))["classnames"] == tiny_classnames("ImageNet", 3)
    assert build_splits("ImageNetV2", str(tmp_path))["classnames"] == tiny_classnames("ImageNetV2", 3)
    assert build_splits("ImageNetR", str(tmp_path))["classnames"] == tiny_classnames("ImageNetR", 3)


def test_hidden_files_are_skipped(tmp_path):
    dataset_dir = make_tiny_dataset(tmp_path, "ImageNetSketch", num_classes=2)
    (dataset_dir / "images" / tiny_wnid(0) / ".DS_Store").write_bytes(b"")
    (dataset_dir / "images" / ".cache").mkdir()
    splits = build_splits("ImageNetSketch", str(tmp_path))
    assert len(splits["test"]) == 2 * 6
    assert not any(os.path.basename(r.impath).startswith(".") for r in splits["test"])


def test_data_root_with_user_home_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    make_tiny_dataset(tmp_path / "data", "EuroSAT", num_classes=2)
    splits = build_splits("EuroSAT", "~/data")
    assert splits["test"][0].impath.startswith(str(tmp_path / "data" / "eurosat" / "2750"))


def test_tiny_builder_rejects_too_few_images(tmp_path):
    with pytest.raises(ValueError, match="at least 3 images per class"):
        make_tiny_dataset(tmp_path, "Caltech101", images_per_class=2)


def test_tiny_builder_is_deterministic(tmp_path):
    a = make_tiny_dataset(tmp_path / "a", "DescribableTextures", seed=3)
    b = make_tiny_dataset(tmp_path / "b", "DescribableTextures", seed=3)
    first = sorted(p.relative_to(a) for p in a.rglob("*.jpg"))
    assert first == sorted(p.relative_to(b) for p in b.rglob("*.jpg"))
    assert (a / first[0]).read_bytes() == (b / first[0]).read_bytes()
    shutil.rmtree(b)
    c = make_tiny_dataset(tmp_path / "c", "DescribableTextures", seed=4)
    assert (a / first[0]).read_bytes() != (c / first[0]).read_bytes()


# ---- images of other bit depths ----------------------------------------------------------------

def _sixteen_bit_png(path, mean8=58):
    """A 16-bit grayscale PNG (PIL mode I;16) whose mean, scaled to 8 bits, is about `mean8`."""
    import numpy as np
    from PIL import Image

    values = np.random.RandomState(0).randint(0, 2 * mean8 * 257, size=(16, 16)).astype(np.uint16)
    Image.fromarray(values).save(path)
    assert Image.open(path).mode == "I;16"
    return values.mean() / 257


def test_a_16_bit_png_is_read_as_the_image_it_is(tmp_path):
    import numpy as np

    from clipprompt.data.images import read_rgb

    mean = _sixteen_bit_png(tmp_path / "deep.png")
    image = read_rgb(tmp_path / "deep.png")
    assert image.mode == "RGB" and abs(np.asarray(image).mean() - mean) < 0.5 and 50 < mean < 66


def test_an_integer_image_beyond_16_bits_is_refused_in_one_line(tmp_path):
    import numpy as np
    from PIL import Image

    from clipprompt.data.images import read_rgb

    Image.fromarray(np.full((4, 4), 70000, dtype=np.int32)).save(tmp_path / "wide.tif")
    with pytest.raises(ValueError, match=r"^32-bit integer pixels \(PIL mode I\) above 65535: not an 8- or 16-bit "
                                         r"image$"):
        read_rgb(tmp_path / "wide.tif")


def test_the_dassl_loader_reads_16_bit_images_through_the_same_reader(tmp_path):
    import numpy as np

    pytest.importorskip("dassl")
    from clipprompt.config import add_project_config
    from trainers._dassl import Datum, get_cfg_default
    from trainers.data import CheckedDatasetWrapper

    mean = _sixteen_bit_png(tmp_path / "deep.png")
    cfg = add_project_config(get_cfg_default())
    item = CheckedDatasetWrapper(cfg, [Datum(impath=str(tmp_path / "deep.png"), label=0, classname="a")])[0]
    assert abs(np.asarray(item["img"]).mean() - mean) < 0.5
