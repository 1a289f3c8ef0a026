"""Class prompts as token embeddings with slots for learnable context vectors.

CoOp-style prompts read `[SOS] ctx_1 .. ctx_n <class name>. [EOS]`; CoOp's code also puts the
class name first (`position="front"`) or between the two halves of the context ("middle"), and
a `template` may replace "{}." after the slots (TCP's "{}, a type of pet."). The frozen parts (SOS
before the slots; class name, '.', EOS after them) depend only on the class list, so they are
non-persistent buffers: checkpoints never hold them, and a model trained on base classes can be
rebuilt for new classes and load the same weights.

Prompts are cut after the longest EOS of the class list: the text encoder is causal, so the
tokens after EOS never reach the EOS feature, and a 77-token pass becomes a ~10-20-token one.
`cut = False` restores the full 77-token pass (the CoOp code's), to compare against.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .backbones._clip import clip, clip_api
from .backbones.encoders import TextEncoder
from .errors import UserError

PLACEHOLDER = "X"
POSITIONS = ("end", "middle", "front")


class PromptLengthError(UserError, ValueError):
    """A prompt that does not fit CLIP's context window."""


def tokenize(texts: Sequence[str], context_length: int = 77) -> Tensor:
    """`clip.tokenize`, with an error that names the text which does not fit."""
    try:
        return clip.tokenize(list(texts), context_length=context_length)
    except RuntimeError:
        lengths = [len(clip_api._tokenizer.encode(text)) + 2 for text in texts]  # + SOS, EOS
        n_tokens = max(lengths)
        longest = texts[lengths.index(n_tokens)]
        raise PromptLengthError(
            f"The prompt {longest!r} has {n_tokens} tokens with SOS/EOS, more than the "
            f"{context_length}-token context of CLIP's text encoder; shorten the context (N_CTX / CTX_INIT)."
        ) from None


def cut_after_eos(tokens: Tensor) -> Tensor:
    """Drop the padding columns after the longest EOS (the highest token id in each row)."""
    return tokens[:, : int(tokens.argmax(dim=-1).max()) + 1]


def template_tokens(template: str, classnames: Sequence[str], context_length: int = 77) -> Tensor:
    """Tokens (n_cls, L) of a hand-crafted prompt per class, e.g. "a photo of a {}.", cut after the
    longest EOS; underscores in class names become spaces."""
    texts = [template.replace("{}", name.replace("_", " ")) for name in classnames]
    return cut_after_eos(tokenize(texts, context_length))


def context_from_words(text_encoder: TextEncoder, words: str) -> Tensor:
    """Initial context vectors (n, width) from the embeddings of `words`, e.g. "a photo of a"."""
    words = words.replace("_", " ").strip()
    tokens = tokenize([words], text_encoder.context_length)
    n_ctx = int(tokens.argmax(dim=-1)) - 1
    with torch.no_grad():
        return text_encoder.embed(tokens)[0, 1 : 1 + n_ctx].float().clone()


def init_context(text_encoder: TextEncoder, n_ctx: int, ctx_init: str = "", std: float = 0.02) -> Tensor:
    """Context vectors from `ctx_init` words if given (n = their token count), else N(0, std²)."""
    if ctx_init:
        return context_from_words(text_encoder, ctx_init)
    if n_ctx < 1:
        raise ValueError(f"N_CTX must be at least 1, got {n_ctx}")
    return torch.randn(n_ctx, text_encoder.width) * std


