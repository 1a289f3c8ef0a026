"""TCP: class-aware prompt tokens from the hand-crafted class features, KgCoOp's loss."""

from clipprompt.models import TCP as TCPModel
from clipprompt.models.base import DEFAULT_TEMPLATE
from clipprompt.models.tcp import authors_templates

from ._dassl import TRAINER_REGISTRY
from .base import ClipTrainer


@TRAINER_REGISTRY.register()
class TCP(ClipTrainer):
    def build_custom_model(self, clip, classnames):
        tail, anchor = authors_templates(self.cfg.DATASET.NAME, getattr(self.dm.dataset, "template", DEFAULT_TEMPLATE))
        return TCPModel(clip, classnames, self.options, template=tail, anchor_template=anchor)
