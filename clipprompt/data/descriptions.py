"""Class descriptions written by a language model, which some methods use as text targets.

CoPrompt (Roy & Etemad, ICLR 2024) pulls its text features towards frozen CLIP's features of GPT-3
descriptions of each class. The authors publish them in their repository (``gpt_file/<x>_prompt.json``:
``{class name: [sentence, ...]}``); we never ship them: ``python -m clipprompt.data.prepare NAME
--descriptions coprompt`` downloads each dataset's file from that repository at a pinned commit into
``<dataset folder>/descriptions_coprompt.json``, checked like the datasets (pinned size and sha256,
resumable, ``--dry-run``, ``--check``) and for its content (a JSON object of non-empty lists of
sentences). A run reads it with :func:`load_descriptions`.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass

from .build import dataset_paths
from .catalog import CATALOG, DatasetSpec
from .download import Fetch, Source, _check_file
from .errors import DatasetError

RAW_GITHUB = "https://raw.githubusercontent.com"  # tests point it at a local server


@dataclass(frozen=True)
class PinnedFile:
    """One file of a description set: its path in the repository, and its size and sha256 when known."""

    path: str
    size: int | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class DescriptionSet:
    """Where a method's published descriptions live: a repository at a commit, one file per dataset."""

    name: str
    repo: str
    commit: str
    files: dict[str, PinnedFile]  # catalog name -> file

    def url(self, path: str) -> str:
        return f"{RAW_GITHUB}/{self.repo}/{self.commit}/{path}"


# The ImageNet files of the authors' repository are stored outside git's objects (absent from every
# clone we could read), so their size and sha256 are not pinned: they are checked for content only.
_IMAGENET = PinnedFile("gpt_file/imagenet_prompt.json")
COPROMPT = DescriptionSet(
    "coprompt",
    "ShuvenduRoy/CoPrompt",
    "a2a6c12e3622cfe4b3a127f4ba0c4f3eb841418c",
    {
        "Caltech101": PinnedFile("gpt_file/caltech_prompt.json", 421183,
                                 "e98b2b4809f04d9055296696518a78584d4252235d523e3093e9c52b3dba7564"),
        "DescribableTextures": PinnedFile("gpt_file/dtd_prompt.json", 197272,
                                          "5dd358b0bd09c98d6d4d6ed4d5048f5c1d4dddc24cf3a8c69d45bb4d68287991"),
        "EuroSAT": PinnedFile("gpt_file/eurosat_prompt.json", 15439,
                              "a6aaa8850fd902ed74bfab940e5aac2f1b3ebfdecf7b3c6fb2201c91c9339e06"),
        "FGVCAircraft": PinnedFile("gpt_file/fgvc_prompt.json", 845966,
                                   "a29ddbf5c1cab48b6fbcbb9e4930df55e69f83d20d0fc508969d7c75a2457fa2"),
        "Food101": PinnedFile("gpt_file/food101_prompt.json", 685866,
                              "a9564b8e8e371b06416f7ae9e5508853431fb3eae6a4212843802bd07e1a8c0d"),
        "OxfordFlowers": PinnedFile("gpt_file/oxford_flowers_prompt.json", 200284,
                                    "0202f638ed18a2633375f84175b3db70bfc14927c6c82d57a87d42a1e722f844"),
        "OxfordPets": PinnedFile("gpt_file/oxford_pets_prompt.json", 49571,
                                 "14a697c4e72e0115189b501a4be64ef033bf94fcb540819632cb34afe9d29ff2"),
        "StanfordCars": PinnedFile("gpt_file/stanford_cars_prompt.json", 905180,
                                   "3505d5d67a06b76af14e3e74d6543da3d59aa4b29869a30cbbb56adbc751fe8e"),
        "SUN397": PinnedFile("gpt_file/sun397_prompt.json", 1890060,
                             "f743422d1786b66b019c4f7d80b181a00be0b6a783a36c5fb928aa45d59662d4"),
        "UCF101": PinnedFile("gpt_file/ucf101_prompt.json", 697778,
                             "39bc7fbf0e7e60d48cc9e50ed008e6a5d7003c2d68713f0f76ec823cbdce0d09"),
        "ImageNet": _IMAGENET,
        "ImageNetV2": PinnedFile("gpt_file/imagenetv2_prompt.json"),
        "ImageNetSketch": PinnedFile("gpt_file/imagenet_sketch_prompt.json"),
        "ImageNetA": PinnedFile("gpt_file/imagenet_a_prompt.json"),
        "ImageNetR": PinnedFile("gpt_file/imagenet_r_prompt.json"),
    },
)
DESCRIPTION_SETS = {COPROMPT.name: COPROMPT}


