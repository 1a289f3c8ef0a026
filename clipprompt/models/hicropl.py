"""HiCroPL (Zheng et al., ICCV 2025): deep prompts on both encoders with a knowledge flow between them.

Both encoders get n learned prompt tokens at blocks 0..J-1 (J = PROMPT_DEPTH), placed as in MaPLe
(`DeepPromptedCLIP`): the text prompt `[SOS] p_1..p_n <rest of CTX_INIT> <class>. [EOS]`, fresh
prompts replacing the n prompt positions before the deeper blocks, visual prompts appended after
the image's positional embedding. Before the encoders run, the prompts of one tower are mapped with
the other tower's knowledge (k = CROSS_LAYER):

- text -> vision, blocks 0..k-1: a layer-specific knowledge proxy (LKP: a learned query token
  attending over that block's text prompts) condenses each text block to one token; the knowledge
  mapper (cross-attention + FFN) lets the visual prompts of all k blocks attend to all k proxies
  (multi-scale: every block sees the shallow ones too) and gives the visual prompts used there;
- vision -> text, blocks k..J-1: the same the other way, the text prompts used there.

Features are fused with frozen CLIP's: image f = norm(norm(f_prompted) + norm(f_frozen)), text
g = norm(norm(g_prompted) + ḡ) with ḡ frozen CLIP's text features of the class descriptions (each
sentence encoded and normalized, averaged per class, normalized). The loss is

    L = CE(s·f·gᵀ, y) + λ·[(1 − mean cos(g, ḡ)) + (1 − mean cos(f, f_frozen))]

By default the mapped prompts are what the encoders receive, so the mappers, proxies and every
prompt learn (the paper). The authors' code instead writes the mapped values over the learned
prompts in place (`.data.copy_`) at every forward, evaluation included, so the mappers and proxies
never get a gradient and the prompts drift each batch; and it builds the visual prompts of all
blocks, and the proxy tokens of each tower, on one shared tensor, so they stay equal and the
optimizer's steps on them add up. `IN_PLACE_MAPPING True` reproduces both.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..options import MethodOptions, option, register_options
from ..prompts import cut_after_eos, tokenize
from .base import DEFAULT_TEMPLATE, accuracy, normalize
from .coprompt import DESCRIPTION_SETS
from .deep_prompts import DeepPromptedCLIP

KEY = "TRAINER.HICROPL"


@register_options("HICROPL")
@dataclass
class HiCroPLOptions(MethodOptions):
    n_ctx: int = option(2, "prompt tokens per block on each encoder", min=1)
    ctx_init: str = option(
        "a photo of a",
        "the first N_CTX tokens of these words initialise the text prompt, the rest stay fixed words "
        "before the class name (\"\" = random N(0, 0.02²))",
    )
    prompt_depth: int = option(9, "J: blocks that get prompts on both encoders", min=2)
    cross_layer: int = option(6, "k: text flows to vision in blocks 0..k-1, vision to text in blocks k..J-1", min=1)
    mapper_heads: int = option(8, "attention heads of the knowledge mappers and proxies", min=1)
    lambd: float = option(10.0, "λ: weight of the distillation towards frozen CLIP's text and image features", min=0)
    descriptions: str = option(
        "coprompt",
        "the class descriptions whose frozen CLIP features are ḡ (python -m clipprompt.data.prepare NAME "
        "--descriptions SET; the authors' GPT-3 sentences are CoPrompt's files); \"\" = the dataset's hand-crafted prompt",
        choices=("", *DESCRIPTION_SETS),
    )
    adam_eps: float = option(1e-3, "eps of Adam-family optimizers (the authors' OPTIM.EPS; Dassl's default is 1e-8)", above=0)
    half_prompts: bool = option(
        False,
        "round the visual and deeper text prompts, and the frozen text features added to the text features, "
        "to fp16 at every precision, as the authors' code does",
    )
    in_place_mapping: bool = option(
        False,
        "the authors' forward: mapped prompts overwrite the learned ones in place (mappers and proxies never "
        "learn), visual prompts of all blocks and each tower's proxy tokens share one tensor",
    )

    def check(self) -> None:
        if self.cross_layer >= self.prompt_depth:
            raise ConfigError(
                f"{KEY}.CROSS_LAYER is {self.cross_layer} with PROMPT_DEPTH {self.prompt_depth}; it must be smaller "
                "(blocks 0..CROSS_LAYER-1 take text->vision, the rest up to PROMPT_DEPTH vision->text)."
            )


class QuickGELU(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(1.702 * x)


class KnowledgeProxy(nn.Module):
    """Layer-specific knowledge proxy: a query token attends over one block's prompts, giving one token."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, query: Tensor, prompts: Tensor) -> Tensor:
        """query (1, width), prompts (n, width) -> (1, width)."""
        keys = self.ln_1(prompts)
        return self.ln_2(query + self.attn(self.ln_1(query), keys, keys, need_weights=False)[0])


