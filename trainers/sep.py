"""SEP: Token Fusion Modules on both encoders, frozen-feature fusion and a prototype classifier.

Before training (never for evaluation-only runs) the prototype classifier is set to the
normalized class means of frozen CLIP features of the training images: one pass over every
training image with the test transform (no augmentation, no dropped last batch, so every class
gets its images even with 1 shot and a large batch).

The prototypes are class-dependent and used in training only, so checkpoints (what evaluation
loads) leave them out. To resume a run without losing the trained prototypes, each checkpoint
`model/model.pth.tar-<E>` gets a training-only companion `model/prototypes.pth.tar-<E>`;
resuming loads it, and evaluation never reads it. Without the companion (a checkpoint of an
older run) resuming re-initialises them from the class means and says so.
"""

from __future__ import annotations

import os.path as osp

import torch
from tqdm import tqdm

from clipprompt.checkpoint import find_checkpoint
from clipprompt.fileio import atomic_write
from clipprompt.errors import CheckpointError
from clipprompt.models import SEP as SEPModel
from clipprompt.models.sep import class_means
from clipprompt.models.base import DEFAULT_TEMPLATE

from ._dassl import TRAINER_REGISTRY, build_data_loader
from .base import MODEL_NAME, ClipTrainer

PROTOTYPES_FILE = "prototypes.pth.tar-{epoch}"


@TRAINER_REGISTRY.register()
class SEP(ClipTrainer):
    model: SEPModel

    def build_custom_model(self, clip, classnames):
        template = getattr(self.dm.dataset, "template", DEFAULT_TEMPLATE)  # TRAINER.SEP.TEMPLATE overrides it
        return SEPModel(clip, classnames, self.options, template=template)

    def build_model(self) -> None:
        super().build_model()
        if self.optim is not None and "eps" in self.optim.defaults:  # Adam, AdamW, AMSGrad, RAdam
            for group in self.optim.param_groups:
                group["eps"] = self.options.adam_eps
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
            for batch in tqdm(loader, desc="SEP prototypes (class means)", dynamic_ncols=True):
                images, batch_labels = self.parse_batch_test(batch)
                features.append(self.model.frozen_image_features(images))
                labels.append(batch_labels)
        means = class_means(torch.cat(features), torch.cat(labels), self.model.num_classes)
        self.model.init_prototypes(means)
        self.set_model_mode("train")
        print(f"SEP prototypes initialised from {len(loader.dataset):,} training images")

    # ---- checkpoints: the prototypes travel in a training-only companion file ----------------

    def save_model(self, epoch, directory, is_best=False, val_result=None, model_name=""):
        super().save_model(epoch, directory, is_best=is_best, val_result=val_result, model_name=model_name)
        if model_name:  # model-best.pth.tar is for evaluation, which never needs prototypes
            return
        path = osp.join(directory, MODEL_NAME, PROTOTYPES_FILE.format(epoch=epoch + 1))
        state = {"prototypes": self.model.prototypes.detach().cpu(), "classnames": list(self.model.classnames)}
        atomic_write(path, lambda tmp: torch.save(state, tmp))

    def resume_model_if_exist(self, directory):
        start_epoch = super().resume_model_if_exist(directory)
        if start_epoch:
            checkpoint = find_checkpoint(osp.join(directory, MODEL_NAME))
            path = osp.join(osp.dirname(checkpoint), PROTOTYPES_FILE.format(epoch=start_epoch))
            self._prototypes_restored = self._load_prototypes(path)
        return start_epoch

    def _load_prototypes(self, path: str) -> bool:
        if not osp.isfile(path):
            print(f"No {osp.basename(path)} beside the checkpoint: re-initialising SEP's prototypes")
            return False
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise CheckpointError(f"Cannot read {path} ({type(exc).__name__}); delete it to re-initialise.") from None
        if state.get("classnames") != list(self.model.classnames):
            print(f"{path} holds prototypes of other classes: re-initialising SEP's prototypes")
            return False
        self.model.load_prototypes(state["prototypes"].to(self.device))
        print(f"Restored SEP's trained prototypes from {path}")
        return True
