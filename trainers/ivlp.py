"""IVLP: independent deep prompts on both encoders, cross-entropy only."""

from clipprompt.models import IVLP as IVLPModel

from ._dassl import TRAINER_REGISTRY
from .base import ClipTrainer


@TRAINER_REGISTRY.register()
class IVLP(ClipTrainer):
    def build_custom_model(self, clip, classnames):
        return IVLPModel(clip, classnames, self.options)
