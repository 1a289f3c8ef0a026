"""Write tiny fake copies of the CoOp datasets in their real on-disk layouts.

Tests (ours and the trainers') exercise the real readers end to end on a few
dozen 32x32 noise images instead of gigabytes of data. The layout, file
names and split files mimic the originals closely enough that a reader that
works here works on the real download.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from clipprompt.data.catalog import DatasetSpec, Layout, get_spec

__all__ = ["make_tiny_dataset", "make_tiny_descriptions", "tiny_classnames", "tiny_wnid"]

# Distinct names, several with spaces, so templates and tokenisation see real-looking text.
_CLASS_POOL = (
    "face",
    "leopard",
    "wild cat",
    "sea horse",
    "water lily",
    "stop sign",
    "grand piano",
    "red fox",
    "snowy owl",
    "hot air balloon",
    "paper lantern",
    "tree frog",
    "garden snail",
    "fire truck",
    "brass bell",
    "maple leaf",
)
_SUBSET_STEP = 2  # ImageNet-A/R keep every 2nd ImageNet class, like their 200-of-1000 subsets


def _pool_name(index: int) -> str:
    return _CLASS_POOL[index] if index < len(_CLASS_POOL) else f"object number {index}"


def tiny_wnid(index: int) -> str:
    """Fake WordNet id; zero padding keeps sorted order equal to index order."""
    return f"n{index:08d}"


def _imagenet_indices(spec: DatasetSpec, num_classes: int) -> list[int]:
    """Which ImageNet classes a (variant) dataset contains."""
    if spec.name in ("ImageNetA", "ImageNetR"):
        return [i * _SUBSET_STEP + 1 for i in range(num_classes)]
    return list(range(num_classes))


def tiny_classnames(name: str, num_classes: int = 4) -> list[str]:
    """The class names, in label order, that the readers should report."""
    spec = get_spec(name)
    if spec.layout in (Layout.IMAGENET, Layout.WNID_FOLDERS, Layout.INDEX_FOLDERS):
        return [_pool_name(i) for i in _imagenet_indices(spec, num_classes)]
    return [_pool_name(i) for i in range(num_classes)]


class _ImageWriter:
    """Random-noise RGB images; format follows the file extension."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.rng = np.random.default_rng(seed)

    def __call__(self, path: str) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        pixels = self.rng.integers(0, 256, (self.size, self.size, 3), dtype=np.uint8)
        Image.fromarray(pixels, "RGB").save(path)


def _partition(n: int) -> list[str]:
    """Split name for each of a class's ``n`` images: about 50/20/30 like CoOp's splits."""
    n_val = max(1, round(0.2 * n))
    n_test = max(1, round(0.3 * n))
    return ["train"] * (n - n_val - n_test) + ["val"] * n_val + ["test"] * n_test


def _split_json_relpath(spec: DatasetSpec, classname: str, split: str, index: int) -> str:
    """A file name in the style of the real dataset (flat, per-class or per-split folders)."""
    folder = classname.replace(" ", "_")
    if spec.name == "OxfordPets":
        return f"{folder}_{index}.jpg"
    if spec.name == "OxfordFlowers":
        return f"image_{index:05d}.jpg"
    if spec.name == "StanfordCars":
        return f"cars_{'test' if split == 'test' else 'train'}/{index:05d}.jpg"
    if spec.name == "SUN397":
        return f"{folder[0]}/{folder}/sun_{index:06d}.jpg"
    if spec.name == "UCF101":
        return f"{folder}/v_{folder}_g{index:02d}_c01.jpg"
    return f"{folder}/{folder}_{index:04d}.jpg"


def _make_split_json(spec, dataset_dir, image_dir, classnames, per_class, write) -> None:
    split: dict[str, list] = {"train": [], "val": [], "test": []}
    index = 0
    for label, classname in enumerate(classnames):
        for part in _partition(per_class):
            index += 1
            rel = _split_json_relpath(spec, classname, part, index)
            write(os.path.join(image_dir, rel))
            split[part].append([rel, label, classname])
    with open(os.path.join(dataset_dir, spec.split_file), "w", encoding="utf-8") as f:
        json.dump(split, f, indent=1)


def _make_fgvc(dataset_dir, image_dir, classnames, per_class, write) -> None:
    lines: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    index = 1_000_000
    for classname in classnames:
        for part in _partition(per_class):
            index += 1
            write(os.path.join(image_dir, f"{index}.jpg"))
            lines[part].append(f"{index} {classname}")
    with open(os.path.join(dataset_dir, "variants.txt"), "w", encoding="utf-8") as f:
        f.write("".join(f"{name}\n" for name in classnames))
    for part, rows in lines.items():
        with open(os.path.join(dataset_dir, f"images_variant_{part}.txt"), "w", encoding="utf-8") as f:
            f.write("".join(f"{row}\n" for row in rows))


