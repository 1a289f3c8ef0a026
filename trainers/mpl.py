"""MPL: fine-grained text prompt (FTP) and text-reorganized visual prompt (TVP); see clipprompt/models/mpl.py."""

from clipprompt.models import MPL as MPLModel
from clipprompt.models.mpl import check_mpl_options, options_from_config

from ._dassl import TRAINER_REGISTRY
from .base import ClipTrainer


@TRAINER_REGISTRY.register()
class MPL(ClipTrainer):
    def check_cfg(self, cfg) -> None:
        super().check_cfg(cfg)
        check_mpl_options(**options_from_config(cfg.TRAINER.MPL))  # before any data or weights load

    def build_custom_model(self, clip, classnames):
        options = options_from_config(self.trainer_cfg)
        return MPLModel(clip, classnames, **options, fused=self.cfg.MODEL.FUSED_ATTENTION)
