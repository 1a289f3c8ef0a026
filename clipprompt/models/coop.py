"""CoOp (Zhou et al., IJCV 2022): one learned context shared by all classes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor, nn

from .._clip import clip_model
from ..options import MethodOptions, option, register_options
from ..prompts import ClassPrompts, init_context
from .base import PromptedCLIP, normalize


@register_options("COOP")
@dataclass
class CoOpOptions(MethodOptions):
    n_ctx: int = option(16, "learnable context vectors (ignored when CTX_INIT is set: then its token count)", min=1)
    ctx_init: str = option("", "initialise the context from these words (\"\" = random N(0, 0.02²))")


class CoOp(PromptedCLIP):
    """`[SOS] ctx_1..ctx_n <class>. [EOS]` with ctx learned; class token at the end."""

    def __init__(
        self,
        clip: clip_model.CLIP,
        classnames: Sequence[str],
        options: CoOpOptions | None = None,
        fused: bool = True,
    ):
        super().__init__(clip, classnames, fused=fused)
        self.options = options = options or CoOpOptions()
        self.ctx = nn.Parameter(init_context(self.text_encoder, options.n_ctx, options.ctx_init))
        self.prompts = ClassPrompts(self.text_encoder, self.classnames, self.ctx.shape[0])

    def class_text_features(self) -> Tensor:
        embeddings = self.prompts.assemble(self.ctx)
        return normalize(self.text_encoder(embeddings, self.prompts.eos_positions))

    def forward(self, images: Tensor) -> Tensor:
        return self.logits_from_image_features(self.image_encoder(images))

    def logits_from_image_features(self, features: Tensor) -> Tensor:
        """Logits from the frozen encoder's output (clipprompt.feature_cache may have stored it)."""
        image_features = normalize(features)
        return self.logit_scale * image_features @ self.text_features().t().to(image_features.dtype)
