"""MMRL (Guo & Gu, CVPR 2025): a shared representation space projected into tokens for both encoders.

A learned space R (N_REP_TOKENS × REP_DIM, N(0, 0.02²)) is mapped, for each layer l of REP_LAYERS,
by its own linear map into n text tokens and n image tokens. Before the first of those layers the
tokens are inserted right after [CLS] (image) and [SOS] (text); before each later one they replace
the previous block's tokens at those positions. Text prompts are the dataset's hand-crafted prompt
(no learned words); text features are read at the EOS token, which moved n places.

Two image features: the class token's, through CLIP's frozen projection (f_c), and the mean of the
representation tokens after ln_post through a learned projection P_r (f_r). With α = ALPHA, λ =
REG_WEIGHT, t the class text features and t₀ / f₀ frozen CLIP's (normalized) text and image
features,

    L = α CE(s·cos(f_c, t)) + (1−α) CE(s·cos(f_r, t)) + λ (1 − mean cos(f_c, f₀)) + λ (1 − mean cos(t, t₀)).

Classes seen in training (base classes, few-shot, ImageNet in cross-dataset) are scored with the
fused logits α·logits_c + (1−α)·logits_r; other classes (new classes, other datasets) with the class
token's logits alone, because P_r was fitted to the training classes (EVAL_HEAD, see `uses_fusion`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..backbones.encoders import insert_tokens, replace_tokens
from ..errors import ConfigError
from ..options import PRECISIONS, MethodOptions, check_template, option, register_options
from ..prompts import template_tokens
from .base import DEFAULT_TEMPLATE, PromptedCLIP, accuracy, normalize


@register_options("MMRL")
@dataclass
class MMRLOptions(MethodOptions):
    alpha: float = option(0.7, "α: weight of the class-token logits (1−α: the representation tokens') in loss and fusion", min=0, max=1)
    reg_weight: float = option(1.0, "λ: weight of each cosine regulariser towards frozen CLIP's image and text features", min=0)
    n_rep_tokens: int = option(5, "representation tokens per encoder", min=1)
    rep_layers: list[int] = option(
        [6, 7, 8, 9, 10, 11, 12], "layers (1 = the first block) before which the tokens enter, ascending, as the authors count"
    )
    rep_dim: int = option(512, "width of the shared representation space", min=1)
    template: str = option("", "the text prompt, \"{}\" = class name (\"\" = the dataset's hand-crafted prompt)")
    eval_head: str = option(
        "auto",
        "logits at evaluation: fusion (class + representation tokens), class (class token only), auto = fusion "
        "on the classes the weights were trained on, class token on others",
        choices=("auto", "fusion", "class"),
    )
    logit_scale: float = option(0.0, "the logits' scale (0 = CLIP's own; 100 = the authors' hard-coded constant)", min=0)
    prec: str = option("amp", "numeric precision (fp16/amp fall back to fp32 on the CPU)", choices=PRECISIONS)

    def check(self) -> None:
        check_template(f"TRAINER.{self.node_name}.TEMPLATE", self.template)
        layers = list(self.rep_layers)
        if not layers or min(layers) < 1 or layers != sorted(set(layers)):
            raise ConfigError(f"TRAINER.{self.node_name}.REP_LAYERS {layers} must be a non-empty ascending list "
                              "of layers counted from 1.")


def representation_injections(tokens: Sequence[Tensor], blocks: Sequence[int], weight: float = 1.0) -> dict[int, Callable]:
    """tokens[k] inserted after the first token before blocks[0], then replacing them before blocks[k]
    (with `weight` < 1, blended with the previous block's: MMRL++'s residual, `replace_tokens`)."""
    return {block: insert_tokens(values, 1) if k == 0 else replace_tokens(values, 1, weight)
            for k, (block, values) in enumerate(zip(blocks, tokens))}


class MMRL(PromptedCLIP):
    """Representation tokens in the higher blocks of both encoders, two image features, two heads."""

    def __init__(self, clip: nn.Module, classnames: Sequence[str], options: MMRLOptions | None = None,
                 template: str = DEFAULT_TEMPLATE):
        super().__init__(clip, classnames)
        self.options = options = options or MMRLOptions()
        self.require_image_tokens()
        depth = min(self.text_encoder.depth, self.image_encoder.depth)
        if options.rep_layers[-1] > depth:
            raise ConfigError(f"TRAINER.{options.node_name}.REP_LAYERS reaches layer {options.rep_layers[-1]}; this CLIP's encoders "
                              f"have {self.text_encoder.depth} (text) and {self.image_encoder.depth} (image) blocks.")
        self.blocks = [layer - 1 for layer in options.rep_layers]
        self.template = options.template or template
        self.rep_tokens = nn.Parameter(torch.randn(options.n_rep_tokens, options.rep_dim) * 0.02)
        to_image = nn.Linear(options.rep_dim, self.image_encoder.width)
        to_text = nn.Linear(options.rep_dim, self.text_encoder.width)
        self.to_image, self.to_text = self.layer_maps(to_image), self.layer_maps(to_text)
        self.build_rep_projection()
        if options.logit_scale:
            self.logit_scale.fill_(options.logit_scale)
        self.trained_classnames: list[str] | None = None  # the classes of loaded weights (None: as built)

    def layer_maps(self, initial: nn.Linear) -> nn.Module:
        """R's map into one encoder for each representation layer: `initial` cloned per layer, as the
        authors' code does (every layer starts from the same weights)."""
        return nn.ModuleList(copy.deepcopy(initial) for _ in self.blocks)

    def map_tokens(self, maps: nn.Module, k: int) -> Tensor:
        """R through `maps`' map of the k-th representation layer."""
        return maps[k](self.rep_tokens)

    def build_rep_projection(self) -> None:
        """P_r, initialised as CLIP initialises its projection."""
        width = self.image_encoder.width
        self.proj_rep = nn.Parameter(width ** -0.5 * torch.randn(width, self.embed_dim))

    def rep_projection(self) -> Tensor:
        """P_r: the representation tokens' image projection."""
        return self.proj_rep

    def injections(self, tokens: Sequence[Tensor]) -> dict[int, Callable]:
        return representation_injections(tokens, self.blocks)

    def uses_fusion(self) -> bool:
        """Fused logits on the classes the weights were trained on, the class token's on any others."""
        head = self.options.eval_head
        if head != "auto":
            return head == "fusion"
        return self.trained_classnames is None or list(self.trained_classnames) == self.classnames

    def text_tokens(self) -> list[Tensor]:
        return [self.map_tokens(self.to_text, k) for k in range(len(self.blocks))]

    def image_tokens(self) -> list[Tensor]:
        return [self.map_tokens(self.to_image, k) for k in range(len(self.blocks))]

    def representation(self) -> tuple[list[Tensor], list[Tensor]]:
        """Text and image tokens of every layer, computed layer by layer, text first, as the authors'
        learner does (the order in which R's gradient is summed, so the exact path gives their bits)."""
        pairs = [(self.map_tokens(self.to_text, k), self.map_tokens(self.to_image, k)) for k in range(len(self.blocks))]
        return [text for text, _ in pairs], [image for _, image in pairs]

    def class_text_features(self, rep_tokens: list[Tensor] | None = None) -> Tensor:
        tokens = template_tokens(self.template, self.classnames, self.text_encoder.context_length)
        if not self.eos_cut:
            tokens = F.pad(tokens, (0, self.text_encoder.context_length - tokens.shape[1]))
        eos = tokens.argmax(dim=-1).to(self.logit_scale.device) + self.options.n_rep_tokens
        injections = self.injections(self.text_tokens() if rep_tokens is None else rep_tokens)
        return normalize(self.text_encoder(self.text_encoder.embed(tokens), eos, injections))

    def image_features(self, images: Tensor, rep_tokens: list[Tensor] | None = None,
                       prefix: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Normalized class-token and representation-token features, each (B, embed_dim).

        `prefix`: the sequence entering the first representation block (`ImageEncoder.run_to`), when
        the caller has it already."""
        injections = self.injections(self.image_tokens() if rep_tokens is None else rep_tokens)
        if prefix is None:
            prefix = self.image_encoder.run_to(images, self.blocks[0])
        features, tokens = self.image_encoder.encode_from(prefix, self.blocks[0], injections, return_tokens=True)
        rep = self.image_encoder.visual.ln_post(tokens[:, 1 : 1 + self.options.n_rep_tokens]).mean(dim=1)
        rep = rep @ self.rep_projection().to(rep.dtype)
        return normalize(features), normalize(rep)

    def head_logits(self, images: Tensor, text: Tensor) -> tuple[Tensor, Tensor]:
        image, image_rep = self.image_features(images)
        return self.logits(image, text), self.logits(image_rep, text)

    def fuse(self, logits: Tensor, logits_rep: Tensor) -> Tensor:
        alpha = self.options.alpha
        return alpha * logits + (1 - alpha) * logits_rep

    def forward(self, images: Tensor) -> Tensor:
        text = self.text_features()
        if not self.uses_fusion():
            image, _ = self.image_features(images)
            return self.logits(image, text)
        return self.fuse(*self.head_logits(images, text))

    def loss(self, images: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, float]]:
        text_tokens, image_tokens = self.representation()
        text = self.class_text_features(text_tokens)
        with torch.no_grad():  # frozen CLIP's image pass shares the blocks before the first representation block
            prefix = self.image_encoder.run_to(images, self.blocks[0])
            frozen_image = normalize(self.image_encoder.encode_from(prefix, self.blocks[0]))
        image, image_rep = self.image_features(images, image_tokens, prefix)
        logits, logits_rep = self.logits(image, text), self.logits(image_rep, text)
        frozen_text = self.frozen_prompt_features(self.template)
        alpha, weight = self.options.alpha, self.options.reg_weight
        ce = F.cross_entropy(logits, labels)
        ce_rep = F.cross_entropy(logits_rep, labels)
        reg_image = 1 - torch.mean(F.cosine_similarity(image.float(), frozen_image.float(), dim=1))
        reg_text = 1 - torch.mean(F.cosine_similarity(text.float(), frozen_text, dim=1))
        loss = alpha * ce + (1 - alpha) * ce_rep + weight * reg_image + weight * reg_text  # the authors' order
        summary = {"loss": loss.item(), "ce": ce.item(), "ce_rep": ce_rep.item(), "reg_image": reg_image.item(),
                   "reg_text": reg_text.item(), "acc": accuracy(self.fuse(logits, logits_rep), labels)}
        return loss, summary
