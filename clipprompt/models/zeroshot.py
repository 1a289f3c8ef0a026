"""Zero-shot CLIP with the dataset's hand-crafted template: the reference point, nothing trained."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from ..options import MethodOptions, register_options
from ..prompts import template_tokens
from .base import DEFAULT_TEMPLATE, PromptedCLIP, normalize


@register_options("ZEROSHOTCLIP")
@dataclass
class ZeroshotCLIPOptions(MethodOptions):
    """Nothing to learn: only the precision."""


class ZeroshotCLIP(PromptedCLIP):
    """Logits against `template.format(class name)` for each class, e.g. "a photo of a {}.".

    The template is the dataset's (not an option); `forward` is `PromptedCLIP`'s."""

    def __init__(
        self,
        clip: nn.Module,
        classnames: Sequence[str],
        options: ZeroshotCLIPOptions | None = None,
        template: str = DEFAULT_TEMPLATE,
    ):
        super().__init__(clip, classnames)
        self.options = options or ZeroshotCLIPOptions()
        self.register_buffer("tokens", template_tokens(template, self.classnames), persistent=False)

    def class_text_features(self) -> Tensor:
        tokens = self.tokens if self.eos_cut else F.pad(self.tokens, (0, self.text_encoder.context_length - self.tokens.shape[1]))
        return normalize(self.text_encoder.encode_tokens(tokens))
