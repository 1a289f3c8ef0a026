"""CLIP's text and image encoders, run block by block so methods can change the tokens.

Prompt methods (CoOp, CoCoOp, SEP, MPL, deep-prompt methods) differ only in what enters the
encoder and in what happens to the token sequence before some blocks. These encoders run
CLIP's own modules (embeddings, residual blocks, final norms and projections) and take:

- `injections`: a mapping {block index: fn(tokens) -> tokens}; fn sees the batch-first
  sequence entering that block and returns the one the block runs on;
- for images, `prompts`: extra tokens appended after the positional embedding (VPT style).

With nothing injected they compute what `CLIP.encode_text` / `CLIP.encode_image` compute.
Attention runs through `scaled_dot_product_attention` with the blocks' own weights
(`fused=True`), or through the blocks' `forward` exactly as CLIP does (`fused=False`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._clip import clip_model

Injections = Mapping[int, Callable[[Tensor], Tensor]]


def run_block(block: clip_model.ResidualAttentionBlock, x: Tensor, causal: bool, fused: bool = True) -> Tensor:
    """One CLIP residual block on batch-first tokens `x` (B, L, D)."""
    if not fused:  # CLIP's own forward, sequence-first; clip slices its causal mask to L
        return block(x.transpose(0, 1)).transpose(0, 1)
    attn = block.attn
    batch, length, width = x.shape
    heads = attn.num_heads
    q, k, v = F.linear(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    q, k, v = (t.reshape(batch, length, heads, width // heads).transpose(1, 2) for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    x = x + attn.out_proj(out.transpose(1, 2).reshape(batch, length, width))
    return x + block.mlp(block.ln_2(x))


def replace_tokens(values: Tensor, start: int) -> Callable[[Tensor], Tensor]:
    """An injection that overwrites tokens `start .. start + n` of every sequence with `values`.

    `values` is (n, D) (the same for every sequence) or (B, n, D); a negative `start` counts
    from the end (prompts appended last, as `ImageEncoder`'s `prompts`). Deep prompts (MaPLe,
    PromptSRC, VPT-deep) replace the previous block's outputs at the prompt positions this way.
    """
    count = values.shape[-2]
    if start < 0 and start + count > 0:
        raise ValueError(f"{count} tokens do not fit before the end when starting at {start}")

    def inject(x: Tensor) -> Tensor:
        begin = start if start >= 0 else x.shape[1] + start
        new = values.to(x.dtype).expand(x.shape[0], count, x.shape[-1])
        return torch.cat([x[:, :begin], new, x[:, begin + count :]], dim=1)

    return inject


def deep_prompt_injections(prompts: Sequence[Tensor], start: int, first_block: int = 1) -> dict[int, Callable]:
    """Injections putting `prompts[k]` at the prompt positions of block `first_block + k`."""
    return {first_block + k: replace_tokens(values, start) for k, values in enumerate(prompts)}


def run_blocks(
    blocks: nn.Sequential, x: Tensor, causal: bool, fused: bool, injections: Injections | None
) -> Tensor:
    for index, block in enumerate(blocks):
        if injections and index in injections:
            x = injections[index](x)
        x = run_block(block, x, causal, fused)
    return x


class TextEncoder(nn.Module):
    """CLIP's text transformer on token embeddings, so prompt vectors can replace words."""

    def __init__(self, clip: clip_model.CLIP, fused: bool = True):
        super().__init__()
        self.token_embedding = clip.token_embedding
        self.positional_embedding = clip.positional_embedding
        self.blocks = clip.transformer.resblocks
        self.ln_final = clip.ln_final
        self.text_projection = clip.text_projection
        self.fused = fused

    @property
    def width(self) -> int:
        return self.positional_embedding.shape[1]

    @property
    def depth(self) -> int:
        return len(self.blocks)

    @property
    def context_length(self) -> int:
        return self.positional_embedding.shape[0]

    @property
    def dtype(self) -> torch.dtype:
        return self.text_projection.dtype

    def embed(self, tokens: Tensor) -> Tensor:
        """Word embeddings of token ids, in the encoder's dtype, on the encoder's device.

        Prompts are tokenized on the CPU (`clip.tokenize`), also when CLIP is already on a GPU.
        """
        return self.token_embedding(tokens.to(self.token_embedding.weight.device)).to(self.dtype)

    def forward(self, embeddings: Tensor, eos_positions: Tensor, injections: Injections | None = None) -> Tensor:
        """Features (N, embed_dim) of prompts given as embeddings (N, L, width), L <= context.

        The encoder is causal, so prompts cut after their last EOS give the same features as
        the full 77-token pass.
        """
        length = embeddings.shape[1]
        x = embeddings.to(self.dtype) + self.positional_embedding[:length].to(self.dtype)
        x = run_blocks(self.blocks, x, causal=True, fused=self.fused, injections=injections)
        x = self.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), eos_positions]
        return x @ self.text_projection

    def encode_tokens(self, tokens: Tensor) -> Tensor:
        """Features of tokenized text, like `CLIP.encode_text`."""
        return self(self.embed(tokens), tokens.argmax(dim=-1))


class ImageEncoder(nn.Module):
    """CLIP's vision transformer with optional prompt tokens and per-block injections."""

    def __init__(self, visual: nn.Module, fused: bool = True):
        super().__init__()
        if not isinstance(visual, clip_model.VisionTransformer):
            raise TypeError(
                f"Prompted image encoders need a ViT CLIP backbone, got {type(visual).__name__}; "
                "use a ViT model (ViT-B/32, ViT-B/16, ViT-L/14, ...)."
            )
        self.visual = visual
        self.fused = fused

    @property
    def width(self) -> int:
        return self.visual.conv1.out_channels

    @property
    def depth(self) -> int:
        return len(self.visual.transformer.resblocks)

    @property
    def input_resolution(self) -> int:
        return self.visual.input_resolution

    @property
    def dtype(self) -> torch.dtype:
        return self.visual.conv1.weight.dtype

    def embed(self, images: Tensor) -> Tensor:
        """[CLS] + patch tokens with positional embedding (B, 1 + N, width), before ln_pre."""
        visual = self.visual
        x = visual.conv1(images.to(self.dtype)).flatten(2).transpose(1, 2)
        cls = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        return torch.cat([cls, x], dim=1) + visual.positional_embedding.to(x.dtype)

    def forward(
        self,
        images: Tensor,
        prompts: Tensor | None = None,
        injections: Injections | None = None,
        return_tokens: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Image features (B, embed_dim); `prompts` (P, width) or (B or 1, P, width) are appended to the tokens.

        With `return_tokens`, also the last block's output sequence (B, 1 + N + P, width).
        """
        visual = self.visual
        x = self.embed(images)
        if prompts is not None:
            x = torch.cat([x, prompts.to(x.dtype).expand(x.shape[0], -1, -1)], dim=1)
        tokens = run_blocks(visual.transformer.resblocks, visual.ln_pre(x), False, self.fused, injections)
        features = visual.ln_post(tokens[:, 0]) @ visual.proj
        return (features, tokens) if return_tokens else features
