"""Per-dataset recipes: the files each CoOp dataset needs and their sources, in order.

Each :class:`Recipe` lists :class:`~clipprompt.data.download.Fetch` entries, each with its
fallbacks: the official archive, CoOp's files on Google Drive (ids from the catalog), and the
dataset's zip in the Hugging Face mirror (name, size and sha256 from the catalog). The mirror
has no split file beside its zips: a split file the Drive cannot give is taken from inside the
zip. Data only; downloading is in ``download.py``.
"""
from __future__ import annotations

from dataclasses import dataclass

from .catalog import CATALOG, CLASSNAMES_DRIVE_ID, IMAGENET_SKETCH_DRIVE_ID, UCF101_MIDFRAMES_DRIVE_ID
from .download import Fetch, Source


@dataclass(frozen=True)
class Recipe:
    """How to obtain one dataset; ``manual`` is printed when ``manual_paths`` are missing."""

    name: str
    fetches: tuple[Fetch, ...] = ()
    manual: str = ""
    manual_paths: tuple[str, ...] = ()
    num_classes: int | None = None  # expected class count, checked by verify


def _gd(file_id: str) -> Source:
    return Source("gdrive", file_id)


def _url(url: str) -> Source:
    return Source("url", url)


def _mirror(spec_name: str) -> Source:
    """The mirror's zip of a whole dataset folder (layout and split file included)."""
    mirror = CATALOG[spec_name].mirror
    assert mirror is not None, spec_name
    return Source("mirror", mirror.name, mirror.size, mirror.sha256)


def _split(spec_name: str) -> Fetch:
    """CoOp's split file: from Google Drive, else from inside the dataset's mirror zip."""
    spec = CATALOG[spec_name]
    assert spec.split_file and spec.split_drive_id
    inside = Source("mirror", spec.mirror.name, spec.mirror.size, spec.mirror.sha256,
                    member=spec.split_file)
    return Fetch(filename=spec.split_file, sources=(_gd(spec.split_drive_id), inside),
                 provides=spec.split_file, archive=False)


_VGG = "https://www.robots.ox.ac.uk/~vgg/data/"
_HENDRYCKS = "https://people.eecs.berkeley.edu/~hendrycks/"


def _variant_classnames(spec_name: str | None = None) -> Fetch:
    """ImageNet's classnames.txt: from Drive, else from inside the variant's mirror zip."""
    sources = [_gd(CLASSNAMES_DRIVE_ID)]
    mirror = CATALOG[spec_name].mirror if spec_name else None
    if mirror:
        sources.append(Source("mirror", mirror.name, mirror.size, mirror.sha256, member="classnames.txt"))
    return Fetch(
        filename="classnames.txt",
        sources=tuple(sources),
        provides="classnames.txt",
        archive=False,
        also_ok=("../imagenet/classnames.txt",),
    )


_IMAGENET_MANUAL = """\
ImageNet needs a manual step: its licence requires a free account at https://image-net.org.
  1. Download ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar from image-net.org.
  2. Training images: {dataset_dir}/images/train/<wnid>/*.JPEG
     (1000 folders n01440764, ...; the train archive holds one tar per class, extract each
     into its folder).
  3. Validation images: {dataset_dir}/images/val/<wnid>/*.JPEG
     (the 50,000 flat val images sorted into the same 1000 folders, e.g. with valprep.sh).
  classnames.txt is fetched automatically into {dataset_dir}/.
Then run this command again to verify."""

_SKETCH_MANUAL = """\
ImageNet-Sketch could not be downloaded from any of its sources.
  1. Download ImageNet-Sketch.zip as described at https://github.com/HaohanWang/ImageNet-Sketch
  2. Put its class folders (inside sketch/ in the zip) at {dataset_dir}/images/<wnid>/*.JPEG
     (1000 folders n01440764, ...).
Then run this command again to verify."""