def descriptions_filename(set_name: str) -> str:
    return f"descriptions_{set_name}.json"


def descriptions_path(spec: DatasetSpec, root: str, set_name: str) -> str:
    """Where ``prepare --descriptions set_name`` puts the file of ``spec`` under the data root."""
    dataset_dir, _ = dataset_paths(spec, root)
    return os.path.join(dataset_dir, descriptions_filename(set_name))


def prepare_command(spec: DatasetSpec, root: str, set_name: str) -> str:
    return f"python -m clipprompt.data.prepare {spec.config} --root {root} --descriptions {set_name}"


def descriptions_fetch(spec: DatasetSpec, set_name: str) -> Fetch:
    """The download of one dataset's file of a description set (a plain file, not an archive)."""
    chosen = DESCRIPTION_SETS[set_name]
    pinned = chosen.files[spec.name]
    source = Source("url", chosen.url(pinned.path), pinned.size, pinned.sha256)
    filename = descriptions_filename(set_name)
    return Fetch(filename, (source,), provides=filename, archive=False)


def parse_descriptions(path: str) -> dict[str, list[str]]:
    """The file's ``{class name: [sentence, ...]}``, or a one-line :class:`DatasetError` saying what is wrong."""
    expected = "a JSON object mapping each class name to a non-empty list of sentences"
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise DatasetError(path, expected, f"it cannot be read ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict) or not data:
        raise DatasetError(path, expected, "it holds something else")
    for name, sentences in data.items():
        if not (isinstance(sentences, list) and sentences and all(isinstance(s, str) for s in sentences)):
            raise DatasetError(path, expected, f"class {name!r} has {sentences!r:.60}")
    return data


def check_file(spec: DatasetSpec, root: str, set_name: str) -> str | None:
    """``--check``: why the prepared file of ``spec`` is not the published one, or None when it is."""
    path = descriptions_path(spec, root, set_name)
    if not os.path.isfile(path):
        return f"{path} is missing"
    problem = _check_file(path, descriptions_fetch(spec, set_name).sources[0])
    if problem:
        return f"{path}: {problem}"
    try:
        parse_descriptions(path)
    except DatasetError as exc:
        return str(exc)
    return None


def require_descriptions(dataset_name: str, root: str, set_name: str) -> str:
    """The path of the prepared descriptions of ``dataset_name``, or a one-line error naming the
    prepare command (checked with the config, before a run loads anything)."""
    spec = CATALOG.get(dataset_name)
    if spec is None or dataset_name not in DESCRIPTION_SETS[set_name].files:
        raise DatasetError(f"DATASET.NAME {dataset_name}", f"a dataset with {set_name} descriptions",
                           f"they exist for {', '.join(DESCRIPTION_SETS[set_name].files)}")
    path = descriptions_path(spec, root, set_name)
    if not os.path.isfile(path):
        raise DatasetError(path, f"the {set_name} class descriptions",
                           f"get them with: {prepare_command(spec, root, set_name)}")
    return path


def load_descriptions(dataset_name: str, root: str, set_name: str, classnames: Sequence[str]) -> list[list[str]]:
    """Each class's descriptions, in the order of ``classnames``, for a run on ``dataset_name``.

    The file is looked up by the class name with "_" read as a space, as the authors' code does. A
    missing file, or a class without descriptions, is a one-line error naming the prepare command.
    """
    path = require_descriptions(dataset_name, root, set_name)
    command = prepare_command(CATALOG[dataset_name], root, set_name)
    data = parse_descriptions(path)
    wanted = [name.replace("_", " ") for name in classnames]
    missing = [name for name in wanted if name not in data]
    if missing:
        raise DatasetError(path, f"descriptions of every class; none for {', '.join(map(repr, missing[:5]))}"
                           + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""),
                           f"get the published file again with: {command}")
    return [list(data[name]) for name in wanted]
