"""TCP (Yao, Zhang and Xu, CVPR 2024): textual-based class-aware prompt tuning.

A small net (the Textual Knowledge Embedding, TKE) maps each class's frozen hand-crafted text
feature to `n_ctx` class-aware tokens; before text block `LAYER` they replace the learned context
tokens of that class's prompt, so the blocks above see class-aware prompts. The loss is KgCoOp's:

    t_c    = normalize(TextEncoder([SOS] ctx <tail of class c> [EOS], tokens at LAYER := TKE(t_c^clip)))
    logits = exp(logit_scale) * normalize(f(x)) · t_c
    loss   = CE(logits, y) + W * (1 - mean_c cos(t_c, t_c^clip))

`ctx` and the TKE learn. The class-aware tokens depend only on the class list, so the class text
features are computed once per test set, and a model trained on base classes builds the tokens of
new classes from their hand-crafted features.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor, nn

from ..backbones._clip import clip_model
from ..backbones.encoders import replace_tokens
from ..errors import ConfigError
from ..options import MethodOptions, check_template, option, register_options
from ..prompts import ClassPrompts, init_context
from .base import DEFAULT_TEMPLATE, PromptedCLIP, hand_crafted_features, normalize
from .kgcoop import KnowledgeGuided

# The authors' prompts per Dassl dataset: what follows the context slots, and the hand-crafted
# prompt whose feature feeds the TKE and the knowledge term (where it differs from CoOp's).
AUTHORS_PROMPT_TAILS = {
    "OxfordPets": "{}, a type of pet.",
    "OxfordFlowers": "{}, a type of flower.",
    "FGVCAircraft": "{}, a type of aircraft.",
    "DescribableTextures": "{} texture.",
    "StanfordCars": "{}, a type of car",
    "Food101": "{}, a type of food.",
    "UCF101": "person doing {}.",  # "a photo of a person doing {}." with the context over "a photo of a"
}
AUTHORS_ANCHOR_TEMPLATES = {
    "FGVCAircraft": "a photo of an aircraft {}.",
    "DescribableTextures": "a photo of a {}, a type of texture.",
    "Food101": "a photo of a {}, a type of food.",
}


@register_options("TCP")
@dataclass
class TCPOptions(MethodOptions):
    n_ctx: int = option(4, "learnable context vectors, also the class-aware tokens per class", min=1)
    ctx_init: str = option("", "initialise the context from these words (\"\" = random N(0, 0.02²))")
    layer: int = option(8, "text block before which the class-aware tokens replace the context", min=0)
    w: float = option(8.0, "weight of the knowledge term 1 - mean cos(learned, hand-crafted class text feature)", min=0)
    template: str = option("", "prompt after the context, \"{}\" = class name (\"\" = the authors' for the dataset)")
    anchor_template: str = option("", "hand-crafted prompt of the TKE and the knowledge term (\"\" = the authors' for the dataset)")
    adam_eps: float = option(1e-3, "eps of Adam-family optimizers (the authors' value)", above=0)

    def check(self) -> None:
        check_template("TRAINER.TCP.TEMPLATE", self.template)
        check_template("TRAINER.TCP.ANCHOR_TEMPLATE", self.anchor_template)


def authors_templates(dataset: str, dataset_template: str) -> tuple[str, str]:
    """(prompt tail, hand-crafted prompt) of TCP's code for a Dassl dataset name."""
    return AUTHORS_PROMPT_TAILS.get(dataset, "{}."), AUTHORS_ANCHOR_TEMPLATES.get(dataset, dataset_template)


class TextualKnowledgeEmbedding(nn.Sequential):
    """Hand-crafted class feature (embed_dim) -> n_ctx class-aware tokens (n_ctx, width)."""

    def __init__(self, embed_dim: int, width: int, n_ctx: int):
        super().__init__(OrderedDict([
            ("linear1", nn.Linear(embed_dim, embed_dim // 4)),
            ("gelu", clip_model.QuickGELU()),
            ("linear2", nn.Linear(embed_dim // 4, n_ctx * width)),
        ]))
        self.n_ctx, self.width = n_ctx, width

    def forward(self, features: Tensor) -> Tensor:
        return super().forward(features).reshape(*features.shape[:-1], self.n_ctx, self.width)


class TCP(KnowledgeGuided, PromptedCLIP):
    def __init__(
        self,
        clip: nn.Module,
        classnames: Sequence[str],
        options: TCPOptions | None = None,
        template: str = "{}.",
        anchor_template: str = DEFAULT_TEMPLATE,
    ):
        super().__init__(clip, classnames)
        self.options = options = options or TCPOptions()
        depth = self.text_encoder.depth
        if options.layer >= depth:
            raise ConfigError(
                f"TRAINER.TCP.LAYER is {options.layer}; the text encoder has blocks 0..{depth - 1}."
            )
        self.ctx = nn.Parameter(init_context(self.text_encoder, options.n_ctx, options.ctx_init))
        n_ctx = self.ctx.shape[0]
        self.prompts = ClassPrompts(self.text_encoder, self.classnames, n_ctx, template=options.template or template)
        anchor = hand_crafted_features(self.text_encoder, self.classnames, options.anchor_template or anchor_template)
        self.register_buffer("anchor", anchor, persistent=False)  # class-dependent: never saved
        embed_dim = self.embed_dim
        self.tke = TextualKnowledgeEmbedding(embed_dim, self.text_encoder.width, n_ctx)

    def class_tokens(self) -> Tensor:
        """The class-aware tokens (n_cls, n_ctx, width) from the hand-crafted class features."""
        return self.tke(self.anchor)

    def class_text_features(self) -> Tensor:
        class_aware = replace_tokens(self.class_tokens(), start=1)  # the context slots := the class-aware tokens
        embeddings = self.prompts.assemble(self.ctx)
        features = self.text_encoder(embeddings, self.prompts.eos_positions, {self.options.layer: class_aware})
        return normalize(features)