def _default_recipes() -> dict[str, Recipe]:
    r: dict[str, Recipe] = {}

    def add(name: str, *fetches: Fetch, manual: str = "",
            manual_paths: tuple[str, ...] = ()) -> None:
        r[name] = Recipe(name, tuple(fetches), manual, manual_paths, CATALOG[name].num_classes)

    add(
        "ImageNet",
        _variant_classnames(),
        manual=_IMAGENET_MANUAL,
        manual_paths=("images/train", "images/val"),
    )
    add(
        "Caltech101",
        Fetch(
            "caltech-101.zip",
            (
                _url("https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip"
                     "?download=1"),
                _mirror("Caltech101"),
            ),
            provides="101_ObjectCategories",
            nested=("101_ObjectCategories.tar.gz",),
        ),
        _split("Caltech101"),
    )
    add(
        "OxfordPets",
        Fetch(
            "images.tar.gz",
            (_url(_VGG + "pets/data/images.tar.gz"), _mirror("OxfordPets")),
            provides="images",
        ),
        _split("OxfordPets"),
    )
    add(
        "StanfordCars",
        # The official ai.stanford.edu links are dead; the mirror is the only known source.
        Fetch("stanford_cars.zip", (_mirror("StanfordCars"),), provides="cars_train"),
        _split("StanfordCars"),
    )
    add(
        "OxfordFlowers",
        Fetch(
            "102flowers.tgz",
            (_url(_VGG + "flowers/102/102flowers.tgz"), _mirror("OxfordFlowers")),
            provides="jpg",
        ),
        _split("OxfordFlowers"),
    )
    add(
        "Food101",
        Fetch(
            "food-101.tar.gz",
            (_url("https://data.vision.ee.ethz.ch/cvl/food-101.tar.gz"), _mirror("Food101")),
            provides="images",
        ),
        _split("Food101"),
    )
    add(
        "FGVCAircraft",
        Fetch(
            "fgvc-aircraft-2013b.tar.gz",
            (
                _url(_VGG + "fgvc-aircraft/archives/fgvc-aircraft-2013b.tar.gz"),
                _mirror("FGVCAircraft"),
            ),
            provides="variants.txt",  # moves data/ (images/, variants.txt, lists) up one level
        ),
    )
    add(
        "SUN397",
        Fetch(
            "SUN397.tar.gz",
            (_url("http://vision.princeton.edu/projects/2010/SUN/SUN397.tar.gz"),
             _mirror("SUN397")),
            provides="SUN397",
        ),
        _split("SUN397"),
    )
    add(
        "DescribableTextures",
        Fetch(
            "dtd-r1.0.1.tar.gz",
            (_url(_VGG + "dtd/download/dtd-r1.0.1.tar.gz"), _mirror("DescribableTextures")),
            provides="images",
        ),
        _split("DescribableTextures"),
    )
    add(
        "EuroSAT",
        Fetch(
            "EuroSAT_RGB.zip",
            (
                _url("https://zenodo.org/records/7711810/files/EuroSAT_RGB.zip?download=1"),
                _url("https://madm.dfki.de/files/sentinel/EuroSAT.zip"),
                _mirror("EuroSAT"),
            ),
            provides="2750",
            renames=(("EuroSAT_RGB", "2750"),),
        ),
        _split("EuroSAT"),
    )
    add(
        "UCF101",
        Fetch(
            "UCF-101-midframes.zip",
            (_gd(UCF101_MIDFRAMES_DRIVE_ID), _mirror("UCF101")),
            provides="UCF-101-midframes",
        ),
        _split("UCF101"),
    )
    add(
        "ImageNetV2",
        Fetch(
            "imagenetv2-matched-frequency.tar.gz",
            (
                _url("https://huggingface.co/datasets/vaishaal/ImageNetV2/resolve/main/"
                     "imagenetv2-matched-frequency.tar.gz"),
                _mirror("ImageNetV2"),
            ),
            provides="imagenetv2-matched-frequency-format-val",
        ),
        _variant_classnames("ImageNetV2"),
    )
    add(
        "ImageNetSketch",
        Fetch(
            "ImageNet-Sketch.zip",
            (
                _gd(IMAGENET_SKETCH_DRIVE_ID),  # the authors' link (github.com/HaohanWang/ImageNet-Sketch)
                _url("https://huggingface.co/datasets/songweig/imagenet_sketch/resolve/main/data/"
                     "ImageNet-Sketch.zip"),  # the Hugging Face dataset their README points to
                _mirror("ImageNetSketch"),
            ),
            provides="images",
            renames=(("sketch", "images"),),
        ),
        _variant_classnames("ImageNetSketch"),
        manual=_SKETCH_MANUAL,
        manual_paths=("images",),
    )
    add(
        "ImageNetA",
        Fetch(
            "imagenet-a.tar",
            (_url(_HENDRYCKS + "imagenet-a.tar"), _mirror("ImageNetA")),
            provides="imagenet-a",
        ),
        _variant_classnames("ImageNetA"),
    )
    add(
        "ImageNetR",
        Fetch(
            "imagenet-r.tar",
            (_url(_HENDRYCKS + "imagenet-r.tar"), _mirror("ImageNetR")),
            provides="imagenet-r",
        ),
        _variant_classnames("ImageNetR"),
    )
    return r


RECIPES: dict[str, Recipe] = _default_recipes()
