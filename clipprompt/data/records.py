"""Readers that turn each on-disk dataset layout into lists of :class:`Record`.

Readers never invent data: a missing split file is an error, not a cue to
draw a fresh random split (which would make results incomparable with every
published number). Every failure is a :class:`DatasetError` that names the
path, what belongs there and where to get it.
"""
from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping
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


SPLIT_SHAPE = "a JSON object with 'train', 'val' and 'test' lists of [relative_path, label, classname]"
_JSON_TYPES = {dict: "object", list: "list", str: "string", int: "number", float: "number", bool: "boolean"}


def _json_type(value: object) -> str:
    return "null" if value is None else _JSON_TYPES.get(type(value), type(value).__name__)


def _label(value: object) -> int | None:
    """An integer label, also written as a string of digits ("3"); None for anything else (2.5, true, "x")."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _is_entry(entry: object) -> bool:
    return (
        isinstance(entry, list)
        and len(entry) == 3
        and isinstance(entry[0], str)
        and bool(entry[0])
        and _label(entry[1]) is not None
        and isinstance(entry[2], str)
    )


def parse_split(raw: object, split_path: str, image_dir: str, *, hint: str = "") -> dict[str, list[Record]]:
    """Records of a loaded split file; a wrong shape names the first entry that is not a triple."""
    if not isinstance(raw, dict):
        raise DatasetError(split_path, f"{SPLIT_SHAPE}, found a JSON {_json_type(raw)}", hint)
    splits: dict[str, list[Record]] = {}
    for key in SPLITS:
        if key not in raw:
            raise DatasetError(split_path, f"{SPLIT_SHAPE}; it has no {key!r} list", hint)
        entries = raw[key]
        if not isinstance(entries, list):
            raise DatasetError(split_path, f"{SPLIT_SHAPE}; {key!r} is a JSON {_json_type(entries)}", hint)
        for index, entry in enumerate(entries):
            if not _is_entry(entry):
                shown = json.dumps(entry)
                shown = shown if len(shown) <= 120 else shown[:117] + "..."
                raise DatasetError(split_path, f"{SPLIT_SHAPE} (the label an integer); entry {index} of {key!r} "
                                   f"is {shown}", hint)
        splits[key] = [Record(os.path.join(image_dir, rel), _label(label), name) for rel, label, name in entries]
    return splits


def read_split_file(split_path: str, image_dir: str, *, hint: str = "") -> dict[str, list[Record]]:
    """Read a CoOp ``split_zhou_*.json`` file.

    The file maps ``train``/``val``/``test`` to lists of
    ``[path relative to image_dir, label, classname]``; class names are used
    exactly as written there. Invalid JSON names its line and column.
    """
    _require_file(split_path, "the CoOp split file (train/val/test JSON)", hint)
    _require_dir(image_dir, "the dataset's image folder", hint)
    try:
        with open(split_path, encoding="utf-8") as f:
            raw = json.load(f)
    except json.JSONDecodeError as exc:
        raise DatasetError(split_path, f"{SPLIT_SHAPE}, but it is not valid JSON: line {exc.lineno}, "
                           f"column {exc.colno}: {exc.msg}", hint) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise DatasetError(split_path, f"a readable UTF-8 JSON file ({reason})", hint) from None
    splits = parse_split(raw, split_path, image_dir, hint=hint)
    _check_first_images(splits, split_path, hint)
    return splits


def check_labels(splits: Mapping[str, list[Record]], source: str, hint: str = "", *,
                 needs_train: bool = True) -> list[str]:
    """Check the labels of raw splits and return the class names in label order.

    Labels are integers >= 0 with one class name each, numbered 0..n-1 for the n classes the
    splits name; with ``needs_train`` every class has a training image (few-shot sampling and
    SEP's class-mean prototypes need one), an error naming the classes without. A class with
    no test image is only a warning: its accuracy is not measured.
    """
    names: dict[int, str] = {}
    for key, records in splits.items():
        for record in records:
            if record.label < 0:
                raise DatasetError(source, f"labels >= 0, found label {record.label} for {record.impath} "
                                   f"in {key!r}", hint)
            known = names.setdefault(record.label, record.classname)
            if known != record.classname:
                raise DatasetError(source, f"one class name per label, label {record.label} "
                                   f"is both {known!r} and {record.classname!r}", hint)
    count = len(names)
    out_of_range = sorted(label for label in names if label >= count)
    if out_of_range:
        unused = sorted(set(range(count)) - set(names))
        shown = ", ".join(f"{label} ({names[label]!r})" for label in out_of_range[:5])
        raise DatasetError(source, f"labels 0..{count - 1} for its {count} class names, found label(s) "
                           f"{shown} while {unused[:5]} name no class", hint)

    def named(labels: list[int]) -> str:
        more = f" and {len(labels) - 10} more" if len(labels) > 10 else ""
        return ", ".join(f"{names[label]!r} (label {label})" for label in labels[:10]) + more

    if needs_train:
        in_train = {record.label for record in splits.get("train", [])}
        missing = [label for label in range(count) if label not in in_train]
        if missing:
            raise DatasetError(source, f"at least one training image for every class (few-shot sampling and "
                               f"SEP's prototypes need them), but {len(missing)} class(es) have none: "
                               f"{named(missing)}", hint)
    in_test = {record.label for record in splits.get("test", [])}
    absent = [label for label in range(count) if label not in in_test]
    if absent:
        warnings.warn(f"{source}: no test image for {len(absent)} class(es): {named(absent)}; their accuracy "
                      "is not measured.", stacklevel=1)  # one location: shown once per run, not per reader
    return [names[label] for label in range(count)]


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
