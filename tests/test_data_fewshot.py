"""K-shot sampling is deterministic, per class, and cached portably on disk."""
from __future__ import annotations

import json
import os
import random
from collections import Counter

import pytest

import clipprompt.data.fewshot as fewshot
from clipprompt.data import Record, build_splits, load_or_create_few_shot, sample_few_shot
from clipprompt.testing import make_tiny_dataset


def _pool(per_class: dict[int, int]) -> list[Record]:
    return [
        Record(f"/img/{label}/{i}.jpg", label, f"class {label}")
        for label, count in per_class.items()
        for i in range(count)
    ]


def test_sampling_takes_k_per_class_or_all_of_a_small_class():
    pool = _pool({0: 10, 1: 3, 2: 7})
    sampled = sample_few_shot(pool, num_shots=4, seed=0)
    assert Counter(r.label for r in sampled) == {0: 4, 1: 3, 2: 4}
    assert set(sampled) <= set(pool) and len(set(sampled)) == len(sampled)


def test_sampling_is_deterministic_per_seed():
    pool = _pool({0: 20, 1: 20})
    assert sample_few_shot(pool, 5, seed=1) == sample_few_shot(pool, 5, seed=1)
    assert sample_few_shot(pool, 5, seed=1) != sample_few_shot(pool, 5, seed=2)


def test_sampling_ignores_and_preserves_the_global_rng():
    pool = _pool({0: 20, 1: 20})
    random.seed(123)
    state = random.getstate()
    first = sample_few_shot(pool, 5, seed=7)
    assert random.getstate() == state
    random.seed(999)
    assert sample_few_shot(pool, 5, seed=7) == first


def test_non_positive_shots_mean_everything():
    pool = _pool({0: 5, 1: 2})
    assert sample_few_shot(pool, 0, seed=0) == pool
    assert sample_few_shot(pool, -1, seed=0) == pool


@pytest.fixture
def caltech(tmp_path):
    make_tiny_dataset(tmp_path / "data", "Caltech101", num_classes=3, images_per_class=20)
    return tmp_path / "data"


def test_train_gets_k_and_val_at_most_four_shots(caltech):
    splits = build_splits("Caltech101", str(caltech), num_shots=8, seed=1)
    assert Counter(r.label for r in splits["train"]) == {0: 8, 1: 8, 2: 8}
    assert Counter(r.label for r in splits["val"]) == {0: 4, 1: 4, 2: 4}
    full = build_splits("Caltech101", str(caltech))
    assert splits["test"] == full["test"]  # test is never sampled
    assert set(splits["train"]) <= set(full["train"]) and set(splits["val"]) <= set(full["val"])


def test_few_shot_split_depends_on_seed_not_on_cache(caltech):
    one = build_splits("Caltech101", str(caltech), num_shots=2, seed=1)
    two = build_splits("Caltech101", str(caltech), num_shots=2, seed=2)
    again = build_splits("Caltech101", str(caltech), num_shots=2, seed=1)
    assert one["train"] == again["train"] and one["val"] == again["val"]
    assert one["train"] != two["train"]


def test_cache_is_json_with_paths_relative_to_the_image_folder(caltech):
    splits = build_splits("Caltech101", str(caltech), num_shots=2, seed=5)
    cache = caltech / "caltech-101" / "split_fewshot" / "shot_2-seed_5.json"
    payload = json.loads(cache.read_text())
    assert payload["num_shots"] == 2 and payload["seed"] == 5
    image_dir = caltech / "caltech-101" / "101_ObjectCategories"
    assert payload["train"] == [
        [os.path.relpath(r.impath, image_dir), r.label, r.classname] for r in splits["train"]
    ]
    for rel, _, _ in payload["train"] + payload["val"]:
        assert not os.path.isabs(rel) and str(caltech) not in rel
    assert [p.name for p in cache.parent.iterdir()] == [cache.name]  # no temp files left


def test_cache_is_reused_after_moving_the_data_root(caltech, tmp_path, monkeypatch):
    before = build_splits("Caltech101", str(caltech), num_shots=2, seed=3)
    moved = tmp_path / "moved"
    os.rename(caltech, moved)

    def must_not_sample(*args, **kwargs):
        raise AssertionError("the cached split should have been reused")

    monkeypatch.setattr(fewshot, "sample_few_shot", must_not_sample)
    after = build_splits("Caltech101", str(moved), num_shots=2, seed=3)

    def rel(records, root):
        return [(os.path.relpath(r.impath, root), r.label, r.classname) for r in records]

    assert rel(after["train"], moved) == rel(before["train"], caltech)
    assert rel(after["val"], moved) == rel(before["val"], caltech)
    assert all(r.impath.startswith(str(moved)) and os.path.isfile(r.impath) for r in after["train"])


def test_cache_file_decides_the_split(caltech):
    """A shared cache file is honoured even if the sampler would draw differently."""
    image_dir = caltech / "caltech-101" / "101_ObjectCategories"
    full = build_splits("Caltech101", str(caltech))
    chosen = [r for r in full["train"] if r.label == 0][-1:]
    cache_dir = caltech / "caltech-101" / "split_fewshot"
    cache_dir.mkdir()
    row = [os.path.relpath(chosen[0].impath, image_dir), 0, chosen[0].classname]
    payload = {"version": fewshot.CACHE_VERSION, "train": [row], "val": []}
    (cache_dir / "shot_1-seed_0.json").write_text(json.dumps(payload))
    splits = build_splits("Caltech101", str(caltech), num_shots=1, seed=0)
    assert splits["train"] == chosen and splits["val"] == []


