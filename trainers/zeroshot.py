"""ZeroshotCLIP: evaluation with the dataset's hand-crafted template; nothing is trained."""

from clipprompt.models import ZeroshotCLIP as ZeroshotCLIPModel
from clipprompt.models.base import DEFAULT_TEMPLATE

from ._dassl import TRAINER_REGISTRY
from .base import ClipTrainer


@TRAINER_REGISTRY.register()
class ZeroshotCLIP(ClipTrainer):
    def build_custom_model(self, clip, classnames):
        template = getattr(self.dm.dataset, "template", DEFAULT_TEMPLATE)
        return ZeroshotCLIPModel(clip, classnames, self.options, template=template)
