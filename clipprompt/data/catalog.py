"""Static facts about the 15 CoOp benchmark datasets.

Everything the loaders, the docs and the error messages need to know about a
dataset lives in one :class:`DatasetSpec`, so adding a dataset means adding
one entry here rather than a new loader module.
"""
from __future__ import annotations

import difflib
import enum
import os
from dataclasses import dataclass

from .errors import DataConfigError

HF_MIRROR_REPO = "zhengli97/prompt_learning_dataset"
HF_MIRROR = f"https://huggingface.co/{HF_MIRROR_REPO}"
#: Google Drive ids of files CoOp published besides the split files (each stated once, here).
CLASSNAMES_DRIVE_ID = "1-61f_ol79pViBFDG_IDlUQSwoLcn2XXF"
UCF101_MIDFRAMES_DRIVE_ID = "10Jqome3vtUA2keJkNanAiFpgbyC9Hc2O"
IMAGENET_SKETCH_DRIVE_ID = "1Mj0i5HBthqH1p_yeXzsg22gZduvgoNeA"  # ImageNet-Sketch.zip, its authors' copy


def mirror_url(filename: str) -> str:
    """Direct download address of a file of the Hugging Face mirror (plain HTTPS, no client).

    ``HF_ENDPOINT`` (the variable huggingface_hub honours) points it at another endpoint.
    """
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    return f"{endpoint}/{HF_MIRROR_REPO}/resolve/main/{filename}"


@dataclass(frozen=True)
class MirrorFile:
    """One zip of the mirror: a whole dataset folder, its split file included.

    Names, sizes and SHA-256 as the mirror publishes them (its file listing and the git-lfs
    pointers of its upload commits, revision ceb3112); size and sha256 are None where no
    published value was found.
    """

    name: str
    size: int | None = None
    sha256: str | None = None


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
    split_drive_id: str | None = None  # CoOp's Google Drive copy of the split file
    mirror: MirrorFile | None = None  # the dataset's zip in the Hugging Face mirror

    @property
    def split_source(self) -> str | None:
        """Where the split file comes from."""
        return _split_url(self.split_drive_id) if self.split_drive_id else None

    @property
    def test_only(self) -> bool:
        """ImageNet variants are evaluation sets: no train or val split."""
        return self.layout in (Layout.WNID_FOLDERS, Layout.INDEX_FOLDERS)

    @property
    def docs(self) -> str:
        """The DATASETS.md section that explains how to install this dataset."""
        return f"DATASETS.md#{self.name.lower()}"

    @property
    def sources(self) -> str:
        """Where the data come from: the DATASETS.md section, the images, the split file."""
        sources = f"see {self.docs}; images: {self.source}"
        if self.split_source:
            sources += f"; {self.split_file}: {self.split_source}"
        return sources

    @property
    def hint(self) -> str:
        """Where to get the data; ends every error message about this dataset."""
        return f"{self.sources}; or download it: {self.prepare_command}"

    @property
    def prepare_command(self) -> str:
        """The command that downloads, unpacks and verifies this dataset."""
        return f"python -m clipprompt.data.prepare {self.config} --root $DATA"


def _split_url(file_id: str) -> str:
    return f"https://drive.google.com/file/d/{file_id}/view"


_IMAGENET_CLASSNAMES = (
    "classnames.txt (CLIP's ImageNet class names, one '<wnid> <name>' per line) from "
    + _split_url(CLASSNAMES_DRIVE_ID)
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
        split_drive_id="1hyarUivQE36mY6jSomru6Fjd-JzwcCzN",
        mirror=MirrorFile("caltech-101.zip"),
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
        split_drive_id="1501r8Ber4nNKvmlFVQZ8SeUHTcdTTEqs",
        mirror=MirrorFile("oxford_pets.zip"),
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
        split_drive_id="1ObCFbaAgVu0I-k_Au-gIUcefirdAuizT",
        mirror=MirrorFile("stanford_cars.zip"),
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
        split_drive_id="1Pp0sRXzZFZq15zVOzKjKBu4A9i01nozT",
        mirror=MirrorFile("oxford_flowers.zip", 346454039,
                          "bd8d090f0f28581458243cfe4d4a7b1cd5f3a3a8840096adb8bb7ad80020907e"),
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
        split_drive_id="1QK0tGi096I0Ba6kggatX1ee6dJFIcEJl",
        mirror=MirrorFile("food101.zip", 5005224796,
                          "b9f59577fcc4f85183b7a102b6f84eecf338fde6453fa486309dc2951efeb254"),
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
        mirror=MirrorFile("fgvc_aircraft.zip"),
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
        split_drive_id="1y2RD81BYuiyvebdN-JymPfyWYcd8_MUq",
        mirror=MirrorFile("sun397.zip", 39182693483,
                          "ce6dee6685c9f1d592c8297e193dde885aa9c50d008fd998a38ccc57a3dda722"),
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
        split_drive_id="1u3_QfB467jqHgNXC00UIzbLZRQCg2S7x",
        mirror=MirrorFile("dtd.zip", 626071992,
                          "5ba4d3000e60f5541ba15a082033ca0696eee68125e9c28edff3dbe22f04313b"),
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
        split_drive_id="1Ip7yaCWFi0eaOFUGga0lUdVi_DDQth1o",
        mirror=MirrorFile("eurosat.zip", 94808536,
                          "cedceda1690cad47bc3b41eb6bf2d0a134ec7413558128409928829f06c74613"),
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
        + _split_url(UCF101_MIDFRAMES_DRIVE_ID),
        split_file="split_zhou_UCF101.json",
        split_drive_id="1I0S0q91hJfsV9Gf4xDIjgDq4AqBNJb1y",
        mirror=MirrorFile("ucf101.zip"),
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
        mirror=MirrorFile("imagenetv2.zip"),
    ),
    DatasetSpec(
        name="ImageNetSketch",
        config="imagenet_sketch",
        dataset_dir="imagenet-sketch",
        image_dir="images",
        layout=Layout.WNID_FOLDERS,
        template="a photo of a {}.",
        num_classes=1000,
        source="ImageNet-Sketch.zip (sketch/ renamed to images/) from "
        + _split_url(IMAGENET_SKETCH_DRIVE_ID)
        + " (see https://github.com/HaohanWang/ImageNet-Sketch), plus ImageNet's classnames.txt",
        mirror=MirrorFile("imagenet-sketch.zip"),
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
        mirror=MirrorFile("imagenet-adversarial.zip", 684370441,
                          "5c577c4cde2f2b1d999a1c26c9c7da31ea7fd4c47f7ad6bc4e6d71fcf646d099"),
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
        mirror=MirrorFile("imagenet-rendition.zip"),
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
