"""CoPrompt (Roy & Etemad, ICLR 2024): MaPLe's prompts plus adapters, kept consistent with frozen CLIP.

Prompts: MaPLe's (`models/maple.py`): the text prompt `[SOS] p_1..p_n <rest of CTX_INIT> <class>. [EOS]`
with deep text prompts P^k, and visual prompts projected from them. Adapters: a two-layer bottleneck
A(x) = ReLU(W_2 ReLU(W_1 x)) (no biases, width E/ADAPTER_REDUCTION) on each encoder's output, mixed
in as f' = α·A_v(f) + (1−α)·f and g' = β·A_t(g) + (1−β)·g (α = IMAGE_ADAPTER_RATIO, β = TEXT_ADAPTER_RATIO).

Training sees two views of each image (the loader's K_TRANSFORMS 2): the first goes through the
prompted model, the second through frozen CLIP. With f', g' normalized, f̃ frozen CLIP's feature of
the second view and d_c frozen CLIP's feature of a language-model description of class c:

    L = CE(s·f'·g'ᵀ, y) + λ·(D(g', d) + D(f', f̃)),   D(a, b) = 1 − mean cos(a_i, b_i)  (or MSE)

λ = CONSISTENCY_WEIGHT. Which description: the authors' code draws one index per step (python's
`random`, the same index for every class); DESCRIPTION_CHOICE mean uses the mean of every
description's features instead. Evaluation is the prompted model with its adapters; frozen CLIP
and the descriptions are training targets only.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..options import option, register_options
from ..prompts import cut_after_eos, tokenize
from .base import accuracy, normalize
from .maple import MaPLe, MaPLeOptions

KEY = "TRAINER.COPROMPT"
DESCRIPTION_SETS = ("coprompt",)  # clipprompt.data.descriptions.DESCRIPTION_SETS (a test keeps them equal)
CHOICES = ("random", "mean")


@register_options("COPROMPT")
@dataclass
class CoPromptOptions(MaPLeOptions):
    consistency_weight: float = option(1.0, "λ: weight of the text and image consistency terms (the authors' TRAINER.W)", min=0)
    distance: str = option(
        "cosine", "D of the consistency terms: cosine (1 − mean cosine similarity) or mse (the authors' TRAINER.DISTILL)",
        choices=("cosine", "mse"),
    )
    image_adapter_ratio: float = option(0.1, "α: f' = α·adapter(f) + (1−α)·f on the image features", min=0, max=1)
    text_adapter_ratio: float = option(0.2, "β: g' = β·adapter(g) + (1−β)·g on the text features", min=0, max=1)
    adapter_reduction: int = option(4, "the adapters' bottleneck is the feature width divided by this", min=1)
    descriptions: str = option(
        "coprompt", "the class descriptions (python -m clipprompt.data.prepare NAME --descriptions SET)",
        choices=DESCRIPTION_SETS,
    )
    description_choice: str = option(
        "random",
        "random: one description drawn per step, the same index for every class (the authors'); "
        "mean: the normalized mean of every description's features",
        choices=CHOICES,
    )


class Adapter(nn.Sequential):
    """ReLU(W_2 ReLU(W_1 x)), no biases: the authors' residual adapter before its mixing."""

    def __init__(self, width: int, reduction: int):
        hidden = width // reduction
        if hidden < 1:
            raise ConfigError(f"{KEY}.ADAPTER_REDUCTION {reduction} leaves no width of the {width}-wide features.")
        super().__init__(nn.Linear(width, hidden, bias=False), nn.ReLU(), nn.Linear(hidden, width, bias=False), nn.ReLU())


def consistency(a: Tensor, b: Tensor, distance: str) -> Tensor:
    """D(a, b) of rows: 1 − mean cosine (eps 1e-7, the authors') or the mean squared error."""
    if distance == "cosine":
        return 1.0 - torch.mean(F.cosine_similarity(a, b, dim=1, eps=1e-7))
    return F.mse_loss(a, b)


