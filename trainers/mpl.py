"""MPL: fine-grained text prompt (FTP) and text-reorganized visual prompt (TVP); see clipprompt/models/mpl.py."""

from clipprompt.models import MPL as MPLModel

from ._dassl import TRAINER_REGISTRY
from .base import ClipTrainer


@TRAINER_REGISTRY.register()
class MPL(ClipTrainer):
    def build_custom_model(self, clip, classnames):
        return MPLModel(clip, classnames, self.options)
