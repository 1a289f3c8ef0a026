"""CoOp (Zhou et al., IJCV 2022): one learned context shared by all classes, or one per class (CSC)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..options import MethodOptions, option, register_options
from ..prompts import POSITIONS, ClassPrompts, init_context
from .base import PromptedCLIP, normalize


@dataclass
class ContextOptions(MethodOptions):
    """The learned context every CoOp-family method has (CoCoOp and MPL add to these, not CoOp's)."""

    n_ctx: int = option(16, "learnable context vectors (ignored when CTX_INIT is set: then its token count)", min=1)
    ctx_init: str = option("", "initialise the context from these words (\"\" = random N(0, 0.02²))")


@register_options("COOP")
@dataclass
class CoOpOptions(ContextOptions):
    csc: bool = option(False, "class-specific context: one learned context per class (cannot score unseen classes)")
    class_token_position: str = option("end", "where the class name goes: end, middle (between the context halves) or front", choices=POSITIONS)


class CoOp(PromptedCLIP):
    """`[SOS] ctx_1..ctx_n <class>. [EOS]` with ctx learned; the class name may also open the
    prompt or split the context (CLASS_TOKEN_POSITION), and each class may learn its own ctx (CSC).

    `forward` is `PromptedCLIP`'s: logits against the (cached) class text features."""

    def __init__(self, clip: nn.Module, classnames: Sequence[str], options: ContextOptions | None = None):
        super().__init__(clip, classnames)
        self.options = options = options or CoOpOptions()
        options.validate()  # also when built in Python rather than from a config node
        # Image-conditioned subclasses (CoCoOp, MPL) take ContextOptions: no CSC, class name at the end.
        self.csc = getattr(options, "csc", False)
        position = getattr(options, "class_token_position", "end")
        if self.csc and not options.ctx_init:  # CoOp's N(0, 0.02²) draw, one context per class
            ctx = torch.randn(self.num_classes, options.n_ctx, self.text_encoder.width) * 0.02
        else:  # with CSC every class starts from the words (CoOp's code then drops CSC)
            ctx = init_context(self.text_encoder, options.n_ctx, options.ctx_init)
            ctx = ctx.repeat(self.num_classes, 1, 1) if self.csc else ctx
        self.ctx = nn.Parameter(ctx)
        self.prompts = ClassPrompts(
            self.text_encoder, self.classnames, ctx.shape[-2], position=position.lower()
        )

    def class_text_features(self) -> Tensor:
        embeddings = self.prompts.assemble(self.ctx, per_class=self.csc)
        return normalize(self.text_encoder(embeddings, self.prompts.eos_positions))
