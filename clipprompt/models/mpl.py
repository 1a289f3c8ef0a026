"""MPL, Mutual Prompt Learning (Long et al., IJCV 2024), as documented in docs/mpl.md.

Two prompts feed each other:

- FTP, the fine-grained text prompt (image -> text): the frozen image feature v is decomposed
  into n vectors π_1(v)..π_n(v), one per context token, and class i's prompt is
  `[SOS] (ctx_1 + π_1(v)) .. (ctx_n + π_n(v)) <class i>. [EOS]`, giving t_i(x). CoCoOp adds one
  shared vector to every token instead. `mlp` mode: CoCoOp's bottleneck meta-net with n·width
  outputs; `attn` mode: n learned queries cross-attending to the frozen patch tokens.
- TVP, the text-reorganized visual prompt (text -> image): s_i = cos(v, t_i(x)); the top-K
  classes (selection without gradient) are weighted by softmax(s_i / τ) into r(x) = Σ a_i t_i(x),
  which a linear layer turns into N_CTX_V tokens appended to the image encoder's input.

logits_i = exp(logit_scale) · cos(ṽ, t_i(x)), ṽ the prompted image feature; the loss is CE
(plus, optionally, the text-to-image direction). Nothing learned is class-specific, so a model
trained on base classes is rebuilt for new ones and loads the same weights.

Cost: the text encoder runs once per (image, class) pair. The pairs are encoded in chunks of at
most `text_chunk` prompts (assembled per chunk, so memory stays bounded for any class count),
and prompts are cut after the class list's longest EOS (exact: the text encoder is causal).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..options import Options, nested, option, register_options
from .base import accuracy, fp32_matmul, normalize
from .cocoop import MetaNet, encode_prompt_grid
from .coop import ContextOptions, CoOp

FTP_MODES = ("mlp", "attn")


@dataclass
class FTPOptions(Options):
    mode: str = option("mlp", "image feature -> one shift per context token: mlp (bottleneck meta-net) or attn (learned queries over the frozen patch tokens)", choices=FTP_MODES)
    reduction: int = option(16, "mlp: the meta-net's hidden width is embed_dim // REDUCTION", min=1)
    attn_heads: int = option(0, "attn: heads of the query-to-patch cross-attention; 0 = text width // 64", min=0)


@dataclass
class TVPOptions(Options):
    topk: int = option(5, "classes whose image-conditioned text features form the visual prompt (capped at the class count)", min=1)
    tau: float = option(0.07, "softmax temperature of the weights over the top-K scores", above=0)


@dataclass
class LossOptions(Options):
    symmetric: bool = option(False, "add the text-to-image cross-entropy over the batch (0 with batch 1)")


@register_options("MPL")
@dataclass
class MPLOptions(ContextOptions):
    """MPL's defaults are the paper's: 4 context tokens from "a photo of a", FTP mlp, top-5 TVP."""

    n_ctx: int = option(4, "learnable text context vectors (ignored when CTX_INIT is set: then its token count)", min=1)
    ctx_init: str = option("a photo of a", "initialise the text context from these words (\"\" = random N(0, 0.02²))")
    n_ctx_v: int = option(4, "visual prompt tokens that TVP appends to the image encoder's input", min=1)
    ftp: FTPOptions = nested(FTPOptions, "fine-grained text prompt")
    tvp: TVPOptions = nested(TVPOptions, "text-reorganized visual prompt")
    loss: LossOptions = nested(LossOptions, "loss terms")
    text_chunk: int = option(4096, "most (image, class) prompts per text-encoder pass; 0 = all at once (bounds memory, same results)", min=0)


class FTP(nn.Module):
    """Fine-grained text prompt: n image-derived shifts π_1..π_n (B, n, text_width), one per token.

    `mlp`: Linear(E → E/r) → ReLU → Linear(E/r → n·width) on the frozen image feature v.
    `attn`: n learned queries attend to the frozen patch tokens projected to the text width.
    `last_layer` is the linear layer that produces the shifts (zero it and every shift is 0).
    """

    def __init__(self, mode: str, n_ctx: int, embed_dim: int, text_width: int, vision_width: int, reduction: int, heads: int):
        super().__init__()
        if mode not in FTP_MODES:
            raise ConfigError(f"TRAINER.MPL.FTP.MODE is {mode!r}; use one of {', '.join(FTP_MODES)}.")
        self.mode, self.n_ctx, self.width = mode, n_ctx, text_width
        if mode == "mlp":
            self.meta_net = MetaNet(embed_dim, n_ctx * text_width, reduction)
            return
        heads = heads or max(1, text_width // 64)
        if text_width % heads:
            raise ConfigError(
                f"TRAINER.MPL.FTP.ATTN_HEADS is {heads}; it must divide the text width {text_width}."
            )
        self.queries = nn.Parameter(torch.randn(n_ctx, text_width) * 0.02)
        self.patch_proj = nn.Linear(vision_width, text_width)
        self.attn = nn.MultiheadAttention(text_width, heads, batch_first=True)

    @property
    def needs_patches(self) -> bool:
        return self.mode == "attn"

    @property
    def last_layer(self) -> nn.Linear:
        return self.meta_net[-1] if self.mode == "mlp" else self.attn.out_proj

    def forward(self, image_features: Tensor, patch_tokens: Tensor | None = None) -> Tensor:
        """Shifts (B, n, width) from v (B, E) or, in `attn` mode, from patch tokens (B, N, vision_width)."""
        if self.mode == "mlp":
            dtype = self.meta_net[0].weight.dtype
            return self.meta_net(image_features.to(dtype)).reshape(-1, self.n_ctx, self.width)
        if patch_tokens is None:
            raise ValueError("FTP in attn mode needs the image's patch tokens")
        keys = self.patch_proj(patch_tokens.to(self.patch_proj.weight.dtype))
        queries = self.queries.to(keys.dtype).expand(keys.shape[0], -1, -1)
        return self.attn(queries, keys, keys, need_weights=False)[0]


class TVPSelection(NamedTuple):
    """What TVP picked for each image: the kept classes, their weights, all scores, and r(x)."""

    indices: Tensor  # (B, K) kept classes, highest score first
    weights: Tensor  # (B, K) softmax(s / τ) over the kept classes
    scores: Tensor  # (B, n_cls) cos(v, t_i(x))
    reorganized: Tensor  # (B, E) r(x) = Σ a_i t_i(x)


class TVP(nn.Module):
    """Text-reorganized visual prompt: top-K class text features of the image → N_CTX_V tokens."""

    def __init__(self, embed_dim: int, vision_width: int, n_ctx_v: int, topk: int, tau: float):
        super().__init__()
        self.n_ctx_v, self.vision_width, self.topk, self.tau = n_ctx_v, vision_width, topk, tau
        self.proj = nn.Linear(embed_dim, n_ctx_v * vision_width)

    def select(self, image_features: Tensor, text_features: Tensor) -> TVPSelection:
        """v (B, E) and normalized t_i(x) (B, n_cls, E) → the top-K selection and r(x)."""
        v = normalize(image_features.float())
        text = text_features.float()
        scores = torch.einsum("be,bce->bc", v, text)
        k = min(self.topk, scores.shape[1])
        indices = scores.detach().topk(k, dim=1).indices  # the selection carries no gradient
        weights = torch.softmax(scores.gather(1, indices) / self.tau, dim=1)  # the weights do
        kept = text.gather(1, indices.unsqueeze(-1).expand(-1, -1, text.shape[-1]))
        return TVPSelection(indices, weights, scores, torch.einsum("bk,bke->be", weights, kept))

    def prompts(self, reorganized: Tensor) -> Tensor:
        """Visual prompt tokens (B, N_CTX_V, vision_width) from r(x)."""
        out = self.proj(reorganized.to(self.proj.weight.dtype))
        return out.reshape(-1, self.n_ctx_v, self.vision_width)

    def forward(self, image_features: Tensor, text_features: Tensor) -> tuple[Tensor, TVPSelection]:
        selection = self.select(image_features, text_features)
        return self.prompts(selection.reorganized), selection


class MPLOutput(NamedTuple):
    """Everything one MPL pass computes, for tests, analysis and the loss."""

    logits: Tensor  # (B, n_cls)
    image_features: Tensor  # (B, E) ṽ, normalized
    text_features: Tensor  # (B, n_cls, E) t_i(x), normalized
    frozen_features: Tensor  # (B, E) v, normalized, no gradient
    shifts: Tensor  # (B, n, width) π_1(v)..π_n(v)
    visual_prompts: Tensor  # (B, N_CTX_V, vision_width)
    selection: TVPSelection


class MPL(CoOp):
    """FTP + TVP over a frozen CLIP (CoOp's context, shifted per token); trains ctx, FTP and TVP only."""

    options: MPLOptions

    def __init__(self, clip: nn.Module, classnames: Sequence[str], options: MPLOptions | None = None):
        super().__init__(clip, classnames, options or MPLOptions())
        self.require_image_tokens()
        options = self.options
        embed_dim = self.embed_dim
        text_width, vision_width = self.text_encoder.width, self.image_encoder.width
        ftp, tvp = options.ftp, options.tvp
        self.ftp = FTP(ftp.mode, self.ctx.shape[0], embed_dim, text_width, vision_width, ftp.reduction, ftp.attn_heads)
        self.tvp = TVP(embed_dim, vision_width, options.n_ctx_v, tvp.topk, tvp.tau)

    def class_text_features(self) -> None:
        return None  # the prompts depend on the image: nothing to cache per class

    def frozen_image(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        """v (B, E), normalized, and the patch tokens (after ln_post) when FTP needs them."""
        with torch.no_grad():
            if not self.ftp.needs_patches:
                return normalize(self.image_encoder(images)), None
            features, tokens = self.image_encoder(images, return_tokens=True)
            return normalize(features), self.image_encoder.patch_tokens(tokens)

    def class_features(self, context: Tensor) -> Tensor:
        """Normalized t_i(x) (B, n_cls, E) for per-image contexts (B, n, width), in bounded chunks.

        Images are taken in groups of about `text_chunk / n_cls` so that only that group's
        prompts are ever assembled; `encode_prompt_grid` then encodes them `text_chunk` at a time.
        """
        n_cls, chunk = self.prompts.num_classes, self.options.text_chunk
        group = context.shape[0] if chunk == 0 else max(1, chunk // n_cls)
        features = [
            encode_prompt_grid(
                self.text_encoder,
                self.prompts.assemble(context[i : i + group]),
                self.prompts.eos_positions,
                chunk,
            )
            for i in range(0, context.shape[0], group)
        ]
        return normalize(torch.cat(features))

    def encode(self, images: Tensor) -> MPLOutput:
        """One full pass: FTP → image-conditioned class features → TVP → prompted image → logits."""
        v, patches = self.frozen_image(images)
        shifts = self.ftp(v, patches)
        text = self.class_features(self.ctx + shifts.to(self.ctx.dtype))
        visual_prompts, selection = self.tvp(v, text)
        image = normalize(self.image_encoder(images, prompts=visual_prompts))
        logits = self.logits(image, text)
        return MPLOutput(logits, image, text, v, shifts, visual_prompts, selection)

    def forward(self, images: Tensor) -> Tensor:
        return self.encode(images).logits

    def loss(self, images: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, float]]:
        """CE over the classes; with `symmetric`, plus the text-to-image CE over the batch."""
        out = self.encode(images)
        loss = F.cross_entropy(out.logits, labels)
        summary = {"acc": accuracy(out.logits, labels)}
        if self.options.loss.symmetric:
            t2i = text_to_image_loss(out, labels, self.logit_scale)
            summary["loss_t2i"] = t2i.item()
            loss = loss + t2i
        summary["loss"] = loss.item()
        return loss, summary


def text_to_image_loss(out: MPLOutput, labels: Tensor, logit_scale: Tensor) -> Tensor:
    """CE from each image's own class feature t_{y_b}(x_b) to the batch's prompted images ṽ.

    Images of the same class are all positives (the target is uniform over them); with a
    batch of one image the term is 0.
    """
    batch = labels.shape[0]
    own = out.text_features[torch.arange(batch, device=labels.device), labels]  # (B, E)
    logits = logit_scale * fp32_matmul(own, out.image_features.t())  # (B text, B images)
    positives = (labels.unsqueeze(1) == labels.unsqueeze(0)).float()
    targets = positives / positives.sum(dim=1, keepdim=True)
    return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