class KnowledgeMapper(nn.Module):
    """Hierarchical knowledge mapper: prompts of one tower attend to the other tower's proxies, then an FFN."""

    def __init__(self, width: int, source_width: int, heads: int):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.linear_q = nn.Linear(width, width)
        self.linear_k = nn.Linear(source_width, width)
        self.linear_v = nn.Linear(source_width, width)
        self.ln_1 = nn.LayerNorm(width)
        self.ffn = nn.Sequential(
            nn.Linear(width, width * 4), QuickGELU(), nn.Linear(width * 4, width)
        )
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, prompts: Tensor, proxies: Tensor) -> Tensor:
        """prompts (m, width), proxies (p, source width) -> (m, width)."""
        q, k, v = self.linear_q(prompts), self.linear_k(proxies), self.linear_v(proxies)
        q = q + self.attn(self.ln_1(q), self.ln_1(k), self.ln_1(v), need_weights=False)[0]
        return q + self.ffn(self.ln_2(q))


class HiCroPL(DeepPromptedCLIP):
    """Deep text and visual prompts mapped across the towers, fused with frozen CLIP's features."""

    def __init__(
        self,
        clip: nn.Module,
        classnames: Sequence[str],
        options: HiCroPLOptions | None = None,
        descriptions: Mapping[str, Sequence[str]] | None = None,
    ):
        super().__init__(clip, classnames)
        self.options = options = options or HiCroPLOptions()
        options.check()
        self.require_image_tokens()
        depth = min(self.text_encoder.depth, self.image_encoder.depth)
        if options.prompt_depth > depth:
            raise ConfigError(f"{KEY}.PROMPT_DEPTH is {options.prompt_depth}; this CLIP has {depth} blocks.")
        text_width, image_width = self.text_encoder.width, self.image_encoder.width
        heads = options.mapper_heads
        if text_width % heads or image_width % heads:
            raise ConfigError(
                f"{KEY}.MAPPER_HEADS is {heads}; it must divide both widths of this CLIP ({text_width}, {image_width})."
            )
        self.descriptions = {
            name: list(descriptions[name]) if descriptions else [DEFAULT_TEMPLATE.format(name.replace("_", " "))]
            for name in self.classnames
        }
        n, k, J = options.n_ctx, options.cross_layer, options.prompt_depth
        self.init_text_prompt(n, options.ctx_init)
        self.deep_text = nn.ParameterList(nn.Parameter(torch.randn(n, text_width) * 0.02) for _ in range(J - 1))
        shared = options.in_place_mapping  # the authors' aliasing: one tensor behind several parameters
        visual = torch.randn(n, image_width) * 0.02
        self.visual_prompts = nn.ParameterList(
            nn.Parameter(visual if shared else torch.randn(n, image_width) * 0.02) for _ in range(J)
        )
        text_token, visual_token = torch.randn(1, text_width), torch.randn(1, image_width)
        self.text_proxy_tokens = nn.ParameterList(
            nn.Parameter(text_token if shared else torch.randn(1, text_width)) for _ in range(k)
        )
        self.visual_proxy_tokens = nn.ParameterList(
            nn.Parameter(visual_token if shared else torch.randn(1, image_width)) for _ in range(J - k)
        )
        # the proxies of one tower start identical, as in the authors' code (copies of one module)
        text_proxy, visual_proxy = KnowledgeProxy(text_width, heads), KnowledgeProxy(image_width, heads)
        self.text_proxies = nn.ModuleList(copy.deepcopy(text_proxy) for _ in range(k))
        self.visual_proxies = nn.ModuleList(copy.deepcopy(visual_proxy) for _ in range(J - k))
        self.text_to_visual = KnowledgeMapper(image_width, text_width, heads)
        self.visual_to_text = KnowledgeMapper(text_width, image_width, heads)
        self._fixed_text: Tensor | None = None
        self._fixed_text_key: tuple | None = None

    # ---- the knowledge flow ----------------------------------------------------------------------

    def mapped_prompts(self) -> tuple[list[Tensor], list[Tensor]]:
        """The text and visual prompts (J each, (n, width)) the encoders receive.

        With IN_PLACE_MAPPING the mapped values are written over the learned prompts (the authors'
        `.data.copy_`, no gradient to the mappers) and the prompts themselves are returned.
        """
        k, n = self.options.cross_layer, self.options.n_ctx
        text, visual = [self.ctx, *self.deep_text], list(self.visual_prompts)
        in_place = self.options.in_place_mapping
        with torch.set_grad_enabled(torch.is_grad_enabled() and not in_place):
            text_proxies = torch.cat([proxy(token, prompts) for proxy, token, prompts
                                      in zip(self.text_proxies, self.text_proxy_tokens, text[:k])])
            mapped_visual = self.text_to_visual(torch.cat(visual[:k]), text_proxies).view(k, n, -1)
            if in_place:
                for target, value in zip(visual[:k], mapped_visual):
                    target.data.copy_(value)  # aliased visual prompts all take the last value, as theirs do
            visual_proxies = torch.cat([proxy(token, prompts) for proxy, token, prompts
                                        in zip(self.visual_proxies, self.visual_proxy_tokens, visual[k:])])
            mapped_text = self.visual_to_text(torch.cat(text[k:]), visual_proxies).view(len(text) - k, n, -1)
            if in_place:
                for target, value in zip(text[k:], mapped_text):
                    target.data.copy_(value)
                return text, visual
        return text[:k] + list(mapped_text), list(mapped_visual) + visual[k:]

    # ---- frozen CLIP's side ----------------------------------------------------------------------

    @torch.no_grad()
    def fixed_text_features(self) -> Tensor:
        """ḡ (n_cls, embed_dim): frozen CLIP's features of each class's descriptions, each normalized,
        averaged, normalized (the authors' `gpt_clip_classifier`, one class per pass as theirs). The
        exact path keeps CLIP's 77 tokens; the fast path cuts after the longest EOS."""
        key = (self.logit_scale.device, self.eos_cut, self.text_encoder.fused)
        if self._fixed_text is None or self._fixed_text_key != key:
            rows = []
            with torch.autocast(self.logit_scale.device.type, enabled=False):
                for name in self.classnames:
                    tokens = tokenize(self.descriptions[name], self.text_encoder.context_length)
                    if self.eos_cut:
                        tokens = cut_after_eos(tokens)
                    features = normalize(self.text_encoder.encode_tokens(tokens.to(key[0])).float())
                    rows.append(normalize(features.mean(dim=0)))
            self._fixed_text, self._fixed_text_key = torch.stack(rows), key
        return self._fixed_text

    @torch.no_grad()
    def frozen_image_features(self, images: Tensor) -> Tensor:
        return normalize(self.image_encoder(images).float())

    # ---- features --------------------------------------------------------------------------------

    def fuse_text(self, raw: Tensor) -> Tensor:
        fixed = self.fixed_text_features()
        return normalize(normalize(raw.float()) + (fixed.half().float() if self.options.half_prompts else fixed))

    def class_text_features(self) -> Tensor | None:
        """Fused text features; None with IN_PLACE_MAPPING, whose prompts change at every forward (so
        evaluation recomputes them per batch, as the authors' code does)."""
        if self.options.in_place_mapping:
            return None
        text, _ = self.mapped_prompts()
        return self.fuse_text(self.encode_class_text(text[1:]))

    def encode_images(self, images: Tensor, visual: Sequence[Tensor] | None = None) -> Tensor:
        return self.raw_prompted_images(images, list(visual) if visual is not None else self.mapped_prompts()[1])

    def features(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Fused image features, fused text features and frozen image features of one forward."""
        frozen = self.frozen_image_features(images)
        text_features = self._text_cache
        if text_features is None:
            text, visual = self.mapped_prompts()
            text_features = self.fuse_text(self.encode_class_text(text[1:]))
        else:
            visual = self.mapped_prompts()[1]
        image_features = normalize(normalize(self.encode_images(images, visual).float()) + frozen)
        return image_features, text_features, frozen

    def forward(self, images: Tensor) -> Tensor:
        image_features, text_features, _ = self.features(images)
        return self.logits(image_features, text_features)

    def loss(self, images: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, float]]:
        image_features, text_features, frozen = self.features(images)
        logits = self.logits(image_features, text_features)
        ce = F.cross_entropy(logits, labels)
        text_distill = 1.0 - F.cosine_similarity(text_features, self.fixed_text_features(), dim=1, eps=1e-7).mean()
        image_distill = 1.0 - F.cosine_similarity(image_features, frozen, dim=1, eps=1e-7).mean()
        loss = ce + self.options.lambd * (text_distill + image_distill)
        summary = {
            "loss": loss.item(), "ce": ce.item(), "text_distill": text_distill.item(),
            "image_distill": image_distill.item(), "acc": accuracy(logits, labels),
        }
        return loss, summary
