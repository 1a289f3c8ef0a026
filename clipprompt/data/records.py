"""Readers that turn each on-disk dataset layout into lists of :class:`Record`.

Readers never invent data: a missing split file is an error, not a cue to
draw a fresh random split (which would make results incomparable with every
published number). Every failure is a :class:`DatasetError` that names the
path, what belongs there and where to get it.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

from .errors import DatasetError, MissingImageError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Record:
    """One labelled image; ``impath`` is absolute once a reader returns it."""

    impath: str
    label: int
    classname: str


def _require_dir(path: str, expected: str, hint: str) -> None:
    if not os.path.isdir(path):
        raise DatasetError(path, expected, hint)


def _require_file(path: str, expected: str, hint: str) -> None:
    if not os.path.isfile(path):
        raise DatasetError(path, expected, hint)


def _list_visible(folder: str, *, dirs: bool) -> list[str]:
    """Sorted non-hidden entries (sub-folders or files) of ``folder``.

    Sorting matters: few-shot sampling walks records in this order, so an
    unsorted listing would make splits depend on the filesystem.
    """
    with os.scandir(folder) as entries:
        names = [
            e.name
            for e in entries
            if not e.name.startswith(".") and (e.is_dir() if dirs else e.is_file())
        ]
    return sorted(names)


def _check_first_images(splits: dict[str, list[Record]], source: str, hint: str) -> None:
    """Catch a wrong image folder early without stat-ing every image."""
    for items in splits.values():
        if items and not os.path.isfile(items[0].impath):
            raise MissingImageError(
                items[0].impath,
                f"an image listed in {source}; is the image folder extracted to the "
                "right place?",
                hint,
            )


def check_images_exist(records: list[Record], source: str, hint: str = "") -> None:
    """Every image a split names must exist; name the first few that do not.

    Dassl's ``Datum`` would otherwise stop on the first one with a bare assertion.
    """
    missing = [r.impath for r in records if not os.path.isfile(r.impath)]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise DatasetError(
            source,
            f"image files for every entry, but {len(missing)} of {len(records)} do not exist: {shown}",
            hint,
        )


def read_split_file(split_path: str, image_dir: str, *, hint: str = "") -> dict[str, list[Record]]:
    """Read a CoOp ``split_zhou_*.json`` file.

    The file maps ``train``/``val``/``test`` to lists of
    ``[path relative to image_dir, label, classname]``; class names are used
    exactly as written there.
    """
    _require_file(split_path, "the CoOp split file (train/val/test JSON)", hint)
    _require_dir(image_dir, "the dataset's image folder", hint)
    try:
        with open(split_path, encoding="utf-8") as f:
            raw = json.load(f)
        splits = {
            key: [
                Record(os.path.join(image_dir, rel), int(label), str(classname))
                for rel, label, classname in raw[key]
            ]
            for key in SPLITS
        }
    except (ValueError, KeyError, TypeError) as exc:
        raise DatasetError(
            split_path,
            "a JSON object with 'train', 'val' and 'test' lists of "
            f"[relative_path, label, classname] ({type(exc).__name__}: {exc})",
            hint,
        ) from exc
    _check_first_images(splits, split_path, hint)
    return splits


def read_fgvc_aircraft(dataset_dir: str, image_dir: str, *, hint: str = "") -> dict[str, list[Record]]:
    """Read FGVC-Aircraft's own split files at the *variant* level.

    ``variants.txt`` fixes the label order; ``images_variant_<split>.txt``
    has one ``<image id> <variant name>`` line per image.
    """
    _require_dir(image_dir, "FGVC-Aircraft's images/ folder", hint)
    variants_path = os.path.join(dataset_dir, "variants.txt")
    _require_file(variants_path, "FGVC-Aircraft's variants.txt (one class name per line)", hint)
    with open(variants_path, encoding="utf-8") as f:
        classnames = [line.strip() for line in f if line.strip()]
    label_of = {name: label for label, name in enumerate(classnames)}

    splits: dict[str, list[Record]] = {}
    for key in SPLITS:
        path = os.path.join(dataset_dir, f"images_variant_{key}.txt")
        _require_file(path, f"FGVC-Aircraft's {key} list ('<image id> <variant>' per line)", hint)
        items = []
        with open(path, encoding="utf-8") as f:
            for line in f:
                image_id, _, classname = line.strip().partition(" ")
                if not image_id:
                    continue
                if classname not in label_of:
                    raise DatasetError(path, f"only variants listed in {variants_path}, "
                                       f"found {classname!r}", hint)
                impath = os.path.join(image_dir, image_id + ".jpg")
                items.append(Record(impath, label_of[classname], classname))
        splits[key] = items
    _check_first_images(splits, "FGVC-Aircraft's images_variant_*.txt", hint)
    return splits


def read_classnames(path: str, *, hint: str = "") -> dict[str, str]:
    """Read ImageNet's ``classnames.txt``: ``<wnid> <class name>`` per line, in label order."""
    _require_file(path, "ImageNet's classnames.txt ('<wnid> <class name>' per line)", hint)
    classnames: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            wnid, _, name = line.strip().partition(" ")
            if wnid:
                classnames[wnid] = name
    return classnames


