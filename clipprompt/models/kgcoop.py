"""KgCoOp (Yao et al., CVPR 2023): CoOp whose class text features are kept near the hand-crafted ones.

The loss adds, to CoOp's cross-entropy, the mean cosine distance between each class's learned
text feature and the frozen feature of the hand-crafted prompt of that class:

    loss = CE(logits, y) + W * (1 - mean_c cos(t_c, t_c^clip))

Evaluation is CoOp's (the knowledge term only shapes training), so the class text features
are computed once per test set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from ..options import check_template, option, register_options
from .base import DEFAULT_TEMPLATE, accuracy, hand_crafted_features, normalize
from .coop import CoOp, CoOpOptions

# The authors' hand-crafted prompts, where they differ from the dataset's CoOp template.
AUTHORS_TEMPLATES = {"DescribableTextures": "a photo of a {}, a type of texture."}


@register_options("KGCOOP")
@dataclass
class KgCoOpOptions(CoOpOptions):
    n_ctx: int = option(4, "learnable context vectors (ignored when CTX_INIT is set: then its token count)", min=1)
    ctx_init: str = option("a photo of a", "initialise the context from these words (\"\" = random N(0, 0.02²))")
    w: float = option(8.0, "weight of the knowledge term 1 - mean cos(learned, hand-crafted class text feature)", min=0)
    template: str = option("", "hand-crafted prompt of the knowledge term, \"{}\" = class name (\"\" = the authors' for the dataset)")

    def check(self) -> None:
        check_template("TRAINER.KGCOOP.TEMPLATE", self.template)


def authors_template(dataset: str, dataset_template: str) -> str:
    """KgCoOp's hand-crafted prompt for a Dassl dataset name: the CoOp template unless theirs differs."""
    return AUTHORS_TEMPLATES.get(dataset, dataset_template)


class KnowledgeGuided:
    """KgCoOp's loss for a model with class-only text features, a frozen `anchor` buffer of the
    hand-crafted class features and a weight `options.w` (KgCoOp, TCP)."""

    anchor: Tensor

    def knowledge_distance(self, text_features: Tensor) -> Tensor:
        """1 - mean cosine between the learned and the hand-crafted class text features."""
        return 1.0 - (normalize(text_features.float()) * self.anchor).sum(dim=-1).mean()

    def loss(self, images: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, float]]:
        text_features = self.class_text_features()  # once for the logits and the knowledge term
        logits = self.logits(normalize(self.image_encoder(images)), text_features)
        ce = F.cross_entropy(logits, labels)
        kg = self.knowledge_distance(text_features)
        loss = ce + self.options.w * kg
        return loss, {"loss": loss.item(), "ce": ce.item(), "kg": kg.item(), "acc": accuracy(logits, labels)}


class KgCoOp(KnowledgeGuided, CoOp):
    """CoOp plus the knowledge-guided term; `anchor` holds the frozen hand-crafted class features."""

    def __init__(
        self,
        clip: nn.Module,
        classnames: Sequence[str],
        options: KgCoOpOptions | None = None,
        template: str = DEFAULT_TEMPLATE,
    ):
        options = options or KgCoOpOptions()
        super().__init__(clip, classnames, options)
        anchor = hand_crafted_features(self.text_encoder, self.classnames, options.template or template)
        self.register_buffer("anchor", anchor, persistent=False)  # class-dependent: never saved
