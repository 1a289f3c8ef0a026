"""One call from a dataset name to ready-to-use splits, without Dassl.

The Dassl glue in ``datasets/`` only converts the result to ``Datum``
objects, so everything that can go wrong is testable here.
"""
from __future__ import annotations

import os
from collections import Counter, defaultdict
from typing import TypedDict

from .catalog import DatasetSpec, Layout, get_spec
from .errors import DataConfigError, DatasetError
from .fewshot import load_or_create_few_shot
from .records import (
    check_images_exist,
    check_labels,
    Record,
    read_classnames,
    read_fgvc_aircraft,
    read_imagenet,
    read_index_folders,
    read_split_file,
    read_wnid_folders,
)
from .subsample import check_subsample, subsample_classes

IMAGENET_DIR = "imagenet"


class DatasetSplits(TypedDict):
    """What :func:`build_splits` returns; labels are ``0..len(classnames)-1``."""

    train: list[Record]
    val: list[Record]
    test: list[Record]
    classnames: list[str]
    template: str
    shots_used: int | None  # the most training images of a class after few-shot sampling; None: all asked
    notes: list[str]  # what the run should say in its log (fewer shots than asked, shared class names)


def dataset_paths(spec: DatasetSpec, root: str) -> tuple[str, str]:
    """Absolute ``(dataset_dir, image_dir)`` of ``spec`` under the data root."""
    dataset_dir = os.path.join(os.path.abspath(os.path.expanduser(root)), spec.dataset_dir)
    image_dir = os.path.join(dataset_dir, spec.image_dir) if spec.image_dir else dataset_dir
    return dataset_dir, image_dir


def variant_classnames_path(spec: DatasetSpec, root: str) -> str:
    """ImageNet's ``classnames.txt`` for a variant.

    CoOp's instructions copy it into the variant's folder; if that copy is
    absent we fall back to ``$DATA/imagenet/classnames.txt``.
    """
    dataset_dir, _ = dataset_paths(spec, root)
    local = os.path.join(dataset_dir, "classnames.txt")
    if os.path.isfile(local):
        return local
    shared = os.path.join(os.path.abspath(os.path.expanduser(root)), IMAGENET_DIR, "classnames.txt")
    if os.path.isfile(shared):
        return shared
    raise DatasetError(
        local,
        f"ImageNet's classnames.txt here or at {shared}",
        f"see DATASETS.md#imagenet and {spec.docs}",
    )


def prepare_command(spec: DatasetSpec, root: str) -> str:
    """The command that downloads and checks ``spec`` under ``root``."""
    return f"python -m clipprompt.data.prepare {spec.config} --root {root or 'DATA'}"


def check_dataset_folder(spec: DatasetSpec, root: str) -> None:
    """The data root and the dataset's folder in it exist; if not, say how to get them (once)."""
    dataset_dir, _ = dataset_paths(spec, root)
    data_root = os.path.dirname(dataset_dir)
    get_it = f"download it with `{prepare_command(spec, root)}`"
    if not os.path.isdir(data_root):
        given = f"--root / DATASET.ROOT {root!r}" if root else "no --root given, so the current folder"
        state = "is not a folder" if os.path.exists(data_root) else "does not exist"
        raise DatasetError(data_root, f"the data root ({given}) holding {spec.dataset_dir}/, but it {state}; "
                           f"{get_it}", spec.sources)
    if not os.path.isdir(dataset_dir):
        if root_is_dataset_folder(spec, data_root):
            parent = os.path.dirname(os.path.normpath(root)) or "."
            raise DataConfigError(
                f"--root {root} is the {spec.name} dataset folder itself; --root should be the folder that "
                f"contains {spec.dataset_dir}/, i.e. {parent}"
            )
        raise DatasetError(dataset_dir, f"the {spec.name} dataset folder; {get_it}", spec.sources)


def root_is_dataset_folder(spec: DatasetSpec, folder: str) -> bool:
    """Whether `folder` (given as the data root) is the dataset's own folder: its name, or its files."""
    if os.path.basename(folder) == spec.dataset_dir:
        return True
    expected = [name for name in (spec.split_file, spec.image_dir) if name]
    return bool(expected) and all(os.path.exists(os.path.join(folder, name)) for name in expected)


def split_source(spec: DatasetSpec, root: str) -> str:
    """The file (or folder) whose contents define the splits, for error messages."""
    dataset_dir, _ = dataset_paths(spec, root)
    return os.path.join(dataset_dir, spec.split_file) if spec.split_file else dataset_dir


def validate_dataset(name: str, root: str) -> None:
    """The cheap checks of a dataset before a run: its folder, and its labels where the splits are one file.

    Layouts read by listing image folders (ImageNet and its variants) are checked when read.
    """
    spec = get_spec(name)
    check_dataset_folder(spec, root)
    if spec.layout in (Layout.SPLIT_JSON, Layout.FGVC_TXT):
        check_labels(read_raw_splits(spec, root), split_source(spec, root), spec.hint)


