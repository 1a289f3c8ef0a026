"""CLIP's text and image encoders, run block by block so methods can change the tokens.

This module is the one interface every method uses, whatever library built the CLIP. Prompt
methods (CoOp, CoCoOp, SEP, MPL, deep-prompt methods) differ only in what enters the encoder and
in what happens to the token sequence before some blocks. These encoders run the library's own
modules (embeddings, residual blocks, final norms and projections) and take:

- `injections`: a mapping {block index: fn(tokens) -> tokens}; fn sees the batch-first
  sequence entering that block and returns the one the block runs on;
- `parallel`: a mapping {block index: fn(tokens) -> tokens}; fn sees the sequence entering that
  block (after its injection) and its output is added to the block's output, a branch beside the
  block (MMA's adapters). fn acts on each token alone: on the exact path it gets the tokens in the
  library's own order (sequence-first for `clip`), so that its backward sums over tokens as a
  branch inside the library's blocks would;
- for images, `prompts`: extra tokens appended after the positional embedding (VPT style).

With nothing injected they compute what the library's `encode_text` / `encode_image` compute.
Attention runs through `scaled_dot_product_attention` with the blocks' own weights
(`fused=True`), or through the blocks' own `forward` (`fused=False`, the exact path).

What differs between libraries is small: how a block is called (sequence- or batch-first, where
its causal mask lives), how the text features are projected and how the image tokens are read
out. A library module (`openai.py` for `clip`, `openclip.py` for `open_clip`) subclasses
`TextEncoder` / `ImageEncoder` for that and builds a `Backbone` (`interface.py`). An image
encoder without tokens to prompt (ResNet CLIPs) is a `FrozenImageEncoder`, which calls the
library's whole image tower.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Injections = Mapping[int, Callable[[Tensor], Tensor]]
Parallel = Mapping[int, Callable[[Tensor], Tensor]]  # branches beside blocks: block(x) + fn(x)


def fusable(block: nn.Module) -> bool:
    """A pre-norm block `x + attn(ln_1(x))`, `x + mlp(ln_2(x))` with a packed nn.MultiheadAttention
    (clip's and open_clip's default block); other blocks always run through their own forward."""
    attn = getattr(block, "attn", None)
    return (
        isinstance(attn, nn.MultiheadAttention)
        and attn._qkv_same_embed_dim
        and all(hasattr(block, name) for name in ("ln_1", "ln_2", "mlp"))
    )


def fused_block(block: nn.Module, x: Tensor, causal: bool) -> Tensor:
    """One residual block on batch-first tokens `x` (B, L, D) through scaled_dot_product_attention,
    with the block's weights and its optional layer scales `ls_1` / `ls_2` (open_clip)."""
    attn = block.attn
    batch, length, width = x.shape
    heads = attn.num_heads
    q, k, v = F.linear(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    q, k, v = (t.reshape(batch, length, heads, width // heads).transpose(1, 2) for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    out = attn.out_proj(out.transpose(1, 2).reshape(batch, length, width))
    x = x + (block.ls_1(out) if hasattr(block, "ls_1") else out)
    out = block.mlp(block.ln_2(x))
    return x + (block.ls_2(out) if hasattr(block, "ls_2") else out)


def replace_tokens(values: Tensor, start: int, weight: float = 1.0) -> Callable[[Tensor], Tensor]:
    """An injection that overwrites tokens `start .. start + n` of every sequence with `values`.

    `values` is (n, D) (the same for every sequence) or (B, n, D); a negative `start` counts
    from the end (prompts appended last, as `ImageEncoder`'s `prompts`). Deep prompts (MaPLe,
    PromptSRC, VPT-deep) replace the previous block's outputs at the prompt positions this way.
    A `weight` below 1 keeps part of them: weight·values + (1 − weight)·previous (MMRL++'s β).
    """
    count = values.shape[-2]
    if start < 0 and start + count > 0:
        raise ValueError(f"{count} tokens do not fit before the end when starting at {start}")

    def inject(x: Tensor) -> Tensor:
        begin = start if start >= 0 else x.shape[1] + start
        new = values.to(x.dtype).expand(x.shape[0], count, x.shape[-1])
        if weight != 1.0:
            new = weight * new + (1 - weight) * x[:, begin : begin + count]
        return torch.cat([x[:, :begin], new, x[:, begin + count :]], dim=1)

    return inject


def insert_tokens(values: Tensor, at: int) -> Callable[[Tensor], Tensor]:
    """An injection that inserts `values` ((n, D) or (B, n, D)) before token `at` of every sequence,
    so the sequence grows by n (MMRL's representation tokens after [CLS] / [SOS]). A text sequence
    that grows past the context length stays causal on both paths (`causal_mask`)."""

    def inject(x: Tensor) -> Tensor:
        new = values.to(x.dtype).expand(x.shape[0], values.shape[-2], x.shape[-1])
        return torch.cat([x[:, :at], new, x[:, at:]], dim=1)

    return inject


def causal_mask(length: int, like: Tensor) -> Tensor:
    """CLIP's additive causal mask (-inf above the diagonal) for `length` tokens, in `like`'s dtype
    and device: the text towers' exact path for sequences longer than their stored mask."""
    return torch.full((length, length), float("-inf"), device=like.device).triu_(1).to(like.dtype)


def deep_prompt_injections(prompts: Sequence[Tensor], start: int, first_block: int = 1) -> dict[int, Callable]:
    """Injections putting `prompts[k]` at the prompt positions of block `first_block + k`."""
    return {first_block + k: replace_tokens(values, start) for k, values in enumerate(prompts)}


class BlockRunner(nn.Module):
    """Runs a tower's residual blocks one by one, with injections, fused or through their forward."""

    causal: bool = False
    fused: bool
    sequence_first: bool = False  # the library's blocks take (L, B, D) (their exact path transposes)

    def run_exact(self, block: nn.Module, x: Tensor) -> Tensor:
        """The block's own forward on batch-first `x`, as the library's tower calls it."""
        raise NotImplementedError

    def run_blocks(self, x: Tensor, injections: Injections | None, parallel: Parallel | None = None,
                   start: int = 0, stop: int | None = None) -> Tensor:
        """Blocks `start` .. `stop - 1` (all by default) on `x`, the tokens entering block `start`."""
        for index in range(start, self.depth if stop is None else stop):
            block = self.blocks[index]
            if injections and index in injections:
                x = injections[index](x)
            branch = self.run_branch(parallel[index], x) if parallel and index in parallel else None
            x = fused_block(block, x, self.causal) if self.fused and fusable(block) else self.run_exact(block, x)
            if branch is not None:
                x = x + branch
        return x

    def run_branch(self, per_token: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
        """A parallel branch on batch-first `x`; on the exact path in the library's token order."""
        if self.fused or not self.sequence_first:
            return per_token(x)
        return per_token(x.transpose(0, 1)).transpose(0, 1)

    @property
    def depth(self) -> int:
        return len(self.blocks)


class TextEncoder(BlockRunner):
    """A causal text transformer on token embeddings, so prompt vectors can replace words.

    Features are read at each prompt's EOS token (its position given by the caller: the
    tokenizer's EOS is the highest id, so `tokens.argmax(-1)`), after the final norm.
    """

    causal = True

    def __init__(self, token_embedding: nn.Embedding, positional_embedding: Tensor, blocks: nn.Module,
                 ln_final: nn.Module, text_projection: Tensor | nn.Module, fused: bool = True):
        super().__init__()
        self.token_embedding = token_embedding
        self.positional_embedding = positional_embedding
        self.blocks = blocks
        self.ln_final = ln_final
        self.text_projection = text_projection
        self.fused = fused

    @property
    def width(self) -> int:
        return self.positional_embedding.shape[1]

    @property
    def context_length(self) -> int:
        return self.positional_embedding.shape[0]

    @property
    def dtype(self) -> torch.dtype:
        projection = self.text_projection
        return (projection.weight if isinstance(projection, nn.Linear) else projection).dtype

    def project(self, x: Tensor) -> Tensor:
        projection = self.text_projection
        return projection(x) if isinstance(projection, nn.Module) else x @ projection

    def embed(self, tokens: Tensor) -> Tensor:
        """Word embeddings of token ids, in the encoder's dtype, on the encoder's device.

        Prompts are tokenized on the CPU (`clip.tokenize`), also when CLIP is already on a GPU.
        """
        return self.token_embedding(tokens.to(self.token_embedding.weight.device)).to(self.dtype)

    def forward(self, embeddings: Tensor, eos_positions: Tensor, injections: Injections | None = None,
                parallel: Parallel | None = None, start_block: int = 0) -> Tensor:
        """Features (N, embed_dim) of prompts given as embeddings (N, L, width), L <= context.

        The encoder is causal, so prompts cut after their last EOS give the same features as
        the full 77-token pass. With `start_block` k > 0, `embeddings` are the tokens entering
        block k (`prefix(embeddings, k)`: a method whose first k blocks see only frozen inputs
        computes them once).
        """
        x = self.prefix(embeddings, 0) if start_block == 0 else embeddings
        x = self.ln_final(self.run_blocks(x, injections, parallel, start=start_block))
        return self.project(x[torch.arange(x.shape[0], device=x.device), eos_positions])

    def prefix(self, embeddings: Tensor, blocks: int) -> Tensor:
        """The tokens entering block `blocks`: word embeddings plus positions, through blocks 0..blocks-1."""
        length = embeddings.shape[1]
        x = embeddings.to(self.dtype) + self.positional_embedding[:length].to(self.dtype)
        return self.run_blocks(x, None, stop=blocks)

    def encode_tokens(self, tokens: Tensor) -> Tensor:
        """Features of tokenized text, like `CLIP.encode_text`."""
        return self(self.embed(tokens), tokens.argmax(dim=-1))


class ImageEncoder(BlockRunner):
    """A vision transformer ([CLS] + patch tokens) with optional prompt tokens and per-block injections.

    A library subclass gives `input_resolution`, `readout(tokens)` (the last block's output ->
    features) and `run_exact`; `ln_pre` / `ln_post` are the tower's own norms.
    """

    has_tokens = True

    def __init__(self, visual: nn.Module, blocks: nn.Module, fused: bool = True):
        super().__init__()
        self.visual = visual
        self.blocks = blocks
        self.fused = fused

    @property
    def width(self) -> int:
        return self.visual.conv1.out_channels

    @property
    def num_tokens(self) -> int:
        """[CLS] + patch tokens."""
        return self.visual.positional_embedding.shape[0]

    @property
    def input_resolution(self) -> int:
        raise NotImplementedError

    @property
    def dtype(self) -> torch.dtype:
        return self.visual.conv1.weight.dtype

    def embed(self, images: Tensor) -> Tensor:
        """[CLS] + patch tokens with positional embedding (B, 1 + N, width), before ln_pre."""
        visual = self.visual
        x = visual.conv1(images.to(self.dtype)).flatten(2).transpose(1, 2)
        cls = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        return torch.cat([cls, x], dim=1) + visual.positional_embedding.to(x.dtype)

    def readout(self, tokens: Tensor) -> Tensor:
        """Image features (B, embed_dim) from the last block's output."""
        raise NotImplementedError

    def patch_tokens(self, tokens: Tensor) -> Tensor:
        """The last block's patch tokens after the final norm (B, N, width) (MPL's FTP reads them)."""
        return self.visual.ln_post(tokens[:, 1:])

    def forward(
        self,
        images: Tensor,
        prompts: Tensor | None = None,
        injections: Injections | None = None,
        return_tokens: bool = False,
        parallel: Parallel | None = None,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Image features (B, embed_dim); `prompts` (P, width) or (B or 1, P, width) are appended to the tokens.

        With `return_tokens`, also the last block's output sequence (B, 1 + N + P, width).
        """
        return self.encode_from(self.run_to(images, 0, prompts), 0, injections, return_tokens, parallel)

    def run_to(self, images: Tensor, stop: int, prompts: Tensor | None = None) -> Tensor:
        """The sequence entering block `stop` (after ln_pre and blocks 0 .. stop - 1, nothing injected):
        a frozen prefix that several passes branching at block `stop` can share (MMRL)."""
        x = self.embed(images)
        if prompts is not None:
            x = torch.cat([x, prompts.to(x.dtype).expand(x.shape[0], -1, -1)], dim=1)
        return self.run_blocks(self.visual.ln_pre(x), None, stop=stop)

    def encode_from(self, tokens: Tensor, start: int, injections: Injections | None = None,
                    return_tokens: bool = False, parallel: Parallel | None = None) -> Tensor | tuple[Tensor, Tensor]:
        """`forward` continued from `tokens`, the sequence entering block `start` (`run_to`'s)."""
        tokens = self.run_blocks(tokens, injections, parallel, start=start)
        features = self.readout(tokens)
        return (features, tokens) if return_tokens else features


class FrozenImageEncoder(nn.Module):
    """An image tower used whole (`visual(images)`), for towers without tokens to prompt (ResNet
    CLIPs): the frozen, unprompted image side of ZeroshotCLIP, CoOp, CoCoOp, KgCoOp and TCP."""

    has_tokens = False
    depth = 0  # no blocks to prompt

    def __init__(self, visual: nn.Module, input_resolution: int, description: str, fused: bool = True):
        super().__init__()
        self.visual = visual
        self._input_resolution = input_resolution
        self.description = description  # for errors: "a ResNet (ModifiedResNet)"
        self.fused = fused  # no attention of ours to fuse; kept so `configure(fused=...)` treats every encoder alike

    @property
    def input_resolution(self) -> int:
        return self._input_resolution

    @property
    def dtype(self) -> torch.dtype:
        return next(self.visual.parameters()).dtype

    def forward(self, images: Tensor, prompts: Tensor | None = None, injections: Injections | None = None,
                return_tokens: bool = False, parallel: Parallel | None = None) -> Tensor:
        if prompts is not None or injections or return_tokens or parallel:
            raise ValueError(f"The image encoder is {self.description}: it has no tokens to prompt or return")
        return self.visual(images.to(self.dtype))