def _read_wnid_tree(folder: str, wnids: list[str], classnames: dict[str, str],
                    classnames_path: str, hint: str) -> list[Record]:
    """Images under ``folder/<wnid>/``, labelled by the wnid's index in ``wnids``."""
    items = []
    for label, wnid in enumerate(wnids):
        if wnid not in classnames:
            raise DatasetError(classnames_path, f"a class name for folder {wnid!r} "
                               f"(found in {folder})", hint)
        class_dir = os.path.join(folder, wnid)
        for name in _list_visible(class_dir, dirs=False):
            items.append(Record(os.path.join(class_dir, name), label, classnames[wnid]))
    return items


def read_imagenet(dataset_dir: str, image_dir: str, *, hint: str = "") -> dict[str, list[Record]]:
    """Read ImageNet the CoOp way.

    ``images/train`` is the training pool; the official ``images/val`` set is
    the test set and, as in CoOp, also serves as the val split (the same
    list). Labels follow the sorted wnid folders of ``train``.
    """
    classnames_path = os.path.join(dataset_dir, "classnames.txt")
    classnames = read_classnames(classnames_path, hint=hint)
    train_dir = os.path.join(image_dir, "train")
    val_dir = os.path.join(image_dir, "val")
    _require_dir(train_dir, "ImageNet's training images, one folder per wnid", hint)
    _require_dir(val_dir, "ImageNet's validation images, one folder per wnid "
                 "(the flat official val/ must be sorted into class folders)", hint)

    wnids = _list_visible(train_dir, dirs=True)
    if not wnids:
        raise DatasetError(train_dir, "one sub-folder per wnid, found none", hint)
    extra = sorted(set(_list_visible(val_dir, dirs=True)) - set(wnids))
    if extra:
        raise DatasetError(val_dir, f"only the classes present in {train_dir}, found extra "
                           f"folders {extra[:5]}", hint)
    train = _read_wnid_tree(train_dir, wnids, classnames, classnames_path, hint)
    test = _read_wnid_tree(val_dir, wnids, classnames, classnames_path, hint)
    return {"train": train, "val": test, "test": test}


def read_wnid_folders(image_dir: str, classnames: dict[str, str], *, classnames_path: str = "",
                      hint: str = "") -> list[Record]:
    """Read a test-only ImageNet variant stored as ``<wnid>/<image>`` folders.

    Labels follow the sorted wnids *present*, so the 200-class ImageNet-A/R
    subsets get labels 0..199 and their names from ImageNet's list.
    Stray files such as ``README.txt`` are ignored.
    """
    _require_dir(image_dir, "the variant's image folder, one sub-folder per wnid", hint)
    wnids = _list_visible(image_dir, dirs=True)
    if not wnids:
        raise DatasetError(image_dir, "one sub-folder per wnid, found none", hint)
    return _read_wnid_tree(image_dir, wnids, classnames, classnames_path or image_dir, hint)


def read_index_folders(image_dir: str, classnames: dict[str, str], *, classnames_path: str = "",
                       hint: str = "") -> list[Record]:
    """Read ImageNetV2: folders named by integer label, i.e. the line of classnames.txt."""
    _require_dir(image_dir, "ImageNetV2's image folder with sub-folders 0..999", hint)
    names = list(classnames.values())
    folders = _list_visible(image_dir, dirs=True)
    bad = [f for f in folders if not f.isdigit() or int(f) >= len(names)]
    if bad:
        raise DatasetError(
            image_dir,
            f"sub-folders named 0..{len(names) - 1} (lines of {classnames_path or 'classnames.txt'}),"
            f" found {bad[:5]}",
            hint,
        )
    items = []
    for folder in sorted(folders, key=int):
        label = int(folder)
        class_dir = os.path.join(image_dir, folder)
        for name in _list_visible(class_dir, dirs=False):
            items.append(Record(os.path.join(class_dir, name), label, names[label]))
    return items