class CoPrompt(MaPLe):
    """MaPLe with output adapters, trained towards frozen CLIP's features of descriptions and a second view."""

    def __init__(
        self,
        clip: nn.Module,
        classnames: Sequence[str],
        options: CoPromptOptions | None = None,
        descriptions: Sequence[Sequence[str]] | None = None,
    ):
        super().__init__(clip, classnames, options or CoPromptOptions())
        options = self.options
        self.image_adapter = Adapter(self.embed_dim, options.adapter_reduction)
        self.text_adapter = Adapter(self.embed_dim, options.adapter_reduction)
        self.descriptions = [list(d) for d in descriptions] if descriptions is not None else None
        if self.descriptions is not None:
            if len(self.descriptions) != self.num_classes:
                raise ValueError(f"{len(self.descriptions)} description lists for {self.num_classes} classes")
            counts = {len(d) for d in self.descriptions}
            if options.description_choice == "random" and len(counts) > 1:
                raise ConfigError(
                    f"The classes have {min(counts)} to {max(counts)} descriptions each; {KEY}.DESCRIPTION_CHOICE "
                    "random draws one index for all classes and needs the same number for each (or use mean)."
                )
        self._targets: Tensor | None = None  # (n_desc, n_cls, E) or (1, n_cls, E): computed on first use
        self._targets_key: tuple | None = None

    # ---- features ------------------------------------------------------------------------------

    @staticmethod
    def mix(features: Tensor, adapter: Adapter, ratio: float) -> Tensor:
        return ratio * adapter(features) + (1 - ratio) * features

    def encode_images(self, images: Tensor) -> Tensor:
        """The prompted image features after the image adapter's mixing (unnormalized)."""
        return self.mix(super().encode_images(images), self.image_adapter, self.options.image_adapter_ratio)

    def encode_class_text(self) -> Tensor:
        """The prompted class text features after the text adapter's mixing (unnormalized)."""
        return self.mix(super().encode_class_text(), self.text_adapter, self.options.text_adapter_ratio)

    # ---- the frozen targets ----------------------------------------------------------------------

    @torch.no_grad()
    def description_targets(self) -> Tensor:
        """Frozen CLIP's normalized features of the descriptions, (n_desc, n_cls, E); with
        DESCRIPTION_CHOICE mean, (1, n_cls, E): the normalized mean over each class's descriptions.

        Each class's descriptions are one batch, as the authors encode them; on the exact path
        (`eos_cut` off) with CLIP's 77 tokens, else cut after the batch's longest EOS (the
        encoder is causal: equal up to rounding). Computed once per device and path.
        """
        if self.descriptions is None:
            raise RuntimeError("CoPrompt was built without class descriptions: it can evaluate but not train")
        key = (self.logit_scale.device, self.eos_cut, self.text_encoder.fused)
        if self._targets is None or self._targets_key != key:
            length = self.text_encoder.context_length
            per_class = []
            for sentences in self.descriptions:
                tokens = tokenize(sentences, length)
                if self.eos_cut:
                    tokens = cut_after_eos(tokens)
                tokens = tokens.to(self.logit_scale.device)
                per_class.append(normalize(self.text_encoder.encode_tokens(tokens).float()))
            if self.options.description_choice == "mean":
                targets = normalize(torch.stack([f.mean(dim=0) for f in per_class]))[None]
            else:
                targets = torch.stack(per_class, dim=1)
            self._targets, self._targets_key = targets, key
        return self._targets

    def description_target(self) -> Tensor:
        """This step's text target (n_cls, E): the drawn description (python's `random`, as the
        authors draw it, so a seed and a resume give the same draws) or the mean."""
        targets = self.description_targets()
        index = random.randint(0, targets.shape[0] - 1) if self.options.description_choice == "random" else 0
        return normalize(targets[index])

    # ---- training ------------------------------------------------------------------------------

    def loss(self, images: Tensor | Sequence[Tensor], labels: Tensor) -> tuple[Tensor, dict[str, float]]:
        """`images` is (first view, second view); a single tensor serves as both."""
        first, second = images if isinstance(images, (tuple, list)) else (images, images)
        options = self.options
        image_features, text_features = self.image_features(first), self.class_text_features()
        logits = self.logits(image_features, text_features)
        text_target = self.description_target()
        with torch.no_grad():
            frozen_image = normalize(self.image_encoder(second).float())
        ce = F.cross_entropy(logits, labels)
        text_term = consistency(text_features.float(), text_target, options.distance)
        image_term = consistency(image_features.float(), frozen_image, options.distance)
        loss = ce + options.consistency_weight * (text_term + image_term)
        summary = {
            "loss": loss.item(), "ce": ce.item(), "text_consistency": text_term.item(),
            "image_consistency": image_term.item(), "acc": accuracy(logits, labels),
        }
        return loss, summary
