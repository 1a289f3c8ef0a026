"""MaPLe: deep prompts on both encoders, the visual ones projected from the text ones."""

from clipprompt.models import MaPLe as MaPLeModel
from clipprompt.models.maple import MaPLeOptions

from ._dassl import TRAINER_REGISTRY
from .base import ClipTrainer


@TRAINER_REGISTRY.register()
class MaPLe(ClipTrainer):
    def build_custom_model(self, clip, classnames):
        options = MaPLeOptions.from_node(self.trainer_cfg)
        return MaPLeModel(clip, classnames, options)
