"""CoCoOp (Zhou et al., CVPR 2022): the context is shifted by one vector computed from the image."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..backbones.encoders import TextEncoder
from ..options import option, register_options
from .base import normalize
from .coop import ContextOptions, CoOp


@register_options("COCOOP")
@dataclass
class CoCoOpOptions(ContextOptions):
    """CoOp's context keys (same defaults: the paper's 4 tokens from "a photo of a" are set by
    configs/trainers/CoCoOp/), plus the text-pass chunk."""

    text_chunk: int = option(
        0, "prompts per text-encoder pass over the image × class pairs; 0 = all at once (bounds memory, same results)", min=0
    )


def encode_prompt_grid(text_encoder: TextEncoder, prompts: Tensor, eos_positions: Tensor, chunk: int) -> Tensor:
    """Text features (B, n_cls, E) of per-image prompts (B, n_cls, L, width), `chunk` prompts a pass.

    Image-conditioned methods need one text pass per (image, class) pair; batching them into
    chunks bounds memory without changing any value.
    """
    batch, n_cls = prompts.shape[:2]
    flat = prompts.reshape(batch * n_cls, *prompts.shape[2:])
    eos = eos_positions.repeat(batch)
    step = chunk if chunk > 0 else flat.shape[0]
    features = [text_encoder(flat[i : i + step], eos[i : i + step]) for i in range(0, flat.shape[0], step)]
    return torch.cat(features).reshape(batch, n_cls, -1)


class MetaNet(nn.Sequential):
    """Bottleneck MLP from an image feature to `out_dim` (CoCoOp's meta-net; MPL's FTP widens it)."""

    def __init__(self, in_dim: int, out_dim: int, reduction: int = 16):
        hidden = max(1, in_dim // reduction)
        super().__init__(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim))


class CoCoOp(CoOp):
    """ctx_j + π(v) for every token j, π a meta-net on the frozen image feature v."""

    options: CoCoOpOptions

    def __init__(self, clip: nn.Module, classnames: Sequence[str], options: CoCoOpOptions | None = None):
        super().__init__(clip, classnames, options or CoCoOpOptions())
        self.meta_net = MetaNet(self.embed_dim, self.text_encoder.width)

    def class_text_features(self) -> None:
        return None  # the prompts depend on the image: nothing to cache per class

    def encode_class_text(self) -> None:
        return None  # the same: CoOp's would be the prompts without the image's shift

    def encode_text(self, image_features: Tensor) -> Tensor:
        """Raw text features (B, n_cls, E) of each image's prompts, from its raw image features."""
        prompts = self.prompts.assemble(self.image_context(normalize(image_features)))
        # the exact path encodes one image's prompts a pass, as the authors' loop does (one pass over
        # all images sums the context's gradients in another order: last bits at ViT-B/16)
        chunk = self.options.text_chunk if self.eos_cut else self.num_classes
        return encode_prompt_grid(self.text_encoder, prompts, self.prompts.eos_positions, chunk)

    def image_context(self, image_features: Tensor) -> Tensor:
        """Per-image context (B, n, width)."""
        shift = self.meta_net(image_features.float())
        return self.ctx + shift.unsqueeze(1)

    def logits_from_image_features(self, features: Tensor) -> Tensor:
        """Logits from the frozen encoder's output (clipprompt.runs.feature_cache may have stored it)."""
        return self.logits(normalize(features), normalize(self.encode_text(features)))
