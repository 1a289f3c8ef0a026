"""ProGrad (Zhu et al., ICCV 2023): CoOp whose gradient never works against zero-shot CLIP's knowledge.

Two losses on the same logits: the cross-entropy with the labels, L_ce, and the distillation term
towards zero-shot CLIP's logits z (the dataset's hand-crafted prompt), with temperature T,

    L_kd = mean_b Σ_c −softmax(z/T)_c · log softmax(s/T)_c · T².

Only L_ce's gradient g updates the prompts, projected: where it points against L_kd's gradient
h (g·h < 0), its component along h is removed, g ← g − λ (g·ĥ) ĥ with ĥ = h/‖h‖ (λ = LAMBDA; 1
removes it entirely); otherwise g is used as it is. Each learned tensor is projected on its own,
as the authors' trainer does.

The authors' context starts from the dataset's prompt (`CTX_INIT True`): with k the prompt's word
count, the last k of the N_CTX context vectors start as the embeddings of its first k tokens, the
first N_CTX − k at zero, and the tokens after the first k stay fixed words before the class name.
`TEMPLATE_INIT` does this; off, the context starts as CoOp's (CTX_INIT words, or random).

The projection is done inside `loss`: it computes both gradients with `torch.autograd.grad` and
returns L_ce plus a term whose value is 0 and whose gradient is the projected g minus L_ce's, so
the trainer's one `backward` leaves exactly the projected gradient (gradient scaling included).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..backbones._clip import clip_api
from ..errors import ConfigError
from ..options import check_template, option, register_options
from ..prompts import ClassPrompts, tokenize
from .base import DEFAULT_TEMPLATE, accuracy, normalize
from .coop import CoOp, CoOpOptions


# The authors' prompts, where they differ from the dataset's CoOp prompt: the class name always last,
# so that the context (which starts from the prompt's words) comes before it.
AUTHORS_TEMPLATES = {
    "OxfordPets": "a type of pet, a photo of a {}.",
    "OxfordFlowers": "a type of flower, a photo of a {}.",
    "FGVCAircraft": "a type of aircraft, a photo of a {}.",
    "DescribableTextures": "a texture of {}.",
    "Food101": "a type of food, a photo of {}.",
}


def authors_template(dataset: str, dataset_template: str) -> str:
    """ProGrad's hand-crafted prompt for a Dassl dataset name: the CoOp prompt unless theirs differs."""
    return AUTHORS_TEMPLATES.get(dataset, dataset_template)


@register_options("PROGRAD")
@dataclass
class ProGradOptions(CoOpOptions):
    template_init: bool = option(
        True, "start the context from the dataset's hand-crafted prompt, as the authors' CTX_INIT True (then CTX_INIT is unused)"
    )
    lambda_: float = option(1.0, "λ: how much of the conflicting component of the gradient is removed (1 = all)", min=0, max=1)
    t: float = option(1.0, "T: temperature of the distillation term", above=0)
    template: str = option("", "zero-shot CLIP's prompt, \"{}\" = class name (\"\" = the authors' for the dataset)")

    def check(self) -> None:
        check_template("TRAINER.PROGRAD.TEMPLATE", self.template)


def template_context(text_encoder, n_ctx: int, template: str) -> tuple[Tensor, str]:
    """The authors' start from a prompt "<words> {}.": (n_ctx, width) context with the embeddings of
    the first k tokens of <words> in its last k rows (k = the word count, zeros before), and the
    words of the tokens after the first k (fixed words before the class name)."""
    if not template.endswith("{}."):
        raise ConfigError(f"TRAINER.PROGRAD.TEMPLATE_INIT needs a prompt ending in '{{}}.'; the prompt is {template!r}.")
    words = template[: -len("{}.")].replace("_", " ").strip()
    count = len(words.split(" "))
    if count > n_ctx:
        raise ConfigError(f"TRAINER.PROGRAD.N_CTX is {n_ctx}, fewer than the {count} words of {words!r}.")
    tokens = tokenize([words], text_encoder.context_length)[0]
    n_tokens = int(tokens.argmax()) - 1
    ctx = torch.zeros(n_ctx, text_encoder.width)
    with torch.no_grad():
        ctx[n_ctx - count :] = text_encoder.embed(tokens[None])[0, 1 : 1 + count].float()
    tokenizer = clip_api._tokenizer
    fixed = tokenizer.decode(tokens[1 + count : 1 + n_tokens].tolist()).strip() if n_tokens > count else ""
    return ctx, fixed


class ProGrad(CoOp):
    """CoOp's prompts trained with ProGrad's projected gradient."""

    def __init__(
        self,
        clip: nn.Module,
        classnames: Sequence[str],
        options: ProGradOptions | None = None,
        template: str = DEFAULT_TEMPLATE,
    ):
        options = options or ProGradOptions()
        super().__init__(clip, classnames, options)
        template = options.template or template
        if options.template_init:
            ctx, fixed = template_context(self.text_encoder, options.n_ctx, template)
            with torch.no_grad():
                self.ctx.data = ctx.repeat(self.num_classes, 1, 1) if self.csc else ctx
            suffix = f"{fixed} {{}}." if fixed else "{}."
            position = options.class_token_position.lower()
            self.prompts = ClassPrompts(self.text_encoder, self.classnames, options.n_ctx, position=position, template=suffix)
        self.template = template  # zero-shot CLIP's prompt: its features are the teacher's

    def loss(self, images: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, float]]:
        image_features = normalize(self.image_encoder(images))
        logits = self.logits(image_features, self.class_text_features())
        with torch.no_grad():
            teacher = self.logits(image_features, self.frozen_prompt_features(self.template))
        t = self.options.t
        ce = F.cross_entropy(logits, labels)
        kd = (-F.softmax(teacher / t, dim=-1) * F.log_softmax(logits / t, dim=-1) * t * t).sum(dim=1).mean()
        learned = [p for p in self.parameters() if p.requires_grad]
        kd_grads = torch.autograd.grad(kd, learned, retain_graph=True)
        ce_grads = torch.autograd.grad(ce, learned, retain_graph=True)
        correction = sum(
            ((projected(g, h, self.options.lambda_) - g).detach() * p).sum() for p, g, h in zip(learned, ce_grads, kd_grads)
        )
        loss = ce + (correction - correction.detach())  # value L_ce, gradient the projected one
        return loss, {"loss": ce.item(), "kd": kd.item(), "acc": accuracy(logits, labels)}


def projected(g: Tensor, h: Tensor, lam: float) -> Tensor:
    """g without λ times its component along h when g and h conflict (g·h < 0), else g."""
    h_unit = h / torch.linalg.norm(h)
    g_unit = g / torch.linalg.norm(g)
    if torch.dot(g_unit.flatten(), h_unit.flatten()) < 0:
        return g - lam * torch.dot(g.flatten(), h_unit.flatten()) * h_unit
    return g
