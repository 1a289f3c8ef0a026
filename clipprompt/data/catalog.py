"""Static facts about the 15 CoOp benchmark datasets.

Everything the loaders, the docs and the error messages need to know about a
dataset lives in one :class:`DatasetSpec`, so adding a dataset means adding
one entry here rather than a new loader module.
"""
from __future__ import annotations

import difflib
import enum
from dataclasses import dataclass

from .errors import DataConfigError

HF_MIRROR = "https://huggingface.co/zhengli97/prompt_learning_dataset"


class Layout(str, enum.Enum):
    """How a dataset is stored on disk; selects the reader in ``build.py``."""

    SPLIT_JSON = "split_json"  # images + CoOp's split_zhou_*.json
    FGVC_TXT = "fgvc_txt"  # FGVC-Aircraft's own images_variant_*.txt files
    IMAGENET = "imagenet"  # images/{train,val}/<wnid>/ + classnames.txt
    WNID_FOLDERS = "wnid_folders"  # test-only, one folder per wnid
    INDEX_FOLDERS = "index_folders"  # test-only, folders named 0..999


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset lives under ``$DATA`` and how to prompt CLIP for it.

    Paths are relative: ``dataset_dir`` to the data root, ``image_dir`` and
    ``split_file`` to ``dataset_dir``. An empty ``image_dir`` means the split
    file's paths are relative to ``dataset_dir`` itself (Stanford Cars).
    """

    name: str  # Dassl registry name, the value of cfg.DATASET.NAME
    config: str  # stem of configs/datasets/<config>.yaml
    dataset_dir: str
    image_dir: str
    layout: Layout
    template: str  # hand-crafted CLIP prompt, "{}" is the class name
    num_classes: int  # in the full, real dataset
    source: str  # where the images come from
    split_file: str | None = None
    split_source: str | None = None  # where the split file comes from

    @property
    def test_only(self) -> bool:
        """ImageNet variants are evaluation sets: no train or val split."""
        return self.layout in (Layout.WNID_FOLDERS, Layout.INDEX_FOLDERS)

    @property
    def docs(self) -> str:
        """The DATASETS.md section that explains how to install this dataset."""
        return f"DATASETS.md#{self.name.lower()}"

    @property
    def hint(self) -> str:
        """Where to get the data; ends every error message about this dataset."""
        hint = f"see {self.docs}; images: {self.source}"
        if self.split_source:
            hint += f"; {self.split_file}: {self.split_source}"
        return hint


def _split_url(file_id: str) -> str:
    return f"https://drive.google.com/file/d/{file_id}/view"


_IMAGENET_CLASSNAMES = (
    "classnames.txt (CLIP's ImageNet class names, one '<wnid> <name>' per line) from "
    + _split_url("1-61f_ol79pViBFDG_IDlUQSwoLcn2XXF")
)

_SPECS = (
    DatasetSpec(
        name="ImageNet",
        config="imagenet",
        dataset_dir="imagenet",
        image_dir="images",
        layout=Layout.IMAGENET,
        template="a photo of a {}.",
        num_classes=1000,
        source="ILSVRC-2012 train and val images from https://image-net.org (free account "
        "required), plus " + _IMAGENET_CLASSNAMES,
    ),
    DatasetSpec(
        name="Caltech101",
        config="caltech101",
        dataset_dir="caltech-101",
        image_dir="101_ObjectCategories",
        layout=Layout.SPLIT_JSON,
        template="a photo of a {}.",
        num_classes=100,
        source="101_ObjectCategories from https://data.caltech.edu/records/mzrjq-6wc02",
        split_file="split_zhou_Caltech101.json",
        split_source=_split_url("1hyarUivQE36mY6jSomru6Fjd-JzwcCzN"),
    ),
    DatasetSpec(
        name="OxfordPets",
        config="oxford_pets",
        dataset_dir="oxford_pets",
        image_dir="images",
        layout=Layout.SPLIT_JSON,
        template="a photo of a {}, a type of pet.",
        num_classes=37,
        source="images.tar.gz from https://www.robots.ox.ac.uk/~vgg/data/pets/",
        split_file="split_zhou_OxfordPets.json",
        split_source=_split_url("1501r8Ber4nNKvmlFVQZ8SeUHTcdTTEqs"),
    ),
    DatasetSpec(
        name="StanfordCars",
        config="stanford_cars",
        dataset_dir="stanford_cars",
        image_dir="",
        layout=Layout.SPLIT_JSON,
        template="a photo of a {}.",
        num_classes=196,
        source="cars_train/ and cars_test/; the official Stanford links are dead, use the "
        f"mirror at {HF_MIRROR}",
        split_file="split_zhou_StanfordCars.json",
        split_source=_split_url("1ObCFbaAgVu0I-k_Au-gIUcefirdAuizT"),
    ),
    DatasetSpec(
        name="OxfordFlowers",
        config="oxford_flowers",
        dataset_dir="oxford_flowers",
        image_dir="jpg",
        layout=Layout.SPLIT_JSON,
        template="a photo of a {}, a type of flower.",
        num_classes=102,
        source="102flowers.tgz from https://www.robots.ox.ac.uk/~vgg/data/flowers/102/",
        split_file="split_zhou_OxfordFlowers.json",
        split_source=_split_url("1Pp0sRXzZFZq15zVOzKjKBu4A9i01nozT"),
    ),
    DatasetSpec(
        name="Food101",
        config="food101",
        dataset_dir="food-101",
        image_dir="images",
        layout=Layout.SPLIT_JSON,
        template="a photo of {}, a type of food.",
        num_classes=101,
        source="food-101.tar.gz from https://data.vision.ee.ethz.ch/cvl/datasets_extra/food-101/",
        split_file="split_zhou_Food101.json",
        split_source=_split_url("1QK0tGi096I0Ba6kggatX1ee6dJFIcEJl"),
    ),
    DatasetSpec(
        name="FGVCAircraft",
        config="fgvc_aircraft",
        dataset_dir="fgvc_aircraft",
        image_dir="images",
        layout=Layout.FGVC_TXT,
        template="a photo of a {}, a type of aircraft.",
        num_classes=100,
        source="the data/ folder of https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/"
        "archives/fgvc-aircraft-2013b.tar.gz, renamed to fgvc_aircraft/",
    ),
    DatasetSpec(
        name="SUN397",
        config="sun397",
        dataset_dir="sun397",
        image_dir="SUN397",
        layout=Layout.SPLIT_JSON,
        template="a photo of a {}.",
        num_classes=397,
        source="SUN397.tar.gz; the official Princeton link is often down, use the mirror at "
        + HF_MIRROR,
        split_file="split_zhou_SUN397.json",
        split_source=_split_url("1y2RD81BYuiyvebdN-JymPfyWYcd8_MUq"),
    ),
    DatasetSpec(
        name="DescribableTextures",
        config="dtd",
        dataset_dir="dtd",
        image_dir="images",
        layout=Layout.SPLIT_JSON,
        template="{} texture.",
        num_classes=47,
        source="dtd-r1.0.1.tar.gz from https://www.robots.ox.ac.uk/~vgg/data/dtd/",
        split_file="split_zhou_DescribableTextures.json",
        split_source=_split_url("1u3_QfB467jqHgNXC00UIzbLZRQCg2S7x"),
    ),
    DatasetSpec(
        name="EuroSAT",
        config="eurosat",
        dataset_dir="eurosat",
        image_dir="2750",
        layout=Layout.SPLIT_JSON,
        template="a centered satellite photo of {}.",
        num_classes=10,
        source="the RGB images, now at https://zenodo.org/records/7711810 (EuroSAT_RGB.zip; "
        f"rename its folder to 2750), or the mirror at {HF_MIRROR}",
        split_file="split_zhou_EuroSAT.json",
        split_source=_split_url("1Ip7yaCWFi0eaOFUGga0lUdVi_DDQth1o"),
    ),
    DatasetSpec(
        name="UCF101",
        config="ucf101",
        dataset_dir="ucf101",
        image_dir="UCF-101-midframes",
        layout=Layout.SPLIT_JSON,
        template="a photo of a person doing {}.",
        num_classes=101,
        source="UCF-101-midframes.zip (one middle frame per video) from "
        + _split_url("10Jqome3vtUA2keJkNanAiFpgbyC9Hc2O"),
        split_file="split_zhou_UCF101.json",
        split_source=_split_url("1I0S0q91hJfsV9Gf4xDIjgDq4AqBNJb1y"),
    ),
    DatasetSpec(
        name="ImageNetV2",
        config="imagenetv2",
        dataset_dir="imagenetv2",
        image_dir="imagenetv2-matched-frequency-format-val",
        layout=Layout.INDEX_FOLDERS,
        template="a photo of a {}.",
        num_classes=1000,
        source="the matched-frequency archive listed at https://github.com/modestyachts/ImageNetV2, "
        "plus ImageNet's classnames.txt",
    ),
    DatasetSpec(
        name="ImageNetSketch",
        config="imagenet_sketch",
        dataset_dir="imagenet-sketch",
        image_dir="images",
        layout=Layout.WNID_FOLDERS,
        template="a photo of a {}.",
        num_classes=1000,
        source="https://github.com/HaohanWang/ImageNet-Sketch, plus ImageNet's classnames.txt",
    ),
    DatasetSpec(
        name="ImageNetA",
        config="imagenet_a",
        dataset_dir="imagenet-adversarial",
        image_dir="imagenet-a",
        layout=Layout.WNID_FOLDERS,
        template="a photo of a {}.",
        num_classes=200,
        source="imagenet-a.tar from https://github.com/hendrycks/natural-adv-examples, plus "
        "ImageNet's classnames.txt",
    ),
    DatasetSpec(
        name="ImageNetR",
        config="imagenet_r",
        dataset_dir="imagenet-rendition",
        image_dir="imagenet-r",
        layout=Layout.WNID_FOLDERS,
        template="a photo of a {}.",
        num_classes=200,
        source="imagenet-r.tar from https://github.com/hendrycks/imagenet-r, plus ImageNet's "
        "classnames.txt",
    ),
)

CATALOG: dict[str, DatasetSpec] = {spec.name: spec for spec in _SPECS}


def get_spec(name: str) -> DatasetSpec:
    """Look up a dataset by its Dassl name, failing with the list of valid names."""
    try:
        return CATALOG[name]
    except KeyError:
        pass
    close = difflib.get_close_matches(name, list(CATALOG), n=1)
    suggestion = f" Did you mean {close[0]!r}?" if close else ""
    raise DataConfigError(
        f"Unknown dataset {name!r}.{suggestion} Valid names: {', '.join(CATALOG)}"
    )
