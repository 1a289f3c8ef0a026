"""Register every CoOp benchmark dataset in Dassl's ``DATASET_REGISTRY``.

One generic :class:`CoOpDataset` does the work; a subclass per catalog entry
only exists because Dassl looks datasets up by class name
(``cfg.DATASET.NAME``). All logic lives in :mod:`clipprompt.data`.
"""
from __future__ import annotations

from typing import ClassVar

from dassl_api import DATASET_REGISTRY, DatasetBase, Datum  # Dassl, minus its import side effects; no trainer

from clipprompt.data import CATALOG, DatasetSpec, Record, build_splits, dataset_paths


def to_datum(records: list[Record]) -> list[Datum]:
    """Dassl's ``Datum`` checks that every image file exists."""
    return [Datum(impath=r.impath, label=r.label, classname=r.classname) for r in records]


class CoOpDataset(DatasetBase):
    """A CoOp dataset built from ``cfg.DATASET`` (ROOT, NAME, NUM_SHOTS, SUBSAMPLE_CLASSES) and ``cfg.SEED``.

    Besides Dassl's attributes it exposes ``template``, the hand-crafted CLIP
    prompt, and ``spec``, the catalog entry.
    """

    spec: ClassVar[DatasetSpec]
    template: ClassVar[str]

    def __init__(self, cfg) -> None:
        self.dataset_dir, self.image_dir = dataset_paths(self.spec, cfg.DATASET.ROOT)
        splits = build_splits(
            self.spec.name,
            cfg.DATASET.ROOT,
            num_shots=cfg.DATASET.NUM_SHOTS,
            seed=cfg.SEED,
            subsample=cfg.DATASET.get("SUBSAMPLE_CLASSES", "all"),
        )
        test = to_datum(splits["test"])
        # Test-only variants: build_splits returns test as train too, reuse the Datums.
        train = test if self.spec.test_only else to_datum(splits["train"])
        val = to_datum(splits["val"]) or None
        super().__init__(train_x=train, val=val, test=test)
        self.shots_used = splits["shots_used"]  # recorded in result.json beside the NUM_SHOTS asked
        for note in splits["notes"]:
            print(f"warning: {note}")  # stdout: the run's log.txt keeps it
        # Take class names from all splits, not just train_x as Dassl does.
        self._classnames = list(splits["classnames"])
        self._lab2cname = dict(enumerate(self._classnames))
        self._num_classes = len(self._classnames)


def _register(spec: DatasetSpec) -> type[CoOpDataset]:
    cls = type(
        spec.name,
        (CoOpDataset,),
        {
            "__module__": __name__,
            "__doc__": f"{spec.name} ({spec.docs}), prompt {spec.template!r}.",
            "spec": spec,
            "template": spec.template,
            "dataset_dir": spec.dataset_dir,
        },
    )
    # Re-importing this module (e.g. under another name) may replace our own entry, nothing else.
    force = spec.name in DATASET_REGISTRY.registered_names() and (
        getattr(DATASET_REGISTRY.get(spec.name), "spec", None) == spec
    )
    DATASET_REGISTRY.register(cls, force=force)
    return cls


REGISTERED: dict[str, type[CoOpDataset]] = {name: _register(spec) for name, spec in CATALOG.items()}
globals().update(REGISTERED)

__all__ = ["CoOpDataset", "REGISTERED", "to_datum", *REGISTERED]
