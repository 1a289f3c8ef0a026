"""CoCoOp: the learned context is shifted by a vector computed from each image."""

from clipprompt.models import CoCoOp as CoCoOpModel

from ._dassl import TRAINER_REGISTRY
from .base import ClipTrainer


@TRAINER_REGISTRY.register()
class CoCoOp(ClipTrainer):
    def build_custom_model(self, clip, classnames):
        node = self.trainer_cfg
        return CoCoOpModel(
            clip,
            classnames,
            n_ctx=node.N_CTX,
            ctx_init=node.CTX_INIT,
            text_chunk=node.TEXT_CHUNK,
            fused=self.cfg.MODEL.FUSED_ATTENTION,
        )
