"""The evaluation protocols as data: which datasets, seeds and shots each one uses.

The protocol driver (`clipprompt.sweeps.driver`) and the results tables (`clipprompt.results.report`)
both read these lists, so a protocol is defined in one place. Names are the stems of
`configs/datasets/<name>.yaml` (the `config` field of `clipprompt.data.CATALOG`), which are
also the dataset folder names of the output tree written by `scripts/common/`.
"""

from __future__ import annotations

from ..data.catalog import CATALOG

#: Base-to-new generalization: the 11 datasets, in the papers' column order.
BASE2NEW = (
    "imagenet", "caltech101", "oxford_pets", "stanford_cars", "oxford_flowers", "food101",
    "fgvc_aircraft", "sun397", "dtd", "eurosat", "ucf101",
)
#: Cross-dataset transfer and domain generalization train on this dataset (all classes).
SOURCE = "imagenet"
#: Cross-dataset transfer: the 10 targets.
XD_TARGETS = tuple(name for name in BASE2NEW if name != SOURCE)
#: Domain generalization: the 4 ImageNet variants.
DG_TARGETS = ("imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r")
#: Few-shot learning: the same 11 datasets, at these shots per class.
FEW_SHOT = BASE2NEW
SHOTS = (1, 2, 4, 8, 16)
SEEDS = (1, 2, 3)

PROTOCOLS = ("base2new", "xd", "dg", "few_shot")

#: Trainers whose runs follow a protocol of their own, with the note the tables and figures print:
#: they are listed after the methods trained on labels only, marked, and never ranked among them.
UNRANKED = {
    "PromptKD": "distilled from a ViT-L/14 teacher on unlabeled training images; not ranked",
}
UNRANKED_MARK = "†"


def unranked_note(trainer: str) -> str | None:
    """`† PromptKD: distilled from ...; not ranked` for a trainer of its own protocol, else None."""
    note = UNRANKED.get(trainer)
    return f"{UNRANKED_MARK} {trainer}: {note}." if note else None

#: config stem -> the name the papers print (tables, figures): ImageNet, Flowers102, DTD, ImageNet-A, ...
DISPLAY_NAMES = {
    "imagenet": "ImageNet", "caltech101": "Caltech101", "oxford_pets": "OxfordPets",
    "stanford_cars": "StanfordCars", "oxford_flowers": "Flowers102", "food101": "Food101",
    "fgvc_aircraft": "FGVCAircraft", "sun397": "SUN397", "dtd": "DTD", "eurosat": "EuroSAT",
    "ucf101": "UCF101", "imagenetv2": "ImageNetV2", "imagenet_sketch": "ImageNet-Sketch",
    "imagenet_a": "ImageNet-A", "imagenet_r": "ImageNet-R",
}

#: Dassl dataset name (`result.json`'s "dataset") -> config stem.
CONFIG_OF = {spec.name: spec.config for spec in CATALOG.values()}

_KNOWN = set(CONFIG_OF.values())
for _name in (*BASE2NEW, *DG_TARGETS):
    assert _name in _KNOWN, f"{_name} is not a dataset config in clipprompt.data.CATALOG"
    assert _name in DISPLAY_NAMES, f"{_name} has no display name"


def display_name(dataset: str) -> str:
    """A dataset's usual name (`oxford_flowers` -> `Flowers102`); a dataset outside the protocols keeps its stem."""
    return DISPLAY_NAMES.get(dataset, dataset)


def datasets_of(protocol: str) -> tuple[str, ...]:
    """The datasets a protocol evaluates on (for xd and dg: the targets, not the source)."""
    return {"base2new": BASE2NEW, "xd": XD_TARGETS, "dg": DG_TARGETS, "few_shot": FEW_SHOT}[protocol]
