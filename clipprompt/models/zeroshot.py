"""Zero-shot CLIP with the dataset's hand-crafted template: the reference point, nothing trained."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from .._clip import clip_model
from ..options import MethodOptions, register_options
from ..prompts import cut_after_eos, tokenize
from .base import PromptedCLIP, normalize


@register_options("ZEROSHOTCLIP")
@dataclass
class ZeroshotCLIPOptions(MethodOptions):
    """Nothing to learn: only the precision."""


class ZeroshotCLIP(PromptedCLIP):
    """Logits against `template.format(class name)` for each class, e.g. "a photo of a {}."."""

    def __init__(self, clip: clip_model.CLIP, classnames: Sequence[str], template: str = "a photo of a {}.", fused: bool = True):
        super().__init__(clip, classnames, fused=fused)
        texts = [template.format(name.replace("_", " ")) for name in self.classnames]
        self.register_buffer("tokens", cut_after_eos(tokenize(texts)), persistent=False)

    def class_text_features(self) -> Tensor:
        tokens = self.tokens if self.eos_cut else F.pad(self.tokens, (0, self.text_encoder.context_length - self.tokens.shape[1]))
        return normalize(self.text_encoder.encode_tokens(tokens))

    def forward(self, images: Tensor) -> Tensor:
        return self.logits_from_image_features(self.image_encoder(images))

    def logits_from_image_features(self, features: Tensor) -> Tensor:
        """Logits from the frozen encoder's output (clipprompt.feature_cache may have stored it)."""
        image_features = normalize(features)
        return self.logit_scale * image_features @ self.text_features().t().to(image_features.dtype)
