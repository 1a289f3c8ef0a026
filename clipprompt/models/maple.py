"""MaPLe (Khattak et al., CVPR 2023): deep prompts on both encoders, the visual ones coupled to the text ones.

The text prompt reads `[SOS] p_1..p_n <rest of CTX_INIT> <class>. [EOS]` with p learned. Before each
of the first J-1 later blocks (J = PROMPT_DEPTH) the outputs at the n prompt positions are replaced
by fresh learned prompts P^k. The image encoder gets n prompt tokens appended after its positional
embedding and replaced the same way before blocks 1..J-1, but they are not free parameters: they
are linear projections of the text prompts, F_0(p) and F_k(P^k) (the coupling function), so every
visual prompt is tied to a text prompt of the same depth. Only p, P^k and the F_k learn.

Text features depend only on the class list, so evaluation computes them once
(`class_text_features`); the visual prompts are recomputed per batch (k small matrix products).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..options import MethodOptions, option, register_options
from .base import normalize
from .deep_prompts import DeepPromptedCLIP


@register_options("MAPLE")
@dataclass
class MaPLeOptions(MethodOptions):
    n_ctx: int = option(2, "prompt tokens per layer on each encoder", min=1)
    ctx_init: str = option(
        "a photo of a",
        "the first N_CTX tokens of these words initialise the text prompt, the rest stay fixed words "
        "before the class name (\"\" = random N(0, 0.02²))",
    )
    prompt_depth: int = option(9, "blocks that get prompts on both encoders (1 = the input only)", min=1)
    half_prompts: bool = option(
        False, "round the visual and deeper text prompts to fp16 at every precision, as the authors' code does"
    )


class MaPLe(DeepPromptedCLIP):
    """Multi-modal prompt learning: text prompts at J blocks, visual prompts projected from them."""

    def __init__(
        self,
        clip: nn.Module,
        classnames: Sequence[str],
        options: MaPLeOptions | None = None,
    ):
        super().__init__(clip, classnames)
        self.options = options = options or MaPLeOptions()
        self.require_image_tokens()
        depth = min(self.text_encoder.depth, self.image_encoder.depth)
        if options.prompt_depth > depth:
            raise ConfigError(f"TRAINER.{options.node_name}.PROMPT_DEPTH is {options.prompt_depth}; this CLIP has {depth} blocks.")
        text_width, image_width = self.text_encoder.width, self.image_encoder.width
        n_ctx = options.n_ctx
        self.init_text_prompt(n_ctx, options.ctx_init)
        self.proj = nn.Linear(text_width, image_width)  # F_0: the input text prompt -> the visual one
        self.deep_text = nn.ParameterList(
            nn.Parameter(torch.randn(n_ctx, text_width) * 0.02) for _ in range(options.prompt_depth - 1)
        )
        coupling = nn.Linear(text_width, image_width)  # F_1..F_{J-1} start identical, as in the authors' code
        self.deep_proj = nn.ModuleList(copy.deepcopy(coupling) for _ in range(options.prompt_depth - 1))

    def visual_prompts(self) -> list[Tensor]:
        """[F_0(p), F_1(P^1), ..]: the visual prompt of every prompted block, each (n, image width)."""
        return [self.proj(self.ctx)] + [f(p) for f, p in zip(self.deep_proj, self.deep_text)]

    def encode_images(self, images: Tensor) -> Tensor:
        return self.raw_prompted_images(images, self.visual_prompts())

    def image_features(self, images: Tensor) -> Tensor:
        return normalize(self.encode_images(images))
