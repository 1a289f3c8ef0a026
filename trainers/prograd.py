"""ProGrad: CoOp trained with the cross-entropy gradient projected away from zero-shot CLIP's conflicts."""

from clipprompt.models.base import DEFAULT_TEMPLATE
from clipprompt.models.prograd import ProGrad as ProGradModel
from clipprompt.models.prograd import authors_template

from ._dassl import TRAINER_REGISTRY
from .base import ClipTrainer


@TRAINER_REGISTRY.register()
class ProGrad(ClipTrainer):
    def build_custom_model(self, clip, classnames):
        template = authors_template(self.cfg.DATASET.NAME, getattr(self.dm.dataset, "template", DEFAULT_TEMPLATE))
        return ProGradModel(clip, classnames, self.options, template=template)