class ClassPrompts(nn.Module):
    """Frozen embeddings of `[SOS] <n slots> <class name>. [EOS]` for each class.

    `assemble(ctx)` fills the slots: ctx of shape (..., n, width) gives (..., n_cls, L, width),
    so one shared context (CoOp) or one per image (CoCoOp, MPL) use the same code.
    """

    def __init__(
        self,
        text_encoder: TextEncoder,
        classnames: Sequence[str],
        n_ctx: int,
        cut: bool = True,
        position: str = "end",
        template: str = "{}.",
    ):
        super().__init__()
        if not classnames:
            raise ValueError("The class list is empty: nothing to build prompts for")
        if position not in POSITIONS:
            raise ValueError(f"The class token position is {position!r}; use one of {', '.join(POSITIONS)}")
        if position != "end" and not template.startswith("{}"):
            raise ValueError(f"The class name must open the template {template!r} to move it to the {position}")
        self.n_ctx = n_ctx
        self.position = position
        self.classnames = [name.replace("_", " ") for name in classnames]
        slots = " ".join([PLACEHOLDER] * n_ctx)
        tokens = tokenize([f"{slots} {template.format(name)}" for name in self.classnames], text_encoder.context_length)
        self.context_length = tokens.shape[1]
        self.cut = cut
        tokens = cut_after_eos(tokens)
        order = self._order([len(clip_api._tokenizer.encode(name)) for name in self.classnames], tokens.shape[1])
        with torch.no_grad():  # the frozen parts of the "end" layout; `assemble` reorders
            embeddings = text_encoder.embed(tokens)
            padding = text_encoder.embed(torch.zeros(1, dtype=torch.long, device=tokens.device))[0]
        tokens = tokens.gather(1, order)  # as the encoder sees them
        self.register_buffer("cut_tokens", tokens, persistent=False)
        self.register_buffer("eos_positions", tokens.argmax(dim=-1), persistent=False)
        self.register_buffer("prefix", embeddings[:, :1].clone(), persistent=False)
        self.register_buffer("suffix", embeddings[:, 1 + n_ctx :].clone(), persistent=False)
        self.register_buffer("padding", padding, persistent=False)  # token 0 fills every slot after EOS
        self.register_buffer("order", None if position == "end" else order, persistent=False)

    def _order(self, name_lengths: Sequence[int], length: int) -> Tensor:
        """Per class, which token of the "end" layout `[SOS] ctx name rest` goes to each position.

        "front": `[SOS] name ctx rest`; "middle": `[SOS] ctx[:n//2] name ctx[n//2:] rest` (CoOp's
        split). EOS keeps its position, so the features are read where they always are.
        """
        n = self.n_ctx
        rows = []
        for k in name_lengths:
            ctx, name = list(range(1, 1 + n)), list(range(1 + n, 1 + n + k))
            if self.position == "front":
                head = name + ctx
            elif self.position == "middle":
                head = ctx[: n // 2] + name + ctx[n // 2 :]
            else:
                head = ctx + name
            rows.append([0] + head + list(range(1 + n + k, length)))
        return torch.tensor(rows, dtype=torch.long)

    @property
    def num_classes(self) -> int:
        return self.prefix.shape[0]

    @property
    def length(self) -> int:
        """Tokens per prompt: up to the longest EOS when `cut`, else CLIP's full context."""
        return self.cut_tokens.shape[1] if self.cut else self.context_length

    def assemble(self, ctx: Tensor, per_class: bool = False) -> Tensor:
        """Prompt embeddings (..., n_cls, L, width) with `ctx` (..., n, width) in the slots.

        `per_class`: `ctx` is (..., n_cls, n, width), one context per class (CoOp's CSC).
        """
        n_cls = self.num_classes
        if per_class:
            batch = ctx.shape[:-3]
            if ctx.shape[-3] != n_cls:
                raise ValueError(f"{ctx.shape[-3]} class-specific contexts for {n_cls} classes")
        else:
            batch = ctx.shape[:-2]
            ctx = ctx.unsqueeze(-3).expand(*batch, n_cls, *ctx.shape[-2:])
        prefix = self.prefix.expand(*batch, *self.prefix.shape)
        suffix = self.suffix.expand(*batch, *self.suffix.shape)
        head = torch.cat([prefix, ctx.to(prefix.dtype), suffix], dim=-2)
        if self.order is not None:  # class name at the front or in the middle
            index = self.order.unsqueeze(-1).expand(*batch, *self.order.shape, head.shape[-1])
            head = head.gather(-2, index)
        parts = [head]
        pad = self.length - self.cut_tokens.shape[1]
        if pad:  # the uncut (slow) path: the full context, padding embeddings after EOS
            parts.append(self.padding.expand(*batch, n_cls, pad, self.padding.shape[-1]))
        return torch.cat(parts, dim=-2)
