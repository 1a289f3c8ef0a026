"""What the deep-prompt methods share (VPT, IVLP, MaPLe, PromptSRC, PromptKD's student): deep
visual prompts, a text prompt that starts from CTX_INIT's words with deep text prompts, and the
authors' fp16 rounding of those prompts (HALF_PROMPTS).

The text prompt reads `[SOS] p_1..p_n <rest of CTX_INIT> <class>. [EOS]`: p learned, and the words
of CTX_INIT after its first n tokens stay fixed words before every class name (the authors' code
of both methods does this). Fresh learned prompts replace the n prompt positions before the deeper
text blocks 1, 2, ..; the visual prompts are appended after the image's positional embedding and
replaced the same way. How the visual prompts are made is each method's own (`image_features`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..backbones._clip import clip_api
from ..backbones.encoders import deep_prompt_injections
from ..errors import ConfigError
from ..prompts import ClassPrompts, context_from_words
from .base import PromptedCLIP, normalize


def split_init(text_encoder, n_ctx: int, ctx_init: str, key: str) -> tuple[Tensor, str]:
    """Initial prompt (n_ctx, width) and the words of `ctx_init` left after its first n_ctx tokens.

    `key` names the config node in errors ("" for `ctx_init`: N(0, 0.02²), no fixed words).
    """
    if not ctx_init:
        return torch.randn(n_ctx, text_encoder.width) * 0.02, ""
    words = context_from_words(text_encoder, ctx_init)
    if words.shape[0] < n_ctx:
        raise ConfigError(
            f"{key}.CTX_INIT {ctx_init!r} has {words.shape[0]} tokens, fewer than the {n_ctx} prompt tokens; "
            'give longer words or CTX_INIT "" for a random start.'
        )
    tokenizer = clip_api._tokenizer
    rest = tokenizer.decode(tokenizer.encode(ctx_init.replace("_", " ").strip())[n_ctx:]).strip()
    return words[:n_ctx].clone(), rest


class DeepVisualPrompts(PromptedCLIP):
    """Deep visual prompts (VPT-deep): tokens appended to the image's and replaced before deeper blocks.

    A subclass has `options.half_prompts`, implements `image_features(images)` (with
    `encode_prompted_images`) and the class text features.
    """

    def init_visual_prompts(self, n_ctx: int, depth: int, key: str) -> None:
        """`visual_ctx` (n_ctx, width) at the input and `deep_visual`, one per block 1..depth-1 (N(0, 0.02²));
        `key` names the method's node in the error for a depth this CLIP does not have."""
        if depth > self.image_encoder.depth:
            raise ConfigError(
                f"{key}.PROMPT_DEPTH_VISION is {depth}; this CLIP's image encoder has {self.image_encoder.depth} blocks."
            )
        width = self.image_encoder.width
        self.visual_ctx = nn.Parameter(torch.randn(n_ctx, width) * 0.02)
        self.deep_visual = nn.ParameterList(nn.Parameter(torch.randn(n_ctx, width) * 0.02) for _ in range(depth - 1))

    def as_prompt(self, values: Tensor, batch: int) -> Tensor:
        """`values` (n, width) for each of `batch` sequences.

        With HALF_PROMPTS they are copied per sequence and then cast to fp16, in that order, as the
        authors' code does (the gradients are then rounded per sequence before they are summed).
        """
        return values.expand(batch, *values.shape).half() if self.options.half_prompts else values

    def encode_prompted_images(self, images: Tensor, visual_prompts: list[Tensor]) -> Tensor:
        """Normalized image features with `visual_prompts[0]` appended at the input and
        `visual_prompts[k]` at the prompt positions before block k, each (n, image width)."""
        return normalize(self.raw_prompted_images(images, visual_prompts))

    def raw_prompted_images(self, images: Tensor, visual_prompts: list[Tensor]) -> Tensor:
        """`encode_prompted_images` before normalization."""
        first, *deep = [self.as_prompt(p, images.shape[0]) for p in visual_prompts]
        injections = deep_prompt_injections(deep, start=-first.shape[-2])
        return self.image_encoder(images, prompts=first, injections=injections)

    def image_features(self, images: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, images: Tensor) -> Tensor:
        return self.logits(self.image_features(images), self.text_features())


class DeepPromptedCLIP(DeepVisualPrompts):
    """A text prompt `ctx` with deeper text prompts `deep_text`, visual prompts from the subclass.

    A subclass calls `init_text_prompt`, creates `deep_text` (an `nn.ParameterList`, one per
    block from block 1), has `options.half_prompts`, and implements `image_features(images)`
    (with `encode_prompted_images` when the image encoder gets prompts).
    """

    ctx: nn.Parameter
    deep_text: nn.ParameterList
    prompts: ClassPrompts

    def init_text_prompt(self, n_ctx: int, ctx_init: str) -> None:
        """`ctx`, `fixed_words` (CTX_INIT's words after the first n_ctx tokens) and the class prompts."""
        ctx, self.fixed_words = split_init(self.text_encoder, n_ctx, ctx_init, f"TRAINER.{self.options.node_name}")
        self.ctx = nn.Parameter(ctx)
        names = [f"{self.fixed_words} {name}" if self.fixed_words else name for name in self.classnames]
        self.prompts = ClassPrompts(self.text_encoder, names, n_ctx)

    def encode_class_text(self, deep_text: Sequence[Tensor] | None = None) -> Tensor:
        """Raw (unnormalized) class text features (n_cls, E); `deep_text` replaces the learned deeper
        prompts when a method computes them (HiCroPL's mapped prompts)."""
        embeddings = self.prompts.assemble(self.ctx)
        deep = [self.as_prompt(p, self.num_classes) for p in (self.deep_text if deep_text is None else deep_text)]
        injections = deep_prompt_injections(deep, start=1)
        return self.text_encoder(embeddings, self.prompts.eos_positions, injections)

    def class_text_features(self) -> Tensor:
        return normalize(self.encode_class_text())
