"""VPT-deep (Jia et al., ECCV 2022) on CLIP: learned visual prompts at every prompted block, fixed text.

n_v learned tokens are appended after the image's positional embedding and replaced by fresh learned
tokens before vision blocks 1..J-1 (J = PROMPT_DEPTH_VISION); the class text features are frozen
CLIP's features of a hand-crafted prompt ("a photo of a {}."), computed once. The loss is
cross-entropy. This is the vision-only baseline of the MaPLe and PromptSRC papers.

The fixed text features are `PromptedCLIP.frozen_prompt_features`: computed once, not at every
training step, and CLIP's own bits on the exact path (the authors compute them once with
`encode_text`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor, nn

from ..options import MethodOptions, check_template, option, register_options
from .base import DEFAULT_TEMPLATE
from .deep_prompts import DeepVisualPrompts


@register_options("VPT")
@dataclass
class VPTOptions(MethodOptions):
    n_ctx_vision: int = option(8, "visual prompt tokens per prompted block", min=1)
    prompt_depth_vision: int = option(12, "vision blocks with prompts (1 = the input only)", min=1)
    template: str = option(DEFAULT_TEMPLATE, "the fixed text prompt; {} is the class name")
    half_prompts: bool = option(
        False, "round the visual prompts to fp16 at every precision, as the authors' code does"
    )

    def check(self) -> None:
        check_template(f"TRAINER.{self.node_name}.TEMPLATE", self.template)


class VPT(DeepVisualPrompts):
    """Deep visual prompts against frozen hand-crafted class text features."""

    def __init__(self, clip: nn.Module, classnames: Sequence[str], options: VPTOptions | None = None):
        super().__init__(clip, classnames)
        self.options = options = options or VPTOptions()
        self.require_image_tokens()
        self.init_visual_prompts(options.n_ctx_vision, options.prompt_depth_vision, "TRAINER.VPT")

    def class_text_features(self) -> Tensor:
        return self.frozen_prompt_features(self.options.template)

    def image_features(self, images: Tensor) -> Tensor:
        return self.encode_prompted_images(images, [self.visual_ctx, *self.deep_visual])
