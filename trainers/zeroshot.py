"""ZeroshotCLIP: evaluation with the dataset's hand-crafted template; nothing is trained."""

from clipprompt.models import ZeroshotCLIP as ZeroshotCLIPModel

from ._dassl import TRAINER_REGISTRY
from .base import ClipTrainer


@TRAINER_REGISTRY.register()
class ZeroshotCLIP(ClipTrainer):
    def build_custom_model(self, clip, classnames):
        template = getattr(self.dm.dataset, "template", "a photo of a {}.")
        return ZeroshotCLIPModel(clip, classnames, template=template, fused=self.cfg.MODEL.FUSED_ATTENTION)
