"""CoOp: a learned context shared by all classes."""

from clipprompt.models import CoOp as CoOpModel

from ._dassl import TRAINER_REGISTRY
from .base import ClipTrainer


@TRAINER_REGISTRY.register()
class CoOp(ClipTrainer):
    def build_custom_model(self, clip, classnames):
        node = self.trainer_cfg
        return CoOpModel(clip, classnames, n_ctx=node.N_CTX, ctx_init=node.CTX_INIT, fused=self.cfg.MODEL.FUSED_ATTENTION)