def test_stale_or_corrupt_cache_is_recreated(caltech):
    cache = caltech / "caltech-101" / "split_fewshot" / "shot_2-seed_1.json"
    fresh = build_splits("Caltech101", str(caltech), num_shots=2, seed=1)
    cache.write_text("{not json")
    assert build_splits("Caltech101", str(caltech), num_shots=2, seed=1)["train"] == fresh["train"]
    cache.write_text(json.dumps({"train": [["gone/x.jpg", 0, "face"]], "val": []}))
    assert build_splits("Caltech101", str(caltech), num_shots=2, seed=1)["train"] == fresh["train"]
    assert json.loads(cache.read_text())["train"][0][0] != "gone/x.jpg"
    other_version = json.loads(cache.read_text())
    other_version.update(version=fewshot.CACHE_VERSION + 1, train=other_version["train"][:1])  # another sampler's draw
    cache.write_text(json.dumps(other_version))
    assert build_splits("Caltech101", str(caltech), num_shots=2, seed=1)["train"] == fresh["train"]
    assert json.loads(cache.read_text())["version"] == fewshot.CACHE_VERSION


def test_all_shots_writes_no_cache(caltech):
    build_splits("Caltech101", str(caltech), num_shots=0, seed=1)
    build_splits("Caltech101", str(caltech), num_shots=-1, seed=1)
    assert not (caltech / "caltech-101" / "split_fewshot").exists()


def test_imagenet_val_is_never_sampled(tmp_path):
    make_tiny_dataset(tmp_path, "ImageNet", num_classes=3, images_per_class=5)
    splits = build_splits("ImageNet", str(tmp_path), num_shots=2, seed=1)
    assert Counter(r.label for r in splits["train"]) == {0: 2, 1: 2, 2: 2}
    assert splits["val"] == splits["test"] and len(splits["test"]) == 15


def test_test_only_variants_ignore_num_shots(tmp_path):
    make_tiny_dataset(tmp_path, "ImageNetR", num_classes=2)
    splits = build_splits("ImageNetR", str(tmp_path), num_shots=1, seed=1)
    assert len(splits["test"]) == 12 and splits["train"] == splits["test"]
    assert not (tmp_path / "imagenet-rendition" / "split_fewshot").exists()


def test_read_only_cache_folder_still_returns_the_split(tmp_path, monkeypatch):
    pool = _pool({0: 6, 1: 6})

    def fail(*args, **kwargs):
        raise PermissionError("read-only file system")

    monkeypatch.setattr(fewshot, "atomic_write", fail)
    train, val = load_or_create_few_shot(str(tmp_path / "c"), "/img", pool, pool, 2, seed=0)
    assert train == sample_few_shot(pool, 2, 0) and Counter(r.label for r in val) == {0: 2, 1: 2}


def test_fewer_images_than_shots_records_what_was_used_and_says_so(caltech):
    splits = build_splits("Caltech101", str(caltech), num_shots=32, seed=1)
    assert Counter(r.label for r in splits["train"]) == {0: 10, 1: 10, 2: 10}  # all 10 training images each
    assert splits["shots_used"] == 10
    assert splits["notes"] == ["DATASET.NUM_SHOTS 32: 3 of 3 classes have fewer training images (10 each); all of "
                               "theirs are used (recorded as shots_used 10 in result.json)."]
    enough = build_splits("Caltech101", str(caltech), num_shots=4, seed=1)
    assert enough["shots_used"] == 4 and enough["notes"] == []
    assert build_splits("Caltech101", str(caltech))["shots_used"] is None  # all images: no shots asked


def test_result_records_the_shots_used_and_flags_a_one_class_evaluation(tmp_path, tiny_clip_path, capsys):
    pytest.importorskip("dassl")
    from clipprompt.testing.protocol_scripts import train_in_process

    make_tiny_dataset(tmp_path / "data", "Caltech101", num_classes=2, images_per_class=6)
    out = tmp_path / "new"
    status = train_in_process([
        "--root", str(tmp_path / "data"), "--trainer", "ZeroshotCLIP", "--eval-only", "--no-feature-cache",
        "--dataset-config-file", "configs/datasets/caltech101.yaml",
        "--config-file", "configs/trainers/ZeroshotCLIP/vit_b16.yaml", "--output-dir", str(out),
        "MODEL.BACKBONE.NAME", tiny_clip_path, "INPUT.SIZE", "(32, 32)", "DATALOADER.NUM_WORKERS", "0",
        "DATASET.NUM_SHOTS", "32", "DATASET.SUBSAMPLE_CLASSES", "new"])
    printed = capsys.readouterr().out
    assert status == 0, printed[-3000:]
    result = json.loads((out / "result.json").read_text())
    assert (result["num_shots"], result["shots_used"], result["one_class"]) == (32, 3, True)
    assert result["metrics"]["accuracy"] == 100.0
    log = (out / "log.txt").read_text()
    for line in ("warning: DATASET.NUM_SHOTS 32: 1 of 1 classes have fewer training images (3 each); all of theirs "
                 "are used (recorded as shots_used 3 in result.json).",
                 "warning: this evaluation has one class, so its accuracy is 100 % whatever the model predicts "
                 "(recorded as one_class in result.json)."):
        assert line in printed and line in log
