"""PromptKD: a prompted student distilled from a frozen PromptSRC teacher on unlabeled training images."""

import os.path as osp

from clipprompt.backbones.loading import load_clip, resolve_checkpoint, teacher_backbone_errors
from clipprompt.errors import CheckpointError, ConfigError, UserError
from clipprompt.models.promptkd import KEY, PromptKD as PromptKDModel, build_teacher, teacher_prompts
from clipprompt.runs import feature_cache
from clipprompt.runs.checkpoint import find_checkpoint, load_checkpoint

from ._dassl import DataManager, TRAINER_REGISTRY
from .base import MODEL_NAME, ClipTrainer
from .data import CheckedDatasetWrapper


def teacher_file(path: str) -> str:
    """A teacher file, or the run folder of our PromptSRC trainer (its best, else its latest checkpoint)."""
    path = osp.expanduser(path)
    if osp.isdir(path):
        folder = osp.join(path, MODEL_NAME)
        best = osp.join(folder, "model-best.pth.tar")
        try:
            return best if osp.isfile(best) else find_checkpoint(folder)
        except CheckpointError as exc:
            raise UserError(f"{KEY}.TEACHER_CHECKPOINT: {exc}") from None
    if not osp.isfile(path):
        raise UserError(f"{KEY}.TEACHER_CHECKPOINT {path} does not exist.")
    return path


def check_teacher_finished(checkpoint: dict, path: str, named: str) -> None:
    """A run folder's latest checkpoint of an unfinished teacher run is refused (a file named as
    TEACHER_CHECKPOINT is taken as given): the student would learn from a half-trained teacher."""
    if osp.isdir(osp.expanduser(named)) and checkpoint.get("finished") is False:
        raise UserError(
            f"{KEY}.TEACHER_CHECKPOINT {named}: its training is unfinished ({path}: epoch {checkpoint.get('epoch')} "
            f"of {checkpoint.get('max_epoch')}); finish it (the same teacher command resumes it) or name a file."
        )


def read_teacher_checkpoint(path: str) -> dict:
    """Our checkpoints load with weights_only; the authors' (Dassl's, with its scheduler objects) do
    not, and are then unpickled in full, as their code does: give only files you trust."""
    try:
        return load_checkpoint(path)
    except CheckpointError as ours:
        import torch

        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception:
            raise UserError(f"{KEY}.TEACHER_CHECKPOINT: {ours}") from None


@TRAINER_REGISTRY.register()
class PromptKD(ClipTrainer):
    def check_cfg(self, cfg) -> None:
        super().check_cfg(cfg)
        if not self.options.teacher_checkpoint:  # the config files leave it to the scripts
            raise ConfigError(
                f"{KEY}.TEACHER_CHECKPOINT is empty; train the teacher first (scripts/promptkd/teacher_train.sh) "
                "or give the authors' teacher file."
            )

    def build_data_loader(self):
        """With TRAIN_ON all, the training images are every class's (the evaluated classes' only with eval)."""
        cfg = self.cfg
        self.unlabeled = None
        if self.options.train_on == "all" and cfg.DATASET.SUBSAMPLE_CLASSES != "all":
            every_class = cfg.clone()
            every_class.defrost()
            every_class.DATASET.SUBSAMPLE_CLASSES = "all"
            every_class.freeze()
            self.unlabeled = DataManager(every_class, dataset_wrapper=CheckedDatasetWrapper)
        super().build_data_loader()

    def training_data(self):
        return self.dm if self.unlabeled is None else self.unlabeled

    def build_custom_model(self, clip, classnames):
        cfg, options = self.cfg, self.options
        train_classnames = self.training_data().dataset.classnames
        path = teacher_file(options.teacher_checkpoint)
        checkpoint = read_teacher_checkpoint(path)
        check_teacher_finished(checkpoint, path, options.teacher_checkpoint)
        prompts = teacher_prompts(checkpoint, path)
        cache_dir = cfg.MODEL.BACKBONE.CACHE_DIR or None
        digest = checkpoint.get("backbone_sha256")
        with teacher_backbone_errors():
            if digest and digest != feature_cache.file_digest(resolve_checkpoint(options.teacher_backbone, cache_dir)):
                raise UserError(
                    f"{KEY}.TEACHER_CHECKPOINT {path} was trained with backbone {checkpoint.get('backbone')}, "
                    f"not {KEY}.TEACHER_BACKBONE {options.teacher_backbone}."
                )
            print(f"Loading the teacher CLIP {options.teacher_backbone} and its prompts ({prompts.origin}) from {path}")
            teacher_clip = load_clip(options.teacher_backbone, cache_dir=cache_dir, device=self.device,
                                     dtype=self.precision.weight_dtype)
        names = list(train_classnames) + [n for n in classnames if n not in set(train_classnames)]
        teacher = build_teacher(teacher_clip, names, prompts, path, options.half_prompts)
        return PromptKDModel(clip, classnames, options, teacher, train_classnames)
