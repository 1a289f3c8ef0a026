"""PromptSRC (Khattak et al., ICCV 2023): independent deep prompts kept close to frozen CLIP.

Prompts: IVLP's (`models/ivlp.py`): the text prompt reads `[SOS] p_1..p_n <rest of CTX_INIT>
<class>. [EOS]`, and fresh learned text prompts replace the n prompt positions before text blocks
1..J_t-1; n_v learned visual tokens are appended after the image's positional embedding and replaced
before vision blocks 1..J_v-1. Text and visual prompts are independent (no coupling, unlike MaPLe).

Self-regulating constraints, added to the cross-entropy while training (features normalized):

    L = CE(s·f·gᵀ, y) + λ_t·mean|g − ḡ| + λ_v·mean|f − f̃| + Σ KL(softmax(s·f̃·ḡᵀ) ‖ softmax(s·f·gᵀ)) / (B·C)

with f, g the prompted image and class text features, f̃ frozen CLIP's image feature and ḡ the
teacher text feature of each class: frozen CLIP's text features averaged over 60 hand-written
templates (textual diversity), then normalized. Gaussian prompt aggregation (GPA) averages the
prompts of every epoch e with weights ∝ N(e; GPA_MEAN, GPA_STD²) (`GaussianPromptAverage`; the
trainer feeds it at each epoch's end and loads the average after the last one). While it runs, the
checkpoints hold its running sum too (as `gpa.<name>`), so a resumed run keeps the earlier epochs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..options import option, register_options
from ..prompts import template_tokens
from ..backbones.templates import IMAGENET_TEMPLATES
from .base import accuracy, normalize
from .ivlp import IVLP, IVLPOptions

KEY = "TRAINER.PROMPTSRC"
GPA_PREFIX = "gpa."


@register_options("PROMPTSRC")
@dataclass
class PromptSRCOptions(IVLPOptions):
    n_ctx_text: int = option(4, "text prompt tokens per prompted block", min=1)
    n_ctx_vision: int = option(4, "visual prompt tokens per prompted block (0 only with PROMPT_DEPTH_VISION 0)", min=0)
    prompt_depth_text: int = option(9, "text blocks with prompts (1 = the input only)", min=1)
    prompt_depth_vision: int = option(9, "vision blocks with prompts (0 = no visual prompts)", min=0)
    half_prompts: bool = option(
        False,
        "round the visual and deeper text prompts (and the teacher text features in the zero-shot logits) "
        "to fp16 at every precision, as the authors' code does",
    )
    text_loss_weight: float = option(25.0, "λ_t: weight of the L1 distance of the text features to the teacher's", min=0)
    image_loss_weight: float = option(10.0, "λ_v: weight of the L1 distance of the image features to frozen CLIP's", min=0)
    gpa: bool = option(True, "Gaussian prompt aggregation: end with the Gaussian-weighted average of every epoch's prompts")
    gpa_mean: float = option(15.0, "GPA: the epoch (1-based) of the largest weight")
    gpa_std: float = option(1.0, "GPA: the width of the weights, in epochs", above=0)


def gaussian_epoch_weights(epochs: int, mean: float, std: float) -> list[float]:
    """w_e ∝ N(e; mean, std²) for e = 1..epochs, summing to 1."""
    density = [math.exp(-0.5 * ((e - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi)) for e in range(1, epochs + 1)]
    total = sum(density)
    if not total > 0:
        raise ConfigError(
            f"{KEY}.GPA_MEAN / GPA_STD put no weight on epochs 1..{epochs}; move GPA_MEAN into that range or widen GPA_STD."
        )
    return [d / total for d in density]


class GaussianPromptAverage:
    """Running Σ_e w_e·θ_e of the learned tensors θ_e at the end of each epoch e."""

    def __init__(self, weights: Sequence[float]):
        self.weights = list(weights)
        self.total: dict[str, Tensor] | None = None

    def add(self, epoch: int, state: dict[str, Tensor]) -> None:
        """Add the weights `state` reached at the end of `epoch` (0-based)."""
        weight = self.weights[epoch]
        weighted = {name: value.detach().clone() * weight for name, value in state.items()}
        if self.total is None:
            self.total = weighted
        else:
            self.total = {name: self.total[name] + weighted[name] for name in weighted}

    def result(self) -> dict[str, Tensor]:
        if self.total is None:
            raise RuntimeError("No epoch was added to the Gaussian prompt average")
        return self.total


class PromptSRC(IVLP):
    """IVLP's independent deep text and visual prompts, regularised towards frozen CLIP."""

    def __init__(
        self,
        clip: nn.Module,
        classnames: Sequence[str],
        options: PromptSRCOptions | None = None,
        template_chunk: int = 4096,
    ):
        super().__init__(clip, classnames, options or PromptSRCOptions())
        self.template_chunk = template_chunk
        self._teacher: Tensor | None = None  # computed on first use: evaluation never needs it
        self._teacher_key: tuple | None = None  # (device, eos_cut, fused) it was computed for
        self.prompt_average: GaussianPromptAverage | None = None  # set by the trainer when GPA is on

    # ---- checkpoints: the learned prompts, and GPA's running sum while it runs ----------------

    def learned_state_dict(self) -> dict[str, Tensor]:
        """The learned tensors alone (what GPA averages)."""
        return super().trainable_state_dict()

    def trainable_state_dict(self) -> dict[str, Tensor]:
        state = self.learned_state_dict()
        if self.prompt_average is not None and self.prompt_average.total is not None:
            state.update({GPA_PREFIX + name: value for name, value in self.prompt_average.total.items()})
        return state

    def load_trainable_state_dict(self, state: dict[str, Tensor]) -> None:
        running = {name[len(GPA_PREFIX) :]: v for name, v in state.items() if name.startswith(GPA_PREFIX)}
        super().load_trainable_state_dict({n: v for n, v in state.items() if not n.startswith(GPA_PREFIX)})
        if running and self.prompt_average is not None:
            self.prompt_average.total = {name: value.detach().clone() for name, value in running.items()}

    # ---- features ------------------------------------------------------------------------------

    @torch.no_grad()
    def teacher_text_features(self) -> Tensor:
        """ḡ (n_cls, embed_dim): frozen CLIP's text features averaged over the templates, normalized.

        As the authors compute it: each template's prompts encoded as one batch, one mean over the
        stacked templates. On the exact path (`eos_cut` off) the prompts keep CLIP's 77 tokens; the
        fast path cuts them after the longest EOS (the encoder is causal: equal up to rounding).
        """
        key = (self.logit_scale.device, self.eos_cut, self.text_encoder.fused)
        if self._teacher is None or self._teacher_key != key:
            length = self.text_encoder.context_length
            per_template = []
            for template in IMAGENET_TEMPLATES:
                tokens = template_tokens(template, self.classnames, length)
                if not self.eos_cut:
                    tokens = F.pad(tokens, (0, length - tokens.shape[1]))
                per_template.append(torch.cat([
                    self.text_encoder.encode_tokens(tokens[i : i + self.template_chunk]).float()
                    for i in range(0, tokens.shape[0], self.template_chunk)
                ]))
            self._teacher = normalize(torch.stack(per_template, dim=1).mean(dim=1))
            self._teacher_key = key
        return self._teacher

    # ---- training ------------------------------------------------------------------------------

    def loss(self, images: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, float]]:
        options = self.options
        image_features, text_features = self.image_features(images), self.class_text_features()
        logits = self.logits(image_features, text_features)
        teacher = self.teacher_text_features()
        with torch.no_grad():
            frozen_image = normalize(self.image_encoder(images)).float()
            teacher_for_logits = teacher.half().float() if options.half_prompts else teacher
            frozen_logits = self.logits(frozen_image, teacher_for_logits)
        ce = F.cross_entropy(logits, labels)
        text_l1 = F.l1_loss(text_features.float(), teacher) * options.text_loss_weight
        image_l1 = F.l1_loss(image_features.float(), frozen_image) * options.image_loss_weight
        logits_kl = F.kl_div(
            F.log_softmax(logits, dim=1), F.log_softmax(frozen_logits, dim=1), reduction="sum", log_target=True
        ) / logits.numel()
        loss = ce + (logits_kl + text_l1 + image_l1)
        summary = {
            "loss": loss.item(), "ce": ce.item(), "text_l1": text_l1.item(), "image_l1": image_l1.item(),
            "logits_kl": logits_kl.item(), "acc": accuracy(logits, labels),
        }
        return loss, summary
