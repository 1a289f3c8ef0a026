"""IVLP (independent vision-language prompting, Khattak et al.): independent deep prompts on both encoders.

The text prompt reads `[SOS] p_1..p_n <rest of CTX_INIT> <class>. [EOS]`, and fresh learned text
prompts replace the n prompt positions before text blocks 1..J_t-1; n_v learned visual tokens are
appended after the image's positional embedding and replaced before vision blocks 1..J_v-1. Text
and visual prompts are independent (no coupling, unlike MaPLe); the loss is cross-entropy. It is
the baseline MaPLe's paper compares with, and the prompt design PromptSRC regularises.

Text features depend only on the class list, so evaluation computes them once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..options import MethodOptions, option, register_options
from .base import normalize
from .deep_prompts import DeepPromptedCLIP


@register_options("IVLP")
@dataclass
class IVLPOptions(MethodOptions):
    n_ctx_text: int = option(2, "text prompt tokens per prompted block", min=1)
    n_ctx_vision: int = option(2, "visual prompt tokens per prompted block (0 only with PROMPT_DEPTH_VISION 0)", min=0)
    ctx_init: str = option(
        "a photo of a",
        "the first N_CTX_TEXT tokens of these words initialise the text prompt, the rest stay fixed words "
        "before the class name (\"\" = random N(0, 0.02²))",
    )
    prompt_depth_text: int = option(12, "text blocks with prompts (1 = the input only)", min=1)
    prompt_depth_vision: int = option(12, "vision blocks with prompts (0 = no visual prompts)", min=0)
    half_prompts: bool = option(
        False, "round the visual and deeper text prompts to fp16 at every precision, as the authors' code does"
    )

    def check(self) -> None:
        if self.prompt_depth_vision and not self.n_ctx_vision:
            raise ConfigError(
                f"TRAINER.{self.node_name}.N_CTX_VISION is 0 with PROMPT_DEPTH_VISION {self.prompt_depth_vision}; "
                "give visual prompt tokens, or PROMPT_DEPTH_VISION 0 for text prompts only."
            )


class IVLP(DeepPromptedCLIP):
    """Independent deep text and visual prompts."""

    def __init__(self, clip: nn.Module, classnames: Sequence[str], options: IVLPOptions | None = None):
        super().__init__(clip, classnames)
        self.options = options = options or IVLPOptions()
        if options.prompt_depth_vision:  # without visual prompts, the image side is the frozen encoder's
            self.require_image_tokens()
        too_deep = [
            f"TRAINER.{options.node_name}.{name} is {depth}; this CLIP's {tower} encoder has {blocks} blocks"
            for name, tower, depth, blocks in (
                ("PROMPT_DEPTH_TEXT", "text", options.prompt_depth_text, self.text_encoder.depth),
                ("PROMPT_DEPTH_VISION", "image", options.prompt_depth_vision, self.image_encoder.depth),
            )
            if depth > blocks
        ]
        if too_deep:
            raise ConfigError("; ".join(too_deep) + ".")
        text_width = self.text_encoder.width
        image_width = self.image_encoder.width if options.prompt_depth_vision else 0  # no visual prompts: unused
        self.init_text_prompt(options.n_ctx_text, options.ctx_init)
        self.deep_text = nn.ParameterList(
            nn.Parameter(torch.randn(options.n_ctx_text, text_width) * 0.02) for _ in range(options.prompt_depth_text - 1)
        )
        n_v = options.n_ctx_vision
        self.visual_ctx = nn.Parameter(torch.randn(n_v, image_width) * 0.02) if options.prompt_depth_vision else None
        self.deep_visual = nn.ParameterList(
            nn.Parameter(torch.randn(n_v, image_width) * 0.02) for _ in range(max(0, options.prompt_depth_vision - 1))
        )

    def image_features(self, images: Tensor) -> Tensor:
        if self.visual_ctx is None:
            return normalize(self.image_encoder(images))
        return self.encode_prompted_images(images, [self.visual_ctx, *self.deep_visual])
