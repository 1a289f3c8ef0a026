"""TCP: class-aware prompt tokens from the hand-crafted class features, KgCoOp's loss."""

from clipprompt.models import TCP as TCPModel
from clipprompt.models.tcp import TCPOptions, authors_templates

from ._dassl import TRAINER_REGISTRY
from .base import ClipTrainer


@TRAINER_REGISTRY.register()
class TCP(ClipTrainer):
    def build_custom_model(self, clip, classnames):
        options = TCPOptions.from_node(self.trainer_cfg)
        tail, anchor = authors_templates(self.cfg.DATASET.NAME, getattr(self.dm.dataset, "template", "a photo of a {}."))
        return TCPModel(clip, classnames, options, template=tail, anchor_template=anchor)

    def build_model(self) -> None:
        super().build_model()
        if self.optim is not None and "eps" in self.optim.defaults:  # Adam, AdamW, AMSGrad, RAdam
            for group in self.optim.param_groups:
                group["eps"] = self.trainer_cfg.ADAM_EPS
