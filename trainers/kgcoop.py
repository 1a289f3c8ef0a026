"""KgCoOp: CoOp with a knowledge-guided term towards the hand-crafted class text features."""

from clipprompt.models import KgCoOp as KgCoOpModel
from clipprompt.models.kgcoop import KgCoOpOptions, authors_template

from ._dassl import TRAINER_REGISTRY
from .base import ClipTrainer


@TRAINER_REGISTRY.register()
class KgCoOp(ClipTrainer):
    def build_custom_model(self, clip, classnames):
        options = KgCoOpOptions.from_node(self.trainer_cfg)
        dataset = self.dm.dataset
        template = authors_template(self.cfg.DATASET.NAME, getattr(dataset, "template", "a photo of a {}."))
        return KgCoOpModel(clip, classnames, options, template=template)