def read_raw_splits(spec: DatasetSpec, root: str) -> dict[str, list[Record]]:
    """Full train/val/test of a dataset as stored on disk, before few-shot and subsampling.

    Test-only variants return their images as ``test`` and empty train/val.
    """
    dataset_dir, image_dir = dataset_paths(spec, root)
    hint = spec.hint
    check_dataset_folder(spec, root)

    if spec.layout is Layout.SPLIT_JSON:
        assert spec.split_file is not None
        return read_split_file(os.path.join(dataset_dir, spec.split_file), image_dir, hint=hint)
    if spec.layout is Layout.FGVC_TXT:
        return read_fgvc_aircraft(dataset_dir, image_dir, hint=hint)
    if spec.layout is Layout.IMAGENET:
        return read_imagenet(dataset_dir, image_dir, hint=hint)

    classnames_path = variant_classnames_path(spec, root)
    classnames = read_classnames(classnames_path, hint=hint)
    reader = read_wnid_folders if spec.layout is Layout.WNID_FOLDERS else read_index_folders
    test = reader(image_dir, classnames, classnames_path=classnames_path, hint=hint)
    return {"train": [], "val": [], "test": test}


def collect_classnames(*splits: list[Record], source: str, hint: str) -> list[str]:
    """Class names indexed by label, checking labels are ``0..n-1`` and names consistent."""
    names: dict[int, str] = {}
    for split in splits:
        for record in split:
            known = names.setdefault(record.label, record.classname)
            if known != record.classname:
                raise DatasetError(source, f"one class name per label, label {record.label} "
                                   f"is both {known!r} and {record.classname!r}", hint)
    missing = sorted(set(range(len(names))) - set(names))
    if missing:
        raise DatasetError(source, f"labels 0..{len(names) - 1} with no gaps, "
                           f"missing {missing[:5]}", hint)
    return [names[label] for label in range(len(names))]


def shared_class_names(splits: dict[str, list[Record]], source: str) -> list[str]:
    """One line per class name that several labels carry. Their prompts are identical, so no prompt can
    tell them apart: a warning, not an error, so that a benchmark whose names are ambiguous on
    purpose still runs as published (docs: DATASETS.md)."""
    labels: dict[str, set[int]] = defaultdict(set)
    for split in splits.values():
        for record in split:
            labels[record.classname].add(record.label)
    return [f"class name {name!r} is shared by labels {', '.join(map(str, sorted(shared)))} in {source}: their "
            "prompts are identical, so a prompt-based model cannot tell these classes apart; rename one of them there."
            for name, shared in labels.items() if len(shared) > 1]


def shots_note(train: list[Record], num_shots: int) -> tuple[int | None, list[str]]:
    """(the most training images of a class, a line when some classes have fewer than `num_shots`)."""
    per_class = Counter(record.label for record in train)
    if num_shots < 1 or not per_class:
        return None, []
    used = max(per_class.values())
    short = sorted(count for count in per_class.values() if count < num_shots)
    if not short:
        return used, []
    counts = f"{short[0]} each" if short[0] == short[-1] else f"{short[0]} to {short[-1]}"
    return used, [f"DATASET.NUM_SHOTS {num_shots}: {len(short)} of {len(per_class)} classes have fewer training "
                  f"images ({counts}); all of theirs are used (recorded as shots_used {used} in result.json)."]


def build_splits(
    name: str,
    root: str,
    num_shots: int = -1,
    seed: int = 1,
    subsample: str = "all",
) -> DatasetSplits:
    """Read, few-shot sample and class-subsample a dataset, the CoOp way.

    ``num_shots < 1`` keeps all training images; few-shot splits are cached
    under ``<dataset_dir>/split_fewshot/``. Test-only ImageNet variants
    ignore ``num_shots`` and return their test set as ``train`` too (Dassl
    needs a non-empty ``train_x`` to count classes) and an empty ``val``.
    """
    spec = get_spec(name)
    check_subsample(subsample)
    dataset_dir, image_dir = dataset_paths(spec, root)
    raw = read_raw_splits(spec, root)
    check_labels(raw, split_source(spec, root), spec.hint, needs_train=not spec.test_only)
    notes = shared_class_names(raw, split_source(spec, root))
    train, val, test = raw["train"], raw["val"], raw["test"]

    if spec.test_only:
        train = test
    elif num_shots >= 1:
        keep_val = spec.layout is Layout.IMAGENET  # its val is the test set: never shrink it
        few_train, few_val = load_or_create_few_shot(
            os.path.join(dataset_dir, "split_fewshot"),
            image_dir,
            train,
            None if keep_val else val,
            num_shots,
            seed,
        )
        train, val = few_train, (val if keep_val else few_val or [])

    train, val, test = subsample_classes(train, val, test, subsample=subsample)
    check_images_exist([*train, *val, *test], spec.split_file or dataset_dir, spec.hint)
    if not test:
        raise DatasetError(image_dir, f"at least one {spec.name} test image", spec.hint)
    classnames = collect_classnames(train, val, test, source=dataset_dir, hint=spec.hint)
    shots_used, fewer = shots_note(train, -1 if spec.test_only else num_shots)
    return DatasetSplits(
        train=train, val=val, test=test, classnames=classnames, template=spec.template,
        shots_used=shots_used, notes=[*fewer, *notes],
    )