def _write_imagenet_classnames(root: str, indices: list[int]) -> None:
    """Add classes to ``$DATA/imagenet/classnames.txt``, keeping any already there.

    Merging lets ImageNet and its variants share one root in a test.
    """
    path = os.path.join(root, "imagenet", "classnames.txt")
    entries: dict[str, str] = {}
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                wnid, _, name = line.strip().partition(" ")
                if wnid:
                    entries[wnid] = name
    needed = indices
    if indices and max(indices) >= len(indices):  # a subset: list the classes in between too
        needed = list(range(max(indices) + 2))
    entries.update({tiny_wnid(i): _pool_name(i) for i in needed})
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(f"{wnid} {entries[wnid]}\n" for wnid in sorted(entries)))


def make_tiny_dataset(
    root: str | os.PathLike[str],
    name: str,
    num_classes: int = 4,
    images_per_class: int = 6,
    image_size: int = 32,
    seed: int = 0,
) -> Path:
    """Write a tiny ``name`` dataset under ``root`` and return its dataset folder.

    Every layout detail the readers rely on is reproduced: CoOp split JSON
    files, FGVC-Aircraft's txt lists, ImageNet's ``classnames.txt`` (written
    to ``root/imagenet/`` for ImageNet and for its variants, which read it
    from there), ImageNetV2's integer folders and the ImageNet-A/R class
    subsets (every other ImageNet class, plus a stray ``README.txt``).
    """
    spec = get_spec(name)
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if images_per_class < (1 if spec.test_only else 3):
        raise ValueError(
            f"{name} needs at least {1 if spec.test_only else 3} images per class "
            f"(one each for train, val and test), got {images_per_class}"
        )
    root = os.path.abspath(os.fspath(root))
    dataset_dir = os.path.join(root, spec.dataset_dir)
    image_dir = os.path.join(dataset_dir, spec.image_dir) if spec.image_dir else dataset_dir
    os.makedirs(image_dir, exist_ok=True)
    write = _ImageWriter(image_size, seed)
    classnames = tiny_classnames(name, num_classes)

    if spec.layout is Layout.SPLIT_JSON:
        _make_split_json(spec, dataset_dir, image_dir, classnames, images_per_class, write)
    elif spec.layout is Layout.FGVC_TXT:
        _make_fgvc(dataset_dir, image_dir, classnames, images_per_class, write)
    else:
        indices = _imagenet_indices(spec, num_classes)
        _write_imagenet_classnames(root, indices)
        for label, index in enumerate(indices):
            wnid = tiny_wnid(index)
            for j in range(images_per_class):
                if spec.layout is Layout.IMAGENET:
                    write(os.path.join(image_dir, "train", wnid, f"{wnid}_{j}.JPEG"))
                    write(os.path.join(image_dir, "val", wnid, f"ILSVRC2012_val_{index:04d}{j:04d}.JPEG"))
                elif spec.layout is Layout.INDEX_FOLDERS:
                    write(os.path.join(image_dir, str(label), f"{index:04d}{j:04d}.jpeg"))
                else:
                    write(os.path.join(image_dir, wnid, f"{spec.config}_{j}.jpg"))
        if spec.name in ("ImageNetA", "ImageNetR"):
            with open(os.path.join(image_dir, "README.txt"), "w", encoding="utf-8") as f:
                f.write("Stray file shipped with the archive; readers must skip it.\n")
    return Path(dataset_dir)


def make_tiny_descriptions(root: str | os.PathLike[str], name: str, num_classes: int = 4, per_class: int = 3,
                           set_name: str = "coprompt") -> Path:
    """Write class descriptions for the tiny ``name`` dataset where ``prepare --descriptions`` puts
    them, in the published format (``{class name: [sentence, ...]}``); returns the file."""
    from clipprompt.data.descriptions import descriptions_path

    path = Path(descriptions_path(get_spec(name), os.fspath(root), set_name))
    path.parent.mkdir(parents=True, exist_ok=True)
    sentences = ("A photo of a {}, seen up close.", "A {} has a shape of its own.", "A {} in its usual place.",
                 "Somebody looking at a {}.")
    data = {c: [sentences[i % len(sentences)].format(c) + (f" ({i})" if i >= len(sentences) else "")
                for i in range(per_class)] for c in tiny_classnames(name, num_classes)}
    path.write_text(json.dumps(data, indent=1))
    return path
