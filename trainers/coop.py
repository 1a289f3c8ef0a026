"""CoOp: a learned context shared by all classes."""

from clipprompt.models import CoOp as CoOpModel
from clipprompt.models.coop import CoOpOptions

from ._dassl import TRAINER_REGISTRY
from .base import ClipTrainer


@TRAINER_REGISTRY.register()
class CoOp(ClipTrainer):
    def build_custom_model(self, clip, classnames):
        options = CoOpOptions.from_node(self.trainer_cfg)
        return CoOpModel(clip, classnames, options, fused=self.cfg.MODEL.FUSED_ATTENTION)
