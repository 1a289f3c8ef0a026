"""SEP: Token Fusion Modules on both encoders, frozen-feature fusion and a prototype classifier.

Before training (never for evaluation-only runs) the prototype classifier is set to the
normalized class means of frozen CLIP features of the training images: one pass over every
training image with the test transform (no augmentation, no dropped last batch, so every class
gets its images even with 1 shot and a large batch).

The prototypes are class-dependent and used in training only: they travel in the training-only
part of the same checkpoint file (`training_extras`), so a checkpoint is one unit; resuming
restores them, evaluation never reads them, and a resume never silently re-initialises them
(a checkpoint without them is refused).
"""

from __future__ import annotations

import torch
from tqdm import tqdm

from clipprompt.errors import CheckpointError
from clipprompt.models import SEP as SEPModel
from clipprompt.models.base import DEFAULT_TEMPLATE
from clipprompt.models.sep import class_means

from ._dassl import TRAINER_REGISTRY, build_data_loader
from .base import ClipTrainer, on_terminal
from .data import counted_rows


@TRAINER_REGISTRY.register()
class SEP(ClipTrainer):
    model: SEPModel

    def build_custom_model(self, clip, classnames):
        template = getattr(self.dm.dataset, "template", DEFAULT_TEMPLATE)  # TRAINER.SEP.TEMPLATE overrides it
        return SEPModel(clip, classnames, self.options, template=template)

    def build_model(self) -> None:
        super().build_model()
        self._prototypes_restored = False

    # ---- prototypes ------------------------------------------------------------------------

    def before_train(self) -> None:
        super().before_train()  # resumes from the last checkpoint if there is one
        if not self._prototypes_restored:
            self.init_prototypes()

    @torch.no_grad()
    def init_prototypes(self) -> None:
        """Prototype classifier := normalized class means of frozen features of the training images."""
        cfg = self.cfg
        loader = build_data_loader(
            cfg,
            sampler_type="SequentialSampler",
            data_source=self.dm.dataset.train_x,
            batch_size=cfg.DATALOADER.TEST.BATCH_SIZE,
            tfm=self.test_loader.dataset.transform,
            is_train=False,
            dataset_wrapper=type(self.test_loader.dataset),  # the project's checked image reading
        )
        self.set_model_mode("eval")
        features, labels = [], []
        with self.precision.autocast():
            for batch in tqdm(loader, desc="SEP prototypes (class means)", dynamic_ncols=True, disable=not on_terminal()):
                self.note_skipped(batch, "left out of SEP's prototypes")
                images, batch_labels = self.parse_batch_test(batch)
                batch_features, keep = self.model.frozen_image_features(images), counted_rows(batch)
                if keep is not None:  # an unreadable image's stand-in is not counted twice
                    batch_features, batch_labels = batch_features[keep.to(images.device)], batch_labels[keep.to(images.device)]
                features.append(batch_features)
                labels.append(batch_labels)
        labels = torch.cat(labels)
        means = class_means(torch.cat(features), labels, self.model.num_classes)
        self.model.init_prototypes(means)
        self.set_model_mode("train")
        print(f"SEP prototypes initialised from {len(labels):,} training images")

    # ---- checkpoints: the prototypes travel in the checkpoint's training-only part ----------------

    def training_extras(self) -> dict:
        if not self.model.prototypes_initialized:
            return {}
        return {"prototypes": self.model.prototypes.detach().cpu(), "classnames": list(self.model.classnames)}

    def restore_training_extras(self, extras: dict, path: str) -> None:
        if "prototypes" not in extras:
            raise CheckpointError(
                f"{path} holds no SEP prototypes (saved by an older version or another trainer); "
                "delete its folder to train again from scratch."
            )
        if list(extras.get("classnames", [])) != list(self.model.classnames):
            raise CheckpointError(f"{path} holds SEP prototypes of other classes than this run's.")
        try:
            self.model.load_prototypes(extras["prototypes"].to(self.device))
        except ValueError as exc:
            raise CheckpointError(f"{path}: {exc}") from None
        self._prototypes_restored = True
        print(f"Restored SEP's trained prototypes from {path}")
