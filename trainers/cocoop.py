"""CoCoOp: the learned context is shifted by a vector computed from each image."""

from clipprompt.models import CoCoOp as CoCoOpModel

from ._dassl import TRAINER_REGISTRY
from .base import ClipTrainer


@TRAINER_REGISTRY.register()
class CoCoOp(ClipTrainer):
    def build_custom_model(self, clip, classnames):
        return CoCoOpModel(clip, classnames, self.options)
