"""Base-to-new class splits: sizes, relabelling and class names."""
from __future__ import annotations

import pytest

from clipprompt.data import DataConfigError, Record, build_splits, subsample_classes
from clipprompt.testing import make_tiny_dataset, tiny_classnames


def _records(labels: list[int]) -> list[Record]:
    return [Record(f"/img/{i}.jpg", label, f"class {label}") for i, label in enumerate(labels)]


def test_base_is_first_half_rounded_up_and_new_the_rest():
    # Labels deliberately sparse and unordered: the split is over the sorted label set.
    train = _records([40, 10, 30, 20, 50])
    test = _records([50, 10, 20, 30, 40, 40])
    base_train, base_test = subsample_classes(train, test, subsample="base")
    new_train, new_test = subsample_classes(train, test, subsample="new")

    assert sorted(r.classname for r in base_train) == ["class 10", "class 20", "class 30"]
    assert {r.classname: r.label for r in base_test} == {"class 10": 0, "class 20": 1, "class 30": 2}
    assert {r.classname: r.label for r in new_test} == {"class 40": 0, "class 50": 1}
    assert len(new_test) == 3 and len(new_train) == 2
    assert [r.impath for r in base_train] == ["/img/1.jpg", "/img/2.jpg", "/img/3.jpg"]  # order kept


def test_all_returns_everything_unchanged():
    train, test = _records([2, 0, 1]), _records([1])
    assert subsample_classes(train, test, subsample="all") == (train, test)


def test_bad_value_lists_the_valid_ones():
    with pytest.raises(ValueError) as info:
        subsample_classes(_records([0, 1]), subsample="Base")
    assert "'all', 'base', 'new'" in str(info.value) and "'Base'" in str(info.value)
    assert isinstance(info.value, DataConfigError)


def test_empty_selection_is_an_error():
    with pytest.raises(ValueError, match="selects no classes"):
        subsample_classes(_records([0, 0, 0]), subsample="new")


@pytest.mark.parametrize(
    "subsample, expected",
    [("all", slice(0, 5)), ("base", slice(0, 3)), ("new", slice(3, 5))],
)
def test_build_splits_subsamples_every_split_with_matching_names(tmp_path, subsample, expected):
    make_tiny_dataset(tmp_path, "OxfordPets", num_classes=5, images_per_class=5)
    splits = build_splits("OxfordPets", str(tmp_path), num_shots=1, seed=0, subsample=subsample)
    names = tiny_classnames("OxfordPets", 5)[expected]
    assert splits["classnames"] == names
    for key in ("train", "val", "test"):
        assert {r.label for r in splits[key]} == set(range(len(names)))
        assert all(names[r.label] == r.classname for r in splits[key])
    assert len(splits["train"]) == len(names)  # one shot per kept class


def test_build_splits_rejects_bad_subsample_before_anything_else(tmp_path):
    make_tiny_dataset(tmp_path, "EuroSAT", num_classes=2)
    with pytest.raises(ValueError, match="subsample must be one of"):
        build_splits("EuroSAT", str(tmp_path), num_shots=2, subsample="half")
    assert not (tmp_path / "eurosat" / "split_fewshot").exists()
