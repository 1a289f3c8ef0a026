"""VPT-deep: learned deep visual prompts against fixed hand-crafted text features."""

from clipprompt.models import VPT as VPTModel

from ._dassl import TRAINER_REGISTRY
from .base import ClipTrainer


@TRAINER_REGISTRY.register()
class VPT(ClipTrainer):
    def build_custom_model(self, clip, classnames):
        return VPTModel(clip, classnames, self.options)
