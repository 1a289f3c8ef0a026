"""KgCoOp: CoOp with a knowledge-guided term towards the hand-crafted class text features."""

from clipprompt.models import KgCoOp as KgCoOpModel
from clipprompt.models.base import DEFAULT_TEMPLATE
from clipprompt.models.kgcoop import authors_template

from ._dassl import TRAINER_REGISTRY
from .base import ClipTrainer


@TRAINER_REGISTRY.register()
class KgCoOp(ClipTrainer):
    def build_custom_model(self, clip, classnames):
        template = authors_template(self.cfg.DATASET.NAME, getattr(self.dm.dataset, "template", DEFAULT_TEMPLATE))
        return KgCoOpModel(clip, classnames, self.options, template=template)
