"""MaPLe: deep prompts on both encoders, the visual ones projected from the text ones."""

from clipprompt.models import MaPLe as MaPLeModel

from ._dassl import TRAINER_REGISTRY
from .base import ClipTrainer


@TRAINER_REGISTRY.register()
class MaPLe(ClipTrainer):
    def build_custom_model(self, clip, classnames):
        return MaPLeModel(clip, classnames, self.options)
