"""CoOp: a learned context shared by all classes."""

from clipprompt.models import CoOp as CoOpModel

from ._dassl import TRAINER_REGISTRY
from .base import ClipTrainer


@TRAINER_REGISTRY.register()
class CoOp(ClipTrainer):
    def build_custom_model(self, clip, classnames):
        return CoOpModel(clip, classnames, self.options)
