"""SEP, Self-Enhanced Prompt Tuning (Yao et al., arXiv 2405.15549), as documented in docs/sep.md.

Learnable prompt tokens on both encoders are made input-aware: before each chosen block, a
Token Fusion Module (TFM) fuses a few pre-trained tokens of the current input (the tokens right
after the text prompt: class name, '.', EOS, padding; the most salient tokens of each image) with
the current prompt tokens, and the fused tokens take the prompt positions. Prompted features are
averaged with frozen CLIP features; the loss adds text and image consistency terms and a
prototype classifier on image features.

    model = SEP(clip, classnames, template="a photo of a {}.")
    model.init_prototypes(class_means)          # before training: frozen class-mean features
    loss, scalars = model.loss(images, labels)
    with model.cached_text_features():          # evaluation: text features once per test set
        logits = model(images)

`official_compat=True` reproduces the authors' code where it differs from the method as
described: TFM attention runs across the samples of a batch (across classes on the text side,
across images on the visual side), and visual tokens are selected once per batch.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..backbones._clip import clip_model
from ..backbones.encoders import ImageEncoder, TextEncoder
from ..errors import ConfigError
from ..options import MethodOptions, check_template, option, register_options
from ..prompts import ClassPrompts, PromptLengthError, init_context
from .base import DEFAULT_TEMPLATE, PromptedCLIP, accuracy, fp32_matmul, hand_crafted_features, normalize

SELECTIONS = ("image", "batch")
TFM_HIDDEN = 256  # width of the TFM's MLP bottleneck
TFM_SCALE_INIT = 0.75  # initial value of the TFM's mixing scalars s1, s2
PROTO_SCALE = 10.0  # temperature of the prototype classifier's cosine logits
PROTO_WEIGHT = 0.5  # weight of each of the two prototype cross-entropies


@register_options("SEP")
@dataclass
class SEPOptions(MethodOptions):
    """SEP's defaults are the authors' settings (configs/trainers/SEP/ repeat them explicitly)."""

    n_ctx: int = option(6, "learnable text context vectors; 1 + 2·N_CTX must fit in 77 tokens (CTX_INIT's token count when it is set)", min=1)
    n_ctx_v: int = option(4, "visual prompt tokens, also the number of salient tokens selected per layer", min=1)
    ctx_init: str = option("", "start the text context from these words (\"\" = random N(0, 0.02²))")
    layers: list[int] | int | None = option(None, "block indices with a TFM on both encoders (\"[3, 6, 9]\"); None = every block but the first; [] = none")
    w: float = option(8.0, "weight of the textual consistency term", min=0)
    w_v: float = option(6.0, "weight of the visual consistency term", min=0)
    visual_selection: str = option("", "image (top-k tokens per image) or batch (one set per batch); \"\" = image, or batch with OFFICIAL_COMPAT", choices=("", *SELECTIONS))
    official_compat: bool = option(False, "the authors' code: TFM attention across the samples of a batch, one token set per batch")
    template: str = option("", "hand-crafted template of the frozen text features, e.g. \"a photo of a {}.\"; \"\" = the dataset's")
    adam_eps: float = option(1e-3, "eps of Adam-family optimizers (the authors' OPTIM.EPS; Dassl's default is 1e-8)", above=0)

    def check(self) -> None:
        if isinstance(self.layers, int):
            self.layers = [self.layers]
        if self.layers is not None:
            duplicates = sorted({i for i in self.layers if self.layers.count(i) > 1})
            if duplicates:
                raise ConfigError(f"TRAINER.SEP.LAYERS lists block {duplicates[0]} more than once: {self.layers}.")
        check_template("TRAINER.SEP.TEMPLATE", self.template)

    @property
    def selection(self) -> str:
        """VISUAL_SELECTION resolved: image, or batch when "" with OFFICIAL_COMPAT."""
        return self.visual_selection or ("batch" if self.official_compat else "image")


class TokenFusion(nn.Module):
    """Token Fusion Module: fuse pre-trained tokens S (B, k, w) with prompt tokens P (B, n, w).

        Z     = s1 * S + (1 - s1) * MHA(query=LN1(P), key=LN1(S), value=LN1(S))
        P_new = s2 * Z + (1 - s2) * MLP(LN2(Z))

    Attention runs over the tokens of each sample. With `cross_sample=True` (the authors' code,
    which passes batch-first tensors to a sequence-first attention) it runs over the samples of
    the batch instead, separately for each token slot; then k must equal n. With `half_scales=True`
    s1 and s2 are rounded to fp16 at each use, as the authors' `scale.half()` does at every
    precision (their gradients are then fp16 too).
    """

    def __init__(self, width: int, hidden: int = TFM_HIDDEN, cross_sample: bool = False, half_scales: bool = False):
        super().__init__()
        self.half_scales = half_scales
        heads = max(1, width // 64)
        if width % heads:
            heads = 1
        self.cross_sample = cross_sample
        self.ln_1 = nn.LayerNorm(width)
        # Across samples: the authors' batch-first tensors into a sequence-first attention, as they call it.
        self.attn = nn.MultiheadAttention(width, heads, dropout=0.0, bias=True, batch_first=not cross_sample)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, hidden, bias=False), clip_model.QuickGELU(), nn.Linear(hidden, width, bias=False)
        )
        self.s1 = nn.Parameter(torch.tensor(TFM_SCALE_INIT))
        self.s2 = nn.Parameter(torch.tensor(TFM_SCALE_INIT))

    def forward(self, selected: Tensor, prompts: Tensor) -> Tensor:
        """Fused prompt tokens with the shape of `selected` (= the prompts' shape), in fp32 or autocast dtype."""
        dtype = self.ln_1.weight.dtype  # the TFM's own dtype, whatever the encoder runs in
        s, p = selected.to(dtype), prompts.to(dtype)
        # evaluated in the authors' order, so autograd sums each tensor's gradients in their order
        z = self.scale(self.s1) * s + (1 - self.scale(self.s1)) * self.attend(p, s)
        return self.scale(self.s2) * z + (1 - self.scale(self.s2)) * self.mlp(self.ln_2(z))

    def attend(self, prompts: Tensor, selected: Tensor) -> Tensor:
        """MHA(query = LN1(P), key = value = LN1(S))."""
        query, key = self.ln_1(prompts), self.ln_1(selected)
        # the authors normalize key and value apart: one in-projection each, their bits
        value = self.ln_1(selected) if self.cross_sample else key
        return self.attn(query, key, value, need_weights=False)[0]

    def scale(self, value: Tensor) -> Tensor:
        """s1 or s2; with `half_scales` as the authors hold it: shape (1,), rounded to fp16."""
        return value.reshape(1).half() if self.half_scales else value


def make_fusion_modules(width: int, count: int, official_compat: bool) -> nn.ModuleList:
    """`count` TFMs starting from identical weights (the authors deep-copy one module); with
    `official_compat` they attend across samples and round s1, s2 to fp16 as the authors' code does."""
    if count == 0:
        return nn.ModuleList()
    first = TokenFusion(width, cross_sample=official_compat, half_scales=official_compat)
    return nn.ModuleList([first] + [copy.deepcopy(first) for _ in range(count - 1)])


def salient_token_indices(tokens: Tensor, k: int, per_image: bool = True) -> Tensor:
    """Indices of the k tokens with the largest mean squared activation.

    tokens (B, T, w) -> (B, k) with `per_image`, else (k,): one set from the batch-mean saliency.
    The saliency is computed in fp32 (squares of ViT activations overflow fp16).
    """
    saliency = tokens.float().pow(2).mean(dim=-1)  # (B, T)
    if not per_image:
        saliency = saliency.mean(dim=0)
    return saliency.topk(k, dim=-1).indices


def check_layers(layers: list[int] | None, depths: dict[str, int]) -> dict[str, list[int]]:
    """Block indices with a TFM for each branch; None = every block but the first, per branch.

    Types and duplicates are checked by `SEPOptions`; the range depends on this CLIP's depth."""
    if layers is None:
        return {branch: list(range(1, depth)) for branch, depth in depths.items()}
    problems = []  # every bad index of every branch, so that one run names them all
    for branch, depth in depths.items():
        bad = [i for i in layers if not 0 <= i < depth]
        if bad:
            problems.append(f"{', '.join(map(str, bad))} for the {branch} encoder of this CLIP ({depth} blocks: "
                            f"indices must be in 0..{depth - 1})")
    if problems:
        raise ConfigError(f"TRAINER.SEP.LAYERS {layers} holds blocks out of range: {'; '.join(problems)}.")
    return {branch: layers for branch in depths}


class TextPromptLearner(nn.Module):
    """`[SOS] ctx_1..ctx_n <class name>. [EOS]`; TFMs fuse the n tokens after the prompt into it."""

    def __init__(
        self,
        text_encoder: TextEncoder,
        classnames: Sequence[str],
        n_ctx: int,
        ctx_init: str,
        layers: list[int],
        official_compat: bool,
    ):
        super().__init__()
        self.ctx = nn.Parameter(init_context(text_encoder, n_ctx, ctx_init))
        n_ctx = self.ctx.shape[0]
        context = text_encoder.context_length
        if layers and 1 + 2 * n_ctx > context:
            raise PromptLengthError(
                f"TRAINER.SEP.N_CTX {n_ctx} is too long: the TFMs read the {n_ctx} tokens after the "
                f"prompt, so 1 + 2 * N_CTX = {1 + 2 * n_ctx} must fit CLIP's {context}-token context "
                f"(N_CTX at most {(context - 1) // 2})."
            )
        self.prompts = ClassPrompts(text_encoder, classnames, n_ctx)  # errors if a class does not fit
        # The causal pass runs up to the longest EOS, and at least to the selected slice n+1..2n,
        # which may reach into the padding (token 0) after EOS.
        self.min_length = 1 + 2 * n_ctx if layers else 0
        self.layers = list(layers)
        self.fusion = make_fusion_modules(text_encoder.width, len(layers), official_compat)

    @property
    def n_ctx(self) -> int:
        return self.ctx.shape[0]

    def _inject(self, fusion: TokenFusion):
        n = self.n_ctx

        def inject(x: Tensor) -> Tensor:
            fused = fusion(x[:, 1 + n : 1 + 2 * n], x[:, 1 : 1 + n]).to(x.dtype)
            return torch.cat([x[:, :1], fused, x[:, 1 + n :]], dim=1)

        return inject

    def forward(self, text_encoder: TextEncoder) -> Tensor:
        """Prompted text features (n_cls, embed_dim), not normalized."""
        injections = {layer: self._inject(f) for layer, f in zip(self.layers, self.fusion)}
        return text_encoder(self.embeddings(), self.prompts.eos_positions, injections)

    def embeddings(self) -> Tensor:
        """Prompt embeddings (n_cls, L, width), L = max(longest EOS + 1, 1 + 2n)."""
        prompts = self.prompts.assemble(self.ctx)
        missing = self.min_length - prompts.shape[1]
        if missing > 0:
            padding = self.prompts.padding.to(prompts.dtype).expand(prompts.shape[0], missing, -1)
            prompts = torch.cat([prompts, padding], dim=1)
        return prompts


class VisualPromptLearner(nn.Module):
    """n_v prompt tokens appended after the positional embedding; TFMs fuse salient tokens into them."""

    def __init__(
        self,
        image_encoder: ImageEncoder,
        n_ctx: int,
        layers: list[int],
        per_image: bool,
        official_compat: bool,
    ):
        super().__init__()
        n_tokens = image_encoder.num_tokens  # CLS + patches
        if not isinstance(n_ctx, int) or not 1 <= n_ctx <= n_tokens:
            raise ConfigError(
                f"TRAINER.SEP.N_CTX_V must be an integer in 1..{n_tokens} (the CLS and patch tokens "
                f"it selects from), got {n_ctx!r}."
            )
        self.ctx = nn.Parameter(torch.randn(n_ctx, image_encoder.width) * 0.02)
        self.layers = list(layers)
        self.per_image = per_image
        self.fusion = make_fusion_modules(image_encoder.width, len(layers), official_compat)

    @property
    def n_ctx(self) -> int:
        return self.ctx.shape[0]

    def _inject(self, fusion: TokenFusion):
        n = self.n_ctx

        def inject(x: Tensor) -> Tensor:
            pretrained, prompts = x[:, :-n], x[:, -n:]
            index = salient_token_indices(pretrained, n, self.per_image)
            if self.per_image:
                selected = pretrained.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
            else:
                selected = pretrained[:, index]
            return torch.cat([pretrained, fusion(selected, prompts).to(x.dtype)], dim=1)

        return inject

    def forward(self, image_encoder: ImageEncoder, images: Tensor) -> Tensor:
        """Prompted image features (B, embed_dim), not normalized."""
        injections = {layer: self._inject(f) for layer, f in zip(self.layers, self.fusion)}
        return image_encoder(images, prompts=self.ctx.unsqueeze(0), injections=injections)


class SEP(PromptedCLIP):
    """SEP over a frozen CLIP: prompts and TFMs on both encoders, frozen-feature fusion, prototypes.

    Trainable: text context, visual prompts, the TFMs in use, and the prototype classifier
    `prototypes` (n_cls, embed_dim). The prototypes are class-dependent and used in training
    only, so `trainable_state_dict()` leaves them out: a checkpoint trained on base classes
    loads into a model built for new classes.
    """

    def __init__(
        self,
        clip: nn.Module,
        classnames: Sequence[str],
        options: SEPOptions | None = None,
        template: str = DEFAULT_TEMPLATE,
    ):
        super().__init__(clip, classnames)
        self.options = options = options or SEPOptions()
        self.require_image_tokens()
        options.validate()  # also when built in Python rather than from a config node
        template = options.template or template  # TEMPLATE overrides the dataset's
        if "{}" not in template:
            raise ConfigError(f"The hand-crafted template {template!r} has no '{{}}' for the class name.")
        depths = {"text": self.text_encoder.depth, "image": self.image_encoder.depth}
        chosen = check_layers(options.layers, depths)
        self.frozen_fusion = True  # False: no fusion with frozen features (an ablation; not a config key)
        self.text_prompts = TextPromptLearner(
            self.text_encoder, self.classnames, options.n_ctx, options.ctx_init, chosen["text"], options.official_compat
        )
        self.visual_prompts = VisualPromptLearner(
            self.image_encoder, options.n_ctx_v, chosen["image"], options.selection == "image", options.official_compat
        )
        self.template = template
        hand = self.frozen_template_features(full_context=False)
        self.register_buffer("hand_text_features", hand, persistent=False)
        # Training sets these with init_prototypes() (normalized class means of frozen image
        # features); until then they hold t_hand, so the module works on its own (with a warning).
        self.prototypes = nn.Parameter(hand.clone())
        self.prototypes_initialized = False

    def configure(self, *, eos_cut: bool | None = None, fused: bool | None = None) -> "SEP":
        """The paths (see `PromptedCLIP.configure`); the hand-crafted text features follow them."""
        super().configure(eos_cut=eos_cut, fused=fused)
        self.hand_text_features = self.frozen_template_features(full_context=not self.eos_cut)
        return self

    def frozen_template_features(self, full_context: bool) -> Tensor:
        """t_0: the template's normalized frozen features (full_context: CLIP's 77 tokens, the exact path)."""
        hand = hand_crafted_features(self.text_encoder, self.classnames, self.template, full_context)
        # the authors' forward normalizes these normalized features once more (last bits)
        return normalize(hand) if self.options.official_compat else hand

    # ---- features ---------------------------------------------------------------------------

    def prompted_text_features(self) -> Tensor:
        """Text features of the prompted branch (n_cls, embed_dim), before any fusion or norm."""
        return self.text_prompts(self.text_encoder)

    def prompted_image_features(self, images: Tensor) -> Tensor:
        """Image features of the prompted branch (B, embed_dim), before any fusion or norm."""
        return self.visual_prompts(self.image_encoder, images)

    @torch.no_grad()
    def frozen_image_features(self, images: Tensor) -> Tensor:
        """Normalized plain CLIP image features (B, embed_dim), fp32, no gradient."""
        return normalize(self.image_encoder(images).float())

    def class_text_features(self) -> Tensor:
        """t̂ = normalize(normalize(prompted text) + t_hand), (n_cls, embed_dim), fp32."""
        text = normalize(self.prompted_text_features().float())
        if self.frozen_fusion:
            text = normalize(text + self.hand_text_features)
        return text

    def image_features(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """(f̂, normalized frozen feature), both (B, embed_dim) fp32."""
        frozen = self.frozen_image_features(images)
        image = normalize(self.prompted_image_features(images).float())
        if self.frozen_fusion:
            image = normalize(image + frozen)
        return image, frozen

    def forward(self, images: Tensor) -> Tensor:
        image, _ = self.image_features(images)
        return self.logits(image, self.text_features())

    # ---- prototypes and loss -----------------------------------------------------------------

    @torch.no_grad()
    def init_prototypes(self, class_means: Tensor) -> None:
        """Set the prototype classifier to the normalized class means (n_cls, embed_dim)."""
        if tuple(class_means.shape) != tuple(self.prototypes.shape):
            raise ValueError(
                f"Class means of shape {tuple(class_means.shape)} do not fit the prototypes "
                f"{tuple(self.prototypes.shape)} (one row per class, embed_dim columns)."
            )
        self.prototypes.copy_(normalize(class_means.float()))
        self.prototypes_initialized = True

    def load_prototypes(self, prototypes: Tensor) -> None:
        """Restore trained prototypes (a resumed run), unchanged."""
        if tuple(prototypes.shape) != tuple(self.prototypes.shape):
            raise ValueError(f"Prototypes {tuple(prototypes.shape)} do not fit {tuple(self.prototypes.shape)}.")
        with torch.no_grad():
            self.prototypes.copy_(prototypes)
        self.prototypes_initialized = True

    def prototype_logits(self, features: Tensor) -> Tensor:
        return PROTO_SCALE * fp32_matmul(normalize(features.float()), normalize(self.prototypes.float()).t())

    def loss(self, images: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, float]]:
        """CE + W·text consistency + W_V·image consistency + 0.5·(two prototype CEs)."""
        if not self.prototypes_initialized:
            warnings.warn(
                "SEP's prototype classifier was not initialised from class means (init_prototypes); "
                "it starts from the hand-crafted text features instead.",
                stacklevel=2,
            )
            self.prototypes_initialized = True  # warn once
        text = self.text_features().float()  # once per step: depends on the classes only
        image, frozen = self.image_features(images)
        logits = self.logits(image, text)
        # the terms in the authors' order: autograd then sums the features' gradients in their order
        frozen_proto_logits = self.prototype_logits(frozen)
        proto = PROTO_WEIGHT * (
            F.cross_entropy(self.prototype_logits(image), labels) + F.cross_entropy(frozen_proto_logits, labels)
        )
        text_consistency = 1 - F.cosine_similarity(text, self.hand_text_features, dim=-1).mean()
        ce = F.cross_entropy(logits, labels)
        visual_consistency = 1 - F.cosine_similarity(frozen, image, dim=-1).mean()
        loss = ce + self.options.w * text_consistency + self.options.w_v * visual_consistency + proto
        return loss, {
            "loss": loss.item(),
            "acc": accuracy(logits, labels),
            "ce": ce.item(),
            "text_cons": text_consistency.item(),
            "visual_cons": visual_consistency.item(),
            "proto": proto.item(),
        }

    # ---- checkpoints: everything trained except the class-dependent prototypes ---------------

    def trainable_state_dict(self) -> dict[str, Tensor]:
        state = super().trainable_state_dict()
        state.pop("prototypes", None)
        return state

    def load_trainable_state_dict(self, state: dict[str, Tensor]) -> None:
        state = {name: value for name, value in state.items() if name != "prototypes"}
        requires_grad = self.prototypes.requires_grad
        self.prototypes.requires_grad_(False)  # not part of what checkpoints hold
        try:
            super().load_trainable_state_dict(state)
        finally:
            self.prototypes.requires_grad_(requires_grad)


def class_means(features: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """Mean feature of each class (num_classes, dim); an error names a class without samples."""
    features = features.float()
    sums = torch.zeros(num_classes, features.shape[1], dtype=features.dtype, device=features.device)
    sums.index_add_(0, labels, features)
    counts = torch.bincount(labels, minlength=num_classes)[:num_classes]
    empty = (counts == 0).nonzero().flatten().tolist()
    if empty:
        from ..data.errors import EmptyClassError  # the user's data: one line in train.py, not a traceback

        raise EmptyClassError(
            f"No readable training image for class(es) {empty[:10]} (labels): SEP's prototypes are class means "
            "of training images; replace the unreadable images of those classes."
        )
    return sums / counts.unsqueeze(1).to(features.dtype)
