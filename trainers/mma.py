"""MMA: text, visual and shared adapters beside the higher blocks of both encoders."""

from clipprompt.models import MMA as MMAModel

from ._dassl import TRAINER_REGISTRY
from .base import ClipTrainer


@TRAINER_REGISTRY.register()
class MMA(ClipTrainer):
    def build_custom_model(self, clip, classnames):
        return MMAModel(clip, classnames, self.options)
